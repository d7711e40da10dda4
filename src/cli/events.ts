import type { Command } from "commander";
import { NodeApi } from "./api-client.js";
import { CliError } from "./errors.js";
import { streamRequest } from "./transfer.js";

interface EventsFlags {
  config?: string;
  url?: string;
  json?: boolean;
}

export function registerEvents(program: Command): void {
  program
    .command("events")
    .description(
      "follow a node's event stream (GET /events) until Ctrl-C: one line per event (role changes, commits, applied files, drops). " +
        "JSON lines as the node sends them, or a readable line on a terminal. Exit 0 on Ctrl-C, 1 when the node cannot be reached or ends the stream",
    )
    .option("--config <path>", "litefs.yml of the node to follow (its http.addr and http.token)")
    .option("--url <url>", "API URL of the node (default: from http.addr)")
    .option("--json", "print JSON lines even on a terminal")
    .action(async (flags: EventsFlags) => {
      const api = await NodeApi.fromConfig(flags);
      const pretty = !flags.json && process.stdout.isTTY === true;
      await followEvents(api, (line) => process.stdout.write(`${pretty ? readableEvent(line) : line}\n`));
    });
}

/**
 * Prints every event line until the user interrupts (resolves: exit 0) or the node goes away
 * (a CliError: exit 1). Nothing is buffered beyond the line being read.
 */
async function followEvents(api: NodeApi, print: (line: string) => void): Promise<void> {
  const res = await streamRequest(api, "GET", "/events");
  let interrupted = false;
  const stop = () => {
    interrupted = true;
    res.body.destroy();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  let pending = "";
  try {
    for await (const chunk of res.body) {
      pending += (chunk as Buffer).toString("utf8");
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line) print(line);
      }
    }
  } catch (err) {
    if (!interrupted) throw new CliError("CLI_NODE_UNREACHABLE", `lost the event stream of the litefs node at ${api.baseUrl}: ${(err as Error).message}`);
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  if (!interrupted) throw new CliError("CLI_NODE_UNREACHABLE", `the litefs node at ${api.baseUrl} ended the event stream (did it stop?)`);
}

/** One event as a terminal line: when it was received, its type, then its fields. */
function readableEvent(line: string): string {
  let ev: { type?: string; db?: string; data?: Record<string, unknown> };
  try {
    ev = JSON.parse(line);
  } catch {
    return line;
  }
  const fields = [...(ev.db !== undefined ? [`db=${ev.db}`] : []), ...Object.entries(ev.data ?? {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)];
  return `${new Date().toISOString()}  ${String(ev.type).padEnd(13)}  ${fields.join(" ")}`;
}
