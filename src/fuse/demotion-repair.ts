/**
 * Runs in the apply agent process. When a primary loses its role, SQLite clients may have left
 * state behind that the replica's apply path must not build on:
 * - a rollback journal of a transaction that was cut off (its pages are half in the file), and
 * - committed WAL frames not yet checkpointed (readers would lose them once the -shm header
 *   stops pointing at the WAL, which every replica apply does).
 * Both are repaired *through the mount*, under SQLite's locks, like every replica write.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { fileURLToPath } from "node:url";
import {
  SHM_INDEX_HEADER_SIZE,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  buildInvalidatedWalIndex,
  isWalHeaderValid,
  readJournalRecords,
  scanWal,
} from "../sqlite/index.js";
import { ofdLock } from "../os/ofd-lock.js";
import { lockDatabaseExclusive, lockShmExclusive, writeAll } from "./mount-locks.js";
import { APPLY_OPEN_FLAG } from "./apply-protocol.js";

function reader(fd: number): (offset: number, length: number) => Uint8Array {
  return (offset, length) => {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, buf, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return buf;
  };
}

/** Puts back the pages a cut-off transaction overwrote, then empties its journal. */
export function rollbackJournal(dbPath: string, lockTimeoutMs: number): number {
  const journalPath = `${dbPath}-journal`;
  if (!fs.existsSync(journalPath)) return 0;
  const dbFd = fs.openSync(dbPath, fs.constants.O_RDWR | APPLY_OPEN_FLAG);
  const journalFd = fs.openSync(journalPath, fs.constants.O_RDWR | APPLY_OPEN_FLAG);
  try {
    const deadline = Date.now() + lockTimeoutMs;
    // The writer whose transaction was cut off releases its lock once its own rollback fails.
    lockDatabaseExclusive(dbFd, deadline);
    const size = fs.fstatSync(journalFd).size;
    const records = readJournalRecords(reader(journalFd), size);
    let restored = 0;
    let pageSize = 0;
    for (;;) {
      const next = records.next();
      if (next.done) {
        const header = next.value.header;
        if (header) fs.ftruncateSync(dbFd, header.initialPageCount * header.pageSize);
        break;
      }
      pageSize ||= next.value.data.length;
      writeAll(dbFd, next.value.data, (next.value.pgno - 1) * pageSize);
      restored++;
    }
    fs.ftruncateSync(journalFd, 0);
    return restored;
  } finally {
    ofdLock(dbFd, "unlock", 0, 0);
    fs.closeSync(journalFd);
    fs.closeSync(dbFd);
  }
}

/**
 * Copies the WAL's committed frames (those up to `committedEnd`, the end of the last captured
 * transaction) into the database file, empties the WAL and resets the wal-index header, so the
 * database file alone holds the node's position. Frames after `committedEnd` belonged to a
 * transaction that never committed here and are dropped.
 */
export function foldWal(dbPath: string, committedEnd: number, lockTimeoutMs: number): number {
  const walPath = `${dbPath}-wal`;
  if (!fs.existsSync(walPath)) return 0;
  const dbFd = fs.openSync(dbPath, fs.constants.O_RDWR | APPLY_OPEN_FLAG);
  const walFd = fs.openSync(walPath, fs.constants.O_RDWR | APPLY_OPEN_FLAG);
  const shmFd = fs.openSync(`${dbPath}-shm`, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  try {
    const deadline = Date.now() + lockTimeoutMs;
    lockShmExclusive(shmFd, deadline);
    const size = fs.fstatSync(walFd).size;
    const read = reader(walFd);
    let pages = 0;
    let pageSize = 0;
    if (size >= WAL_HEADER_SIZE && isWalHeaderValid(read(0, WAL_HEADER_SIZE))) {
      const scan = scanWal(read, size);
      pageSize = scan.header.pageSize;
      const latest = new Map<number, number>();
      let commit = 0;
      for (const tx of scan.transactions) {
        if (tx.offset + tx.size > committedEnd) break;
        for (const [pgno, off] of tx.pages) latest.set(pgno, off);
        commit = tx.commitSize;
      }
      for (const [pgno, off] of latest) {
        if (pgno > commit) continue;
        writeAll(dbFd, read(off + WAL_FRAME_HEADER_SIZE, pageSize), (pgno - 1) * pageSize);
        pages++;
      }
      if (commit > 0) fs.ftruncateSync(dbFd, commit * pageSize);
    }
    fs.ftruncateSync(walFd, 0);
    if (fs.fstatSync(shmFd).size >= SHM_INDEX_HEADER_SIZE && pageSize > 0) {
      const previous = Buffer.alloc(SHM_INDEX_HEADER_SIZE);
      fs.readSync(shmFd, previous, 0, previous.length, 0);
      const pageCount = Math.floor(fs.fstatSync(dbFd).size / pageSize);
      const header = buildInvalidatedWalIndex(previous, { pageSize, pageCount, salt1: 0, salt2: 0, bigEndianChecksum: false, frameChecksum: [0, 0] });
      writeAll(shmFd, header, 0);
    }
    return pages;
  } finally {
    ofdLock(shmFd, "unlock", 0, 0);
    fs.closeSync(shmFd);
    fs.closeSync(walFd);
    fs.closeSync(dbFd);
  }
}

export type RepairJob = { db: string; kind: "journal" } | { db: string; kind: "wal"; committedEnd: number };

const REPAIR_SCRIPT = fileURLToPath(new URL("./demotion-repair-process.js", import.meta.url));

/**
 * Runs the repairs in a child process (sync I/O on the mount must never run in the daemon) and
 * resolves with what it did; rejects with the child's error output if it failed.
 */
export function runDemotionRepair(
  mnt: string,
  jobs: RepairJob[],
  lockTimeoutMs = 30_000,
): Promise<Array<{ db: string; kind: string; pages: number }>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [REPAIR_SCRIPT, JSON.stringify({ mnt, jobs, lockTimeoutMs })], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(JSON.parse(out.trim() || "[]"));
      else reject(new Error(`demotion repair failed (exit ${code}): ${err.trim().split("\n").slice(-3).join(" ")}`));
    });
  });
}
