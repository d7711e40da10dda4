import type { Logger } from "pino";
import type { ReplicationConfig } from "../config/types.js";
import type { SyncSet } from "../lease/index.js";
import { StoreError } from "../store/errors.js";
import type { CommitEvent, CommitWait } from "../store/events.js";
import type { Store } from "../store/store.js";
import { sleep } from "./async.js";
import type { ConnectedReplica, ConnectedReplicas } from "./replicas.js";

/** What /info, `litefs status` and /metrics report about synchronous replication. */
export interface SyncStatus {
  /** replication.sync-replicas (0: asynchronous). */
  required: number;
  strict: boolean;
  /** The in-sync set as last published: every commit waits for each of them. */
  members: string[];
  /** Fewer members than required: commits go on without the missing ones (after sync-timeout). */
  degraded: boolean;
  /** Commits waiting for acknowledgements now. */
  waiting: number;
  /** Times the primary went on without a member since it became primary. */
  degradations: number;
}

interface Waiter {
  db: string;
  txid: number;
  since: number;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | null;
}

export interface SyncReplicationOptions {
  config: ReplicationConfig;
  replicas: ConnectedReplicas;
  store: Store;
  log: Logger;
  /** Publishes the set with the lease (Consul `<key>/sync`); a no-op for a static lease. */
  publish(set: SyncSet): Promise<void>;
  /** This node's ID: the set's leader. */
  nodeId: string;
  /** Degraded (true) or restored (false), for the node's event stream. */
  onStateChange?: (degraded: boolean, status: SyncStatus) => void;
}

/** Publishing the set is retried this often while Consul cannot be reached. */
const PUBLISH_RETRY_MS = 500;

/**
 * Synchronous replication on the primary (DESIGN.md section 10): a local commit returns only
 * when every member of the in-sync set has acknowledged its LTX file as durable, and the set
 * holds `sync-replicas` members. As Patroni's synchronous mode: a replica joins the set (once it
 * has acknowledged everything) only after the set naming it is published, and leaves it (it
 * stopped acknowledging within sync-timeout, or disconnected) before any commit is acknowledged
 * without it; a candidate outside a set of candidates may not take the lease (lease/leaser.ts
 * mayTakeLease). Without enough members the primary degrades to asynchronous and says so, until
 * replicas catch up; with sync-strict it waits instead.
 */
export class SyncReplication {
  private readonly members = new Map<string, ConnectedReplica>();
  private waiters: Waiter[] = [];
  private active = false;
  private degradations = 0;
  /** Too few members and sync-timeout passed: commits wait only for the members there are. */
  private degradedNow = false;
  /** Set changes, one at a time, in order. */
  private publishing: Promise<void> = Promise.resolve();
  private published = "";

  constructor(private readonly opts: SyncReplicationOptions) {}

  get enabled(): boolean {
    return this.opts.config.syncReplicas > 0;
  }

  status(): SyncStatus {
    const { syncReplicas, syncStrict } = this.opts.config;
    return {
      required: syncReplicas,
      strict: syncStrict,
      members: [...this.members.values()].map((r) => r.identity.hostname),
      degraded: this.degradedNow,
      waiting: this.waiters.length,
      degradations: this.degradations,
    };
  }

  /**
   * This node became primary: an empty set naming it is published first (commits wait for
   * members, which join only after it).
   */
  startTerm(): void {
    if (!this.enabled) return;
    this.members.clear();
    this.degradations = 0;
    this.degradedNow = false;
    this.published = "";
    this.active = true;
    this.changeSet(() => undefined, "became primary");
  }

  /**
   * This node is no longer primary: commits still waiting may be missing from the next primary,
   * so they are not acknowledged: SQLite gets an I/O error for each (STORE_COMMIT_LOST), and the
   * snapshot from the new primary takes them back out of this node.
   */
  endTerm(reason: string): void {
    this.active = false;
    this.members.clear();
    this.degradedNow = false;
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(new StoreError("STORE_COMMIT_LOST", `${w.db}: TXID ${w.txid} was not acknowledged by the in-sync replicas before this node stopped being primary (${reason})`));
    }
  }

  /** The store's commit barrier: null (no wait) when asynchronous or already acknowledged. */
  barrier(ev: CommitEvent): CommitWait {
    if (!this.active || !this.enabled || ev.source !== "local") return null;
    const waiter: Waiter = { db: ev.db.name, txid: ev.position.txid, since: Date.now(), resolve: () => undefined, reject: () => undefined, timer: null };
    if (this.satisfied(waiter)) return null;
    const wait = new Promise<void>((resolve, reject) => {
      waiter.resolve = resolve;
      waiter.reject = reject;
    });
    if (!this.opts.config.syncStrict) waiter.timer = setTimeout(() => this.timedOut(waiter), this.opts.config.syncTimeoutMs);
    this.waiters.push(waiter);
    return wait;
  }

  /** A replica's acknowledgement: its LTX files of `db` up to `txid` are durable on its disk. */
  acknowledge(nodeId: string, db: string, txid: number): void {
    const replica = this.opts.replicas.find(nodeId);
    if (!replica || !this.active) return;
    if (txid > (replica.acked.get(db) ?? 0)) replica.acked.set(db, txid);
    const member = this.members.get(nodeId);
    // A member that reconnected (kept in the set under sync-strict) is the same node with the
    // same disk: its new stream's acknowledgements count.
    if (member && member !== replica) this.members.set(nodeId, replica);
    if (!member) this.maybeJoin(replica);
    this.check();
  }

  /** A replica's stream ended: it leaves the set (not under sync-strict, which waits for it). */
  disconnected(replica: ConnectedReplica): void {
    const { nodeId } = replica.identity;
    if (this.members.get(nodeId) !== replica || this.opts.config.syncStrict) return;
    this.changeSet(() => this.members.delete(nodeId), `replica ${replica.identity.hostname} disconnected`);
  }

  private eligible(replica: ConnectedReplica): boolean {
    return !this.opts.config.syncCandidatesOnly || replica.identity.candidate;
  }

  /** Has it acknowledged every database it replicates, up to the primary's position? */
  private caughtUp(replica: ConnectedReplica): boolean {
    for (const db of this.opts.store.allDatabases()) {
      if (db.position.txid === 0 || !replica.replicates(db.name)) continue;
      if ((replica.acked.get(db.name) ?? 0) < db.position.txid) return false;
    }
    return true;
  }

  private maybeJoin(replica: ConnectedReplica): void {
    if (this.members.size >= this.opts.config.syncReplicas || !this.eligible(replica) || !this.caughtUp(replica)) return;
    const { nodeId, hostname } = replica.identity;
    // Counted only once the set naming it is published.
    this.changeSet(() => {
      if (this.members.size < this.opts.config.syncReplicas && this.opts.replicas.find(nodeId) === replica) this.members.set(nodeId, replica);
    }, `replica ${hostname} caught up`);
  }

  private satisfied(w: Waiter): boolean {
    if (this.members.size < this.opts.config.syncReplicas && !this.degradedAllowed()) return false;
    for (const r of this.members.values()) if ((r.acked.get(w.db) ?? 0) < w.txid) return false;
    return true;
  }

  /** Degraded commits need only the members there are; under sync-strict none are degraded. */
  private degradedAllowed(): boolean {
    return !this.opts.config.syncStrict && this.degradedNow;
  }

  private check(): void {
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (this.satisfied(w)) this.release(w);
      else still.push(w);
    }
    this.waiters = still;
    if (this.degradedNow && this.members.size >= this.opts.config.syncReplicas) {
      this.degradedNow = false;
      this.opts.log.info({ members: this.status().members }, "synchronous replication restored: every commit waits for the in-sync replicas again");
      this.opts.onStateChange?.(false, this.status());
    }
  }

  /**
   * sync-timeout passed without every member's acknowledgement: the members that did not
   * acknowledge leave the set, the set is published, and only then the commit returns.
   */
  private timedOut(w: Waiter): void {
    w.timer = null;
    if (!this.waiters.includes(w)) return;
    const laggards = [...this.members.values()].filter((r) => (r.acked.get(w.db) ?? 0) < w.txid);
    const names = laggards.map((r) => r.identity.hostname);
    this.changeSet(
      () => {
        for (const r of laggards) if (this.members.get(r.identity.nodeId) === r) this.members.delete(r.identity.nodeId);
        if (!this.degradedNow) {
          this.degradedNow = true;
          this.degradations++;
          this.opts.log.warn(
            { db: w.db, txid: w.txid, waitedMs: Date.now() - w.since, dropped: names, members: [...this.members.values()].map((r) => r.identity.hostname), required: this.opts.config.syncReplicas },
            "synchronous replication degraded: commits go on without the replicas that did not acknowledge in time, until they catch up",
          );
          this.opts.onStateChange?.(true, this.status());
        }
      },
      names.length ? `replicas ${names.join(", ")} did not acknowledge within sync-timeout` : "too few in-sync replicas",
    );
  }

  /** Applies `change` to the set once the new set is published (retrying), then re-checks the waiting commits. */
  private changeSet(change: () => void, reason: string): void {
    this.publishing = this.publishing.then(async () => {
      if (!this.active) return;
      change();
      await this.publishSet(reason);
      this.check();
    });
  }

  private async publishSet(reason: string): Promise<void> {
    const set: SyncSet = {
      leader: this.opts.nodeId,
      members: [...this.members.values()].map((r) => ({ nodeId: r.identity.nodeId, hostname: r.identity.hostname, candidate: r.identity.candidate })),
    };
    const json = JSON.stringify(set);
    if (json === this.published) return;
    for (let attempt = 1; this.active; attempt++) {
      try {
        await this.opts.publish(set);
        this.published = json;
        this.opts.log.info({ members: set.members.map((m) => m.hostname), reason }, "published the in-sync replica set");
        return;
      } catch (err) {
        if (attempt === 1) this.opts.log.error({ err: (err as Error).message }, "cannot publish the in-sync replica set; commits wait until it is published");
        await sleep(PUBLISH_RETRY_MS);
      }
    }
  }

  private release(w: Waiter): void {
    if (w.timer) clearTimeout(w.timer);
    w.resolve();
  }
}
