import { spawn, type ChildProcess } from "node:child_process";
import type { Logger } from "pino";
import { LitefsError } from "../errors.js";

export class ExecError extends LitefsError {
  constructor(message: string) {
    super("EXEC_FAILED", message);
  }
}

/**
 * Splits a command line into argv the way a POSIX shell would for words and quotes (no
 * expansion), as LiteFS does for `exec:`; the app is exec'd directly so signals reach it.
 */
export function splitCommandLine(cmd: string): string[] {
  const args: string[] = [];
  let cur = "";
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && i + 1 < cmd.length && '"\\$`'.includes(cmd[i + 1])) cur += cmd[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < cmd.length) {
      cur += cmd[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) args.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new ExecError(`exec: unterminated ${quote} quote in ${JSON.stringify(cmd)}`);
  if (inWord) args.push(cur);
  return args;
}

/** Exit code a shell would report: the code, or 128 + signal number. */
function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const numbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return 128 + (signal ? (numbers[signal] ?? 1) : 1);
}

/**
 * Starts a child with inherited stdio. The daemon process never holds a file open on its own
 * mount (all mount access by the daemon happens in a separate helper process), so spawning from
 * it cannot deadlock on a FLUSH of an inherited mount file (DESIGN.md section 3, trap 2).
 */
export function startChild(argv: string[], log: Logger): ChildProcess {
  if (argv.length === 0) throw new ExecError("exec: empty command");
  log.info({ cmd: argv.join(" ") }, "starting subprocess");
  const child = spawn(argv[0], argv.slice(1), { stdio: "inherit" });
  return child;
}

/** Runs a command to completion (migrations); a non-zero exit is an error naming the command. */
export async function runToCompletion(argv: string[], log: Logger): Promise<void> {
  const child = startChild(argv, log);
  const code = await waitForExit(child);
  if (code !== 0) throw new ExecError(`exec: ${JSON.stringify(argv.join(" "))} exited with code ${code}`);
}

export function waitForExit(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once("error", (err) => reject(new ExecError(`exec: cannot start ${JSON.stringify(child.spawnargs.join(" "))}: ${err.message}`)));
    child.once("exit", (code, signal) => resolve(exitCodeOf(code, signal)));
  });
}
