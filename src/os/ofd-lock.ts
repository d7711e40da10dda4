/**
 * Linux open-file-description (OFD) byte-range locks through libc's fcntl, called with koffi.
 *
 * OFD locks belong to the open file (the fd's description), not the process: two opens of the
 * same file in one process conflict, and closing an unrelated fd of the same file does not drop
 * them (POSIX locks would do both wrong for us). They conflict with SQLite's POSIX locks, which is
 * how the daemon excludes SQLite clients (DESIGN.md section 4).
 *
 * Calls are synchronous. With `wait: true` the calling thread blocks until the lock is granted,
 * so never wait on the daemon's main thread for a lock a FUSE client may hold.
 */
import koffi from "koffi";
import { constants } from "node:os";
import { PENDING_BYTE, SHARED_FIRST, SHARED_SIZE } from "../sqlite/db-header.js";
import { SHM_EXCLUSIVE_LOCK_BYTES } from "../sqlite/shm.js";
import { OsError } from "./errors.js";

export type LockKind = "read" | "write" | "unlock";

// <fcntl.h> on Linux.
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_OFD_SETLKW = 38;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const SEEK_SET = 0;

// struct flock on 64-bit Linux (x86_64, aarch64; both little-endian):
// short l_type; short l_whence; (4 pad) int64 l_start; int64 l_len; int32 l_pid; (4 pad).
const FLOCK_SIZE = 32;
const FLOCK_TYPE = 0;
const FLOCK_WHENCE = 2;
const FLOCK_START = 8;
const FLOCK_LEN = 16;
const FLOCK_PID = 24;

type Fcntl = (fd: number, cmd: number, argType: string, arg: Buffer) => number;
let fcntl: Fcntl | null = null;

/** Loads libc once, on first use, so importing this module costs nothing off Linux. */
function libcFcntl(): Fcntl {
  if (fcntl !== null) return fcntl;
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) {
    throw new OsError(
      "OS_UNSUPPORTED",
      `OFD locks need Linux on x64/arm64, not ${process.platform}/${process.arch}`,
    );
  }
  try {
    const lib = koffi.load("libc.so.6");
    // fcntl is variadic; koffi takes the extra argument as a (type, value) pair.
    fcntl = lib.func("int fcntl(int fd, int cmd, ...)") as Fcntl;
  } catch (err) {
    throw new OsError("OS_UNSUPPORTED", `cannot load fcntl from libc: ${String(err)}`, { cause: err });
  }
  return fcntl;
}

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value, name]),
);

function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

function lockType(kind: LockKind): number {
  switch (kind) {
    case "read":
      return F_RDLCK;
    case "write":
      return F_WRLCK;
    case "unlock":
      return F_UNLCK;
  }
}

function checkRange(start: number, len: number): void {
  if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(len) || len < 0) {
    throw new RangeError(`invalid lock range start=${start} len=${len}`);
  }
}

function flock(type: number, start: number, len: number): Buffer {
  const buf = Buffer.alloc(FLOCK_SIZE); // zeroed: l_pid must be 0 for OFD locks
  buf.writeInt16LE(type, FLOCK_TYPE);
  buf.writeInt16LE(SEEK_SET, FLOCK_WHENCE);
  buf.writeBigInt64LE(BigInt(start), FLOCK_START);
  buf.writeBigInt64LE(BigInt(len), FLOCK_LEN);
  return buf;
}

function callFcntl(fd: number, cmd: number, arg: Buffer): number {
  const call = libcFcntl();
  for (;;) {
    if (call(fd, cmd, "void *", arg) === 0) return 0;
    const errno = koffi.errno();
    if (errno !== constants.errno.EINTR) return errno;
  }
}

function syscallError(errno: number, what: string): OsError {
  const name = errnoName(errno);
  return new OsError("OS_SYSCALL_FAILED", `fcntl(${what}): ${name}`, { errno: name, syscall: "fcntl" });
}

export interface OfdLockOptions {
  /** Block until the lock is granted instead of returning false (F_OFD_SETLKW). */
  wait?: boolean;
}

/**
 * Places, converts or releases an OFD lock on bytes [start, start+len) of `fd` (len 0: to the end
 * of any file size). Returns false when another open file holds a conflicting lock; throws
 * OsError for anything else (bad fd, read lock on a write-only fd, ...).
 */
export function ofdLock(
  fd: number,
  kind: LockKind,
  start: number,
  len: number,
  opts: OfdLockOptions = {},
): boolean {
  checkRange(start, len);
  const cmd = opts.wait ? F_OFD_SETLKW : F_OFD_SETLK;
  const errno = callFcntl(fd, cmd, flock(lockType(kind), start, len));
  if (errno === 0) return true;
  if (errno === constants.errno.EAGAIN || errno === constants.errno.EACCES) return false;
  throw syscallError(errno, `${kind} ${start}+${len}`);
}

export interface OfdLockHolder {
  kind: "read" | "write";
  start: number;
  len: number;
  /** -1 when the holder is an OFD lock; the holding process for a POSIX lock. */
  pid: number;
}

/**
 * Reports a lock that would block `kind` on [start, start+len) through `fd`, or null if it would
 * be granted. Locks held through `fd`'s own open file never conflict.
 */
export function ofdGetLock(
  fd: number,
  kind: "read" | "write",
  start: number,
  len: number,
): OfdLockHolder | null {
  checkRange(start, len);
  const arg = flock(lockType(kind), start, len);
  const errno = callFcntl(fd, F_OFD_GETLK, arg);
  if (errno !== 0) throw syscallError(errno, `getlk ${start}+${len}`);
  const type = arg.readInt16LE(FLOCK_TYPE);
  if (type === F_UNLCK) return null;
  return {
    kind: type === F_WRLCK ? "write" : "read",
    start: Number(arg.readBigInt64LE(FLOCK_START)),
    len: Number(arg.readBigInt64LE(FLOCK_LEN)),
    pid: arg.readInt32LE(FLOCK_PID),
  };
}

/** Bytes covered by lockSqliteDatabase('write'): PENDING, RESERVED and the SHARED range. */
export const DATABASE_LOCK_START = PENDING_BYTE;
export const DATABASE_LOCK_LEN = SHARED_FIRST + SHARED_SIZE - PENDING_BYTE;

/**
 * Takes SQLite's own locks on a database file.
 * - 'write': PENDING, RESERVED and SHARED exclusively. No SQLite connection can read or write
 *   (they get SQLITE_BUSY, "database is locked"), in rollback and WAL mode alike.
 * - 'read': the SHARED range shared, as a SQLite reader holds it. Others keep reading and may
 *   prepare a write, but none can commit in rollback mode.
 * - 'unlock': releases whatever this open file holds on those bytes.
 */
export function lockSqliteDatabase(fd: number, kind: LockKind, opts: OfdLockOptions = {}): boolean {
  if (kind === "read") return ofdLock(fd, "read", SHARED_FIRST, SHARED_SIZE, opts);
  return ofdLock(fd, kind, DATABASE_LOCK_START, DATABASE_LOCK_LEN, opts);
}

/** Contiguous runs of byte offsets, as [start, len] pairs. */
function byteRuns(bytes: readonly number[]): Array<[number, number]> {
  const sorted = [...new Set(bytes)].sort((a, b) => a - b);
  const runs: Array<[number, number]> = [];
  for (const b of sorted) {
    const last = runs.at(-1);
    if (last && last[0] + last[1] === b) last[1]++;
    else runs.push([b, 1]);
  }
  return runs;
}

/**
 * Locks the given -shm lock bytes (default: WRITE, CKPT, RECOVER and READ0..4, what applying
 * pages to a WAL-mode database needs). All or nothing: if one run of bytes is busy, the runs this
 * call already locked are released and it returns false.
 */
export function lockShm(
  fd: number,
  kind: LockKind,
  bytes: readonly number[] = SHM_EXCLUSIVE_LOCK_BYTES,
  opts: OfdLockOptions = {},
): boolean {
  const runs = byteRuns(bytes);
  for (let i = 0; i < runs.length; i++) {
    const [start, len] = runs[i];
    if (!ofdLock(fd, kind, start, len, opts)) {
      for (const [s, l] of runs.slice(0, i)) ofdLock(fd, "unlock", s, l);
      return false;
    }
  }
  return true;
}
