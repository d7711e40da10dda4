import Database from "better-sqlite3";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { afterEach, beforeEach, expect, it } from "vitest";
import { databaseChecksum, decodeLtx } from "../../src/ltx/index.js";
import { snapshotHeader } from "../../src/store/snapshot.js";
import type { SnapshotJob, SnapshotWorkerMessage } from "../../src/store/snapshot-worker.js";
import { ROOT, waitFor } from "../support/node-process.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "litefs-snapworker-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

// The built worker (npm test builds first), as the daemon starts it.
const WORKER = path.join(ROOT, "dist/src/store/snapshot-worker.js");

/** A database of ~1,500 pages (several of the worker's steps) and a job for all of it. */
function snapshotJob(format: SnapshotJob["format"] = "ltx"): { job: SnapshotJob; image: Buffer; pageCount: number } {
  const file = path.join(dir, "db");
  const db = new Database(file);
  db.exec("CREATE TABLE t (v BLOB)");
  const insert = db.prepare("INSERT INTO t VALUES (randomblob(3000))");
  db.transaction(() => {
    for (let i = 0; i < 2000; i++) insert.run(); // ~1,500 pages: several of the worker's steps
  })();
  db.close();
  fs.writeFileSync(path.join(dir, "spill"), "");
  const image = fs.readFileSync(file);
  const pageCount = image.length / 4096;
  const job: SnapshotJob = {
    name: "db",
    database: file,
    wal: `${file}-wal`,
    spill: path.join(dir, "spill"),
    target: path.join(dir, "snapshot.ltx"),
    header: snapshotHeader(4096, pageCount, 7),
    format,
    compress: true,
    walFrames: [],
    expected: databaseChecksum(image, 4096),
  };
  return { job, image, pageCount };
}

it("the snapshot worker writes every page and then exits on its own (a worker left running held its memory for good)", async () => {
  const { job, image, pageCount } = snapshotJob();
  const worker = new Worker(WORKER, { workerData: job });
  const messages: SnapshotWorkerMessage["type"][] = [];
  let exitCode: number | null = null;
  worker.on("message", (msg: SnapshotWorkerMessage) => {
    messages.push(msg.type);
    if (msg.type === "read") worker.postMessage([]); // nothing changed meanwhile
  });
  worker.on("exit", (code) => (exitCode = code));
  try {
    await waitFor(() => messages.includes("done"), 30_000, "the snapshot to be written");
    await waitFor(() => exitCode !== null, 10_000, "the worker to exit after its job");
  } finally {
    if (exitCode === null) await worker.terminate();
  }
  expect(exitCode).toBe(0);
  expect(messages.filter((m) => m === "read").length).toBe(Math.ceil(pageCount / 256));

  const decoded = decodeLtx(fs.readFileSync(job.target));
  expect(decoded.header.maxTxid).toBe(7);
  expect(decoded.trailer.postApplyChecksum).toBe(job.expected);
  for (const page of decoded.pages) expect(Buffer.compare(page.data, image.subarray((page.pgno - 1) * 4096, page.pgno * 4096))).toBe(0);
});

it("an abandoned snapshot (a null answer) stops the worker at that step, and it exits on its own", async () => {
  const { job } = snapshotJob();
  const worker = new Worker(WORKER, { workerData: job });
  const messages: SnapshotWorkerMessage["type"][] = [];
  let exitCode: number | null = null;
  worker.on("message", (msg: SnapshotWorkerMessage) => {
    messages.push(msg.type);
    if (msg.type === "read") worker.postMessage(null);
  });
  worker.on("exit", (code) => (exitCode = code));
  try {
    await waitFor(() => exitCode !== null, 10_000, "the worker to exit");
  } finally {
    if (exitCode === null) await worker.terminate();
  }
  expect(exitCode).toBe(0);
  expect(messages).toEqual(["read"]);
});

it("an export (format image) writes the database file page for page, kept pages in place of what it read", async () => {
  const { job, image } = snapshotJob("image");
  // Page 3 "changed after the export began": its version at the position is in the spill file.
  const old = Buffer.from(image.subarray(2 * 4096, 3 * 4096));
  fs.writeFileSync(job.spill, old);
  const newer = Buffer.alloc(4096, 0xab);
  const fd = fs.openSync(job.database, "r+");
  fs.writeSync(fd, newer, 0, 4096, 2 * 4096);
  fs.closeSync(fd);
  const worker = new Worker(WORKER, { workerData: job });
  let done: Extract<SnapshotWorkerMessage, { type: "done" }> | null = null;
  let mismatch = false;
  worker.on("message", (msg: SnapshotWorkerMessage) => {
    if (msg.type === "read") worker.postMessage(msg.from === 1 ? [[3, 0]] : []);
    if (msg.type === "done") done = msg;
    if (msg.type === "mismatch") mismatch = true;
  });
  const exited = new Promise<number>((resolve) => worker.on("exit", resolve));
  expect(await exited).toBe(0);
  expect(mismatch).toBe(false);
  expect(done).not.toBeNull();
  expect(done!.size).toBe(image.length);
  expect(Buffer.compare(fs.readFileSync(job.target), image)).toBe(0);
});
