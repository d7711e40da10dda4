import type { Logger } from "pino";
import { isLeaseError, type Lease, type Leaser, type PrimaryInfo } from "../lease/index.js";
import type { ApiServer } from "../http/server.js";
import { ReplicaStream } from "../http/stream-replica.js";
import type { PageWriter } from "../store/apply.js";
import { generateClusterId, readClusterId, writeClusterId } from "../store/cluster-id.js";
import type { Store } from "../store/store.js";
import type { RepairJob } from "../fuse/demotion-repair.js";

export interface RoleOptions {
  store: Store;
  leaser: Leaser;
  api: ApiServer;
  writer: PageWriter;
  log: Logger;
  candidate: boolean;
  /** lease.promote: once caught up, ask the primary to hand its lease to this node. */
  promote: boolean;
  hostname: string;
  token?: string;
  databases: string[];
  reconnectDelayMs: number;
  /** Undoes what SQLite clients left in flight when this node stopped being the primary. */
  repairAfterDemotion: (jobs: RepairJob[]) => Promise<unknown>;
}

/**
 * The lease loop (DESIGN.md section 7): a candidate without a primary acquires the lease and
 * serves as primary until the lease is lost, handed off or closed; otherwise the node streams
 * from whoever holds it. Losing the lease makes the node read-only at once, before anything
 * else happens, so a primary that cannot renew stops writing before another node can acquire.
 */
export class RoleManager {
  private stopped = false;
  private lease: Lease | null = null;
  private replica: ReplicaStream | null = null;
  private endReplicaTerm: (() => void) | null = null;
  private handedLeaseId: string | null = null;
  private loop: Promise<void> | null = null;
  private readyWaiters: Array<() => void> = [];
  private ready = false;

  constructor(private readonly opts: RoleOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  get currentLease(): Lease | null {
    return this.lease;
  }

  /** Resolves when the node is primary, or a replica that has caught up once. */
  waitUntilReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  lagMs(): number {
    return this.replica?.lagMs() ?? 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.endReplicaTerm?.();
    await this.replica?.stop();
    const lease = this.lease;
    if (lease) {
      this.demote("shutting down");
      await lease.close().catch((err) => this.opts.log.warn({ err }, "releasing the lease failed"));
    }
    await this.loop;
  }

  private markReady(): void {
    this.ready = true;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  private async run(): Promise<void> {
    const { leaser, log } = this.opts;
    while (!this.stopped) {
      try {
        const handed = this.handedLeaseId;
        this.handedLeaseId = null;
        if (handed) {
          log.info("taking over the lease handed to this node");
          await this.primaryTerm(await leaser.acquireExisting(handed));
          continue;
        }
        if (this.opts.candidate && (await this.noPrimary())) {
          const lease = await this.tryAcquire();
          if (lease && this.stopped) {
            await lease.close();
            break;
          }
          if (lease) {
            await this.primaryTerm(lease);
            continue;
          }
        }
        if (this.stopped) break;
        await this.replicaTerm();
      } catch (err) {
        if (!this.stopped) log.warn({ err: (err as Error).message }, "lease loop error; retrying");
        await sleep(this.opts.reconnectDelayMs);
      }
    }
  }

  private async noPrimary(): Promise<boolean> {
    const info = await this.opts.leaser.primaryInfo();
    return info === null || this.isSelf(info);
  }

  private isSelf(info: PrimaryInfo): boolean {
    return info.advertiseUrl === this.opts.leaser.advertiseUrl && info.hostname === this.opts.hostname;
  }

  private async tryAcquire(): Promise<Lease | null> {
    try {
      return await this.opts.leaser.acquire();
    } catch (err) {
      if (isLeaseError(err, "LEASE_PRIMARY_EXISTS")) return null;
      throw err;
    }
  }

  /** Serves as primary until the lease ends; then turns read-only before anything else. */
  private async primaryTerm(lease: Lease): Promise<void> {
    const { store, log, api } = this.opts;
    try {
      await this.adoptClusterId();
    } catch (err) {
      await lease.close().catch(() => undefined);
      throw err;
    }
    this.lease = lease;
    const unsubscribe = lease.onHandoff(async ({ nodeId, leaseId }) => {
      // Stop writes first, then make sure the target has everything, then pass the lease.
      store.setPrimary(false);
      await api.handoffTo(nodeId, leaseId);
    });
    store.setPrimary(true);
    log.info({ lease: lease.id }, "acquired the primary lease");
    this.markReady();
    await new Promise<void>((resolve) => {
      if (lease.signal.aborted) resolve();
      else lease.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    unsubscribe();
    this.demote(String((lease.signal.reason as Error)?.message ?? "lease ended"));
    if (!this.stopped) await this.repairLocalState();
  }

  /**
   * A transaction cut off by the demotion left pages in the database file and a hot journal;
   * committed WAL frames would vanish from readers' view once the first replicated file resets
   * the -shm. Both are put right before anything is applied as a replica.
   */
  private async repairLocalState(): Promise<void> {
    const jobs: RepairJob[] = [];
    for (const db of this.opts.store.allDatabases()) {
      if (!db.exists) continue;
      if (db.journal.active) jobs.push({ db: db.name, kind: "journal" });
      if (db.files.wal.exists() && db.files.wal.size() > 0) jobs.push({ db: db.name, kind: "wal", committedEnd: db.wal.state.committedEnd });
    }
    if (jobs.length === 0) return;
    for (let attempt = 1; ; attempt++) {
      try {
        const done = await this.opts.repairAfterDemotion(jobs);
        this.opts.log.info({ repaired: done }, "rolled back cut-off transactions and folded the WAL after losing the primary role");
        return;
      } catch (err) {
        this.opts.log.error({ err: (err as Error).message, attempt }, "repair after demotion failed; retrying");
        if (this.stopped) return;
        await sleep(this.opts.reconnectDelayMs);
      }
    }
  }

  /** Read-only at once, every stream ended: another node may be primary any moment now. */
  private demote(reason: string): void {
    if (!this.lease) return;
    this.lease = null;
    this.opts.store.setPrimary(false);
    this.opts.api.endStreams(reason);
    this.opts.log.warn({ reason }, "no longer the primary");
  }

  /** The cluster ID lives with the lease; a node from another cluster never becomes primary. */
  private async adoptClusterId(): Promise<void> {
    const { leaser, store } = this.opts;
    const local = readClusterId(store.dataDir);
    const shared = await leaser.clusterId();
    if (shared && local && shared !== local) {
      throw new Error(`this node belongs to cluster ${local} but the lease belongs to ${shared}: refusing to become primary`);
    }
    const id = shared ?? local ?? generateClusterId();
    if (!shared) await leaser.setClusterId(id);
    if (!local) writeClusterId(store.dataDir, id);
  }

  /** Streams from the primary until the stream layer finds there is none and we could take over. */
  private async replicaTerm(): Promise<void> {
    const { store, leaser, log } = this.opts;
    store.setPrimary(false);
    const ended = new Promise<void>((resolve) => (this.endReplicaTerm = resolve));
    const replica = new ReplicaStream({
      store,
      writer: this.opts.writer,
      log,
      hostname: this.opts.hostname,
      token: this.opts.token,
      databases: this.opts.databases,
      candidate: this.opts.candidate,
      reconnectDelayMs: this.opts.reconnectDelayMs,
      discoverPrimary: async () => {
        const info = await leaser.primaryInfo();
        if (info === null || this.isSelf(info)) {
          if (this.opts.candidate) this.endReplicaTerm?.();
          return null;
        }
        return info;
      },
      onHandoff: (leaseId) => {
        log.info("the primary is handing its lease to this node");
        this.handedLeaseId = leaseId;
        this.endReplicaTerm?.();
      },
    });
    this.replica = replica;
    replica.start();
    // stop() may have run while this term was being set up.
    if (this.stopped) this.endReplicaTerm?.();
    void replica.waitUntilReady().then(() => {
      this.markReady();
      if (this.opts.promote && this.opts.candidate) void this.requestPromotion();
    });
    await ended;
    this.endReplicaTerm = null;
    await replica.stop();
  }

  /** Asks the current primary to hand the lease to this node (lease.promote, POST /promote). */
  async requestPromotion(): Promise<void> {
    const { leaser, store, log } = this.opts;
    if (store.isPrimary) return;
    if (!this.opts.candidate) throw new Error("this node is not a candidate (lease.candidate is false): it cannot become primary");
    const info = await leaser.primaryInfo();
    if (!info) throw new Error("there is no primary to hand over the lease");
    const nodeId = store.nodeId.toString(16).padStart(16, "0");
    const { request } = await import("undici");
    const res = await request(new URL(`/handoff?id=${nodeId}`, info.advertiseUrl), {
      method: "POST",
      headers: this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {},
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`primary ${info.hostname} refused the handoff (${res.statusCode}): ${text.trim()}`);
    log.info({ primary: info.hostname }, "primary agreed to hand over its lease");
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
