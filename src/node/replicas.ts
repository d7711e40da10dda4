/** Who a replica says it is when it opens its stream. */
export interface ReplicaIdentity {
  nodeId: string;
  hostname: string;
  /** lease.candidate of the replica: may the lease be handed to it. */
  candidate: boolean;
  /** The replica's own cluster API, from its stream request; null when it did not say. */
  url: string | null;
}

/** How long the primary keeps listing a replica whose stream ended, so `litefs status` can report it. */
export const DISCONNECTED_LISTING_MS = 60_000;

/** One replica as /info lists it: connected now, or disconnected within DISCONNECTED_LISTING_MS. */
export interface ReplicaListing extends ReplicaIdentity {
  connected: boolean;
  connectedAt: string;
  /** When its stream ended (ISO 8601); only on a disconnected replica. */
  disconnectedAt?: string;
}

/**
 * The primary's handle on one connected replica's stream: a handoff waits until the stream has
 * sent the replica every commit, then sends it the lease ID (the stream serves `pendingHandoff`).
 */
export class ConnectedReplica {
  pendingHandoff: { leaseId: string; resolve: () => void; reject: (err: Error) => void } | null = null;
  /** Wakes the stream so it looks at `pendingHandoff`; set by the stream. */
  poke: () => void = () => undefined;
  /**
   * Since when (ms) the stream has owed the replica something: its first catch-up from the time
   * it connected, then the oldest commit not yet written to it; null while it has been sent
   * everything. Kept by the stream (src/http/stream-primary.ts).
   */
  behindSince: number | null;
  /** Synchronous replication: per database, the TXID up to which the replica acknowledged its LTX files as durable. */
  readonly acked = new Map<string, number>();

  constructor(
    readonly identity: ReplicaIdentity,
    readonly connectedAt: number,
    /** The primary term it connected in: aborted when this node ended the stream itself. */
    readonly term: AbortSignal,
    /** The databases it streams (lease.databases of the replica); null: all. */
    private readonly databases: ReadonlySet<string> | null = null,
  ) {
    this.behindSince = connectedAt;
  }

  replicates(db: string): boolean {
    return this.databases === null || this.databases.has(db);
  }

  /** How long the replica has been waiting for what the stream owes it (0 when it was sent everything). */
  lagMs(now = Date.now()): number {
    return this.behindSince === null ? 0 : Math.max(0, now - this.behindSince);
  }

  handoff(leaseId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pendingHandoff = { leaseId, resolve, reject };
      this.poke();
    });
  }
}

/**
 * The replicas connected to this primary, one per node ID, and the signal that ends all their
 * streams when this node stops being the primary. Replicas whose stream ended during this term
 * stay listed (not connected) for a while: a replica that went away is a problem worth
 * reporting, not a node that never existed.
 */
export class ConnectedReplicas {
  private readonly byNodeId = new Map<string, ConnectedReplica>();
  private readonly disconnected = new Map<string, { replica: ConnectedReplica; at: number }>();
  private term = new AbortController();
  private readonly now: () => number;
  private readonly listingMs: number;

  constructor(opts: { now?: () => number; disconnectedListingMs?: number } = {}) {
    this.now = opts.now ?? Date.now;
    this.listingMs = opts.disconnectedListingMs ?? DISCONNECTED_LISTING_MS;
  }

  /** Aborted when the current primary term ends; a stream opened now ends with it. */
  get signal(): AbortSignal {
    return this.term.signal;
  }

  connect(identity: ReplicaIdentity, databases: readonly string[] | null = null): ConnectedReplica {
    const replica = new ConnectedReplica(identity, this.now(), this.term.signal, databases ? new Set(databases) : null);
    this.byNodeId.set(identity.nodeId, replica);
    this.disconnected.delete(identity.nodeId);
    return replica;
  }

  /** Called with each replica whose stream ended (synchronous replication drops it from the in-sync set). */
  onDisconnect: (replica: ConnectedReplica) => void = () => undefined;

  disconnect(replica: ConnectedReplica): void {
    const { nodeId } = replica.identity;
    if (this.byNodeId.get(nodeId) !== replica) return;
    this.byNodeId.delete(nodeId);
    this.onDisconnect(replica);
    // Streams this node ended (no longer primary) say nothing about the replica.
    if (!replica.term.aborted) this.disconnected.set(nodeId, { replica, at: this.now() });
  }

  /** The replicas connected now. */
  list(): ConnectedReplica[] {
    return [...this.byNodeId.values()];
  }

  /** What /info reports: the connected replicas, then those disconnected recently (most recent first). */
  listing(): ReplicaListing[] {
    const now = this.now();
    for (const [nodeId, { at }] of this.disconnected) if (now - at > this.listingMs) this.disconnected.delete(nodeId);
    const entry = (r: ConnectedReplica, disconnectedAt?: number): ReplicaListing => ({
      ...r.identity,
      connected: disconnectedAt === undefined,
      connectedAt: new Date(r.connectedAt).toISOString(),
      ...(disconnectedAt !== undefined && { disconnectedAt: new Date(disconnectedAt).toISOString() }),
    });
    const gone = [...this.disconnected.values()].sort((a, b) => b.at - a.at);
    return [...this.list().map((r) => entry(r)), ...gone.map(({ replica, at }) => entry(replica, at))];
  }

  /** A connected replica, by node ID or hostname. */
  find(id: string): ConnectedReplica | undefined {
    return this.byNodeId.get(id) ?? this.list().find((r) => r.identity.hostname === id);
  }

  candidates(): ConnectedReplica[] {
    return this.list().filter((r) => r.identity.candidate);
  }

  /** Ends every stream (this node is no longer the primary) and starts a new term. */
  endAll(reason: string): void {
    this.term.abort(reason);
    this.term = new AbortController();
    this.disconnected.clear();
  }
}
