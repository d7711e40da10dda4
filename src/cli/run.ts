import * as path from "node:path";
import type { Command } from "commander";
import type { Logger } from "pino";
import { createLogger } from "./logger.js";
import { NodeApi } from "./api-client.js";
import { startChild, waitForExit } from "../daemon/exec.js";
import { CliError } from "./errors.js";

interface Info {
  isPrimary: boolean;
  primary: string | null;
}

interface HaltAnswer {
  primary?: boolean;
  id?: string;
  position?: string;
}

/** Renewals well inside the lock's 30 s expiry, so one lost renewal costs nothing. */
const RENEW_EVERY_MS = 10_000;
/** The node may wait 2 s for a busy lock at the primary, then up to 30 s to catch up. */
const TAKE_TIMEOUT_MS = 60_000;
const BUSY_RETRY_MS = 1000;

interface RunFlags {
  config?: string;
  url?: string;
  promote?: boolean;
  ifCandidate?: boolean;
  withHaltLockOn?: string;
}

/**
 * `litefs run [-promote] [-if-candidate] [-with-halt-lock-on PATH] -- CMD ARGS`: run a command
 * against the local node, typically a migration. With -promote the node first becomes the primary
 * (if it is a candidate); with -if-candidate the command is skipped on nodes that can never be
 * primary; with -with-halt-lock-on a replica takes the primary's HALT lock on the database for as
 * long as CMD runs, so CMD writes it here and every commit goes to the primary (on the primary
 * CMD just runs).
 */
export function registerRun(program: Command): void {
  program
    .command("run")
    .description("run a command on this node: after promoting it, or holding the primary's HALT lock so it may write from a replica")
    .option("--config <path>", "litefs.yml of the local node")
    .option("--url <url>", "API URL of the node (default: from http.addr)")
    .option("--promote", "promote this node to primary before running the command")
    .option("--if-candidate", "run only if this node is a lease candidate (exit 0 otherwise)")
    .option("--with-halt-lock-on <path>", "hold the primary's HALT lock on this database (e.g. /litefs/my.db) while the command runs")
    .argument("<cmd...>", "the command, after --")
    .addHelpText(
      "after",
      "\nExit codes: the command's own; 1 when the node refused (no primary, the lock could not be taken,\na commit made under the HALT lock did not reach the primary)",
    )
    .action(async (cmd: string[], flags: RunFlags) => {
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
      if (flags.withHaltLockOn === undefined) {
        process.exitCode = await waitForExit(startChild(cmd, log));
        return;
      }
      const db = databaseName(flags.withHaltLockOn, config.fuse.dir);
      const lock = await takeHaltLock(api, db, log);
      if (!lock) {
        log.info({ db }, "this node is the primary: running the command without a HALT lock");
        process.exitCode = await waitForExit(startChild(cmd, log));
        return;
      }
      process.exitCode = await runHoldingLock(api, db, lock, cmd, log);
    });
}

/** The database a -with-halt-lock-on path names: a file directly in fuse.dir (or a bare name). */
function databaseName(file: string, fuseDir: string): string {
  const name = path.basename(file);
  const dir = path.dirname(file);
  if (name === "" || name === "." || name === "..") throw new CliError("CLI_FILE", `-with-halt-lock-on ${file}: give the path of a database, e.g. ${path.join(fuseDir, "my.db")}`);
  if (dir !== "." && path.resolve(dir) !== path.resolve(fuseDir)) {
    throw new CliError("CLI_FILE", `-with-halt-lock-on ${file}: the database must be in the mount directory ${fuseDir} (fuse.dir)`);
  }
  return name;
}

/** Asks the node for the lock until it gets it; null on the primary (no lock needed). */
async function takeHaltLock(api: NodeApi, db: string, log: Logger): Promise<{ id: string } | null> {
  let waiting = false;
  for (;;) {
    try {
      const answer = await api.call<HaltAnswer>("POST", `/halt?name=${encodeURIComponent(db)}`, { timeoutMs: TAKE_TIMEOUT_MS });
      if (answer.primary) return null;
      if (!answer.id) throw new CliError("CLI_UNEXPECTED_STATE", "the node granted the HALT lock without a lock ID");
      log.info({ db, position: answer.position, lock: answer.id }, "holding the HALT lock: the command's writes go to the primary");
      return { id: answer.id };
    } catch (err) {
      if (!(err instanceof CliError && err.nodeCode === "NODE_HALT_BUSY")) throw err;
      if (!waiting) log.info({ db, reason: err.message }, "waiting for the HALT lock");
      waiting = true;
      await new Promise((r) => setTimeout(r, BUSY_RETRY_MS));
    }
  }
}

/**
 * Runs CMD while renewing the lock, then releases it. SIGINT and SIGTERM go to CMD (the lock is
 * released once it exits). A release that reports a lost commit makes the run fail.
 */
async function runHoldingLock(api: NodeApi, db: string, lock: { id: string }, cmd: string[], log: Logger): Promise<number> {
  const query = `name=${encodeURIComponent(db)}&id=${encodeURIComponent(lock.id)}`;
  let lost: string | null = null;
  const renewals = setInterval(() => {
    api.call("POST", `/halt?${query}`).catch((err: unknown) => {
      log.error({ db, err: (err as Error).message }, "renewing the HALT lock failed");
      if (err instanceof CliError && err.nodeCode?.startsWith("NODE_HALT_")) lost ??= (err as Error).message;
    });
  }, RENEW_EVERY_MS);
  let code: number;
  const child = startChild(cmd, log);
  log.info({ db, commandPid: child.pid }, "command started under the HALT lock");
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", forward).on("SIGTERM", forward);
  try {
    code = await waitForExit(child);
  } finally {
    clearInterval(renewals);
    process.off("SIGINT", forward).off("SIGTERM", forward);
  }
  try {
    await api.call("DELETE", `/halt?${query}`, { timeoutMs: TAKE_TIMEOUT_MS });
    log.info({ db }, "HALT lock released");
  } catch (err) {
    log.error({ db, err: (err as Error).message }, "the HALT lock ended badly: some of the command's writes are not on the primary");
    return code === 0 ? 1 : code;
  }
  if (lost !== null && code === 0) {
    log.error({ db, reason: lost }, "the HALT lock was lost while the command ran");
    return 1;
  }
  return code;
}
