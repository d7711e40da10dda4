import type { Command } from "commander";
import { NodeApi } from "./api-client.js";

export function registerHandoff(program: Command): void {
  program
    .command("handoff")
    .description("on the primary: hand the lease to a connected candidate replica")
    .argument("<node>", "node ID (16 hex digits) or hostname of the replica")
    .option("--config <path>", "litefs.yml of the primary")
    .option("--url <url>", "API URL of the primary (default: from http.addr)")
    .action(async (node: string, flags: { config?: string; url?: string }) => {
      await (await NodeApi.fromConfig(flags)).call("POST", `/handoff?id=${encodeURIComponent(node)}`);
      process.stdout.write(`lease handed to ${node}\n`);
    });
}
