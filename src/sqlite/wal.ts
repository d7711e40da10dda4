/**
 * The write-ahead log (`<db>-wal`) as SQLite's wal.c writes and recovers it
 * (sqlite.org/walformat.html, sqlite.org/fileformat2.html "The WAL File Format").
 *
 * A 32-byte header, then frames of a 24-byte frame header plus one page. Header and frame header
 * fields are big-endian. Checksums are cumulative: the header's covers its first 24 bytes, each
 * frame's continues from the previous one over the frame header's first 8 bytes and the page.
 * A frame is valid when its salts equal the header's, its page number is not 0 and its checksum
 * verifies; a transaction is committed by a valid frame with a non-zero database size.
 */
import { isValidPageSize } from "./db-header.js";
import { SqliteFormatError, type SqliteFormatErrorCode } from "./errors.js";
import type { ReadAt } from "./journal.js";

export type { ReadAt } from "./journal.js";

export const WAL_HEADER_SIZE = 32;
/** Magic with the low bit clear: checksums read the data as little-endian u32 words. */
export const WAL_MAGIC_LE = 0x377f0682;
/** Magic with the low bit set: checksums read the data as big-endian u32 words. */
export const WAL_MAGIC_BE = 0x377f0683;
export const WAL_VERSION = 3007000;

// WAL header field offsets.
export const WAL_MAGIC_OFFSET = 0;
export const WAL_VERSION_OFFSET = 4;
export const WAL_PAGE_SIZE_OFFSET = 8;
export const WAL_CHECKPOINT_SEQ_OFFSET = 12;
export const WAL_SALT1_OFFSET = 16;
export const WAL_SALT2_OFFSET = 20;
export const WAL_CHECKSUM1_OFFSET = 24;
export const WAL_CHECKSUM2_OFFSET = 28;
/** The header checksum covers the bytes before it. */
export const WAL_HEADER_CHECKSUMMED_SIZE = 24;

export const WAL_FRAME_HEADER_SIZE = 24;
// Frame header field offsets.
export const WAL_FRAME_PGNO_OFFSET = 0;
/** Database size in pages after the commit; non-zero only on a transaction's last frame. */
export const WAL_FRAME_COMMIT_OFFSET = 4;
export const WAL_FRAME_SALT1_OFFSET = 8;
export const WAL_FRAME_SALT2_OFFSET = 12;
export const WAL_FRAME_CHECKSUM1_OFFSET = 16;
export const WAL_FRAME_CHECKSUM2_OFFSET = 20;
/** Each frame's checksum covers this much of its header, then the page. */
export const WAL_FRAME_CHECKSUMMED_HEADER_SIZE = 8;

/** A running WAL checksum: [s1, s2]. */
export type WalChecksum = readonly [number, number];

export interface WalHeader {
  magic: number;
  /** Checksums use big-endian words (magic 0x377f0683). */
  bigEndian: boolean;
  version: number;
  pageSize: number;
  checkpointSeq: number;
  salt1: number;
  salt2: number;
  /** Checksum over the first 24 bytes; frame checksums start from it. */
  checksum: WalChecksum;
}

export interface WalFrameHeader {
  pgno: number;
  /** Database size in pages after commit, or 0 for a frame that does not end a transaction. */
  commitSize: number;
  salt1: number;
  salt2: number;
  checksum: WalChecksum;
}

function u32(buf: Uint8Array, offset: number): number {
  return (
    ((buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3]) >>> 0
  );
}

/**
 * Continues a WAL checksum over `data` (length a multiple of 8) from (s1, s2), as wal.c's
 * walChecksumBytes: for each pair of u32 words x0, x1: s1 += x0 + s2; s2 += x1 + s1 (mod 2^32).
 * Start from (0, 0) for the WAL header.
 */
export function walChecksum(
  data: Uint8Array,
  s1: number,
  s2: number,
  bigEndian: boolean,
): [number, number] {
  if (data.length % 8 !== 0) {
    throw new RangeError(`WAL checksum input must be a multiple of 8 bytes, got ${data.length}`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.length);
  const littleEndian = !bigEndian;
  for (let i = 0; i < data.length; i += 8) {
    s1 = (s1 + view.getUint32(i, littleEndian) + s2) >>> 0;
    s2 = (s2 + view.getUint32(i + 4, littleEndian) + s1) >>> 0;
  }
  return [s1, s2];
}

/** Why a buffer is not a WAL header SQLite would use, or null if it is one. */
function walHeaderProblem(buf: Uint8Array): string | null {
  if (buf.length < WAL_HEADER_SIZE) return `WAL header too short: ${buf.length} bytes`;
  const magic = u32(buf, WAL_MAGIC_OFFSET);
  if (magic !== WAL_MAGIC_LE && magic !== WAL_MAGIC_BE) {
    return `bad WAL magic 0x${magic.toString(16)}`;
  }
  const version = u32(buf, WAL_VERSION_OFFSET);
  if (version !== WAL_VERSION) return `unsupported WAL version ${version}`;
  const pageSize = u32(buf, WAL_PAGE_SIZE_OFFSET);
  if (!isValidPageSize(pageSize)) return `invalid WAL page size ${pageSize}`;
  const [c1, c2] = walChecksum(
    buf.subarray(0, WAL_HEADER_CHECKSUMMED_SIZE),
    0,
    0,
    magic === WAL_MAGIC_BE,
  );
  if (c1 !== u32(buf, WAL_CHECKSUM1_OFFSET) || c2 !== u32(buf, WAL_CHECKSUM2_OFFSET)) {
    return "WAL header checksum mismatch";
  }
  return null;
}

/** True if `buf` starts with a WAL header SQLite would accept (magic, version, page size, checksum). */
export function isWalHeaderValid(buf: Uint8Array): boolean {
  return walHeaderProblem(buf) === null;
}

/** Parses and verifies the 32-byte WAL header; throws WAL_BAD_HEADER when SQLite would ignore it. */
export function parseWalHeader(buf: Uint8Array): WalHeader {
  const problem = walHeaderProblem(buf);
  if (problem !== null) throw new SqliteFormatError("WAL_BAD_HEADER", problem);
  const magic = u32(buf, WAL_MAGIC_OFFSET);
  return {
    magic,
    bigEndian: magic === WAL_MAGIC_BE,
    version: u32(buf, WAL_VERSION_OFFSET),
    pageSize: u32(buf, WAL_PAGE_SIZE_OFFSET),
    checkpointSeq: u32(buf, WAL_CHECKPOINT_SEQ_OFFSET),
    salt1: u32(buf, WAL_SALT1_OFFSET),
    salt2: u32(buf, WAL_SALT2_OFFSET),
    checksum: [u32(buf, WAL_CHECKSUM1_OFFSET), u32(buf, WAL_CHECKSUM2_OFFSET)],
  };
}

/** Decodes a 24-byte frame header without judging it (see scanWal for validity). */
export function parseWalFrameHeader(buf: Uint8Array): WalFrameHeader {
  if (buf.length < WAL_FRAME_HEADER_SIZE) {
    throw new SqliteFormatError("WAL_SHORT_FRAME", `WAL frame header too short: ${buf.length} bytes`);
  }
  return {
    pgno: u32(buf, WAL_FRAME_PGNO_OFFSET),
    commitSize: u32(buf, WAL_FRAME_COMMIT_OFFSET),
    salt1: u32(buf, WAL_FRAME_SALT1_OFFSET),
    salt2: u32(buf, WAL_FRAME_SALT2_OFFSET),
    checksum: [u32(buf, WAL_FRAME_CHECKSUM1_OFFSET), u32(buf, WAL_FRAME_CHECKSUM2_OFFSET)],
  };
}

/** Bytes in one frame: header plus page. */
export function walFrameSize(pageSize: number): number {
  return WAL_FRAME_HEADER_SIZE + pageSize;
}

/** Byte offset of frame `frame` (1-based, as SQLite numbers them). */
export function walFrameOffset(frame: number, pageSize: number): number {
  return WAL_HEADER_SIZE + (frame - 1) * walFrameSize(pageSize);
}

export interface WalTransaction {
  /** Byte offset of the transaction's first frame. */
  offset: number;
  /** Bytes from `offset` to the end of its last frame, sector-padding frames included. */
  size: number;
  /** 1-based number of the first frame. */
  firstFrame: number;
  /** Frames in the transaction, padding included. */
  frameCount: number;
  /** Repeats of the commit frame that SQLite wrote to reach a sector boundary. */
  paddingFrames: number;
  /** Database size in pages after the commit. */
  commitSize: number;
  /** Page number → byte offset of the frame holding the page's last version in this transaction. */
  pages: Map<number, number>;
  /** Running checksum after the transaction's last frame: where the next one continues. */
  checksum: WalChecksum;
}

export type WalStopReason =
  /** Every frame up to the end of the file was read. */
  | "end-of-file"
  /** The file ends inside a frame (a write in progress or a torn one). */
  | "short-frame"
  /** A frame's salts differ from the header's: a leftover from before the last WAL restart. */
  | "salt-mismatch"
  /** A frame's cumulative checksum does not verify. */
  | "checksum-mismatch"
  /** A frame names page 0. */
  | "bad-page-number";

export interface WalScan {
  header: WalHeader;
  /** Committed transactions found, in order. */
  transactions: WalTransaction[];
  /**
   * When continuing from an offset: frames at that offset that repeat the commit frame just
   * before it (sector padding of the transaction the caller already has). They change nothing.
   */
  leadingPaddingFrames: number;
  /** Offset just past the last committed transaction (and its padding): where to continue. */
  end: number;
  /** Running checksum at `end`. */
  checksum: WalChecksum;
  /** Valid frames after `end` that are not (yet) followed by a commit frame. */
  uncommittedFrames: number;
  /** Why the scan stopped, and the offset of the frame it stopped at (or of the end of file). */
  stop: { reason: WalStopReason; offset: number };
}

interface CommitFrame {
  pgno: number;
  commitSize: number;
  page: Uint8Array;
}

function isRepeatOf(commit: CommitFrame | null, pgno: number, commitSize: number, page: Uint8Array): boolean {
  if (commit === null || commitSize === 0) return false;
  if (pgno !== commit.pgno || commitSize !== commit.commitSize) return false;
  return Buffer.compare(page, commit.page) === 0;
}

/**
 * Walks the frames of a WAL and returns the committed transactions, stopping at the first frame
 * SQLite's recovery would reject (and reporting which check failed).
 *
 * By default it starts at the first frame with the header's checksum. To continue after the last
 * transaction already captured, pass `fromOffset` (a frame boundary) and the running checksum
 * there; if the checksum is omitted it is taken from the previous frame's header, which holds it
 * when that frame is valid.
 *
 * Sector padding: without powersafe overwrite (`psow=0`) and with synchronous=FULL, wal.c's
 * walFrames repeats the commit frame (same page, same size, a fresh chained checksum) until the
 * next sector boundary. Recovery would count each repeat as another commit of the same page; here
 * a commit frame that exactly repeats the commit frame just before it is folded into that
 * transaction (or counted in `leadingPaddingFrames` if that transaction ended before
 * `fromOffset`). A real one-page transaction that rewrites the same page with identical content
 * right after a commit is indistinguishable from padding and is folded too, which loses nothing.
 */
export function scanWal(
  read: ReadAt,
  fileSize: number,
  fromOffset?: number,
  startChecksum?: WalChecksum,
): WalScan {
  if (fileSize < WAL_HEADER_SIZE) {
    throw new SqliteFormatError("WAL_BAD_HEADER", `WAL too short for a header: ${fileSize} bytes`);
  }
  const header = parseWalHeader(read(0, WAL_HEADER_SIZE));
  const { pageSize, bigEndian, salt1, salt2 } = header;
  const frameSize = walFrameSize(pageSize);

  const start = fromOffset ?? WAL_HEADER_SIZE;
  if (start < WAL_HEADER_SIZE || (start - WAL_HEADER_SIZE) % frameSize !== 0 || start > fileSize) {
    throw new SqliteFormatError(
      "WAL_BAD_OFFSET",
      `offset ${start} is not a frame boundary within the WAL ` +
        `(frame size ${frameSize}, file size ${fileSize})`,
    );
  }

  let checksum: WalChecksum = header.checksum;
  // The commit frame that padding frames would repeat.
  let lastCommit: CommitFrame | null = null;
  if (start > WAL_HEADER_SIZE) {
    const prev = read(start - frameSize, frameSize);
    const prevHeader = parseWalFrameHeader(prev);
    checksum = startChecksum ?? prevHeader.checksum;
    if (prevHeader.commitSize !== 0) {
      lastCommit = {
        pgno: prevHeader.pgno,
        commitSize: prevHeader.commitSize,
        page: Uint8Array.from(prev.subarray(WAL_FRAME_HEADER_SIZE, frameSize)),
      };
    }
  } else if (startChecksum !== undefined) {
    checksum = startChecksum;
  }

  const transactions: WalTransaction[] = [];
  let leadingPaddingFrames = 0;
  let end = start;
  let endChecksum = checksum;
  // The transaction being read: frames seen since the last commit.
  let pending: { offset: number; frames: number; pages: Map<number, number> } | null = null;
  let stop: WalScan["stop"];

  for (let offset = start; ; offset += frameSize) {
    if (offset + frameSize > fileSize) {
      stop = { reason: offset === fileSize ? "end-of-file" : "short-frame", offset };
      break;
    }
    const frame = read(offset, frameSize);
    if (frame.length < frameSize) {
      stop = { reason: "short-frame", offset };
      break;
    }
    // Same order of checks as wal.c's walDecodeFrame.
    if (
      u32(frame, WAL_FRAME_SALT1_OFFSET) !== salt1 ||
      u32(frame, WAL_FRAME_SALT2_OFFSET) !== salt2
    ) {
      stop = { reason: "salt-mismatch", offset };
      break;
    }
    const pgno = u32(frame, WAL_FRAME_PGNO_OFFSET);
    if (pgno === 0) {
      stop = { reason: "bad-page-number", offset };
      break;
    }
    const page = frame.subarray(WAL_FRAME_HEADER_SIZE, frameSize);
    let next = walChecksum(
      frame.subarray(0, WAL_FRAME_CHECKSUMMED_HEADER_SIZE),
      checksum[0],
      checksum[1],
      bigEndian,
    );
    next = walChecksum(page, next[0], next[1], bigEndian);
    if (
      next[0] !== u32(frame, WAL_FRAME_CHECKSUM1_OFFSET) ||
      next[1] !== u32(frame, WAL_FRAME_CHECKSUM2_OFFSET)
    ) {
      stop = { reason: "checksum-mismatch", offset };
      break;
    }
    checksum = next;
    const commitSize = u32(frame, WAL_FRAME_COMMIT_OFFSET);

    if (pending === null && isRepeatOf(lastCommit, pgno, commitSize, page)) {
      const txn = transactions.at(-1);
      if (txn) {
        txn.frameCount++;
        txn.paddingFrames++;
        txn.size += frameSize;
        txn.checksum = checksum;
      } else {
        leadingPaddingFrames++;
      }
      end = offset + frameSize;
      endChecksum = checksum;
      continue;
    }

    pending ??= { offset, frames: 0, pages: new Map() };
    pending.frames++;
    pending.pages.set(pgno, offset);
    if (commitSize !== 0) {
      transactions.push({
        offset: pending.offset,
        size: offset + frameSize - pending.offset,
        firstFrame: (pending.offset - WAL_HEADER_SIZE) / frameSize + 1,
        frameCount: pending.frames,
        paddingFrames: 0,
        commitSize,
        pages: pending.pages,
        checksum,
      });
      lastCommit = { pgno, commitSize, page: Uint8Array.from(page) };
      pending = null;
      end = offset + frameSize;
      endChecksum = checksum;
    }
  }

  return {
    header,
    transactions,
    leadingPaddingFrames,
    end,
    checksum: endChecksum,
    uncommittedFrames: pending?.frames ?? 0,
    stop,
  };
}

const STOP_CODES: Record<Exclude<WalStopReason, "end-of-file">, SqliteFormatErrorCode> = {
  "short-frame": "WAL_SHORT_FRAME",
  "salt-mismatch": "WAL_SALT_MISMATCH",
  "checksum-mismatch": "WAL_CHECKSUM_MISMATCH",
  "bad-page-number": "WAL_BAD_PAGE_NUMBER",
};

/**
 * The error to throw when a scan was expected to read cleanly to the end of the file (for example
 * recovery checking the WAL against the last LTX), or null if it did.
 */
export function walStopError(scan: WalScan): SqliteFormatError | null {
  const { reason, offset } = scan.stop;
  if (reason === "end-of-file") return null;
  return new SqliteFormatError(STOP_CODES[reason], `WAL frame at offset ${offset}: ${reason}`);
}
