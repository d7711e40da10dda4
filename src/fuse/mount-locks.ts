/**
 * Taking SQLite's locks on mounted files, and writing them, for the mount agent (the process
 * that changes a replica's databases through the mount). Synchronous on purpose: the agent does
 * nothing else, it never runs in the daemon, and its requests must come from its main thread
 * (the FUSE adapter recognises the agent by the caller's process ID; see write-access.ts).
 */
import * as fs from "node:fs";
import { lockSqliteDatabase, ofdLock } from "../os/ofd-lock.js";
import { MountAgentError } from "./errors.js";
import { PENDING_BYTE, SHM_EXCLUSIVE_LOCK_BYTES } from "../sqlite/index.js";

/** First retry after 0.2 ms, doubling up to 2 ms: a reader's read transaction is usually short. */
const LOCK_POLL_FIRST_MS = 0.2;
const LOCK_POLL_MAX_MS = 2;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Polls for a lock so a long-running reader delays us without hanging us forever. */
function acquireLock(what: string, tryLock: () => boolean, deadline: number): void {
  let delay = LOCK_POLL_FIRST_MS;
  while (!tryLock()) {
    if (Date.now() > deadline) throw new MountAgentError("AGENT_LOCK_TIMEOUT", `timed out waiting for the ${what} lock (a long-running SQLite transaction holds it)`);
    sleepSync(delay);
    delay = Math.min(delay * 2, LOCK_POLL_MAX_MS);
  }
}

/** One lock byte, exclusively by default (SQLite's write lock: the -shm WRITE byte, or the database's RESERVED byte). */
export function lockByte(fd: number, what: string, byte: number, deadline: number, kind: "read" | "write" = "write"): void {
  acquireLock(what, () => ofdLock(fd, kind, byte, 1), deadline);
}

/** A connection's SHARED lock on the database file (waits out a writer's PENDING or EXCLUSIVE). */
export function lockDatabaseShared(fd: number, deadline: number): void {
  acquireLock("database SHARED", () => lockSqliteDatabase(fd, "read"), deadline);
}

/** As SQLite's own writers do: PENDING first stops new readers, then wait out the current ones. */
export function lockDatabaseExclusive(fd: number, deadline: number): void {
  acquireLock("database PENDING", () => ofdLock(fd, "write", PENDING_BYTE, 1), deadline);
  acquireLock("database", () => lockSqliteDatabase(fd, "write"), deadline);
}

/**
 * WRITE, CKPT and RECOVER, then each READ byte as it comes free, keeping what we hold: readers
 * that find their READ byte taken retry (for seconds, with backoff) instead of failing, so a
 * stream of short read transactions cannot starve us.
 */
export function lockShmExclusive(fd: number, deadline: number): void {
  for (const byte of SHM_EXCLUSIVE_LOCK_BYTES) acquireLock(`WAL index byte ${byte}`, () => ofdLock(fd, "write", byte, 1), deadline);
}

export function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, position + done);
}
