import * as fs from "node:fs";
import { CHECKSUM_FLAG, LtxDecoder, Position, isSnapshot, type LtxEvent, type LtxHeader, type LtxTrailer } from "../ltx/index.js";
import { syncFilesystem } from "../os/syncfs.js";
import { fsyncFileAsync, syncDirectoryAsync } from "./backing-file.js";
import type { Database } from "./database.js";
import { StoreError } from "./errors.js";
import { type PageChecksums, PageSumList, type PageSums } from "./page-checksums.js";

/** An installed LTX file to write into the database. */
export interface ApplyFile {
  path: string;
  /** Pages in the file and their size (bounds what the writer decodes at once). */
  pages: number;
  pageSize: number;
}

/** Writes the pages of installed LTX files into a database through the mount (the mount agent). */
export interface PageWriter {
  /**
   * Applies `files` to `db` in order, under one hold of SQLite's locks: readers see the database
   * before the first file or after the last. `reopen`: the database was (re)created since the
   * previous call, so files kept open from before must not be reused. `resetWal`: the files
   * replace every page, so the WAL is emptied under the same locks (an import on the primary).
   */
  apply(db: Database, files: readonly ApplyFile[], opts?: { reopen?: boolean; resetWal?: boolean }): Promise<void>;
}

export interface ReceivedLtx {
  header: LtxHeader;
  trailer: LtxTrailer;
  /** The page checksum of every page in the file. */
  checksums: PageSums;
  tmpPath: string;
}

/** Limits of one batch: files, and bytes of page data (what the mount agent holds decoded). */
export const MAX_BATCH_FILES = 512;
export const MAX_BATCH_BYTES = 64 << 20;
/** Up to this many files are fsynced one by one; a larger batch is made durable with one syncfs. */
const FSYNC_EACH_UP_TO = 2;

let tmpSeq = 0;

/**
 * Files received back to back from the primary for one database, verified and waiting to be
 * installed and applied together (applyReceivedBatch). Each file must fit the position the one
 * before it leaves (the first: the database's), and its post-apply checksum is verified against
 * the page checksums the files before it leave, kept here as an overlay on the database's own, so
 * nothing about the database changes until the batch is applied.
 *
 * A snapshot or a deletion ends a batch (what follows it starts from nothing).
 */
export class ReceiveBatch {
  readonly files: ReceivedLtx[] = [];
  private pos: Position;
  private overlay: ChecksumOverlay | null = null;
  private pageBytes = 0;
  private ended = false;

  constructor(
    readonly db: Database,
    private readonly maxFiles = MAX_BATCH_FILES,
    private readonly maxBytes = MAX_BATCH_BYTES,
  ) {
    this.pos = db.position;
  }

  /** The position after the files received so far. */
  get position(): Position {
    return this.pos;
  }

  /** No further file may join: the limits are reached, or the last file was a snapshot or deletion. */
  get full(): boolean {
    return this.ended || this.files.length >= this.maxFiles || this.pageBytes >= this.maxBytes;
  }

  /** The database checksum after the files so far and then `changes` resizing to `pageCount`. */
  checksumAfter(changes: PageSums, pageCount: number): bigint {
    return (this.overlay ?? this.db.checksums).checksumAfter(changes, pageCount);
  }

  receiver(name: string): LtxReceiver {
    return new LtxReceiver(this, name);
  }

  add(received: ReceivedLtx): void {
    const { header, trailer } = received;
    checkFits(this.db.name, this.pos, header);
    this.files.push(received);
    this.pos = new Position(header.maxTxid, trailer.postApplyChecksum);
    this.pageBytes += received.checksums.size * header.pageSize;
    if (isSnapshot(header) || header.commit === 0) {
      this.ended = true;
    } else {
      this.overlay ??= new ChecksumOverlay(this.db.checksums);
      this.overlay.apply(received.checksums, header.commit);
    }
  }

  /** Removes the temporary files of a batch that will not be applied. */
  discard(): void {
    for (const f of this.files.splice(0)) fs.rmSync(f.tmpPath, { force: true });
  }
}

/**
 * Streams one LTX file from the primary into a temporary file in the database's ltx/ folder,
 * verifying as it goes: the header must fit the batch's position (or be a snapshot), and the
 * file checksum and post-apply checksum must verify before anything is applied. Never holds the
 * whole file in memory. Writes synchronously: the ltx/ folder is on the backing filesystem, never
 * the mount. Not fsynced here: the batch is made durable as a whole before it is installed.
 *
 * A transaction this node already has (it made it under the HALT lock and the primary streams it
 * back) is read and dropped: finish() returns null once its checksum matches our own file's.
 */
export class LtxReceiver {
  private readonly decoder: LtxDecoder;
  private readonly checksums = new PageSumList();
  private fd: number | null = null;
  private events: LtxEvent[] = [];
  /** The file is one this node already has: checked against ours at the end, never written. */
  private known = false;
  readonly tmpPath: string;

  constructor(
    private readonly batch: ReceiveBatch,
    name: string,
  ) {
    // The file's bytes are written as they came: only each page's checksum is kept.
    this.decoder = new LtxDecoder({ name, sharedPageBuffer: true });
    this.tmpPath = batch.db.ltx.tempPath(`recv-${++tmpSeq}`);
  }

  write(chunk: Uint8Array): void {
    this.events.length = 0;
    this.decoder.write(chunk, this.events);
    for (const ev of this.events) {
      if (ev.type === "header") {
        // Against the database's own position: this node may have committed more since the batch began.
        this.known = isKnown(this.batch.db.position, ev.header);
        if (!this.known) checkFits(this.batch.db.name, this.batch.position, ev.header);
      } else if (ev.type === "page") {
        this.checksums.add(ev.pgno, ev.checksum);
      }
    }
    if (this.known) return;
    this.fd ??= fs.openSync(this.tmpPath, "w", 0o644);
    writeAll(this.fd, chunk);
  }

  finish(): ReceivedLtx | null {
    const summary = this.decoder.end();
    const header = summary.header;
    if (this.known) {
      const ours = this.batch.db.ltx.postApplyChecksumOf(header.minTxid, header.maxTxid);
      if (ours !== summary.trailer.postApplyChecksum) {
        throw new StoreError(
          "STORE_POSITION_MISMATCH",
          `database ${this.batch.db.name}: LTX ${header.minTxid}-${header.maxTxid} is behind position ${this.batch.position.toString()} and not the one this node has`,
        );
      }
      return null;
    }
    if (!isSnapshot(header) && header.commit > 0) {
      const expected = this.batch.checksumAfter(this.checksums, header.commit);
      if (expected !== summary.trailer.postApplyChecksum) {
        throw new StoreError(
          "STORE_CHECKSUM_MISMATCH",
          `database ${this.batch.db.name}: TXID ${header.maxTxid} would leave checksum ${expected.toString(16)}, the file says ${summary.trailer.postApplyChecksum.toString(16)}`,
        );
      }
    }
    this.fd ??= fs.openSync(this.tmpPath, "w", 0o644);
    fs.closeSync(this.fd);
    this.fd = null;
    return { header, trailer: summary.trailer, checksums: this.checksums, tmpPath: this.tmpPath };
  }

  abort(): void {
    if (this.fd !== null) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // already closed
      }
    }
    this.fd = null;
    fs.rmSync(this.tmpPath, { force: true });
  }
}

/** A transaction at or before `pos`, not a snapshot or a deletion: one this node should already have. */
function isKnown(pos: Position, header: LtxHeader): boolean {
  return !isSnapshot(header) && header.commit > 0 && header.maxTxid <= pos.txid;
}

function checkFits(name: string, pos: Position, header: LtxHeader): void {
  if (isSnapshot(header)) return;
  // A deletion leaves no pages behind, whatever they were: it fits any earlier position.
  if (header.commit === 0 && header.maxTxid > pos.txid) return;
  if (header.minTxid !== pos.txid + 1 || header.preApplyChecksum !== pos.postApplyChecksum) {
    throw new StoreError(
      "STORE_POSITION_MISMATCH",
      `database ${name}: LTX ${header.minTxid}-${header.maxTxid} (pre-apply ${header.preApplyChecksum.toString(16)}) does not follow position ${pos.toString()}`,
    );
  }
}

/**
 * Makes a batch of verified files part of the database, in order:
 *
 * 1. durable and installed: the files are made durable (fsync each for one or two files, else one
 *    syncfs of the filesystem), renamed to their final names, and the ltx/ folder fsynced once.
 *    A file is never visible under its final name before its bytes are on disk, so a crash never
 *    leaves a torn LTX for startup to trip on. Before that, the apply marker (apply-marker.ts)
 *    records the batch's first TXID durably, with the same fsyncs: recovery after a crash
 *    mid-apply replays the batch's files, and no older ones;
 * 2. applied: the mount agent writes all their pages through the mount in one request, under one
 *    hold of SQLite's locks;
 * 3. the page checksums and the position move file by file, each post-apply checksum checked, and
 *    listeners hear of each file (the same event as a local commit);
 * 4. the database file is fsynced and the marker removed.
 *
 * A snapshot replaces every other LTX file; a deletion (commit 0) drops the database.
 */
export async function applyReceivedBatch(
  db: Database,
  files: readonly ReceivedLtx[],
  writer: PageWriter,
  opts: {
    resetWal?: boolean;
    /** Called once the files are durable and installed, before their pages are written (synchronous replication acknowledges here). */
    onInstalled?: (maxTxid: number) => void;
  } = {},
): Promise<void> {
  if (files.length === 0) return;
  let pos = db.position;
  for (const f of files) {
    checkFits(db.name, pos, f.header);
    pos = new Position(f.header.maxTxid, f.trailer.postApplyChecksum);
  }

  const last = files[files.length - 1];
  const withPages = last.header.commit === 0 ? files.length - 1 : files.length;
  const snapshot = files.findLastIndex((f) => isSnapshot(f.header));
  // Recovery replays the batch from here if a crash cuts its apply short (a snapshot alone rebuilds every page).
  const marked = withPages > 0 ? db.applyMarker.begin(snapshot >= 0 ? 1 : files[0].header.minTxid, files[withPages - 1].header.maxTxid) : null;
  marked?.catch(() => undefined); // awaited in install; never an unhandled rejection meanwhile
  const paths = await install(db, files, marked);
  opts.onInstalled?.(files[files.length - 1].header.maxTxid);
  if (snapshot >= 0) {
    // Files of a history the snapshot discards (this node was ahead of the primary) would sort after it.
    const { maxTxid } = files[snapshot].header;
    db.ltx.remove(db.ltx.list().filter((f) => f.maxTxid >= maxTxid && !paths.includes(f.path)));
  }

  // From the first page written until the positions are set, the file is ahead of its position:
  // a snapshot or export waits (Database.applyIdle).
  const applied = db.beginApply();
  try {
    await writePagesAndRecord(db, files, paths, withPages, writer, opts.resetWal);
  } finally {
    applied();
  }

  if (withPages > 0) {
    // The pages are durable before the marker goes; readers already see them (the position moved above).
    if (!db.skipSync) await fsyncFileAsync(db.files.database.path, true);
    db.applyMarker.end(db.position.txid, snapshot >= 0 || last.header.commit === 0);
  }
}

/** Steps 2 and 3 of applyReceivedBatch: the pages into the database file, then each file's position. */
async function writePagesAndRecord(
  db: Database,
  files: readonly ReceivedLtx[],
  paths: readonly string[],
  withPages: number,
  writer: PageWriter,
  resetWal: boolean | undefined,
): Promise<void> {
  if (withPages > 0) {
    const reopen = !db.exists;
    if (reopen) db.markCreated();
    db.pageSize = files[withPages - 1].header.pageSize;
    const toApply: ApplyFile[] = [];
    for (let i = 0; i < withPages; i++) toApply.push({ path: paths[i], pages: files[i].checksums.size, pageSize: files[i].header.pageSize });
    await writer.apply(db, toApply, { reopen, resetWal });
  }

  for (let i = 0; i < files.length; i++) {
    const { header, trailer, checksums } = files[i];
    const position = new Position(header.maxTxid, trailer.postApplyChecksum);
    if (header.commit === 0) {
      db.dropReplica(position);
    } else {
      if (isSnapshot(header)) db.checksums.clear();
      db.checksums.apply(checksums, header.commit);
      db.setPosition(position);
      if (db.checksums.checksum !== position.postApplyChecksum) {
        throw new StoreError(
          "STORE_CHECKSUM_MISMATCH",
          `database ${db.name}: after applying TXID ${header.maxTxid} the checksum is ${db.checksums.checksum.toString(16)}, expected ${position.postApplyChecksum.toString(16)}`,
        );
      }
    }
    if (isSnapshot(header)) db.ltx.remove(db.ltx.list().filter((f) => f.maxTxid !== header.maxTxid || f.minTxid !== 1));
    db.notifyApplied(paths[i], header);
  }
}

/**
 * Step 1 of applyReceivedBatch; returns the final paths. `marked`: the apply marker's fsyncs,
 * run alongside the files' own. The syncs run on the thread pool: the
 * daemon's event loop keeps serving readers' FUSE requests meanwhile.
 */
async function install(db: Database, files: readonly ReceivedLtx[], marked: Promise<void> | null): Promise<string[]> {
  if (!db.skipSync && (files.length <= FSYNC_EACH_UP_TO || !(await syncFilesystem(db.ltx.dir)))) {
    for (const f of files) await fsyncFileAsync(f.tmpPath);
  }
  await marked;
  const paths: string[] = [];
  for (const f of files) {
    const finalPath = db.ltx.pathOf(f.header.minTxid, f.header.maxTxid);
    fs.renameSync(f.tmpPath, finalPath);
    paths.push(finalPath);
  }
  if (!db.skipSync) await syncDirectoryAsync(db.ltx.dir);
  return paths;
}

/** fsync of a file or a directory. */
function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done);
}

/**
 * Page checksums as they will be after some files, without touching the database's own: the
 * changed entries over the base (the same arithmetic as PageChecksums.apply/checksumAfter).
 */
class ChecksumOverlay {
  private readonly changed = new Map<number, bigint>();
  private count: number;
  /** The rolling checksum; bit 63 is forced on when read, as the base does. */
  private rolling: bigint;

  constructor(private readonly base: PageChecksums) {
    this.count = base.pageCount;
    this.rolling = base.checksum;
  }

  private get(pgno: number): bigint {
    if (pgno > this.count) return 0n;
    return this.changed.get(pgno) ?? this.base.get(pgno);
  }

  checksumAfter(changes: PageSums, pageCount: number): bigint {
    let rolling = this.rolling;
    for (let pgno = pageCount + 1; pgno <= this.count; pgno++) rolling ^= this.get(pgno);
    changes.forEach((sum, pgno) => {
      if (pgno <= pageCount) rolling ^= this.get(pgno) ^ sum;
    });
    return CHECKSUM_FLAG | rolling;
  }

  apply(changes: PageSums, pageCount: number): void {
    for (let pgno = pageCount + 1; pgno <= this.count; pgno++) {
      this.rolling ^= this.get(pgno);
      this.changed.set(pgno, 0n);
    }
    this.count = pageCount;
    changes.forEach((sum, pgno) => {
      if (pgno > pageCount) return;
      this.rolling ^= this.get(pgno) ^ sum;
      this.changed.set(pgno, sum);
    });
  }
}
