import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { LeaseError } from "./errors.js";
import type { HandoffHandler, Lease, Leaser, PrimaryInfo, SyncSet } from "./leaser.js";

export interface StaticLeaserOptions {
  /** `lease.candidate`: true on the one node that is always primary. */
  candidate: boolean;
  /** `lease.hostname`: the primary's hostname (on every node). */
  hostname: string;
  /** `lease.advertise-url`: the primary's API URL (on every node). */
  advertiseUrl: string;
  /** File that keeps the cluster ID across restarts; memory only when absent. */
  clusterIdPath?: string;
}

/**
 * A fixed primary: the candidate always holds the lease and it never expires; every other node
 * points at the configured primary.
 */
export class StaticLeaser implements Leaser {
  readonly type = "static" as const;
  readonly hostname: string;
  readonly advertiseUrl: string;
  private readonly candidate: boolean;
  private readonly primaryAdvertiseUrl: string;
  private readonly clusterIdPath: string | undefined;
  private memoryClusterId: string | null = null;
  private readonly open = new Set<StaticLease>();
  private closed = false;

  constructor(options: StaticLeaserOptions) {
    if (!options.hostname) {
      throw new LeaseError("LEASE_INVALID_OPTIONS", "static lease: hostname of the primary is required");
    }
    if (!options.advertiseUrl) {
      throw new LeaseError("LEASE_INVALID_OPTIONS", "static lease: advertise-url of the primary is required");
    }
    this.candidate = options.candidate;
    this.hostname = options.hostname;
    this.primaryAdvertiseUrl = options.advertiseUrl;
    // As in LiteFS: only the primary advertises itself.
    this.advertiseUrl = options.candidate ? options.advertiseUrl : "";
    this.clusterIdPath = options.clusterIdPath;
  }

  async acquire(signal?: AbortSignal): Promise<Lease> {
    this.assertOpen();
    signal?.throwIfAborted();
    if (!this.candidate) {
      throw new LeaseError(
        "LEASE_PRIMARY_EXISTS",
        `static lease: the primary is ${this.hostname} (${this.primaryAdvertiseUrl}); this node is not the candidate`,
      );
    }
    const lease = new StaticLease(() => this.open.delete(lease));
    this.open.add(lease);
    return lease;
  }

  async acquireExisting(_leaseId: string): Promise<Lease> {
    throw new LeaseError("LEASE_UNSUPPORTED", "static lease: handoff is not supported; the primary is fixed by config");
  }

  async primaryInfo(): Promise<PrimaryInfo | null> {
    this.assertOpen();
    // As in LiteFS: the static primary reports no *other* primary.
    if (this.candidate) return null;
    return { hostname: this.hostname, advertiseUrl: this.primaryAdvertiseUrl };
  }

  async clusterId(): Promise<string | null> {
    this.assertOpen();
    if (this.clusterIdPath === undefined) return this.memoryClusterId;
    try {
      const text = (await readFile(this.clusterIdPath, "utf8")).trim();
      return text === "" ? null : text;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** A static lease never fails over: there is nothing to publish the set for. */
  async syncSet(): Promise<SyncSet | null> {
    return null;
  }

  async setSyncSet(_set: SyncSet): Promise<void> {
    // Nothing to do: with a static lease the guarantee is the replicas' disks, not a failover rule.
  }

  async setClusterId(id: string): Promise<void> {
    this.assertOpen();
    const current = await this.clusterId();
    if (current === id) return;
    if (current !== null) {
      throw new LeaseError(
        "LEASE_CLUSTER_ID_CONFLICT",
        `static lease: cluster ID is already ${current}; refusing to change it to ${id}`,
      );
    }
    if (this.clusterIdPath === undefined) {
      this.memoryClusterId = id;
      return;
    }
    // Write then rename so a crash never leaves a half-written ID behind.
    await mkdir(dirname(this.clusterIdPath), { recursive: true });
    const tmp = `${this.clusterIdPath}.tmp`;
    await writeFile(tmp, `${id}\n`);
    await rename(tmp, this.clusterIdPath);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.open].map((lease) => lease.close()));
  }

  private assertOpen(): void {
    if (this.closed) throw new LeaseError("LEASE_CLOSED", "static leaser is closed");
  }
}

/** Held by the static primary for as long as it runs: never renewed, never lost. */
export class StaticLease implements Lease {
  readonly id = "static";
  readonly renewedAt = 0;
  readonly ttlMs = Infinity;
  private readonly controller = new AbortController();

  constructor(private readonly onClose: () => void) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  held(): boolean {
    return !this.controller.signal.aborted;
  }

  async renew(): Promise<void> {
    this.controller.signal.throwIfAborted();
  }

  async handoff(_nodeId: string): Promise<void> {
    throw new LeaseError("LEASE_UNSUPPORTED", "static lease: handoff is not supported; the primary is fixed by config");
  }

  onHandoff(_cb: HandoffHandler): () => void {
    return () => {};
  }

  onLost(_cb: (err: LeaseError) => void): () => void {
    return () => {};
  }

  async close(): Promise<void> {
    if (this.controller.signal.aborted) return;
    this.controller.abort(new LeaseError("LEASE_CLOSED", "static lease closed"));
    this.onClose();
  }
}
