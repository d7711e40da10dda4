import { LitefsError } from "../errors.js";

export type NodeErrorCode =
  /** The operation needs the primary and this node is not it. */
  | "NODE_NOT_PRIMARY"
  /** This node can never become primary (lease.candidate is false). */
  | "NODE_NOT_CANDIDATE"
  /** There is no primary to ask (promotion). */
  | "NODE_NO_PRIMARY"
  /** A static lease is fixed by config. */
  | "NODE_HANDOFF_UNSUPPORTED"
  /** The target is not connected, not a candidate, or went away mid-handoff; or the primary refused. */
  | "NODE_HANDOFF_FAILED"
  /** The primary agreed to hand over but this node did not become primary in time. */
  | "NODE_PROMOTION_TIMEOUT"
  /** This node's cluster ID and the lease's differ. */
  | "NODE_CLUSTER_MISMATCH"
  /** Another import of the same database is running, or a replica holds its HALT lock. */
  | "NODE_BUSY"
  /** Another holder has the database's HALT lock (the caller asks again later). */
  | "NODE_HALT_BUSY"
  /** The HALT lock named is not held (expired, released, or the primary changed). */
  | "NODE_HALT_LOST"
  /** The HALT lock could not be taken or kept (no such database, diverged replica, a refused transaction). */
  | "NODE_HALT_FAILED";

export class NodeError extends LitefsError {
  declare readonly code: NodeErrorCode;

  constructor(code: NodeErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
