/** Public surface of the LTX codec: import from here, not from the files behind it. */
export { LTX_ERROR_CODES, LtxError, type LtxErrorCode } from "./errors.js";
export { Crc64, Crc64Extension, crc64, crc64Extension } from "./crc64.js";
export {
  CHECKSUM_FLAG,

  RollingChecksum,
  databaseChecksum,
  databaseChecksumFile,
  type DatabaseChecksumFileOptions,
  formatChecksum,
  lockPgno,
  pageChecksum,
  pageCrc,
  parseChecksum,
} from "./checksum.js";
export { Position, formatLtxFilename, formatTxid, parseLtxFilename, parseTxid } from "./position.js";
export {
  HEADER_FLAG_COMPRESS_LZ4,
  HEADER_SIZE,
  LTX_MAGIC,
  type LtxHeader,
  MAX_PAGE_SIZE,
  MAX_TXID,
  MIN_PAGE_SIZE,
  PAGE_HEADER_SIZE,
  decodeHeader,
  encodeHeader,
  isCompressed,
  isSnapshot,
  isValidPageSize,
  validateHeader,
} from "./header.js";
export { type LtxTrailer, TRAILER_SIZE, decodeTrailer, encodeTrailer, validateTrailer } from "./trailer.js";
export { LtxEncoder, type LtxEncodeResult, type LtxEncoderOptions, type LtxSink, encodeLtx } from "./encoder.js";
export {
  type DecodedLtx,
  LtxDecoder,
  type LtxDecoderOptions,
  type LtxEvent,
  type LtxPage,
  type LtxSummary,
  checkPostApplyChecksum,
  decodeLtx,
  decodeLtxFile,
  decodeLtxStream,
  verifyLtx,
} from "./decoder.js";
