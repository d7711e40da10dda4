import { LitefsError } from "../errors.js";

export type StoreErrorCode =
  | "STORE_NOT_A_DATABASE" // page 1 written without the SQLite header
  | "STORE_UNALIGNED_WRITE" // a database write that does not fit the page size
  | "STORE_WRITE_OUTSIDE_TRANSACTION" // rollback-mode write with no journal (journal_mode OFF/MEMORY)
  | "STORE_READ_ONLY" // write on a replica
  | "STORE_CHECKSUM_MISMATCH" // database pages do not match the last LTX
  | "STORE_BAD_LTX" // an LTX file on disk that cannot be used
  | "STORE_BAD_NAME" // database name not allowed
  | "STORE_NOT_FOUND"
  | "STORE_POSITION_MISMATCH" // an LTX that does not follow the current position
  | "STORE_CAPTURE_FAILED"; // could not write the LTX of a committed transaction

export class StoreError extends LitefsError {
  declare readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
