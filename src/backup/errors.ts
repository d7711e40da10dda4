import { LitefsError } from "../errors.js";

export type BackupErrorCode =
  /** backup.url or a restore flag is not usable (unknown scheme, bad TXID, bad timestamp). */
  | "BACKUP_BAD_CONFIG"
  /** The storage could not be reached or refused the request (network, credentials, bucket). */
  | "BACKUP_TARGET_UNREACHABLE"
  /** An object the restore needs is not there (a gap in the chain, no snapshot). */
  | "BACKUP_MISSING"
  /** An object is there but damaged: it fails LTX verification or does not fit the chain. */
  | "BACKUP_DAMAGED"
  /** The backup holds nothing for the database (or nothing at or before the point asked). */
  | "BACKUP_NOT_FOUND"
  /** The restore's output file exists, or cannot be written. */
  | "BACKUP_OUTPUT";

export class BackupError extends LitefsError {
  declare readonly code: BackupErrorCode;

  constructor(code: BackupErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
