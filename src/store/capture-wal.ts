import {
  WAL_FRAME_COMMIT_OFFSET,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  isWalHeaderValid,
  parseWalHeader,
  scanWal,
  walFrameSize,
  type WalChecksum,
  type WalHeader,
} from "../sqlite/index.js";
import type { Database } from "./database.js";

/**
 * Commit capture for WAL mode (DESIGN.md section 5).
 *
 * The committed part of the WAL ends at `committedEnd` with running checksum `committedSum`.
 * After every write that completes a commit frame (its header says commit, and its page is in
 * the file), the frames from `committedEnd` are verified as SQLite's recovery would (salts,
 * cumulative checksums); each transaction that now verifies becomes one LTX, before the write
 * returns to SQLite. A write that breaks the chain (SQLite rewriting checksums of a transaction
 * in progress) simply waits for the write that mends it.
 */
export class WalCapture {
  private header: WalHeader | null = null;
  private committedEnd = 0;
  private committedSum: WalChecksum = [0, 0];
  /** pgno → WAL offset of the latest committed frame of that page, this WAL generation. */
  readonly committedPages = new Map<number, number>();
  /**
   * pgno → checksums of every committed version of that page in this WAL generation: a
   * checkpoint may copy any of them (readers can pin an older one), and nothing else.
   */
  private readonly committedVersions = new Map<number, Set<bigint>>();
  /** The last frame header seen written whole (its WAL offset, -1: none) and its commit field. */
  private lastFrameHeaderAt = -1;
  private lastFrameCommit = 0;

  constructor(private readonly db: Database) {}

  /** The salts and the end of the committed frames: what recovery reconciles against. */
  get state(): { header: WalHeader | null; committedEnd: number } {
    return { header: this.header, committedEnd: this.committedEnd };
  }

  /** Page `pgno` with checksum `sum` is a version a committed transaction of this WAL wrote. */
  isCommittedVersion(pgno: number, sum: bigint): boolean {
    return this.committedVersions.get(pgno)?.has(sum) ?? false;
  }

  afterWrite(buf: Uint8Array, position: number, length: number): void {
    if (position < WAL_HEADER_SIZE) {
      this.loadHeader(position === 0 && length >= WAL_HEADER_SIZE ? buf : null);
      if (position + length <= WAL_HEADER_SIZE) return;
    }
    const header = this.header ?? this.loadHeader(null);
    if (!header) return;
    const frameSize = walFrameSize(header.pageSize);
    const end = position + length;
    // The frame holding the last byte written: does it end a transaction, and is it whole?
    const frameIndex = Math.floor((end - 1 - WAL_HEADER_SIZE) / frameSize);
    const frameOffset = WAL_HEADER_SIZE + frameIndex * frameSize;
    let commit = this.noteFrameHeader(buf, position, end, frameOffset);
    if (end <= this.committedEnd) return;
    if (commit < 0 && this.lastFrameHeaderAt === frameOffset) commit = this.lastFrameCommit;
    if (commit === 0) return;
    // SQLite writes a frame's header, then its page: when this write is that page and the header
    // was seen (or is in this write), the frame is whole with no system call to ask.
    if (commit < 0 || end !== frameOffset + frameSize) {
      const wal = this.db.files.wal;
      if (wal.size() < frameOffset + frameSize) return;
      const frameHeader = wal.readAt(frameOffset, WAL_FRAME_HEADER_SIZE);
      if (new DataView(frameHeader.buffer, frameHeader.byteOffset).getUint32(WAL_FRAME_COMMIT_OFFSET) === 0) return;
    }
    this.captureCommitted();
  }

  /**
   * Remembers the commit field of the frame header at `frameOffset` when this write holds it
   * whole, and returns it (else -1); forgets a remembered header this write overwrote in part.
   */
  private noteFrameHeader(buf: Uint8Array, position: number, end: number, frameOffset: number): number {
    if (position <= frameOffset && end >= frameOffset + WAL_FRAME_HEADER_SIZE) {
      const at = frameOffset - position + WAL_FRAME_COMMIT_OFFSET;
      this.lastFrameHeaderAt = frameOffset;
      this.lastFrameCommit = ((buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]) >>> 0;
      return this.lastFrameCommit;
    }
    if (position < this.lastFrameHeaderAt + WAL_FRAME_HEADER_SIZE && end > this.lastFrameHeaderAt) this.lastFrameHeaderAt = -1;
    return -1;
  }

  afterTruncate(size: number): void {
    this.lastFrameHeaderAt = -1;
    if (size < WAL_HEADER_SIZE) this.reset();
  }

  /** Called when the WAL starts over (new header, truncation, unlink). */
  reset(): void {
    this.header = null;
    this.lastFrameHeaderAt = -1;
    this.committedEnd = 0;
    this.committedSum = [0, 0];
    this.committedPages.clear();
    this.committedVersions.clear();
  }

  /** A new WAL header means a new generation: every earlier frame has been checkpointed. */
  private loadHeader(written: Uint8Array | null): WalHeader | null {
    let buf = written?.subarray(0, WAL_HEADER_SIZE) ?? null;
    if (!buf) {
      const wal = this.db.files.wal;
      if (wal.size() < WAL_HEADER_SIZE) return null;
      buf = wal.readAt(0, WAL_HEADER_SIZE);
    }
    if (!isWalHeaderValid(buf)) return null;
    const header = parseWalHeader(buf);
    if (this.header && this.header.salt1 === header.salt1 && this.header.salt2 === header.salt2) return this.header;
    this.header = header;
    this.lastFrameHeaderAt = -1;
    this.committedEnd = WAL_HEADER_SIZE;
    this.committedSum = header.checksum;
    this.committedPages.clear();
    this.committedVersions.clear();
    return header;
  }

  private captureCommitted(): void {
    const header = this.header!;
    const wal = this.db.files.wal;
    const scan = scanWal((off, len) => wal.readAt(off, len), wal.size(), this.committedEnd, this.committedSum);
    if (scan.header.salt1 !== header.salt1 || scan.header.salt2 !== header.salt2) return;
    const db = this.db;
    if (db.pageSize === 0) db.pageSize = header.pageSize;
    for (const tx of scan.transactions) {
      const pgnos = [...tx.pages.keys()].sort((a, b) => a - b);
      db.commitTransaction({
        commit: tx.commitSize,
        pgnos,
        readPage: (pgno) => wal.readAt(tx.pages.get(pgno)! + WAL_FRAME_HEADER_SIZE, header.pageSize),
        walOffset: tx.offset,
        walSize: tx.size,
        walSalt1: header.salt1,
        walSalt2: header.salt2,
        always: true,
        onRecorded: (sums) => this.recordVersions(sums),
      });
      for (const [pgno, off] of tx.pages) this.committedPages.set(pgno, off);
      this.committedEnd = tx.offset + tx.size;
      this.committedSum = tx.checksum;
    }
    // Padding frames after an already-captured transaction.
    if (scan.end > this.committedEnd) {
      this.committedEnd = scan.end;
      this.committedSum = scan.checksum;
    }
  }

  private recordVersions(sums: ReadonlyMap<number, bigint>): void {
    for (const [pgno, sum] of sums) {
      const versions = this.committedVersions.get(pgno);
      if (versions) versions.add(sum);
      else this.committedVersions.set(pgno, new Set([sum]));
    }
  }
}
