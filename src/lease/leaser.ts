import type { LeaseError } from "./errors.js";

/**
 * Who the primary is, as stored in the lease (Consul: the JSON value of the lease key,
 * `{"hostname": ..., "advertise-url": ...}`, the same shape LiteFS writes, plus our
 * `"proxy-url"`, which LiteFS nodes ignore).
 */
export interface PrimaryInfo {
  hostname: string;
  /** The primary's cluster API. */
  advertiseUrl: string;
  /** The primary's application proxy, where replicas forward writes; absent when it runs none. */
  proxyUrl?: string;
}

export type LeaserType = "static" | "consul";

/** The primary that published the set (node ID) and the replicas every commit waits for. */
export interface SyncSet {
  leader: string;
  members: Array<{ nodeId: string; hostname: string; candidate: boolean }>;
}

/**
 * May `nodeId` take the lease? Not while the set names candidates and it is neither one of them
 * nor the primary that published it: a commit acknowledged in sync mode is on every member, and
 * maybe nowhere else. A set of non-candidates only (durability without failover) binds nobody.
 */
export function mayTakeLease(set: SyncSet | null, nodeId: string): boolean {
  const candidates = set?.members.filter((m) => m.candidate) ?? [];
  return candidates.length === 0 || set!.leader === nodeId || candidates.some((m) => m.nodeId === nodeId);
}

/**
 * What a handoff handler receives: the node to hand the lease to, and what that node passes to
 * `acquireExisting` (opaque: for a Consul lease, the session ID and the key's index at handoff).
 */
export interface HandoffRequest {
  nodeId: string;
  leaseId: string;
}

/**
 * Delivers a lease ID to the target node (over the replication stream) so that node can call
 * `acquireExisting(leaseId)`. It must stop this node's writes before it sends, and resolve only
 * once the ID is on its way; a rejection keeps this node primary. The lease then waits for the
 * target to confirm that it holds the lease, or takes it back: a handoff completes or is undone.
 */
export type HandoffHandler = (request: HandoffRequest) => void | Promise<void>;

/**
 * Obtains the primary lease for leader election. One per node; the node's lease loop calls
 * `acquire()` while it is a candidate without a primary, and `primaryInfo()` to find the primary
 * otherwise.
 */
export interface Leaser {
  readonly type: LeaserType;
  /** This node's hostname (static replicas: the configured primary's hostname, as LiteFS). */
  readonly hostname: string;
  /** The URL other nodes use to reach this node when it is primary ("" on a static replica). */
  readonly advertiseUrl: string;

  /**
   * Becomes primary, or fails with LEASE_PRIMARY_EXISTS (someone else is), LEASE_NOT_CANDIDATE,
   * or a LEASE_CONSUL_* error. The returned lease keeps itself alive until it is lost or closed.
   */
  acquire(signal?: AbortSignal): Promise<Lease>;

  /** Takes over a lease another node handed to us (its `HandoffRequest.leaseId`). */
  acquireExisting(leaseId: string): Promise<Lease>;

  /** The current primary, or null when there is none (or this node is the static primary). */
  primaryInfo(): Promise<PrimaryInfo | null>;

  /** The cluster ID recorded with the lease, or null if none has been set yet. */
  clusterId(): Promise<string | null>;

  /** Records the cluster ID; the first writer wins and a different later ID is refused. */
  setClusterId(id: string): Promise<void>;

  /**
   * Synchronous replication's set of in-sync replicas, published with the lease (DESIGN.md
   * section 10): null when none was ever published, or when the lease cannot fail over (static).
   */
  syncSet(): Promise<SyncSet | null>;
  /** Publishes the set; the primary does it before it counts a new member's acks and before it acknowledges a commit without a removed one. */
  setSyncSet(set: SyncSet): Promise<void>;

  /** Closes any lease still open from this leaser, then releases the client. */
  close(): Promise<void>;
}

/** A held primary lease. */
export interface Lease {
  readonly id: string;
  /**
   * Milliseconds since the epoch at which the lease was last known renewed. For Consul this is
   * when the renew request was *sent*: Consul's TTL clock restarts on receipt, a bit later.
   */
  readonly renewedAt: number;
  /** Time to live after `renewedAt`; Infinity for a static lease. */
  readonly ttlMs: number;
  /**
   * Aborted, with a LeaseError as reason, the moment this node must stop acting as primary:
   * LEASE_EXPIRED (lost), LEASE_HANDED_OFF or LEASE_CLOSED. For a lost Consul lease this happens
   * a safety margin before the TTL runs out, so before any other node could acquire.
   */
  readonly signal: AbortSignal;

  /**
   * Whether this node may still act on the lease, by the monotonic clock: false once it is past
   * the moment the lease stops being trusted, even if the timer that declares it lost has not
   * fired yet (a process paused by SIGSTOP, a stalled VM: on resume, FUSE requests queued
   * meanwhile are served before timers run). Past that moment the lease is declared lost here and
   * now, so `signal` is aborted before this returns.
   */
  held(): boolean;

  /** Renews now. Leases renew themselves; this is for callers that need a fresh TTL. */
  renew(): Promise<void>;

  /** Passes the lease to `nodeId` through the registered handoff handlers. */
  handoff(nodeId: string): Promise<void>;

  /** Registers the handler that delivers the lease ID to a target node; returns an unsubscribe. */
  onHandoff(cb: HandoffHandler): () => void;

  /** Called once if the lease is lost (not on close or handoff); returns an unsubscribe. */
  onLost(cb: (err: LeaseError) => void): () => void;

  /** Gives the lease up so another node can acquire at once (unless it was handed off). */
  close(): Promise<void>;
}
