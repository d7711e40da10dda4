import type { Command } from "commander";
import { NodeApi } from "./api-client.js";

export function registerPromote(program: Command): void {
  program
    .command("promote")
    .description("make this candidate node the primary (the current primary hands its lease over)")
    .option("--config <path>", "litefs.yml of the node to promote")
    .option("--url <url>", "API URL of the node (default: from http.addr)")
    .action(async (flags: { config?: string; url?: string }) => {
      const res = await (await NodeApi.fromConfig(flags)).call<{ changed: boolean }>("POST", "/promote");
      process.stdout.write(res.changed ? "this node is now the primary\n" : "this node already is the primary\n");
    });
}
