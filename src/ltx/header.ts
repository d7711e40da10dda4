/**
 * The LTX header (100 bytes, big-endian, never compressed) and the page-frame layout that
 * follows it. Offsets are named here and nowhere else.
 */
import { CHECKSUM_FLAG } from "./checksum.js";
import { LtxError, hex16 } from "./errors.js";

export const LTX_MAGIC = "LTX1";
export const HEADER_SIZE = 100;

/** Flag bit 0: the page block is one LZ4 frame. No other bit is defined in format 1. */
export const HEADER_FLAG_COMPRESS_LZ4 = 1;
const HEADER_FLAG_MASK = HEADER_FLAG_COMPRESS_LZ4;

const OFFSET_MAGIC = 0;
const OFFSET_FLAGS = 4;
const OFFSET_PAGE_SIZE = 8;
const OFFSET_COMMIT = 12;
const OFFSET_MIN_TXID = 16;
const OFFSET_MAX_TXID = 24;
const OFFSET_TIMESTAMP = 32;
const OFFSET_PRE_APPLY_CHECKSUM = 40;
const OFFSET_WAL_OFFSET = 48;
const OFFSET_WAL_SIZE = 56;
const OFFSET_WAL_SALT1 = 64;
const OFFSET_WAL_SALT2 = 68;
const OFFSET_NODE_ID = 72;
// Bytes 80..99 are reserved and written as zero.

/** Each page frame is a big-endian u32 page number followed by exactly pageSize bytes. */
export const PAGE_HEADER_SIZE = 4;
/** A page number of zero ends the page block. */
export const PAGE_BLOCK_TERMINATOR = 0;

export const MIN_PAGE_SIZE = 512;
export const MAX_PAGE_SIZE = 65536;

/** TXIDs are JS numbers: files whose TXIDs need more than 53 bits are refused. */
export const MAX_TXID = Number.MAX_SAFE_INTEGER;

export interface LtxHeader {
  /** Bit 0 = LZ4-compressed page block. */
  flags: number;
  pageSize: number;
  /** Database size in pages after applying; 0 means the database was deleted. */
  commit: number;
  minTxid: number;
  maxTxid: number;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  /** 0 for a snapshot, otherwise the database checksum this file applies on top of. */
  preApplyChecksum: bigint;
  /** Where the transaction began in the source WAL; 0 in rollback-journal mode. */
  walOffset: number;
  walSize: number;
  walSalt1: number;
  walSalt2: number;
  /** Node that wrote the file; 0 if unset. */
  nodeId: bigint;
}

/** A snapshot holds every page of the database and applies to nothing (min TXID 1). */
export function isSnapshot(h: Pick<LtxHeader, "minTxid">): boolean {
  return h.minTxid === 1;
}

export function isCompressed(h: Pick<LtxHeader, "flags">): boolean {
  return (h.flags & HEADER_FLAG_COMPRESS_LZ4) !== 0;
}

export function isValidPageSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_PAGE_SIZE && n <= MAX_PAGE_SIZE && (n & (n - 1)) === 0;
}

const U64_MAX = (1n << 64n) - 1n;

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function isSafeUint(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** Throws an LtxError naming the first rule `h` breaks (LTX.md, "Header"). */
export function validateHeader(h: LtxHeader, file?: string): void {
  const fail = (code: ConstructorParameters<typeof LtxError>[0], detail: string): never => {
    throw new LtxError(code, detail, file);
  };
  if (!isU32(h.flags) || (h.flags & ~HEADER_FLAG_MASK) !== 0) {
    fail("LTX_UNKNOWN_FLAGS", `unknown header flags: expected only bit 0 (LZ4), found 0x${h.flags.toString(16).padStart(8, "0")}`);
  }
  if (!isValidPageSize(h.pageSize)) {
    fail("LTX_BAD_PAGE_SIZE", `bad page size: expected a power of two from 512 to 65536, found ${h.pageSize}`);
  }
  for (const [name, txid] of [
    ["minimum", h.minTxid],
    ["maximum", h.maxTxid],
  ] as const) {
    if (!Number.isSafeInteger(txid) || txid < 1) {
      fail("LTX_BAD_TXID", `bad ${name} TXID: expected 1..${MAX_TXID}, found ${txid}`);
    }
  }
  if (h.minTxid > h.maxTxid) {
    fail("LTX_TXID_ORDER", `TXIDs out of order: minimum ${hex16(h.minTxid)} is above maximum ${hex16(h.maxTxid)}`);
  }
  if (!isU32(h.commit)) fail("LTX_BAD_HEADER", `bad commit: expected 0..4294967295 pages, found ${h.commit}`);
  if (!Number.isSafeInteger(h.timestamp)) fail("LTX_BAD_HEADER", `bad timestamp: ${h.timestamp}`);
  if (!isSafeUint(h.walOffset)) fail("LTX_BAD_HEADER", `bad WAL offset: ${h.walOffset}`);
  if (!isSafeUint(h.walSize)) fail("LTX_BAD_HEADER", `bad WAL size: ${h.walSize}`);
  if ((h.walOffset === 0) !== (h.walSize === 0)) {
    fail("LTX_BAD_HEADER", `WAL offset and size must both be zero or both be set, found offset ${h.walOffset} and size ${h.walSize}`);
  }
  if (!isU32(h.walSalt1) || !isU32(h.walSalt2)) {
    fail("LTX_BAD_HEADER", `bad WAL salts: ${h.walSalt1}, ${h.walSalt2}`);
  }
  if ((h.walSalt1 !== 0 || h.walSalt2 !== 0) && h.walOffset === 0) {
    fail("LTX_BAD_HEADER", "WAL salts are set but the WAL offset is zero (journal mode has no salts)");
  }
  if (h.nodeId < 0n || h.nodeId > U64_MAX) fail("LTX_BAD_HEADER", `bad node ID: ${h.nodeId}`);
  if (h.preApplyChecksum < 0n || h.preApplyChecksum > U64_MAX) {
    fail("LTX_BAD_CHECKSUM", `bad pre-apply checksum: ${h.preApplyChecksum}`);
  }
  if (isSnapshot(h)) {
    if (h.preApplyChecksum !== 0n) {
      fail("LTX_SNAPSHOT_RULE", `snapshot (minimum TXID 1) must have pre-apply checksum 0, found ${hex16(h.preApplyChecksum)}`);
    }
  } else if ((h.preApplyChecksum & CHECKSUM_FLAG) === 0n) {
    fail(
      "LTX_BAD_CHECKSUM",
      `incremental file needs a pre-apply checksum with bit 63 set, found ${hex16(h.preApplyChecksum)}`,
    );
  }
}

/** Serialises a header after validating it. */
export function encodeHeader(h: LtxHeader, file?: string): Uint8Array {
  validateHeader(h, file);
  const b = new Uint8Array(HEADER_SIZE);
  const v = new DataView(b.buffer);
  for (let i = 0; i < LTX_MAGIC.length; i++) b[OFFSET_MAGIC + i] = LTX_MAGIC.charCodeAt(i);
  v.setUint32(OFFSET_FLAGS, h.flags);
  v.setUint32(OFFSET_PAGE_SIZE, h.pageSize);
  v.setUint32(OFFSET_COMMIT, h.commit);
  v.setBigUint64(OFFSET_MIN_TXID, BigInt(h.minTxid));
  v.setBigUint64(OFFSET_MAX_TXID, BigInt(h.maxTxid));
  v.setBigInt64(OFFSET_TIMESTAMP, BigInt(h.timestamp));
  v.setBigUint64(OFFSET_PRE_APPLY_CHECKSUM, h.preApplyChecksum);
  v.setBigUint64(OFFSET_WAL_OFFSET, BigInt(h.walOffset));
  v.setBigUint64(OFFSET_WAL_SIZE, BigInt(h.walSize));
  v.setUint32(OFFSET_WAL_SALT1, h.walSalt1);
  v.setUint32(OFFSET_WAL_SALT2, h.walSalt2);
  v.setBigUint64(OFFSET_NODE_ID, h.nodeId);
  return b;
}

/**
 * Parses the first HEADER_SIZE bytes of `b`. Checks the magic and that every field fits its JS
 * type (TXIDs, timestamp and WAL fields as safe integers); the format's rules are
 * validateHeader's job.
 */
export function decodeHeader(b: Uint8Array, file?: string): LtxHeader {
  if (b.length < HEADER_SIZE) {
    throw new LtxError("LTX_TRUNCATED", `truncated header: expected ${HEADER_SIZE} bytes, found ${b.length}`, file);
  }
  const magic = b.subarray(OFFSET_MAGIC, OFFSET_MAGIC + 4);
  if (String.fromCharCode(...magic) !== LTX_MAGIC) {
    const found = Array.from(magic, (x) => x.toString(16).padStart(2, "0")).join("");
    throw new LtxError("LTX_BAD_MAGIC", `not an LTX file: expected magic "LTX1" (4c545831), found ${found}`, file);
  }
  const v = new DataView(b.buffer, b.byteOffset, HEADER_SIZE);
  const safe = (offset: number, name: string, code: "LTX_BAD_TXID" | "LTX_BAD_HEADER", signed = false): number => {
    const x = signed ? v.getBigInt64(offset) : v.getBigUint64(offset);
    if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new LtxError(code, `${name} 0x${x.toString(16)} is above ${MAX_TXID}, the largest this implementation handles`, file);
    }
    return Number(x);
  };
  const walOffset = v.getBigInt64(OFFSET_WAL_OFFSET);
  const walSize = v.getBigInt64(OFFSET_WAL_SIZE);
  if (walOffset < 0n || walSize < 0n) {
    throw new LtxError("LTX_BAD_HEADER", `negative WAL offset or size: ${walOffset}, ${walSize}`, file);
  }
  return {
    flags: v.getUint32(OFFSET_FLAGS),
    pageSize: v.getUint32(OFFSET_PAGE_SIZE),
    commit: v.getUint32(OFFSET_COMMIT),
    minTxid: safe(OFFSET_MIN_TXID, "minimum TXID", "LTX_BAD_TXID"),
    maxTxid: safe(OFFSET_MAX_TXID, "maximum TXID", "LTX_BAD_TXID"),
    timestamp: safe(OFFSET_TIMESTAMP, "timestamp", "LTX_BAD_HEADER", true),
    preApplyChecksum: v.getBigUint64(OFFSET_PRE_APPLY_CHECKSUM),
    walOffset: safe(OFFSET_WAL_OFFSET, "WAL offset", "LTX_BAD_HEADER"),
    walSize: safe(OFFSET_WAL_SIZE, "WAL size", "LTX_BAD_HEADER"),
    walSalt1: v.getUint32(OFFSET_WAL_SALT1),
    walSalt2: v.getUint32(OFFSET_WAL_SALT2),
    nodeId: v.getBigUint64(OFFSET_NODE_ID),
  };
}
