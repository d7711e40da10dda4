/**
 * The SQLite side of the replication benchmark, in worker threads (better-sqlite3 is synchronous;
 * the driver's main thread stays free for Ctrl-C). The daemons are other processes, so
 * synchronous I/O on their mounts is safe here.
 *
 * Times are `process.hrtime` milliseconds: CLOCK_MONOTONIC, one clock for every thread of the
 * machine, so a commit time taken by the writer and a visibility time taken by a watcher can be
 * subtracted directly.
 *
 * Every write transaction inserts exactly one row, `id` = 1, 2, 3, ..., so row ids stand for
 * TXIDs: the replica reached the transaction that inserted row N when `max(id)` reaches N.
 */
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

const SCHEMA = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, at REAL NOT NULL, note TEXT NOT NULL)";
const NOTE = "x".repeat(60);

export type Job =
  /** Create the schema (WAL mode); returns the highest id so far. */
  | { kind: "setup"; db: string }
  /** `count` single-row transactions, the i-th started at start + i / rate; returns commit times. */
  | { kind: "paced"; db: string; firstId: number; count: number; rate: number }
  /** `count` single-row transactions as fast as they go. */
  | { kind: "burst"; db: string; firstId: number; count: number }
  /** Like burst; returns each commit's latency (ms). */
  | { kind: "timed"; db: string; firstId: number; count: number }
  /** Polls `max(id)` on a replica every `pollMs` until `stop[0]` is set; returns when each id became visible. */
  | { kind: "watch"; db: string; firstId: number; count: number; pollMs: number; stop: SharedArrayBuffer };

export interface JobResult {
  /** setup: highest id; burst: elapsed ms. */
  value: number;
  /** paced: commit time of id firstId + i; timed: its latency; watch: first time id firstId + i was visible (NaN = never). */
  times?: Float64Array;
  polls?: number;
  errors?: string[];
}

function openWriter(path: string): Database.Database {
  const db = new Database(path, { timeout: 10_000 });
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  return db;
}

function sleepMs(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function serve(job: Job): JobResult {
  switch (job.kind) {
    case "setup": {
      const db = openWriter(job.db);
      db.exec(SCHEMA);
      const max = (db.prepare("SELECT coalesce(max(id), 0) AS m FROM t").get() as { m: number }).m;
      db.close();
      return { value: max };
    }
    case "paced": {
      const db = openWriter(job.db);
      const insert = db.prepare("INSERT INTO t (id, at, note) VALUES (?, ?, ?)");
      const times = new Float64Array(job.count);
      const start = nowMs();
      const interval = 1000 / job.rate;
      for (let i = 0; i < job.count; i++) {
        const due = start + i * interval;
        // Sleep most of the wait, spin the last millisecond: commits start on schedule.
        sleepMs(Math.floor(due - nowMs()) - 1);
        while (nowMs() < due) {
          // spin
        }
        insert.run(job.firstId + i, Date.now(), NOTE);
        times[i] = nowMs();
      }
      db.close();
      return { value: nowMs() - start, times };
    }
    case "burst": {
      const db = openWriter(job.db);
      const insert = db.prepare("INSERT INTO t (id, at, note) VALUES (?, ?, ?)");
      const start = nowMs();
      for (let i = 0; i < job.count; i++) insert.run(job.firstId + i, Date.now(), NOTE);
      const elapsed = nowMs() - start;
      db.close();
      return { value: elapsed };
    }
    case "timed": {
      const db = openWriter(job.db);
      const insert = db.prepare("INSERT INTO t (id, at, note) VALUES (?, ?, ?)");
      const times = new Float64Array(job.count);
      const start = nowMs();
      for (let i = 0; i < job.count; i++) {
        const t0 = nowMs();
        insert.run(job.firstId + i, Date.now(), NOTE);
        times[i] = nowMs() - t0;
      }
      const elapsed = nowMs() - start;
      db.close();
      return { value: elapsed, times };
    }
    case "watch": {
      const stop = new Int32Array(job.stop);
      const times = new Float64Array(job.count).fill(NaN);
      const errors: string[] = [];
      const db = new Database(job.db, { readonly: true, fileMustExist: true, timeout: 10_000 });
      const query = db.prepare("SELECT coalesce(max(id), 0) AS m FROM t");
      let last = job.firstId - 1;
      let polls = 0;
      while (Atomics.load(stop, 0) === 0) {
        let max = last;
        try {
          max = (query.get() as { m: number }).m;
        } catch (err) {
          if (errors.length < 20) errors.push((err as Error).message);
        }
        polls++;
        if (max > last) {
          const t = nowMs();
          for (let id = last + 1; id <= max; id++) {
            const i = id - job.firstId;
            if (i >= 0 && i < job.count) times[i] = t;
          }
          last = max;
        }
        Atomics.wait(stop, 0, 0, job.pollMs);
      }
      db.close();
      return { value: last, times, polls, errors };
    }
  }
}

/** Runs a job in a new worker thread; `onWorker` gets the worker (to terminate it on Ctrl-C). */
export function runJob(job: Job, onWorker?: (w: Worker | null) => void): Promise<JobResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    onWorker?.(worker);
    let result: JobResult | null = null;
    worker.once("message", (m: JobResult) => (result = m));
    worker.once("error", reject);
    worker.once("exit", (code) => {
      onWorker?.(null);
      if (result) resolve(result);
      else reject(new Error(`${job.kind} worker stopped (exit code ${code})`));
    });
  });
}

if (!isMainThread && parentPort) parentPort.postMessage(serve(workerData as Job));
