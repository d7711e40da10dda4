import type { Command } from "commander";
import { createLogger } from "./logger.js";
import { NodeApi } from "./api-client.js";
import { startChild, waitForExit } from "../daemon/exec.js";
import { CliError } from "./errors.js";

interface Info {
  isPrimary: boolean;
}

/**
 * `litefs run [-promote] [-if-candidate] -- CMD ARGS`: run a command against the local node,
 * typically a migration: with -promote the node first becomes the primary (if it is a
 * candidate); with -if-candidate the command is skipped on nodes that can never be primary.
 */
export function registerRun(program: Command): void {
  program
    .command("run")
    .description("run a command on this node, optionally after promoting it to primary")
    .option("--config <path>", "litefs.yml of the local node")
    .option("--url <url>", "API URL of the node (default: from http.addr)")
    .option("--promote", "promote this node to primary before running the command")
    .option("--if-candidate", "run only if this node is a lease candidate (exit 0 otherwise)")
    .argument("<cmd...>", "the command, after --")
    .action(async (cmd: string[], flags: { config?: string; url?: string; promote?: boolean; ifCandidate?: boolean }) => {
      const { loadConfig } = await import("../config/index.js");
      const { config } = await loadConfig({ configPath: flags.config });
      const log = createLogger({ format: config.log.format, debug: config.log.debug });
      if (flags.ifCandidate && !config.lease.candidate) {
        log.info("not a lease candidate: skipping the command");
        return;
      }
      const api = await NodeApi.forConfig(config, flags.url);
      if (flags.promote) {
        await api.call("POST", "/promote");
        const info = await api.call<Info>("GET", "/info");
        if (!info.isPrimary) throw new CliError("CLI_UNEXPECTED_STATE", "promotion did not make this node the primary");
      }
      process.exitCode = await waitForExit(startChild(cmd, log));
    });
}
