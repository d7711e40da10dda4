import type { PrimaryInfo } from "../lease/index.js";
import type { HaltGrantInfo, HaltHolder } from "./halt.js";

/** One replica's stream from the primary, reconnecting on its own until stopped (src/http/stream-replica.ts). */
export interface ReplicaSession {
  start(): void;
  stop(): Promise<void>;
  /** Resolves once this replica has caught up with the primary for the first time. */
  waitUntilReady(): Promise<void>;
  lagMs(): number;
  /** Drops the connection and reconnects, so the primary compares positions again (a snapshot if ours left its history). */
  resync(): void;
}

export interface ReplicaSessionOptions {
  /** Where the primary is now; null when there is none (the session retries). */
  discoverPrimary(): Promise<PrimaryInfo | null>;
  /** The primary is handing its lease to this node. */
  onHandoff(leaseId: string): void;
  /** Connected to the primary (who it says it is, and the URL it was reached at) or disconnected (null). */
  onPrimary(primary: PrimaryInfo | null): void;
}

/** Opens replica sessions: the seam between the Node and the replication client. */
export type ReplicaClient = (opts: ReplicaSessionOptions) => ReplicaSession;

/** The cluster API calls the Node makes to another node (src/http/client.ts). */
export interface PeerApi {
  /** Asks the primary to hand its lease to `nodeId`; rejects with the primary's answer when it refuses. */
  requestHandoff(primary: PrimaryInfo, nodeId: string): Promise<void>;
  /**
   * The HALT lock on the primary (src/node/halt.ts). Refusals come back as the primary's NodeError
   * (NODE_HALT_BUSY, NODE_HALT_LOST, NODE_HALT_FAILED) where it gave one.
   */
  acquireHalt(primary: PrimaryInfo, db: string, holder: HaltHolder): Promise<HaltGrantInfo>;
  renewHalt(primary: PrimaryInfo, db: string, id: string): Promise<void>;
  releaseHalt(primary: PrimaryInfo, db: string, id: string): Promise<void>;
  /** Sends one LTX file committed under the lock; resolves once the primary applied it. */
  sendTransaction(primary: PrimaryInfo, db: string, id: string, ltxPath: string): Promise<void>;
}
