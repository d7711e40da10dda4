/**
 * The wal-index (`<db>-shm`) header block and lock bytes (sqlite.org/walformat.html, wal.c).
 *
 * The first 136 bytes are two copies of the 48-byte WalIndexHdr followed by the 40-byte
 * WalCkptInfo. Unlike the WAL, the wal-index is shared memory in the machine's native byte order.
 * SQLite locks single bytes at offsets 120..128 of the file; those bytes of the mapping itself are
 * never read or written.
 */
import { walChecksum, type WalChecksum } from "./wal.js";
import { SqliteFormatError } from "./errors.js";

export const WAL_INDEX_VERSION = 3007000;

export const SHM_HEADER_SIZE = 48;
/** Second copy of the header. Writers update copy 2 first, readers require both to match. */
export const SHM_HEADER2_OFFSET = 48;
export const SHM_CKPT_INFO_OFFSET = 96;
export const SHM_CKPT_INFO_SIZE = 40;
/** Both header copies plus the checkpoint info (wal.c WALINDEX_HDR_SIZE). */
export const SHM_INDEX_HEADER_SIZE = 136;

// WalIndexHdr field offsets (within one copy).
export const SHM_VERSION_OFFSET = 0; // u32 iVersion
export const SHM_CHANGE_OFFSET = 8; // u32 iChange, bumped by every commit
export const SHM_IS_INIT_OFFSET = 12; // u8 isInit
export const SHM_BIG_ENDIAN_CKSUM_OFFSET = 13; // u8 bigEndCksum (the WAL's checksum byte order)
export const SHM_PAGE_SIZE_OFFSET = 14; // u16 szPage; 1 means 65536
export const SHM_MX_FRAME_OFFSET = 16; // u32 last valid (committed) frame
export const SHM_PAGE_COUNT_OFFSET = 20; // u32 database size in pages
export const SHM_FRAME_CHECKSUM_OFFSET = 24; // u32[2] checksum of the last frame
export const SHM_SALT_OFFSET = 32; // u32[2] salts, copied byte for byte from the WAL header (big-endian)
export const SHM_CHECKSUM_OFFSET = 40; // u32[2] checksum of the 40 bytes before it

// WalCkptInfo field offsets (from the start of the file).
export const SHM_BACKFILL_OFFSET = 96; // u32 nBackfill: frames already copied to the database
export const SHM_READ_MARK_OFFSET = 100; // u32[5] aReadMark
export const SHM_READ_MARK_COUNT = 5;
export const SHM_BACKFILL_ATTEMPTED_OFFSET = 128; // u32 nBackfillAttempted

/** A read mark no reader is using. */
export const READ_MARK_NOT_USED = 0xffffffff;

// Lock bytes (file offsets). Exclusive on WRITE: the one writer. CKPT: a checkpointer. RECOVER:
// rebuilding the index. READi: a reader pinned at aReadMark[i] (READ0: reading the database file
// only). DMS: held shared by every connection; exclusive by the first, which resets the index.
/** The wal-index is mapped in regions of this size; a reader maps none of a shorter -shm and then needs recovery. */
export const SHM_REGION_SIZE = 32768;
export const SHM_LOCK_WRITE = 120;
export const SHM_LOCK_CKPT = 121;
export const SHM_LOCK_RECOVER = 122;
export const SHM_LOCK_READ0 = 123;
export const SHM_LOCK_READ_COUNT = 5;
export const SHM_LOCK_DMS = 128;

/**
 * The bytes to hold exclusively while changing a WAL-mode database behind SQLite's back (applying
 * replicated pages): no writer, checkpointer, recovery or reader can start. Holding fewer than all
 * READ bytes lets a reader start mid-apply and see a torn database.
 */
export const SHM_EXCLUSIVE_LOCK_BYTES: readonly number[] = [
  SHM_LOCK_WRITE,
  SHM_LOCK_CKPT,
  SHM_LOCK_RECOVER,
  ...Array.from({ length: SHM_LOCK_READ_COUNT }, (_, i) => SHM_LOCK_READ0 + i),
];

/** The machine's byte order, which the wal-index uses. */
const nativeLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface WalIndexHeader {
  version: number;
  change: number;
  isInit: boolean;
  bigEndianChecksum: boolean;
  pageSize: number;
  mxFrame: number;
  pageCount: number;
  frameChecksum: WalChecksum;
  salt1: number;
  salt2: number;
  checksum: WalChecksum;
}

export interface CheckpointInfo {
  backfill: number;
  readMarks: number[];
  backfillAttempted: number;
}

export interface WalIndexState {
  /** The first header copy. */
  header: WalIndexHeader;
  /** Both copies are byte-identical (a writer was not interrupted between them). */
  copiesMatch: boolean;
  /** The stored checksum matches the header's first 40 bytes. */
  checksumValid: boolean;
  /**
   * What a reader's walIndexTryHdr accepts without running recovery: copies match, isInit set,
   * checksum valid. Anything else sends the next reader into recovery (rebuild from the WAL).
   */
  valid: boolean;
  checkpoint: CheckpointInfo;
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function headerChecksum(copy: Uint8Array): [number, number] {
  return walChecksum(copy.subarray(0, SHM_CHECKSUM_OFFSET), 0, 0, !nativeLittleEndian);
}

function decodeHeader(copy: Uint8Array): WalIndexHeader {
  const v = view(copy);
  const u32 = (o: number): number => v.getUint32(o, nativeLittleEndian);
  const rawPageSize = v.getUint16(SHM_PAGE_SIZE_OFFSET, nativeLittleEndian);
  return {
    version: u32(SHM_VERSION_OFFSET),
    change: u32(SHM_CHANGE_OFFSET),
    isInit: copy[SHM_IS_INIT_OFFSET] !== 0,
    bigEndianChecksum: copy[SHM_BIG_ENDIAN_CKSUM_OFFSET] !== 0,
    // wal.c stores (szPage & 0xff00) | (szPage >> 16), so 65536 becomes 1.
    pageSize: rawPageSize === 1 ? 65536 : rawPageSize,
    mxFrame: u32(SHM_MX_FRAME_OFFSET),
    pageCount: u32(SHM_PAGE_COUNT_OFFSET),
    frameChecksum: [u32(SHM_FRAME_CHECKSUM_OFFSET), u32(SHM_FRAME_CHECKSUM_OFFSET + 4)],
    // wal.c memcpy's the salts from the WAL header, so unlike the rest they read big-endian.
    salt1: v.getUint32(SHM_SALT_OFFSET, false),
    salt2: v.getUint32(SHM_SALT_OFFSET + 4, false),
    checksum: [u32(SHM_CHECKSUM_OFFSET), u32(SHM_CHECKSUM_OFFSET + 4)],
  };
}

/** Parses the first 136 bytes of a -shm file. Throws SHM_SHORT_HEADER if fewer are given. */
export function parseWalIndex(buf: Uint8Array): WalIndexState {
  if (buf.length < SHM_INDEX_HEADER_SIZE) {
    throw new SqliteFormatError(
      "SHM_SHORT_HEADER",
      `wal-index header needs ${SHM_INDEX_HEADER_SIZE} bytes, got ${buf.length}`,
    );
  }
  const copy1 = buf.subarray(0, SHM_HEADER_SIZE);
  const copy2 = buf.subarray(SHM_HEADER2_OFFSET, SHM_HEADER2_OFFSET + SHM_HEADER_SIZE);
  const header = decodeHeader(copy1);
  const copiesMatch = Buffer.compare(copy1, copy2) === 0;
  const [c1, c2] = headerChecksum(copy1);
  const checksumValid = c1 === header.checksum[0] && c2 === header.checksum[1];

  const v = view(buf);
  const u32 = (o: number): number => v.getUint32(o, nativeLittleEndian);
  return {
    header,
    copiesMatch,
    checksumValid,
    valid: copiesMatch && header.isInit && checksumValid,
    checkpoint: {
      backfill: u32(SHM_BACKFILL_OFFSET),
      readMarks: Array.from({ length: SHM_READ_MARK_COUNT }, (_, i) => u32(SHM_READ_MARK_OFFSET + 4 * i)),
      backfillAttempted: u32(SHM_BACKFILL_ATTEMPTED_OFFSET),
    },
  };
}

/** Encodes one 48-byte header copy with isInit set, the current version and a fresh checksum. */
export function encodeWalIndexHeader(
  h: Omit<WalIndexHeader, "version" | "isInit" | "checksum">,
): Uint8Array {
  const copy = new Uint8Array(SHM_HEADER_SIZE);
  const v = view(copy);
  const put = (o: number, x: number): void => v.setUint32(o, x >>> 0, nativeLittleEndian);
  put(SHM_VERSION_OFFSET, WAL_INDEX_VERSION);
  put(SHM_CHANGE_OFFSET, h.change);
  copy[SHM_IS_INIT_OFFSET] = 1;
  copy[SHM_BIG_ENDIAN_CKSUM_OFFSET] = h.bigEndianChecksum ? 1 : 0;
  v.setUint16(SHM_PAGE_SIZE_OFFSET, h.pageSize === 65536 ? 1 : h.pageSize, nativeLittleEndian);
  put(SHM_MX_FRAME_OFFSET, h.mxFrame);
  put(SHM_PAGE_COUNT_OFFSET, h.pageCount);
  put(SHM_FRAME_CHECKSUM_OFFSET, h.frameChecksum[0]);
  put(SHM_FRAME_CHECKSUM_OFFSET + 4, h.frameChecksum[1]);
  v.setUint32(SHM_SALT_OFFSET, h.salt1 >>> 0, false);
  v.setUint32(SHM_SALT_OFFSET + 4, h.salt2 >>> 0, false);
  const [c1, c2] = headerChecksum(copy);
  put(SHM_CHECKSUM_OFFSET, c1);
  put(SHM_CHECKSUM_OFFSET + 4, c2);
  return copy;
}

export interface ReplicaWalState {
  pageSize: number;
  /** Database size in pages after the apply. */
  pageCount: number;
  /** Salts and byte order of the WAL header on disk (zeros when there is no WAL). */
  salt1: number;
  salt2: number;
  bigEndianChecksum: boolean;
  /** Running WAL checksum at the end of the valid frames (zeros when there is no WAL). */
  frameChecksum: WalChecksum;
}

/**
 * The 136 bytes to write at offset 0 of the -shm after pages were applied directly to the
 * database file (replica apply, import), so every connection drops what it cached.
 *
 * A reader keeps its page cache across transactions while the wal-index header it sees equals the
 * copy it saved (wal.c walIndexTryHdr sets "changed" only on a difference). A header that is
 * merely broken (isInit 0, copies differ, bad checksum) is not enough: the first reader to notice
 * runs recovery, which rebuilds the header from the WAL with iChange reset to 0, and every other
 * reader whose saved copy equals that rebuilt header keeps serving stale pages. So this writes a
 * valid header with iChange one past the previous one (different from every saved copy), no WAL
 * frames (mxFrame 0: everything is read from the database file), and checkpoint info as recovery
 * leaves it for an empty WAL. The caller must hold SHM_EXCLUSIVE_LOCK_BYTES while writing, and
 * the WAL must not hold frames for these salts that recovery could later replay over the pages.
 */
export function buildInvalidatedWalIndex(previous: Uint8Array | null, state: ReplicaWalState): Uint8Array {
  let change = 0;
  if (previous !== null && previous.length >= SHM_HEADER_SIZE) {
    change = (decodeHeader(previous.subarray(0, SHM_HEADER_SIZE)).change + 1) >>> 0;
  }
  const copy = encodeWalIndexHeader({
    change,
    bigEndianChecksum: state.bigEndianChecksum,
    pageSize: state.pageSize,
    mxFrame: 0,
    pageCount: state.pageCount,
    frameChecksum: state.frameChecksum,
    salt1: state.salt1,
    salt2: state.salt2,
  });
  const out = new Uint8Array(SHM_INDEX_HEADER_SIZE);
  out.set(copy, 0);
  out.set(copy, SHM_HEADER2_OFFSET);
  const v = view(out);
  const put = (o: number, x: number): void => v.setUint32(o, x >>> 0, nativeLittleEndian);
  put(SHM_BACKFILL_OFFSET, 0);
  // READ0 means "database file only"; the other marks are free, as recovery leaves them.
  put(SHM_READ_MARK_OFFSET, 0);
  for (let i = 1; i < SHM_READ_MARK_COUNT; i++) put(SHM_READ_MARK_OFFSET + 4 * i, READ_MARK_NOT_USED);
  put(SHM_BACKFILL_ATTEMPTED_OFFSET, 0);
  return out;
}
