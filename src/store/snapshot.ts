import * as fs from "node:fs";
import { Worker } from "node:worker_threads";
import { lockPgno, type LtxHeader, type Position } from "../ltx/index.js";
import { WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, readJournalRecords, walFrameSize } from "../sqlite/index.js";
import type { Database, FileKind } from "./database.js";
import { StoreError } from "./errors.js";
import type { WrittenLtx } from "./ltx-directory.js";
import type { SnapshotJob, SnapshotWorkerMessage } from "./snapshot-worker.js";

export interface SnapshotOptions {
  compress: boolean;
  /** A scratch file for the pages kept for the snapshot (see SnapshotView); removed after. */
  spillPath: string;
  /** Awaited once the first pages are read (the test suite's gate: commits land mid-snapshot). */
  pause?: (db: Database, position: Position) => Promise<void>;
  /** Abandons the snapshot (its replica went away): the promise rejects with STORE_ABANDONED. */
  signal?: AbortSignal;
}

export type SnapshotFile = WrittenLtx & { header: LtxHeader; position: Position };

/**
 * Writes a snapshot LTX (TXID 1..current, every page) of the committed state of a database to
 * `path`, for a replica that cannot catch up incrementally or for the backup.
 *
 * The pages are read, checksummed and encoded by a worker thread, so the event loop that serves
 * FUSE runs on and SQLite keeps committing meanwhile. The snapshot is still exactly the position
 * it started at: a SnapshotView on this thread keeps the old version of every page it has not
 * read yet before anything overwrites it (copy-on-write), and the worker takes those copies over
 * what it read from the files. The worker checks the pages' checksum against the position.
 */
export async function writeSnapshot(db: Database, path: string, opts: SnapshotOptions): Promise<SnapshotFile> {
  const { header, position, done } = await runSnapshot(db, path, "ltx", opts);
  return { path, size: done.size, fileChecksum: done.fileChecksum, header: { ...header, flags: done.flags }, position };
}

export interface DatabaseImage {
  position: Position;
  pageSize: number;
  pageCount: number;
  size: number;
}

/**
 * Writes the committed state of a database as a plain SQLite file to `path` (an export), the
 * same way as a snapshot: off the event loop, exactly one position, its checksum verified.
 */
export async function writeDatabaseImage(db: Database, path: string, opts: Omit<SnapshotOptions, "compress">): Promise<DatabaseImage> {
  const { header, position, done } = await runSnapshot(db, path, "image", { ...opts, compress: false });
  return { position, pageSize: header.pageSize, pageCount: header.commit, size: done.size };
}

async function runSnapshot(
  db: Database,
  path: string,
  format: SnapshotJob["format"],
  opts: SnapshotOptions,
): Promise<{ header: LtxHeader; position: Position; done: { size: number; fileChecksum: bigint; flags: number } }> {
  // A replica writing received files into the file holds pages of a position it does not report
  // yet; start after that batch (nothing awaits between here and the view's registration).
  await db.applyIdle();
  const position = db.position;
  const commit = db.checksums.pageCount;
  const pageSize = db.pageSize;
  if (position.txid === 0 || pageSize === 0 || !db.exists) {
    throw new StoreError("STORE_NOT_FOUND", `database ${db.name}: nothing committed yet, no ${format === "ltx" ? "snapshot to send" : "database to export"}`);
  }
  const header = snapshotHeader(pageSize, commit, position.txid);
  const view = new SnapshotView(db, opts.spillPath);
  const unregister = db.addSnapshotView(view);
  try {
    const job: SnapshotJob = {
      name: db.name,
      database: db.files.database.path,
      wal: db.files.wal.path,
      spill: opts.spillPath,
      target: path,
      header,
      format,
      compress: opts.compress,
      walFrames: [...view.walFrames],
      expected: position.postApplyChecksum,
    };
    let paused = false;
    const done = await runSnapshotWorker(
      job,
      view,
      async (from, upTo) => {
        if (!paused && opts.pause) {
          paused = true;
          await opts.pause(db, position);
        }
        return view.release(from, upTo);
      },
      opts.signal,
    );
    return { header, position, done };
  } catch (err) {
    fs.rmSync(path, { force: true });
    throw err;
  } finally {
    unregister();
    view.close();
  }
}

/**
 * What one running snapshot still needs of a database, kept as of its position. Owned by the
 * Database (which calls `beforeChange` before any byte of the database file or the WAL changes)
 * and by the snapshot that created it (which calls `release` as the worker reads). Every page
 * the worker has not read yet and whose bytes are about to change is first copied, as it is at
 * the snapshot's position, to a spill file on the backing filesystem (so even a VACUUM of a
 * large database during a snapshot costs disk, not memory).
 *
 * Where a page is at the position: in an active rollback journal's first copy of it (copied at
 * once), else in the WAL frame the last commit left for it, else in the database file.
 */
export class SnapshotView {
  readonly pageSize: number;
  readonly commit: number;
  /** pgno → WAL offset of the frame holding the page at the snapshot's position. */
  readonly walFrames: ReadonlyMap<number, number>;
  /** The same frames by offset. */
  private readonly walPgnoAt = new Map<number, number>();
  private readonly lock: number;
  /** Pages below this one were read by the worker: nothing is kept for them any more. */
  private readFrom = 1;
  /** pgno → offset in the spill file of the page as it was at the snapshot's position. */
  private readonly kept = new Map<number, number>();
  private spillFd: number | null;
  private spillEnd = 0;
  /** Set when the database went away under the snapshot (dropped, or its files removed). */
  failure: Error | null = null;

  constructor(
    private readonly db: Database,
    private readonly spillPath: string,
  ) {
    this.pageSize = db.pageSize;
    this.commit = db.checksums.pageCount;
    this.lock = lockPgno(this.pageSize);
    this.walFrames = new Map(db.wal.committedPages);
    for (const [pgno, off] of this.walFrames) this.walPgnoAt.set(off, pgno);
    this.spillFd = fs.openSync(spillPath, "w+", 0o600);
    if (db.journal.active && db.files.journal.exists()) {
      // The first copy of a page in an active journal is its committed content; the database
      // file may already hold the transaction's version.
      const journal = db.files.journal;
      for (const rec of readJournalRecords((off, len) => journal.readAt(off, len), journal.size(), this.pageSize)) {
        if (rec.pgno <= this.commit && !this.kept.has(rec.pgno)) this.keep(rec.pgno, rec.data);
      }
    }
  }

  /** Bytes [start, end) of `kind` are about to change (end Infinity: cut or removed from `start`). */
  beforeChange(kind: FileKind, start: number, end: number): void {
    if (this.spillFd === null) return;
    if (kind === "database") {
      const last = Math.min(this.commit, Math.ceil(end / this.pageSize));
      for (let pgno = Math.max(this.readFrom, Math.floor(start / this.pageSize) + 1); pgno <= last; pgno++) {
        if (!this.walFrames.has(pgno)) this.keepFromSource(pgno);
      }
    } else if (kind === "wal" && this.walFrames.size > 0) {
      const frameSize = walFrameSize(this.pageSize);
      if (end === Infinity) {
        for (const [off, pgno] of this.walPgnoAt) if (off + frameSize > start) this.keepFromSource(pgno);
        return;
      }
      const first = Math.max(0, Math.floor((start - WAL_HEADER_SIZE) / frameSize));
      const last = Math.floor((end - 1 - WAL_HEADER_SIZE) / frameSize);
      for (let k = first; k <= last; k++) {
        const pgno = this.walPgnoAt.get(WAL_HEADER_SIZE + k * frameSize);
        if (pgno !== undefined) this.keepFromSource(pgno);
      }
    }
  }

  /** The database's files are going away: the snapshot cannot finish. */
  fail(why: string): void {
    this.failure ??= new StoreError("STORE_NOT_FOUND", `database ${this.db.name}: ${why} while a snapshot was being written`);
  }

  /**
   * The worker has read pages [from, upTo) from the files: the kept versions among them
   * (pgno, spill offset), which replace what it read; pages below `upTo` are no longer kept.
   */
  release(from: number, upTo: number): Array<[number, number]> {
    if (this.failure) throw this.failure;
    const out: Array<[number, number]> = [];
    for (let pgno = from; pgno < upTo; pgno++) {
      const off = this.kept.get(pgno);
      if (off === undefined) continue;
      out.push([pgno, off]);
      this.kept.delete(pgno);
    }
    this.readFrom = upTo;
    return out;
  }

  close(): void {
    if (this.spillFd === null) return;
    fs.closeSync(this.spillFd);
    this.spillFd = null;
    fs.rmSync(this.spillPath, { force: true });
  }

  private keepFromSource(pgno: number): void {
    if (pgno < this.readFrom || pgno > this.commit || pgno === this.lock || this.kept.has(pgno)) return;
    const walOffset = this.walFrames.get(pgno);
    const data =
      walOffset !== undefined
        ? this.db.files.wal.readAt(walOffset + WAL_FRAME_HEADER_SIZE, this.pageSize)
        : this.db.files.database.readAt((pgno - 1) * this.pageSize, this.pageSize);
    this.keep(pgno, data);
  }

  private keep(pgno: number, data: Uint8Array): void {
    let done = 0;
    while (done < this.pageSize) done += fs.writeSync(this.spillFd!, data, done, this.pageSize - done, this.spillEnd + done);
    this.kept.set(pgno, this.spillEnd);
    this.spillEnd += this.pageSize;
  }
}

/** Young generation of the snapshot worker, in MB: small, so its garbage is collected early (as import's). */
const WORKER_YOUNG_GENERATION_MB = 4;

/** Runs the worker; `release` answers each "pages read" message with the kept pages among them. */
function runSnapshotWorker(
  job: SnapshotJob,
  view: SnapshotView,
  release: (from: number, upTo: number) => Promise<Array<[number, number]>>,
  signal?: AbortSignal,
): Promise<{ size: number; fileChecksum: bigint; flags: number }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./snapshot-worker.js", import.meta.url), {
      workerData: job,
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
    let settled = false;
    // Failed or abandoned: the worker stops at its next step (told by a null answer), closing its
    // files; terminating it would leak them (a worker's descriptors belong to the process).
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", abandon);
      reject(err);
    };
    const abandon = () => fail(new StoreError("STORE_ABANDONED", `database ${job.name}: snapshot abandoned (${String(signal?.reason ?? "aborted")})`));
    if (signal?.aborted) abandon();
    else signal?.addEventListener("abort", abandon, { once: true });
    worker.on("message", (msg: SnapshotWorkerMessage) => {
      if (settled) {
        if (msg.type === "read") worker.postMessage(null);
        return;
      }
      switch (msg.type) {
        case "read":
          release(msg.from, msg.upTo).then(
            (kept) => {
              if (view.failure) fail(view.failure);
              worker.postMessage(settled ? null : kept);
            },
            (err) => {
              fail(err);
              worker.postMessage(null);
            },
          );
          break;
        case "mismatch":
          fail(
            new StoreError(
              "STORE_CHECKSUM_MISMATCH",
              `database ${job.name}: snapshot pages checksum to ${msg.actual.toString(16)} but the position says ${job.expected.toString(16)}`,
            ),
          );
          break;
        case "done":
          settled = true;
          signal?.removeEventListener("abort", abandon);
          resolve(msg);
          break;
      }
    });
    worker.once("error", fail);
    worker.once("exit", (code) => fail(new Error(`the snapshot worker exited with code ${code}`)));
  });
}

/** The header of a snapshot: every page of `commit`, TXIDs 1 to `maxTxid`, no pre-apply checksum. */
export function snapshotHeader(pageSize: number, commit: number, maxTxid: number): LtxHeader {
  return {
    flags: 0,
    pageSize,
    commit,
    minTxid: 1,
    maxTxid,
    timestamp: Date.now(),
    preApplyChecksum: 0n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: 0n,
  };
}
