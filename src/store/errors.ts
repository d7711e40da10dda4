import { LitefsError } from "../errors.js";

export type StoreErrorCode =
  | "STORE_NOT_A_DATABASE" // page 1 written without the SQLite header
  | "STORE_WRITE_OUTSIDE_TRANSACTION" // a change to the database file that is not part of a SQLite transaction
  | "STORE_READ_ONLY" // write on a replica
  | "STORE_CHECKSUM_MISMATCH" // database pages do not match the last LTX
  | "STORE_BAD_LTX" // an LTX file on disk that cannot be used
  | "STORE_BAD_NODE_ID" // data.dir/id does not hold a node ID
  | "STORE_BAD_CLUSTER_ID" // data.dir/clusterid, or a cluster ID given to store, is malformed
  | "STORE_BAD_NAME" // database name not allowed
  | "STORE_NOT_FOUND"
  | "STORE_POSITION_MISMATCH" // an LTX that does not follow the current position
  | "STORE_CAPTURE_FAILED" // could not write the LTX of a committed transaction
  | "STORE_BAD_IMPORT" // a file given to import that is not a whole SQLite database
  | "STORE_COMMIT_LOST" // a commit waiting for replicas when this node stopped being primary: not acknowledged
  | "STORE_ABANDONED"; // a snapshot stopped before it was done: nobody is waiting for it any more

export class StoreError extends LitefsError {
  declare readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
