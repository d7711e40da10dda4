import { LitefsError } from "../errors.js";

/** Stable codes for content that is not what SQLite would have written. */
export type SqliteFormatErrorCode =
  /** The 100-byte header does not start with "SQLite format 3\0" or is too short. */
  | "SQLITE_NOT_A_DATABASE"
  /** A page size field holds something SQLite never writes (not a power of two in 512..65536). */
  | "SQLITE_BAD_PAGE_SIZE"
  /** A journal header has its magic but the rest was never completely written. */
  | "JOURNAL_TORN_HEADER"
  /** The journal was written with a different page size than the caller expects. */
  | "JOURNAL_PAGE_SIZE_MISMATCH"
  /** The WAL header is short, has a wrong magic/version/page size, or fails its checksum. */
  | "WAL_BAD_HEADER"
  /** A scan was asked to start somewhere that is not a frame boundary. */
  | "WAL_BAD_OFFSET"
  /** A frame's salts differ from the WAL header's: it is left over from an earlier WAL. */
  | "WAL_SALT_MISMATCH"
  /** A frame's cumulative checksum does not verify. */
  | "WAL_CHECKSUM_MISMATCH"
  /** The file ends inside a frame. */
  | "WAL_SHORT_FRAME"
  /** A frame claims page number 0. */
  | "WAL_BAD_PAGE_NUMBER"
  /** The wal-index (-shm) is too short to hold its header. */
  | "SHM_SHORT_HEADER";

/** Thrown by the pure SQLite format modules; callers branch on `code`. */
export class SqliteFormatError extends LitefsError {
  declare readonly code: SqliteFormatErrorCode;

  constructor(code: SqliteFormatErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
