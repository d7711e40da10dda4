/**
 * The SQLite side of the scale benchmark (bench/scale.ts), in worker threads: better-sqlite3 is
 * synchronous and the driver's main thread must stay free for Ctrl-C. The daemons are other
 * processes, so synchronous I/O on their mounts is safe here. Times are milliseconds of
 * `process.hrtime`, taken inside the worker.
 */
import * as path from "node:path";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

import { buildDatabase } from "./big-database.js";

export type ScaleJob =
  /** Creates `count` databases `<prefix><i>.db` in `dir`: WAL mode, one table, one row each. */
  | { kind: "create-many"; dir: string; prefix: string; count: number }
  /** Opens every one of those at once (one connection each), reads its row, then closes them all. */
  | { kind: "open-all"; dir: string; prefix: string; count: number }
  /** One single-row transaction in each of `files` (they have the big-database schema). */
  | { kind: "touch"; files: string[] }
  /** A database of about `mb` MB (see buildDatabase). */
  | { kind: "build"; file: string; mb: number };

export interface ScaleJobResult {
  ms: number;
}

export const manyName = (prefix: string, i: number): string => `${prefix}${String(i).padStart(4, "0")}.db`;

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

function serve(job: ScaleJob): ScaleJobResult {
  const t0 = nowMs();
  switch (job.kind) {
    case "create-many":
      for (let i = 0; i < job.count; i++) {
        const db = new Database(path.join(job.dir, manyName(job.prefix, i)), { timeout: 10_000 });
        db.pragma("journal_mode = WAL");
        db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT NOT NULL)");
        db.prepare("INSERT INTO t (note) VALUES (?)").run(`database ${i}`);
        db.close();
      }
      break;
    case "open-all": {
      const open: Database.Database[] = [];
      try {
        for (let i = 0; i < job.count; i++) {
          const db = new Database(path.join(job.dir, manyName(job.prefix, i)), { fileMustExist: true, timeout: 10_000 });
          open.push(db);
          const row = db.prepare("SELECT note FROM t WHERE id = 1").get() as { note: string } | undefined;
          if (row?.note !== `database ${i}`) throw new Error(`${manyName(job.prefix, i)}: row 1 is ${JSON.stringify(row)}`);
        }
      } finally {
        for (const db of open) db.close();
      }
      break;
    }
    case "touch":
      for (const file of job.files) {
        const db = new Database(file, { timeout: 10_000 });
        db.prepare("INSERT INTO t (b) VALUES (randomblob(100))").run();
        db.close();
      }
      break;
    case "build":
      buildDatabase(job.file, job.mb);
      break;
  }
  return { ms: nowMs() - t0 };
}

/** The worker running right now, if any (terminated on Ctrl-C). */
let current: Worker | null = null;

export function runScaleJob(job: ScaleJob): Promise<ScaleJobResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    current = worker;
    let result: ScaleJobResult | null = null;
    worker.once("message", (m: ScaleJobResult) => (result = m));
    worker.once("error", reject);
    worker.once("exit", (code) => {
      current = null;
      if (result) resolve(result);
      else reject(new Error(`${job.kind} worker stopped (exit code ${code})`));
    });
  });
}

export async function terminateScaleJob(): Promise<void> {
  await current?.terminate();
}

if (!isMainThread && parentPort) parentPort.postMessage(serve(workerData as ScaleJob));
