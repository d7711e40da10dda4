import type { PrimaryInfo } from "../lease/index.js";

/** One replica's stream from the primary, reconnecting on its own until stopped (src/http/stream-replica.ts). */
export interface ReplicaSession {
  start(): void;
  stop(): Promise<void>;
  /** Resolves once this replica has caught up with the primary for the first time. */
  waitUntilReady(): Promise<void>;
  lagMs(): number;
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
}
