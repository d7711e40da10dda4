/**
 * The apply agent: a child process of the daemon that makes the changes a replica receives
 * *through the mount*, so the kernel's page, attribute and dentry caches stay right for every
 * reader (DESIGN.md section 4). It runs in its own process because the daemon's main thread
 * serves the FUSE requests these writes cause (sync I/O on the mount from there would deadlock),
 * and it never spawns anything while holding mount files (DESIGN.md section 3, trap 2).
 *
 * While it writes, it holds SQLite's own locks through the kernel (OFD locks): the database's
 * PENDING..SHARED range exclusively and, in WAL mode, the -shm WRITE, CKPT, RECOVER and all
 * READ0..4 bytes, so no SQLite reader ever sees half a transaction.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { decodeLtxFile } from "../ltx/index.js";
import { lockSqliteDatabase, ofdLock } from "../os/ofd-lock.js";
import { APPLY_OPEN_FLAG, type ApplyRequest, type ApplyResponse } from "./apply-protocol.js";
import {
  DB_HEADER_SIZE,
  PENDING_BYTE,
  SHM_EXCLUSIVE_LOCK_BYTES,
  SHM_INDEX_HEADER_SIZE,
  WAL_HEADER_SIZE,
  buildInvalidatedWalIndex,
  isDatabaseHeader,
  isWalHeaderValid,
  parseDatabaseHeader,
  parseWalHeader,
} from "../sqlite/index.js";

const LOCK_POLL_MS = 2;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Polls for a lock so a long-running reader delays an apply without hanging it forever. */
function acquire(what: string, tryLock: () => boolean, deadline: number): void {
  while (!tryLock()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for the ${what} lock (a long-running SQLite transaction holds it)`);
    sleepSync(LOCK_POLL_MS);
  }
}

async function apply(req: ApplyRequest): Promise<number> {
  const dbPath = path.join(req.mnt, req.db);
  const shmPath = `${dbPath}-shm`;
  const flags = fs.constants.O_RDWR | APPLY_OPEN_FLAG;
  const dbFd = fs.openSync(dbPath, flags);
  let shmFd: number | null = null;
  try {
    const deadline = Date.now() + req.lockTimeoutMs;
    if (isWalMode(dbFd)) {
      // WAL readers hold the database file's SHARED lock for as long as they are connected;
      // what keeps them out of a read transaction is the -shm lock bytes.
      // Created if missing, so a reader that arrives mid-apply finds our locks in place.
      shmFd = fs.openSync(shmPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
      lockShmBytes(shmFd, deadline);
    } else {
      // As SQLite's own writers do: PENDING first stops new readers, then wait out the current ones.
      acquire("database PENDING", () => ofdLock(dbFd, "write", PENDING_BYTE, 1), deadline);
      acquire("database", () => lockSqliteDatabase(dbFd, "write"), deadline);
    }

    const events = decodeLtxFile(req.ltxPath, { name: path.basename(req.ltxPath) });
    let pages = 0;
    let pageSize = 0;
    let commit = 0;
    for (;;) {
      const next = await events.next();
      if (next.done) break;
      const ev = next.value;
      if (ev.type === "header") {
        pageSize = ev.header.pageSize;
        commit = ev.header.commit;
      } else if (ev.type === "page") {
        writeAll(dbFd, ev.data, (ev.pgno - 1) * pageSize);
        pages++;
      }
    }
    fs.ftruncateSync(dbFd, commit * pageSize);

    if (shmFd !== null && fs.fstatSync(shmFd).size >= SHM_INDEX_HEADER_SIZE) {
      // Readers keep their page cache while the wal-index header is unchanged: change it.
      const previous = Buffer.alloc(SHM_INDEX_HEADER_SIZE);
      fs.readSync(shmFd, previous, 0, previous.length, 0);
      const walHeader = readWalHeader(`${dbPath}-wal`);
      const header = buildInvalidatedWalIndex(previous, {
        pageSize,
        pageCount: commit,
        salt1: walHeader?.salt1 ?? 0,
        salt2: walHeader?.salt2 ?? 0,
        bigEndianChecksum: walHeader?.bigEndian ?? false,
        frameChecksum: walHeader?.checksum ?? [0, 0],
      });
      writeAll(shmFd, header, 0);
    }
    return pages;
  } finally {
    if (shmFd !== null) {
      ofdLock(shmFd, "unlock", 0, 0);
      fs.closeSync(shmFd);
    }
    ofdLock(dbFd, "unlock", 0, 0);
    fs.closeSync(dbFd);
  }
}

/** The database header on the mount says WAL (read/write version 2). */
function isWalMode(fd: number): boolean {
  const buf = Buffer.alloc(DB_HEADER_SIZE);
  return fs.readSync(fd, buf, 0, DB_HEADER_SIZE, 0) === DB_HEADER_SIZE && isDatabaseHeader(buf) && parseDatabaseHeader(buf).writeVersion === 2;
}

/**
 * WRITE, CKPT and RECOVER, then each READ byte as it comes free, keeping what we hold: readers
 * that find their READ byte taken retry (for seconds, with backoff) instead of failing, so a
 * stream of short read transactions cannot starve the apply.
 */
function lockShmBytes(fd: number, deadline: number): void {
  for (const byte of SHM_EXCLUSIVE_LOCK_BYTES) acquire(`WAL index byte ${byte}`, () => ofdLock(fd, "write", byte, 1), deadline);
}

function readWalHeader(walPath: string): ReturnType<typeof parseWalHeader> | null {
  try {
    const fd = fs.openSync(walPath, fs.constants.O_RDONLY);
    try {
      const buf = Buffer.alloc(WAL_HEADER_SIZE);
      if (fs.readSync(fd, buf, 0, WAL_HEADER_SIZE, 0) < WAL_HEADER_SIZE || !isWalHeaderValid(buf)) return null;
      return parseWalHeader(buf);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
}

function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, position + done);
}

// One request at a time, in order: applies of one database must not interleave.
let queue: Promise<void> = Promise.resolve();
process.on("message", (req: ApplyRequest) => {
  queue = queue.then(async () => {
    let res: ApplyResponse;
    try {
      res = { id: req.id, ok: true, pages: await apply(req) };
    } catch (err) {
      res = { id: req.id, ok: false, error: (err as Error).message };
    }
    process.send!(res);
  });
});
process.on("disconnect", () => process.exit(0));
