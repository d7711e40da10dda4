import { LitefsError } from "../errors.js";

/**
 * Every way an LTX file (or a TXID, checksum or position in text form) can be wrong.
 * Callers branch on these codes; the message is for people.
 */
export const LTX_ERROR_CODES = [
  "LTX_BAD_MAGIC",
  "LTX_UNKNOWN_FLAGS",
  "LTX_BAD_PAGE_SIZE",
  /** TXID zero, above Number.MAX_SAFE_INTEGER, or not 16 hex digits. */
  "LTX_BAD_TXID",
  "LTX_TXID_ORDER",
  /** A header field other than the ones with their own code (WAL fields, timestamp). */
  "LTX_BAD_HEADER",
  /** A stored checksum without bit 63, or a checksum text that is not 16 hex digits. */
  "LTX_BAD_CHECKSUM",
  "LTX_BAD_POSITION",
  "LTX_SNAPSHOT_RULE",
  "LTX_PAGE_ORDER",
  "LTX_PGNO_OVER_COMMIT",
  "LTX_LOCK_PAGE",
  /** A page handed to the encoder with the wrong length or an impossible page number. */
  "LTX_BAD_PAGE",
  "LTX_TRUNCATED",
  "LTX_TRAILING_BYTES",
  "LTX_FILE_CHECKSUM_MISMATCH",
  "LTX_POST_APPLY_CHECKSUM_MISMATCH",
  "LTX_BAD_LZ4",
  /** Encoder or decoder used after it finished or failed. */
  "LTX_CLOSED",
] as const;

export type LtxErrorCode = (typeof LTX_ERROR_CODES)[number];

export class LtxError extends LitefsError {
  declare readonly code: LtxErrorCode;
  /** The file the error is about, when the caller named it. */
  readonly file: string | undefined;

  constructor(code: LtxErrorCode, detail: string, file?: string, options?: { cause?: unknown }) {
    super(code, file === undefined ? `ltx: ${detail}` : `${file}: ${detail}`, options);
    this.file = file;
  }
}

/** Renders a 64-bit value the way LTX prints checksums and TXIDs: 16 lowercase hex digits. */
export function hex16(v: bigint | number): string {
  return v.toString(16).padStart(16, "0");
}
