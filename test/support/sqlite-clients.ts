import { spawn } from "node:child_process";
import * as path from "node:path";
import { ROOT } from "./node-process.js";

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion asynchronously (never execSync: a mount may be involved). */
export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${cmd} ${args.join(" ")} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // A child that exits before reading its input (e.g. it cannot open the database) is not an error here.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/** The sqlite3 CLI, one process per call; throws with its stderr on failure. */
export async function sqlite3(db: string, sql: string, opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await run("sqlite3", ["-batch", "-bail", db], { input: sql, timeoutMs: opts.timeoutMs });
  if (r.code !== 0) throw new Error(`sqlite3 ${db} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Like sqlite3() but returns the result, for tests that expect failure. */
export function sqlite3Raw(db: string, sql: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return run("sqlite3", ["-batch", "-bail", db], { input: sql, timeoutMs: opts.timeoutMs });
}

const PROGRAMS = path.join(ROOT, "test/support/programs");

/**
 * Runs a workload in a separate better-sqlite3 or Python process. Both programs take the same
 * arguments: database path, journal mode, number of transactions, page size.
 */
export async function runWorkload(
  client: "better-sqlite3" | "python",
  db: string,
  opts: { journalMode: string; transactions: number; pageSize?: number },
): Promise<{ committed: number; sum: number }> {
  const args = [db, opts.journalMode, String(opts.transactions), String(opts.pageSize ?? 4096)];
  const r =
    client === "python"
      ? await run("python3", [path.join(PROGRAMS, "workload.py"), ...args], { timeoutMs: 120_000 })
      : await run(process.execPath, [path.join(PROGRAMS, "workload.mjs"), ...args], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`${client} workload failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}
