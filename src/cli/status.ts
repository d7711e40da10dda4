import type { Command } from "commander";
import { NodeApi } from "./api-client.js";

interface Info {
  hostname: string;
  nodeId: string;
  clusterId: string | null;
  isPrimary: boolean;
  role: string;
  primary: string | null;
  primaryUrl: string | null;
  lagMs: number;
  databases: Record<string, { position: string; exists: boolean }>;
}

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("show this node's role, primary, lag and database positions")
    .option("--config <path>", "litefs.yml of the node to ask")
    .option("--url <url>", "API URL of the node (default: from http.addr)")
    .option("--json", "print the raw JSON")
    .action(async (flags: { config?: string; url?: string; json?: boolean }) => {
      const info = await (await NodeApi.fromConfig(flags)).call<Info>("GET", "/info");
      if (flags.json) {
        process.stdout.write(JSON.stringify(info, null, 2) + "\n");
        return;
      }
      const lines = [
        `node:     ${info.hostname} (${info.nodeId})`,
        `cluster:  ${info.clusterId ?? "(none yet)"}`,
        `role:     ${info.role}`,
        `primary:  ${info.primary ?? "(unknown)"}${info.primaryUrl ? ` (${info.primaryUrl})` : ""}`,
        `lag:      ${info.lagMs} ms`,
        "databases:",
        ...Object.entries(info.databases).map(([name, d]) => `  ${name.padEnd(24)} ${d.position}${d.exists ? "" : "  (dropped)"}`),
      ];
      process.stdout.write(lines.join("\n") + "\n");
    });
}
