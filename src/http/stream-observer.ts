import { StoreError } from "../store/errors.js";

/**
 * What the replication stream tells an observer (src/metrics/), on both ends. Calls are cheap
 * and never throw; they happen where the stream already is, so the stream carries no counters.
 */
export interface ReplicationObserver {
  /** On the primary: a snapshot of `db` was sent to a replica. */
  snapshotSent(db: string): void;
  /** On a replica: a snapshot of `db` was received and applied. */
  snapshotReceived(db: string): void;
  /** On a replica: its stream from the primary ended (error, or closed by the primary) and it connects again. */
  reconnecting(): void;
  /** A file received, a database after an apply, or a snapshot being built did not match its checksum. */
  checksumMismatch(db: string): void;
}

/** Tells `observer` about `err` when it is a checksum mismatch of `db`; returns `err`. */
export function noteChecksumMismatch(err: unknown, db: string, observer: ReplicationObserver | undefined): unknown {
  if (err instanceof StoreError && err.code === "STORE_CHECKSUM_MISMATCH") observer?.checksumMismatch(db);
  return err;
}
