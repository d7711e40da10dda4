import { SingleBar } from "cli-progress";
import type { Command } from "commander";
import { loadConfig, type Config } from "../config/index.js";
import type { Daemon } from "../daemon/daemon.js";
import { runToCompletion, splitCommandLine, startChild, waitForExit } from "../daemon/exec.js";
import { createLogger } from "./logger.js";

interface MountFlags {
  config?: string;
  expandEnv: boolean;
  skipUnmount?: boolean;
  debug?: boolean;
  fuseDebug?: boolean;
}

export function registerMount(program: Command): void {
  program
    .command("mount")
    .description("mount the FUSE filesystem and run the node (optionally supervising an app given after --)")
    .option("--config <path>", "path to litefs.yml (default: ./litefs.yml, ~/litefs.yml, /etc/litefs.yml, else the embedded demo config)")
    .option("--no-expand-env", "do not expand $VAR references in the config file")
    .option("--skip-unmount", "leave the filesystem mounted when exiting")
    .option("--debug", "log at debug level")
    .option("--fuse.debug", "print every FUSE request (libfuse debug output)")
    .argument("[cmd...]", "app to run once the mount is ready (after --); overrides exec")
    .action(async (cmd: string[], flags: Record<string, unknown>) => {
      const mountFlags: MountFlags = {
        config: flags.config as string | undefined,
        expandEnv: flags.expandEnv !== false,
        skipUnmount: Boolean(flags.skipUnmount),
        debug: Boolean(flags.debug),
        // Absent: undefined, so that fuse.debug in the config decides.
        fuseDebug: flags["fuse.debug"] === true || flags.fuseDebug === true ? true : undefined,
      };
      // Exit explicitly: with -skip-unmount the mount's device poll would keep the process alive.
      process.exit(await runMount(mountFlags, cmd));
    });
}

async function runMount(flags: MountFlags, appArgv: string[]): Promise<number> {
  const { config, source } = await loadConfig({ configPath: flags.config, noExpandEnv: !flags.expandEnv });
  const log = createLogger({ format: config.log.format, debug: flags.debug || config.log.debug, timestamp: config.log.timestamp });
  log.info({ config: source, "fuse.dir": config.fuse.dir, "data.dir": config.data.dir }, "litefs starting");
  if (source === "embedded") {
    log.warn(
      "no litefs.yml found (-config, ./litefs.yml, ~/litefs.yml, /etc/litefs.yml): using the embedded demo configuration, " +
        "a single static primary; write a config file for anything else",
    );
  }

  // Loaded here, not at the top: the other verbs need none of FUSE, SQLite or the node (and its ~15 MB).
  const { Daemon } = await import("../daemon/daemon.js");
  const daemon = new Daemon({ config, log, skipUnmount: flags.skipUnmount, fuseDebug: flags.fuseDebug, onCatchUp: catchUpBar() });
  try {
    await daemon.start();
  } catch (err) {
    await daemon.stop().catch(() => undefined);
    throw err;
  }

  const commands = appArgv.length ? [{ argv: appArgv, ifCandidate: false }] : execCommands(config);
  return supervise(daemon, commands, config);
}

/**
 * On a terminal (stderr), a replica's first catch-up as a progress bar, in transactions (as the
 * primary counted them when the stream opened); nothing in logs and pipes. A log line printed
 * meanwhile lands above the bar, which is drawn again below it.
 */
function catchUpBar(): ((done: number, total: number, finished: boolean) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let bar: SingleBar | null = null;
  return (done, total, finished) => {
    if (!bar) {
      bar = new SingleBar({ format: "catching up with the primary [{bar}] {percentage}% | {value}/{total} transactions | {eta}s left", hideCursor: true, stream: process.stderr });
      bar.start(total, 0);
    }
    bar.update(done);
    if (finished) bar.stop();
  };
}

function execCommands(config: Config): Array<{ argv: string[]; ifCandidate: boolean }> {
  return config.exec.map((c) => ({ argv: splitCommandLine(c.cmd), ifCandidate: c.ifCandidate }));
}

/**
 * Runs the exec commands: all but the last to completion (migrations), the last as the app.
 * SIGINT/SIGTERM go to the app; the node exits with the app's exit code after unmounting.
 * Without an app the node serves until it is signalled. With http.tls, SIGHUP re-reads the
 * certificate files (and stops nothing); without, it keeps its default action.
 */
async function supervise(daemon: Daemon, commands: Array<{ argv: string[]; ifCandidate: boolean }>, config: Config): Promise<number> {
  const log = daemon.store.log;
  const runnable = commands.filter((c) => !c.ifCandidate || config.lease.candidate);
  let child: ReturnType<typeof startChild> | null = null;
  let signalled: NodeJS.Signals | null = null;
  let wake: (() => void) | null = null;
  let failure: Error | null = null;

  const stopWith = (sig: NodeJS.Signals) => {
    signalled = sig;
    if (child && child.exitCode === null) child.kill(sig);
    wake?.();
  };
  const onSignal = (sig: NodeJS.Signals) => {
    log.info({ signal: sig }, "signal received");
    stopWith(sig);
  };
  const onHangup = () => {
    log.info({ signal: "SIGHUP" }, "signal received: reloading the TLS certificate");
    daemon.reloadTls().catch((err: Error) => log.error({ err }, "TLS reload failed"));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  if (config.http.tls) process.on("SIGHUP", onHangup);
  // A part of the node that fails after start (the proxy cannot listen) stops the node and the app.
  daemon.failed.catch((err: Error) => {
    log.error({ err: err.message, code: (err as { code?: string }).code }, `stopping: ${err.message}`);
    failure = err;
    stopWith("SIGTERM");
  });

  try {
    if (runnable.length > 0) await Promise.race([daemon.ready(), new Promise<void>((resolve) => (wake = resolve))]);
    for (let i = 0; i < runnable.length - 1 && !signalled; i++) {
      try {
        await runToCompletion(runnable[i].argv, log);
      } catch (err) {
        log.error({ err }, (err as Error).message);
        if (config.exitOnError) return 1;
      }
    }
    const app = runnable[runnable.length - 1];
    if (app && !signalled) {
      child = startChild(app.argv, log);
      const code = await waitForExit(child).catch((err: Error) => {
        log.error({ err }, err.message);
        return 127;
      });
      log.info({ code }, "subprocess exited");
      return failure ? 1 : code;
    }
    if (!signalled) await new Promise<void>((resolve) => (wake = resolve));
    return failure ? 1 : 0;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("SIGHUP", onHangup);
    await daemon.stop();
  }
}
