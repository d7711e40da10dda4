/**
 * The mount agent: the child process of the daemon that makes every change the node itself makes
 * *through the mount* (a replica's received pages, the repairs after a demotion), so the kernel's
 * page, attribute and dentry caches stay right for every reader (DESIGN.md section 4). It runs in
 * its own process because the daemon's main thread serves the FUSE requests these writes cause
 * (sync I/O on the mount from there would deadlock), it never spawns anything (DESIGN.md
 * section 3, trap 2), and all its I/O is synchronous on its main thread: the FUSE adapter lets
 * only this process write a replica's files, recognising it by the PID of each request.
 * Protocol: mount-agent-protocol.ts; argv[2] is the mount directory.
 *
 * An apply request applies a batch of LTX files to one database, in order. The files are decoded
 * first, before any lock is taken, into one set of pages (a later file's version of a page
 * replaces an earlier one; pages cut off by a file that shrinks the database are dropped), so
 * the locks are held only while the surviving pages are written, contiguous pages in one write.
 * Files too large to decode ahead (more than PREDECODE_BYTES of pages in the batch) are decoded
 * under the locks and written out whenever PREDECODE_BYTES of pages are pending.
 *
 * While it writes, it holds SQLite's own locks through the kernel (OFD locks): the database's
 * PENDING..SHARED range exclusively and, in WAL mode, the -shm WRITE, CKPT, RECOVER and all
 * READ0..4 bytes, so no SQLite reader ever sees part of a batch. Locks are released before the
 * answer, except a write lock held by hold-writes (an import, a replica's HALT lock on the
 * primary), which stays until release-writes; the files stay open between requests (closed after
 * IDLE_CLOSE_MS without one, when the database is re-created, or when the name no longer leads
 * to the same file).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LitefsError } from "../errors.js";
import { LtxError, decodeLtx, decodeLtxFile, type LtxPage } from "../ltx/index.js";
import { lockSqliteDatabase, ofdLock } from "../os/ofd-lock.js";
import { foldWal, rollbackJournal, type RepairFile } from "../store/sqlite-repair.js";
import { MountAgentError } from "./errors.js";
import { lockByte, lockDatabaseExclusive, lockDatabaseShared, lockShmExclusive, writeAll } from "./mount-locks.js";
import { MOUNT_AGENT_ERROR_CODES, type ApplyFileRef, type MountAgentErrorCode, type MountAgentRequest, type MountAgentResponse } from "./mount-agent-protocol.js";
import {
  DB_HEADER_SIZE,
  PENDING_BYTE,
  RESERVED_BYTE,
  SHARED_FIRST,
  SHARED_SIZE,
  SHM_EXCLUSIVE_LOCK_BYTES,
  SHM_INDEX_HEADER_SIZE,
  SHM_LOCK_DMS,
  SHM_LOCK_WRITE,
  SHM_REGION_SIZE,
  WAL_HEADER_SIZE,
  buildInvalidatedWalIndex,
  isDatabaseHeader,
  isWalHeaderValid,
  parseDatabaseHeader,
  parseWalHeader,
} from "../sqlite/index.js";

/** Pages decoded ahead of the locks, or pending under them, at most (bytes). */
const PREDECODE_BYTES = 64 << 20;
/** Files read whole (then decoded in memory) up to this size; larger ones are streamed. */
const WHOLE_FILE_BYTES = 8 << 20;
/** One write covers at most this many bytes of contiguous pages (FUSE splits it into max_write requests). */
const MAX_RUN_BYTES = 1 << 20;
const MAX_IOV = 1024;
const IDLE_CLOSE_MS = 2000;

const MNT = process.argv[2];
if (!MNT) throw new Error("usage: mount-agent-process.js MOUNT_DIR (started by the daemon)");

// ---- files kept open between requests -----------------------------------------------------------

interface OpenFile {
  fd: number;
  ino: number;
}

interface OpenDatabase {
  db: OpenFile | null;
  shm: OpenFile | null;
  wal: OpenFile | null;
}

const openDatabases = new Map<string, OpenDatabase>();
let idleTimer: NodeJS.Timeout | null = null;

function closeQuietly(file: OpenFile | null): void {
  if (!file) return;
  try {
    ofdLock(file.fd, "unlock", 0, 0);
  } catch {
    // not locked, or already gone
  }
  try {
    fs.closeSync(file.fd);
  } catch {
    // already closed
  }
}

function closeDatabase(name: string): void {
  const o = openDatabases.get(name);
  if (!o) return;
  closeQuietly(o.db);
  closeQuietly(o.shm);
  closeQuietly(o.wal);
  openDatabases.delete(name);
}

function closeAll(): void {
  // A held write lock lives on its open file: closing it would let the lock go.
  for (const name of [...openDatabases.keys()]) if (!heldWrites.has(name)) closeDatabase(name);
}

/**
 * The open file for `file` if the name still leads to it (same inode: readers may unlink and
 * re-create -shm and -wal, the primary may drop and re-create the database), else a new open.
 * Returns null when `open` finds no file (ENOENT).
 */
function reuse(file: string, cached: OpenFile | null, open: () => number): OpenFile | null {
  if (cached) {
    try {
      if (fs.statSync(file).ino === fs.fstatSync(cached.fd).ino) return cached;
    } catch {
      // gone: reopen below
    }
    closeQuietly(cached);
  }
  let fd: number;
  try {
    fd = open();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  return { fd, ino: fs.fstatSync(fd).ino };
}

// ---- the pages of a batch ----------------------------------------------------------------------

/**
 * The net effect of a sequence of LTX files on the database file: the last version of each page
 * (by byte offset), the smallest size the file was cut to, and the size it ends at. Writing it
 * (flush, then finish) leaves the file exactly as applying the files one by one would.
 */
class PagePlan {
  private pages = new Map<number, Uint8Array>();
  /** Bytes of page data pending. */
  bytes = 0;
  /** Logical size of the database file after the files added so far. */
  size: number;
  /** Smallest size a file cut the database to since the last flush. */
  private shrinkTo = Infinity;
  pageSize = 0;
  commit = 0;
  written = 0;

  constructor(
    /** Size of the database file now. */
    private fileSize: number,
  ) {
    this.size = fileSize;
  }

  page(offset: number, data: Uint8Array): void {
    const old = this.pages.get(offset);
    this.bytes += data.length - (old?.length ?? 0);
    this.pages.set(offset, data);
  }

  endFile(commit: number, pageSize: number): void {
    const end = commit * pageSize;
    if (end < this.size) {
      for (const [offset, data] of this.pages) {
        if (offset >= end) {
          this.pages.delete(offset);
          this.bytes -= data.length;
        }
      }
      this.shrinkTo = Math.min(this.shrinkTo, end);
    }
    this.size = end;
    this.commit = commit;
    this.pageSize = pageSize;
  }

  /**
   * Applies the pending cut, then writes the pending pages, contiguous ones together: first those
   * past the end of the file, then those it already holds. Only growing the file needs new disk
   * space, so on a full disk (ENOSPC) the write fails before any page readers can see was
   * changed: the replica keeps serving its last state instead of a torn one ("database disk
   * image is malformed", seen in the fault suite's full-disk scenario).
   */
  flush(fd: number): void {
    if (this.shrinkTo < this.fileSize) {
      fs.ftruncateSync(fd, this.shrinkTo);
      this.fileSize = this.shrinkTo;
    }
    this.shrinkTo = Infinity;
    const sorted = [...this.pages.keys()].sort((a, b) => a - b);
    const oldEnd = this.fileSize;
    this.writeRuns(fd, sorted.filter((o) => o >= oldEnd));
    this.writeRuns(fd, sorted.filter((o) => o < oldEnd));
    this.pages.clear();
    this.bytes = 0;
  }

  private writeRuns(fd: number, offsets: number[]): void {
    let i = 0;
    while (i < offsets.length) {
      const start = offsets[i];
      const run: Uint8Array[] = [];
      let end = start;
      let runBytes = 0;
      while (i < offsets.length && offsets[i] === end && run.length < MAX_IOV && runBytes < MAX_RUN_BYTES) {
        const data = this.pages.get(offsets[i])!;
        run.push(data);
        end += data.length;
        runBytes += data.length;
        i++;
      }
      writeRun(fd, run, start);
      this.written += run.length;
      this.fileSize = Math.max(this.fileSize, end);
    }
  }

  /** Flushes, then sets the file to its final size. */
  finish(fd: number): void {
    this.flush(fd);
    if (this.fileSize !== this.size) fs.ftruncateSync(fd, this.size);
    this.fileSize = this.size;
  }
}

/**
 * Decodes one file into the plan. With `fd` (under the locks) pending pages are written out
 * whenever they exceed PREDECODE_BYTES, and a change of page size flushes first.
 */
async function addFile(plan: PagePlan, file: ApplyFileRef, fd: number | null): Promise<void> {
  if (fd !== null && plan.pageSize !== 0 && plan.pageSize !== file.pageSize) plan.flush(fd);
  try {
    await decodeInto(plan, file, fd);
  } catch (err) {
    if (!(err instanceof LtxError)) throw err;
    throw new MountAgentError("AGENT_BAD_LTX", `cannot apply ${file.path}: ${err.message}`, { cause: err });
  }
}

async function decodeInto(plan: PagePlan, file: ApplyFileRef, fd: number | null): Promise<void> {
  const name = path.basename(file.path);
  const onPage = (page: LtxPage, pageSize: number) => {
    plan.page((page.pgno - 1) * pageSize, page.data);
    if (fd !== null && plan.bytes > PREDECODE_BYTES) plan.flush(fd);
  };
  if (fs.statSync(file.path).size <= WHOLE_FILE_BYTES) {
    const decoded = decodeLtx(fs.readFileSync(file.path), name);
    for (const page of decoded.pages) onPage(page, decoded.header.pageSize);
    plan.endFile(decoded.header.commit, decoded.header.pageSize);
    return;
  }
  let pageSize = 0;
  let commit = 0;
  const events = decodeLtxFile(file.path, { name });
  for (;;) {
    const next = await events.next();
    if (next.done) break;
    const ev = next.value;
    if (ev.type === "header") {
      pageSize = ev.header.pageSize;
      commit = ev.header.commit;
    } else if (ev.type === "page") {
      onPage(ev, pageSize);
    }
  }
  plan.endFile(commit, pageSize);
}

// ---- one request ---------------------------------------------------------------------------------

/**
 * Databases whose write lock this agent holds between requests (hold-writes), and where: the
 * -shm WRITE byte (WAL mode) or the database's RESERVED byte (rollback journal). The lock lives
 * on the cached open file, which stays open until release-writes.
 */
const heldWrites = new Map<string, "wal" | "rollback">();

/**
 * Lets go of the locks a write request took on `dbFd` and `shmFd`, keeping what hold-writes
 * holds: only the other bytes are unlocked or downgraded, so no writer can slip in between (OFD
 * locks split by range, and convert in place, on one open file).
 */
function unlockAfterWrite(name: string, dbFd: number, shmFd: number | null): void {
  const held = heldWrites.get(name);
  if (held === "wal") {
    if (shmFd !== null) for (const byte of SHM_EXCLUSIVE_LOCK_BYTES) if (byte !== SHM_LOCK_WRITE) ofdLock(shmFd, "unlock", byte, 1);
    // A connection's SHARED lock on the database file stays (held on the same open file).
    ofdLock(dbFd, "unlock", PENDING_BYTE, 1);
    lockSqliteDatabase(dbFd, "read");
    return;
  }
  if (shmFd !== null) ofdLock(shmFd, "unlock", 0, 0);
  if (held === "rollback") {
    ofdLock(dbFd, "unlock", PENDING_BYTE, 1);
    ofdLock(dbFd, "unlock", SHARED_FIRST, SHARED_SIZE);
  } else {
    ofdLock(dbFd, "unlock", 0, 0);
  }
}

async function apply(req: Extract<MountAgentRequest, { op: "apply" }>): Promise<number> {
  const dbPath = path.join(MNT, req.db);
  const shmPath = `${dbPath}-shm`;
  const walPath = `${dbPath}-wal`;
  if (req.reopen && !heldWrites.has(req.db)) closeDatabase(req.db);
  const cached: OpenDatabase = openDatabases.get(req.db) ?? { db: null, shm: null, wal: null };
  openDatabases.set(req.db, cached);

  // With a held write lock (an import, a HALT), the locks stay on the file that holds it, and the
  // pages go through a new open: the held one was opened while the node wrote as the primary, so
  // its writes would be captured, not applied.
  let writeFd: number | null = null;
  try {
    cached.db = reuse(dbPath, cached.db, () => fs.openSync(dbPath, fs.constants.O_RDWR));
    if (!cached.db) throw new MountAgentError("AGENT_NOT_FOUND", `${dbPath} does not exist`);
    const lockFd = cached.db.fd;
    if (heldWrites.has(req.db)) writeFd = fs.openSync(dbPath, fs.constants.O_RDWR);
    const dbFd = writeFd ?? lockFd;

    // Decode ahead of the locks, as far as memory allows.
    const plan = new PagePlan(fs.fstatSync(dbFd).size);
    let next = 0;
    let ahead = 0;
    while (next < req.files.length) {
      const f = req.files[next];
      ahead += f.pages * f.pageSize;
      if (ahead > PREDECODE_BYTES || (plan.pageSize !== 0 && plan.pageSize !== f.pageSize)) break;
      await addFile(plan, f, null);
      next++;
    }

    let shmFd: number | null = null;
    const deadline = Date.now() + req.lockTimeoutMs;
    try {
      if (isWalMode(dbFd, walPath)) {
        // WAL readers hold the database file's SHARED lock for as long as they are connected;
        // what keeps them out of a read transaction is the -shm lock bytes.
        // Created if missing, so a reader that arrives mid-apply finds our locks in place.
        cached.shm = reuse(shmPath, cached.shm, () => fs.openSync(shmPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644));
        shmFd = cached.shm!.fd;
        lockShmExclusive(shmFd, deadline);
      } else {
        lockDatabaseExclusive(lockFd, deadline);
      }

      // Every page is replaced: the WAL's frames would only shadow them.
      if (req.resetWal && fs.existsSync(walPath)) {
        closeQuietly(cached.wal);
        cached.wal = null;
        fs.truncateSync(walPath, 0);
      }
      plan.flush(dbFd);
      for (; next < req.files.length; next++) await addFile(plan, req.files[next], dbFd);
      plan.finish(dbFd);

      if (shmFd !== null) {
        cached.wal = reuse(walPath, cached.wal, () => fs.openSync(walPath, fs.constants.O_RDONLY));
        invalidateWalIndex(shmFd, plan.pageSize, plan.commit, cached.wal ? readWalHeader(cached.wal.fd) : null);
      }
      return plan.written;
    } finally {
      unlockAfterWrite(req.db, lockFd, shmFd);
    }
  } catch (err) {
    // Start from fresh opens next time (a held lock stays: release-writes lets it go).
    if (!heldWrites.has(req.db)) closeDatabase(req.db);
    throw err;
  } finally {
    if (writeFd !== null) fs.closeSync(writeFd);
  }
}

/** See the hold-writes request: writers wait on SQLite's own write lock, readers are not stopped. */
function holdWrites(req: Extract<MountAgentRequest, { op: "hold-writes" }>): number {
  const dbPath = path.join(MNT, req.db);
  const cached: OpenDatabase = openDatabases.get(req.db) ?? { db: null, shm: null, wal: null };
  openDatabases.set(req.db, cached);
  try {
    cached.db = reuse(dbPath, cached.db, () => fs.openSync(dbPath, fs.constants.O_RDWR));
    if (!cached.db) throw new MountAgentError("AGENT_NOT_FOUND", `${dbPath} does not exist`);
    const deadline = Date.now() + req.lockTimeoutMs;
    if (isWalMode(cached.db.fd, `${dbPath}-wal`)) {
      const shmPath = `${dbPath}-shm`;
      cached.shm = reuse(shmPath, cached.shm, () => fs.openSync(shmPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644));
      lockByte(cached.shm!.fd, "WAL index WRITE", SHM_LOCK_WRITE, deadline);
      // What every SQLite connection holds, so that what we hold is not removed under us: DMS
      // shared (else a connection that opens meanwhile resets the index and needs recovery,
      // which needs the WRITE lock we hold), and the database file's SHARED range (else the last
      // connection to close takes EXCLUSIVE and deletes the -shm and -wal we locked).
      lockByte(cached.shm!.fd, "WAL index DMS", SHM_LOCK_DMS, deadline, "read");
      lockDatabaseShared(cached.db.fd, deadline);
      heldWrites.set(req.db, "wal");
    } else {
      lockByte(cached.db.fd, "database RESERVED", RESERVED_BYTE, deadline);
      heldWrites.set(req.db, "rollback");
    }
    return 0;
  } catch (err) {
    closeDatabase(req.db);
    throw err;
  }
}

function releaseWrites(req: Extract<MountAgentRequest, { op: "release-writes" }>): number {
  heldWrites.delete(req.db);
  closeDatabase(req.db); // closing the files lets go of every lock on them
  return 0;
}

/**
 * Readers keep their page cache while the wal-index header is unchanged: rewrite it valid, with
 * iChange bumped, for a database of `pageCount` pages and the WAL (if any) as it now is. An
 * index too short to hold a header has no readers to tell, and is left alone unless `always`:
 * then it is made one whole region long, since a reader maps nothing of a shorter -shm and would
 * need recovery (and the WRITE lock) to read at all.
 */
function invalidateWalIndex(shmFd: number, pageSize: number, pageCount: number, walHeader: ReturnType<typeof parseWalHeader> | null, always = false): void {
  const size = fs.fstatSync(shmFd).size;
  if (!always && size < SHM_INDEX_HEADER_SIZE) return;
  if (size < SHM_REGION_SIZE) fs.ftruncateSync(shmFd, SHM_REGION_SIZE);
  const previous = Buffer.alloc(SHM_INDEX_HEADER_SIZE);
  fs.readSync(shmFd, previous, 0, previous.length, 0);
  const header = buildInvalidatedWalIndex(previous, {
    pageSize,
    pageCount,
    salt1: walHeader?.salt1 ?? 0,
    salt2: walHeader?.salt2 ?? 0,
    bigEndianChecksum: walHeader?.bigEndian ?? false,
    frameChecksum: walHeader?.checksum ?? [0, 0],
  });
  writeAll(shmFd, header, 0);
}

/**
 * The database is in WAL mode: its header says so, or its -wal holds frames. A database created
 * in WAL mode has its header only in the WAL until the first checkpoint (the file itself may
 * still be empty or say rollback journal), and its writers lock the -shm, not the database file.
 */
function isWalMode(fd: number, walPath: string): boolean {
  const buf = Buffer.alloc(DB_HEADER_SIZE);
  if (fs.readSync(fd, buf, 0, DB_HEADER_SIZE, 0) === DB_HEADER_SIZE && isDatabaseHeader(buf) && parseDatabaseHeader(buf).writeVersion === 2) return true;
  try {
    return fs.statSync(walPath).size > 0;
  } catch {
    return false; // no -wal
  }
}

function readWalHeader(fd: number): ReturnType<typeof parseWalHeader> | null {
  const buf = Buffer.alloc(WAL_HEADER_SIZE);
  if (fs.readSync(fd, buf, 0, WAL_HEADER_SIZE, 0) < WAL_HEADER_SIZE || !isWalHeaderValid(buf)) return null;
  return parseWalHeader(buf);
}

/** Writes contiguous buffers at `position` (one writev; the rest one by one if it came up short). */
function writeRun(fd: number, bufs: Uint8Array[], position: number): void {
  if (bufs.length === 1) return writeAll(fd, bufs[0], position);
  let done = fs.writevSync(fd, bufs, position);
  let at = position;
  for (const buf of bufs) {
    if (done >= buf.length) {
      done -= buf.length;
    } else {
      writeAll(fd, buf.subarray(done), at + done);
      done = 0;
    }
    at += buf.length;
  }
}

// ---- repairs after a demotion -------------------------------------------------------------------

/** A file on the mount, for the shared repair code (store/sqlite-repair.ts). */
function mountFile(fd: number): RepairFile {
  return {
    size: () => fs.fstatSync(fd).size,
    read: (offset, length) => {
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, buf, done, length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return buf;
    },
    write: (data, offset) => writeAll(fd, data, offset),
    truncate: (size) => fs.ftruncateSync(fd, size),
  };
}

/** Opens a mounted file, or null when it does not exist. */
function openIfExists(file: string, flags: number): number | null {
  try {
    return fs.openSync(file, flags);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Puts back the pages a cut-off transaction overwrote, then empties its journal. */
function repairJournal(req: Extract<MountAgentRequest, { op: "rollback-journal" }>): number {
  const dbPath = path.join(MNT, req.db);
  closeDatabase(req.db);
  const journalFd = openIfExists(`${dbPath}-journal`, fs.constants.O_RDWR);
  if (journalFd === null) return 0;
  const dbFd = fs.openSync(dbPath, fs.constants.O_RDWR);
  try {
    // The writer whose transaction was cut off releases its lock once its own rollback fails.
    lockDatabaseExclusive(dbFd, Date.now() + req.lockTimeoutMs);
    const { restored } = rollbackJournal(mountFile(dbFd), mountFile(journalFd));
    fs.ftruncateSync(journalFd, 0);
    return restored;
  } finally {
    ofdLock(dbFd, "unlock", 0, 0);
    fs.closeSync(journalFd);
    fs.closeSync(dbFd);
  }
}

/**
 * Folds the WAL's committed frames into the database file, empties the WAL and resets the
 * wal-index header, so the database file alone holds the node's position.
 *
 * Under a held write lock (the primary granting a HALT lock) the locks are taken on the held
 * -shm and the held WRITE byte stays; and the index header is written even without a WAL: a
 * connection that opens while we hold WRITE cannot run recovery, so it must find a valid header
 * (the last connection to close may have removed the -shm, and hold-writes created it empty).
 */
function repairWal(req: Extract<MountAgentRequest, { op: "fold-wal" }>): number {
  const dbPath = path.join(MNT, req.db);
  // A write lock held in rollback-journal mode: no WAL to fold (and closing would let the lock go).
  if (heldWrites.get(req.db) === "rollback") return 0;
  const heldShm = heldWrites.get(req.db) === "wal" ? (openDatabases.get(req.db)?.shm ?? null) : null;
  if (!heldShm) closeDatabase(req.db);
  const walFd = openIfExists(`${dbPath}-wal`, fs.constants.O_RDWR);
  if (walFd === null && !heldShm) return 0;
  const dbFd = fs.openSync(dbPath, fs.constants.O_RDWR);
  const shmFd = heldShm?.fd ?? fs.openSync(`${dbPath}-shm`, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  try {
    lockShmExclusive(shmFd, Date.now() + req.lockTimeoutMs);
    let folded = 0;
    let pageSize = 0;
    if (walFd !== null) {
      const fold = foldWal(mountFile(dbFd), mountFile(walFd), req.committedEnd);
      fs.ftruncateSync(walFd, 0);
      folded = fold.pages;
      pageSize = fold.pageSize;
    }
    if (heldShm) pageSize ||= databasePageSize(dbFd);
    if (pageSize > 0) invalidateWalIndex(shmFd, pageSize, Math.floor(fs.fstatSync(dbFd).size / pageSize), null, heldShm !== null);
    return folded;
  } finally {
    if (heldShm) {
      unlockAfterWrite(req.db, dbFd, shmFd);
    } else {
      ofdLock(shmFd, "unlock", 0, 0);
      fs.closeSync(shmFd);
    }
    if (walFd !== null) fs.closeSync(walFd);
    fs.closeSync(dbFd);
  }
}

/** The page size in the database file's header; 0 when the file has no header yet. */
function databasePageSize(fd: number): number {
  const buf = Buffer.alloc(DB_HEADER_SIZE);
  if (fs.readSync(fd, buf, 0, DB_HEADER_SIZE, 0) < DB_HEADER_SIZE || !isDatabaseHeader(buf)) return 0;
  return parseDatabaseHeader(buf).pageSize;
}

// ---- the request loop ----------------------------------------------------------------------------

function run(req: MountAgentRequest): Promise<number> | number {
  switch (req.op) {
    case "apply":
      return apply(req);
    case "rollback-journal":
      return repairJournal(req);
    case "fold-wal":
      return repairWal(req);
    case "hold-writes":
      return holdWrites(req);
    case "release-writes":
      return releaseWrites(req);
  }
}

function errorCode(err: unknown): MountAgentErrorCode {
  if (err instanceof LitefsError && (MOUNT_AGENT_ERROR_CODES as readonly string[]).includes(err.code)) return err.code as MountAgentErrorCode;
  return (err as NodeJS.ErrnoException).code === "ENOENT" ? "AGENT_NOT_FOUND" : "AGENT_IO";
}

// One request at a time, in order: changes to one database must not interleave.
let queue: Promise<void> = Promise.resolve();
process.on("message", (req: MountAgentRequest) => {
  queue = queue.then(async () => {
    if (idleTimer) clearTimeout(idleTimer);
    let res: MountAgentResponse;
    try {
      res = { id: req.id, ok: true, result: await run(req) };
    } catch (err) {
      res = { id: req.id, ok: false, code: errorCode(err), message: (err as Error).message };
    }
    idleTimer = setTimeout(closeAll, IDLE_CLOSE_MS);
    idleTimer.unref();
    // The daemon may have gone away meanwhile (shutdown): then there is nobody to answer.
    if (process.connected) process.send!(res, undefined, {}, () => undefined);
  });
});
process.on("disconnect", () => {
  closeAll();
  process.exit(0);
});
