/** The LTX trailer (16 bytes, big-endian, never compressed). Offsets are named here only. */
import { CHECKSUM_FLAG } from "./checksum.js";
import { LtxError, hex16 } from "./errors.js";

export const TRAILER_SIZE = 16;

const OFFSET_POST_APPLY_CHECKSUM = 0;
const OFFSET_FILE_CHECKSUM = 8;

/** The file checksum covers the trailer up to (not including) the file checksum itself. */
export const TRAILER_CHECKSUMMED_SIZE = OFFSET_FILE_CHECKSUM;

export interface LtxTrailer {
  /** Database checksum after applying the file (bit 63 set). */
  postApplyChecksum: bigint;
  /** CRC-64 of the file's logical (uncompressed) bytes up to here, bit 63 set. */
  fileChecksum: bigint;
}

export function encodeTrailer(t: LtxTrailer): Uint8Array {
  const b = new Uint8Array(TRAILER_SIZE);
  const v = new DataView(b.buffer);
  v.setBigUint64(OFFSET_POST_APPLY_CHECKSUM, t.postApplyChecksum);
  v.setBigUint64(OFFSET_FILE_CHECKSUM, t.fileChecksum);
  return b;
}

export function decodeTrailer(b: Uint8Array): LtxTrailer {
  const v = new DataView(b.buffer, b.byteOffset, TRAILER_SIZE);
  return {
    postApplyChecksum: v.getBigUint64(OFFSET_POST_APPLY_CHECKSUM),
    fileChecksum: v.getBigUint64(OFFSET_FILE_CHECKSUM),
  };
}

/** Both trailer checksums must carry bit 63 (a valid checksum is never zero). */
export function validateTrailer(t: LtxTrailer, file?: string): void {
  if ((t.postApplyChecksum & CHECKSUM_FLAG) === 0n) {
    throw new LtxError("LTX_BAD_CHECKSUM", `post-apply checksum must have bit 63 set, found ${hex16(t.postApplyChecksum)}`, file);
  }
  if ((t.fileChecksum & CHECKSUM_FLAG) === 0n) {
    throw new LtxError("LTX_BAD_CHECKSUM", `file checksum must have bit 63 set, found ${hex16(t.fileChecksum)}`, file);
  }
}
