/**
 * Reads, checksums and encodes the pages of a snapshot in a worker thread (started by
 * snapshot.ts), so the event loop that serves FUSE never waits for it. Pages come from the
 * database file and the WAL frames the snapshot's position names; after each step the main
 * thread answers with the pages that changed meanwhile, kept as they were (SnapshotView), and
 * those replace what was read, or with null to abandon the snapshot: the worker then closes its
 * files and exits (never terminated from outside: its descriptors belong to the process). The
 * output is a temporary file (sent, then removed), so it needs no durability; it is still flushed
 * every FLUSH_EVERY_BYTES, so that a large snapshot never piles up a gigabyte of dirty pages that
 * every fsync and syncfs of the commit path would then wait behind.
 *
 * The same pass writes an export (`format: "image"`): the pages as a plain SQLite file, lock page
 * included, instead of an LTX file.
 */
import * as fs from "node:fs";
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { CHECKSUM_FLAG, LtxEncoder, lockPgno, pageChecksum, type LtxHeader } from "../ltx/index.js";
import { WAL_FRAME_HEADER_SIZE } from "../sqlite/index.js";
import { BufferedWriter } from "./ltx-directory.js";

export interface SnapshotJob {
  name: string;
  /** Backing files (never the mount). */
  database: string;
  wal: string;
  spill: string;
  target: string;
  header: LtxHeader;
  /** An LTX snapshot, or the pages as a plain SQLite database file (an export). */
  format: "ltx" | "image";
  compress: boolean;
  /** [pgno, WAL offset] of the frames holding pages at the snapshot's position. */
  walFrames: Array<[number, number]>;
  /** The position's checksum: the pages must give exactly this. */
  expected: bigint;
}

export type SnapshotWorkerMessage =
  | { type: "read"; from: number; upTo: number }
  | { type: "mismatch"; actual: bigint }
  | { type: "done"; size: number; fileChecksum: bigint; flags: number };

/** Pages read per step (1 MiB of 4 KiB pages): one round trip to the main thread each. */
const PAGES_PER_STEP = 256;
const FLUSH_EVERY_BYTES = 32 * 1024 * 1024;

async function writeSnapshotFile(job: SnapshotJob, port: MessagePort | NonNullable<typeof parentPort>): Promise<void> {
  const { pageSize, commit } = job.header;
  const walFrames = new Map(job.walFrames);
  const lock = lockPgno(pageSize);
  // null: the snapshot is abandoned (its replica went away, or it failed on the main thread).
  const replies: Array<Array<[number, number]> | null> = [];
  let wake: (() => void) | null = null;
  const onReply = (kept: Array<[number, number]> | null) => {
    replies.push(kept);
    wake?.();
  };
  port.on("message", onReply);
  const nextReply = async (): Promise<Array<[number, number]> | null> => {
    while (replies.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    wake = null;
    return replies.shift()!;
  };

  const dbFd = openOrNull(job.database);
  const walFd = walFrames.size > 0 ? openOrNull(job.wal) : null;
  const spillFd = fs.openSync(job.spill, "r");
  const out = fs.openSync(job.target, "w", 0o644);
  try {
    const writer = new BufferedWriter(out);
    let unflushed = 0;
    let size = 0;
    const emit = (chunk: Uint8Array) => {
      writer.write(chunk);
      size += chunk.length;
      unflushed += chunk.length;
      if (unflushed < FLUSH_EVERY_BYTES) return;
      writer.flush();
      fs.fdatasyncSync(out);
      unflushed = 0;
    };
    const enc = job.format === "ltx" ? new LtxEncoder(job.header, emit, { compress: job.compress, name: job.name }) : null;
    const buf = Buffer.alloc(pageSize * PAGES_PER_STEP);
    let rolling = 0n;
    for (let first = 1; first <= commit; first += PAGES_PER_STEP) {
      const count = Math.min(PAGES_PER_STEP, commit - first + 1);
      readFull(dbFd, buf, 0, count * pageSize, (first - 1) * pageSize);
      for (let i = 0; i < count; i++) {
        const off = walFrames.get(first + i);
        if (off !== undefined) readFull(walFd, buf, i * pageSize, pageSize, off + WAL_FRAME_HEADER_SIZE);
      }
      port.postMessage({ type: "read", from: first, upTo: first + count } satisfies SnapshotWorkerMessage);
      // What changed since it was read, as it was: these replace the pages just read.
      const kept = await nextReply();
      if (kept === null) return; // the files are closed below, then the worker exits
      for (const [pgno, spillOffset] of kept) readFull(spillFd, buf, (pgno - first) * pageSize, pageSize, spillOffset);
      for (let i = 0; i < count; i++) {
        const pgno = first + i;
        const page = buf.subarray(i * pageSize, (i + 1) * pageSize);
        if (enc === null) {
          if (pgno !== lock) rolling ^= pageChecksum(pgno, page);
          emit(page);
        } else if (pgno !== lock) {
          rolling ^= enc.encodePage(pgno, page);
        }
      }
      // Native buffers (LZ4's) are freed by finalizers that run on the event loop: let it turn.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const actual = CHECKSUM_FLAG | rolling;
    if (actual !== job.expected) {
      port.postMessage({ type: "mismatch", actual } satisfies SnapshotWorkerMessage);
      return;
    }
    const result = enc ? enc.finish(actual) : { size, fileChecksum: 0n };
    writer.flush();
    port.postMessage({ type: "done", size: result.size, fileChecksum: result.fileChecksum, flags: enc?.header.flags ?? 0 } satisfies SnapshotWorkerMessage);
  } finally {
    // Nothing else keeps the worker alive, so it exits. off(), not removeAllListeners(): on
    // Node 20 the latter leaves the port referenced, and every snapshot left a thread behind.
    port.off("message", onReply);
    fs.closeSync(out);
    fs.closeSync(spillFd);
    if (dbFd !== null) fs.closeSync(dbFd);
    if (walFd !== null) fs.closeSync(walFd);
  }
}

function openOrNull(file: string): number | null {
  try {
    return fs.openSync(file, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null; // gone: its pages were kept first
    throw err;
  }
}

/** Reads `length` bytes at `position` into buf[offset..], zero-filling past the end of the file. */
function readFull(fd: number | null, buf: Buffer, offset: number, length: number, position: number): void {
  let done = 0;
  while (fd !== null && done < length) {
    const n = fs.readSync(fd, buf, offset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  buf.fill(0, offset + done, offset + length);
}

if (parentPort && workerData) {
  const port = parentPort;
  await writeSnapshotFile(workerData as SnapshotJob, port);
}
