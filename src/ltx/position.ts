/**
 * TXIDs, positions and LTX file names in their text forms (LTX.md, "Names and positions").
 * TXIDs are JS numbers (a safe integer holds 2^53 transactions, far beyond any real database);
 * checksums are bigint because they use all 64 bits.
 */
import { formatChecksum, parseChecksum } from "./checksum.js";
import { LtxError, hex16 } from "./errors.js";
import { MAX_TXID } from "./header.js";

function assertTxid(txid: number): void {
  if (!Number.isSafeInteger(txid) || txid < 0) {
    throw new LtxError("LTX_BAD_TXID", `bad TXID: expected an integer from 0 to ${MAX_TXID}, found ${txid}`);
  }
}

/** 16 lowercase hex digits, as LiteFS prints TXIDs. */
export function formatTxid(txid: number): string {
  assertTxid(txid);
  return hex16(txid);
}

/** Parses 16 hex digits; refuses TXIDs above Number.MAX_SAFE_INTEGER rather than round them. */
export function parseTxid(s: string): number {
  if (!/^[0-9a-fA-F]{16}$/.test(s)) {
    throw new LtxError("LTX_BAD_TXID", `bad TXID: expected 16 hex digits, found ${JSON.stringify(s)}`);
  }
  const v = BigInt(`0x${s}`);
  if (v > BigInt(MAX_TXID)) {
    throw new LtxError("LTX_BAD_TXID", `TXID ${s} is above ${MAX_TXID}, the largest this implementation handles`);
  }
  return Number(v);
}

/** Where a database is: its last TXID and its checksum after that transaction. */
export class Position {
  static readonly ZERO = new Position(0, 0n);

  constructor(
    readonly txid: number,
    readonly postApplyChecksum: bigint,
  ) {
    assertTxid(txid);
    if (postApplyChecksum < 0n || postApplyChecksum >= 1n << 64n) {
      throw new LtxError("LTX_BAD_CHECKSUM", `bad checksum: ${postApplyChecksum} does not fit in 64 bits`);
    }
  }

  /** `%016x/%016x`, the `-pos` file's content without its newline. */
  toString(): string {
    return `${hex16(this.txid)}/${formatChecksum(this.postApplyChecksum)}`;
  }

  static parse(s: string): Position {
    const m = /^([0-9a-fA-F]{16})\/([0-9a-fA-F]{16})$/.exec(s);
    if (!m) {
      throw new LtxError("LTX_BAD_POSITION", `bad position: expected "%016x/%016x", found ${JSON.stringify(s)}`);
    }
    return new Position(parseTxid(m[1]), parseChecksum(m[2]));
  }

  equals(other: Position): boolean {
    return this.txid === other.txid && this.postApplyChecksum === other.postApplyChecksum;
  }

  isZero(): boolean {
    return this.txid === 0 && this.postApplyChecksum === 0n;
  }
}

/** `<min>-<max>.ltx`, each TXID as 16 hex digits. */
export function formatLtxFilename(minTxid: number, maxTxid: number): string {
  return `${formatTxid(minTxid)}-${formatTxid(maxTxid)}.ltx`;
}

const FILENAME_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$/;

/**
 * The TXID range of an LTX file name, or null if the name is not one. A well-formed name whose
 * TXIDs do not fit in a safe integer throws (LTX_BAD_TXID) instead of being skipped silently.
 */
export function parseLtxFilename(name: string): { minTxid: number; maxTxid: number } | null {
  const m = FILENAME_RE.exec(name);
  if (!m) return null;
  return { minTxid: parseTxid(m[1]), maxTxid: parseTxid(m[2]) };
}
