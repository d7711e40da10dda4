/** Who a replica says it is when it opens its stream. */
export interface ReplicaIdentity {
  nodeId: string;
  hostname: string;
  /** lease.candidate of the replica: may the lease be handed to it. */
  candidate: boolean;
}

/**
 * The primary's handle on one connected replica's stream: a handoff waits until the stream has
 * sent the replica every commit, then sends it the lease ID (the stream serves `pendingHandoff`).
 */
export class ConnectedReplica {
  pendingHandoff: { leaseId: string; resolve: () => void; reject: (err: Error) => void } | null = null;
  /** Wakes the stream so it looks at `pendingHandoff`; set by the stream. */
  poke: () => void = () => undefined;
  readonly connectedAt = Date.now();

  constructor(readonly identity: ReplicaIdentity) {}

  handoff(leaseId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pendingHandoff = { leaseId, resolve, reject };
      this.poke();
    });
  }
}

/**
 * The replicas connected to this primary, one per node ID, and the signal that ends all their
 * streams when this node stops being the primary.
 */
export class ConnectedReplicas {
  private readonly byNodeId = new Map<string, ConnectedReplica>();
  private term = new AbortController();

  /** Aborted when the current primary term ends; a stream opened now ends with it. */
  get signal(): AbortSignal {
    return this.term.signal;
  }

  connect(identity: ReplicaIdentity): ConnectedReplica {
    const replica = new ConnectedReplica(identity);
    this.byNodeId.set(identity.nodeId, replica);
    return replica;
  }

  disconnect(replica: ConnectedReplica): void {
    if (this.byNodeId.get(replica.identity.nodeId) === replica) this.byNodeId.delete(replica.identity.nodeId);
  }

  list(): ConnectedReplica[] {
    return [...this.byNodeId.values()];
  }

  /** By node ID or hostname. */
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
  }
}
