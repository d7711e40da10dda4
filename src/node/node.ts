import * as fs from "node:fs";
import type { Logger } from "pino";
import type { Position } from "../ltx/index.js";
import { applyReceivedBatch, type ReceivedLtx } from "../store/apply.js";
import { checkImportFile, importLtx } from "../store/import.js";
import { isLeaseError, mayTakeLease, type Lease, type Leaser, type LeaserType, type PrimaryInfo } from "../lease/index.js";
import type { ReplicationConfig } from "../config/types.js";
import { generateClusterId, readClusterId, writeClusterId } from "../store/cluster-id.js";
import type { CommitEvent, CommitWait, StoreEvent } from "../store/events.js";
import { StoreError } from "../store/errors.js";
import type { MountWriter, RepairJob } from "../store/mount-writer.js";
import type { Store } from "../store/store.js";
import type { WriteAuthority } from "../store/write-authority.js";
import { signal, sleep } from "./async.js";
import { NodeError } from "./errors.js";
import { HaltGrants, HaltHolds, type HaltGrantInfo, type HaltHolder } from "./halt.js";
import { NodeEvents, type NodeEvent, type NodeRole } from "./events.js";
import { ConnectedReplicas, type ReplicaListing } from "./replicas.js";
import { SyncReplication, type SyncStatus } from "./sync.js";
import type { PeerApi, ReplicaClient, ReplicaSession } from "./seams.js";

export interface NodeOptions {
  store: Store;
  leaser: Leaser;
  /** Writes through the mount: repairs after a demotion, imports. */
  mountWriter: MountWriter;
  replicaClient: ReplicaClient;
  peers: PeerApi;
  log: Logger;
  hostname: string;
  candidate: boolean;
  /** lease.promote: once caught up, ask the primary to hand its lease to this node. */
  promote: boolean;
  reconnectDelayMs: number;
  /** This node's application proxy URL (published while it is primary); unset without a proxy. */
  proxyUrl?: string;
  /** Synchronous replication (config `replication`); asynchronous when unset. */
  replication?: ReplicationConfig;
}

/** How long a primary stopping cleanly tries to hand its lease over before it just releases it. */
const SHUTDOWN_HANDOFF_MS = 5000;
/** How long POST /promote waits for this node to become primary once the primary agreed. */
const PROMOTION_WAIT_MS = 10_000;
/** How often a replica with a Consul lease checks that the lease still names the primary it streams from. */
const LEASE_WATCH_MS = 1000;

/** What /info reports about a node. */
export interface NodeInfo {
  hostname: string;
  nodeId: string;
  clusterId: string | null;
  role: NodeRole;
  isPrimary: boolean;
  primary: string | null;
  /** The primary's cluster API URL (its advertise URL). */
  primaryUrl: string | null;
  lagMs: number;
  leaseType: LeaserType;
  /** On the primary: its replicas, connected or disconnected in the last minute. */
  replicas: ReplicaListing[];
  databases: Record<string, { position: string; exists: boolean }>;
  /** Synchronous replication's state, when replication.sync-replicas is set. */
  sync?: SyncStatus;
}

/**
 * One node's state, with one owner (DESIGN.md section 8): its role, who the primary is, the
 * replicas connected to it, handoff and promotion, the write authority the FUSE adapter asks for,
 * and the ordered event stream everything else reads. Nothing else changes the role.
 *
 * The lease loop (DESIGN.md section 7) drives it: a candidate without a primary acquires the
 * lease and serves as primary until the lease is lost, handed off or closed; otherwise the node
 * streams from whoever holds it. Losing the lease makes the node read-only at once, before
 * anything else happens, so a primary that cannot renew stops writing before another node can
 * acquire.
 *
 * Seams: the Leaser, the replica client (stream from the primary), the peer API (promotion) and
 * the mount writer (repairs): the Node imports no adapter.
 */
export class Node {
  readonly events: NodeEvents;
  readonly replicas = new ConnectedReplicas();
  readonly nodeIdHex: string;
  private currentRole: NodeRole = "replica";
  /** The primary is handing its lease over: read-only meanwhile, writable again if that fails. */
  private writesPaused = false;
  /** The LTX timestamp (wall-clock ms) of the last local commit captured under the lease: logged when the role changes. */
  private lastLocalCommitAt: number | null = null;
  /** The primary as this node knows it: itself, the one it streams from, or null (unknown). */
  private knownPrimary: PrimaryInfo | null = null;
  /** Databases an import is replacing right now (write authority "importing" once it holds their write lock). */
  private readonly imports = new Map<string, { holding: boolean }>();
  private status = Date.now();
  private statusChanged = signal();
  private stopped = false;
  private lease: Lease | null = null;
  private session: ReplicaSession | null = null;
  private endReplicaTerm: (() => void) | null = null;
  private handedLeaseId: string | null = null;
  private loop: Promise<void> | null = null;
  private readyWaiters: Array<() => void> = [];
  /** Resolved once the lease loop has first decided the role (see roleDecided). */
  private readonly firstRole = signal();
  private firstRoleDecided = false;
  private ready = false;
  private readonly unsubscribeStore: () => void;
  /** On the primary: the HALT locks granted to replicas. */
  private readonly haltGrants: HaltGrants;
  /** On a replica: the HALT locks it holds for `litefs run` commands. */
  private readonly haltHolds: HaltHolds;
  private readonly removeHaltBarrier: () => void;
  /** On the primary: synchronous replication (a no-op when asynchronous). */
  private readonly sync: SyncReplication;
  private readonly removeSyncBarrier: () => void;
  private readonly removeLeaseBarrier: () => void;
  /** The candidate is outside the published in-sync set: said once per wait. */
  private outsideSyncSetLogged = false;

  constructor(private readonly opts: NodeOptions) {
    this.nodeIdHex = opts.store.nodeId.toString(16).padStart(16, "0");
    this.events = new NodeEvents((err, ev) => opts.log.error({ err, event: ev.type }, "node event subscriber failed"));
    this.unsubscribeStore = opts.store.subscribe((ev) => this.events.emit(fromStore(ev)));
    const { store, mountWriter, log, peers } = opts;
    this.haltGrants = new HaltGrants({
      store,
      mountWriter,
      log,
      assertWritable: (what) => this.assertWritable(what),
      importing: (db) => this.imports.has(db),
      onChange: () => this.bumpStatus(),
    });
    this.haltHolds = new HaltHolds({
      store,
      mountWriter,
      peers,
      log,
      holder: { nodeId: this.nodeIdHex, hostname: opts.hostname },
      primary: () => (this.currentRole === "replica" ? this.knownPrimary : null),
      onChange: () => this.bumpStatus(),
      resync: () => this.session?.resync(),
    });
    this.removeHaltBarrier = store.addCommitBarrier((ev) => this.haltHolds.barrier(ev));
    this.sync = new SyncReplication({
      config: opts.replication ?? { syncReplicas: 0, syncTimeoutMs: 5000, syncStrict: false, syncCandidatesOnly: false },
      replicas: this.replicas,
      store,
      log,
      publish: (set) => opts.leaser.setSyncSet(set),
      nodeId: this.nodeIdHex,
      onStateChange: (degraded, status) => this.events.emit({ type: "sync", degraded, members: status.members, required: status.required }),
    });
    this.removeSyncBarrier = store.addCommitBarrier((ev) => this.sync.barrier(ev));
    this.removeLeaseBarrier = store.addCommitBarrier((ev) => this.leaseBarrier(ev));
    this.replicas.onDisconnect = (replica) => this.sync.disconnected(replica);
  }

  /** replication.sync-replicas is set: replicas acknowledge each LTX file (POST /ack). */
  get syncEnabled(): boolean {
    return this.sync.enabled;
  }

  /** Synchronous replication's state; null when asynchronous. */
  syncStatus(): SyncStatus | null {
    return this.sync.enabled ? this.sync.status() : null;
  }

  /** A replica's acknowledgement that its LTX files of `db` up to `txid` are durable. */
  acknowledge(nodeId: string, db: string, txid: number): void {
    this.sync.acknowledge(nodeId, db, txid);
  }

  // ---- state the adapters read --------------------------------------------------------------

  get role(): NodeRole {
    return this.currentRole;
  }

  get isPrimary(): boolean {
    return this.currentRole === "primary";
  }

  get hostname(): string {
    return this.opts.hostname;
  }

  /** Asked by the FUSE adapter on every open and write. */
  writeAuthority(db: string): WriteAuthority {
    if (this.currentRole === "replica" && this.haltHolds.holds(db)) return "halted";
    if (this.currentRole !== "primary" || this.writesPaused || !this.leaseHeld()) return "replica";
    return this.imports.get(db)?.holding || this.haltGrants.holds(db) ? "held" : "primary";
  }

  /** The primary's hostname while this replica knows it (`.primary`); null on the primary. */
  primaryHostname(): string | null {
    return this.isPrimary ? null : (this.knownPrimary?.hostname ?? null);
  }

  /** Who the primary is (this node when it is), with the URL of its cluster API; null while unknown. */
  primary(): PrimaryInfo | null {
    return this.knownPrimary;
  }

  lagMs(): number {
    return this.isPrimary ? 0 : (this.session?.lagMs() ?? 0);
  }

  /** Moves whenever `.primary` may have changed; `.lag` changes continuously, so it moves per second too. */
  statusVersion(): number {
    return Math.max(this.status, Math.floor(Date.now() / 1000) * 1000);
  }

  /** Resolves the next time the role, the primary or whether writes are paused changes. */
  statusChange(): Promise<void> {
    return this.statusChanged.promise;
  }

  /** The cluster this node belongs to (adopted from the lease or the first primary), or null before it joined one. */
  clusterId(): string | null {
    return readClusterId(this.opts.store.dataDir);
  }

  info(): NodeInfo {
    const { store } = this.opts;
    return {
      hostname: this.opts.hostname,
      nodeId: this.nodeIdHex,
      clusterId: this.clusterId(),
      role: this.currentRole,
      isPrimary: this.isPrimary,
      primary: this.knownPrimary?.hostname ?? null,
      primaryUrl: this.knownPrimary?.advertiseUrl ?? null,
      lagMs: this.lagMs(),
      leaseType: this.opts.leaser.type,
      replicas: this.replicas.listing(),
      databases: Object.fromEntries(store.knownDatabases().map((db) => [db.name, { position: db.position.toString(), exists: db.exists }])),
      ...(this.sync.enabled && { sync: this.sync.status() }),
    };
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  start(): void {
    this.loop ??= this.run();
  }

  /**
   * Pending until the lease loop first decides whether this node is primary (null afterwards).
   * The daemon mounts before it starts the loop, so for a moment every node looks like a replica:
   * a write open then waits for the decision instead of being refused on a node about to be
   * primary (a fresh static primary's first CREATE failed with "unable to open database file").
   */
  roleDecided(): Promise<void> | null {
    return this.firstRoleDecided ? null : this.firstRole.promise;
  }

  private decideFirstRole(): void {
    if (this.firstRoleDecided) return;
    this.firstRoleDecided = true;
    this.firstRole.resolve();
  }

  /** Resolves when the node is primary, or a replica that has caught up once. */
  waitUntilReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /**
   * Read-only at once; a primary hands its lease to a connected candidate (the lease loop does
   * not start another term meanwhile); then everything stops.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.decideFirstRole();
    this.setRole("stopping", "shutting down");
    await this.handOverOnShutdown();
    this.endReplicaTerm?.();
    await this.session?.stop();
    const lease = this.lease;
    if (lease) {
      this.demote("shutting down");
      await lease.close().catch((err) => this.opts.log.warn({ err }, "releasing the lease failed"));
    }
    await this.loop;
    await this.haltHolds.releaseAll("shutting down");
    this.removeHaltBarrier();
    this.removeSyncBarrier();
    this.removeLeaseBarrier();
    this.unsubscribeStore();
  }

  // ---- handoff and promotion ------------------------------------------------------------------

  /** On the primary: passes the lease to a connected candidate replica (node ID or hostname). */
  async handoff(target: string): Promise<void> {
    const lease = this.lease;
    if (!lease) throw new NodeError("NODE_NOT_PRIMARY", "this node is not the primary");
    if (this.opts.leaser.type === "static") {
      throw new NodeError("NODE_HANDOFF_UNSUPPORTED", "a static lease cannot be handed off: change lease.candidate in the config instead");
    }
    try {
      await lease.handoff(target);
    } catch (err) {
      if (!lease.signal.aborted) this.resumeWrites();
      throw err instanceof NodeError ? err : new NodeError("NODE_HANDOFF_FAILED", (err as Error).message, { cause: err });
    }
  }

  /** Makes this candidate the primary: the current primary hands its lease over. */
  async promote(): Promise<{ changed: boolean }> {
    if (this.isPrimary) return { changed: false };
    // Listen before asking, so the role change cannot slip by unseen.
    let becamePrimary = (): void => undefined;
    const became = new Promise<void>((resolve) => (becamePrimary = resolve));
    const unsubscribe = this.events.subscribe((ev) => {
      if (ev.type === "role" && ev.role === "primary") becamePrimary();
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.requestPromotion();
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new NodeError("NODE_PROMOTION_TIMEOUT", `the primary agreed to hand over, but this node did not become primary within ${PROMOTION_WAIT_MS / 1000}s`)),
          PROMOTION_WAIT_MS,
        );
      });
      await Promise.race([became, timeout]);
    } finally {
      clearTimeout(timer);
      unsubscribe();
    }
    return { changed: true };
  }

  /** Asks the current primary to hand the lease to this node (lease.promote, POST /promote). */
  private async requestPromotion(): Promise<void> {
    const { leaser, log } = this.opts;
    if (this.isPrimary) return;
    if (!this.opts.candidate) throw new NodeError("NODE_NOT_CANDIDATE", "this node is not a candidate (lease.candidate is false): it cannot become primary");
    const info = await leaser.primaryInfo();
    if (!info) throw new NodeError("NODE_NO_PRIMARY", "there is no primary to hand over the lease");
    try {
      await this.opts.peers.requestHandoff(info, this.nodeIdHex);
    } catch (err) {
      throw new NodeError("NODE_HANDOFF_FAILED", `primary ${info.hostname} refused the handoff: ${(err as Error).message}`, { cause: err });
    }
    log.info({ primary: info.hostname }, "primary agreed to hand over its lease");
  }

  /** A primary that stops cleanly hands its lease to a connected candidate instead of letting it expire. */
  private async handOverOnShutdown(): Promise<void> {
    const lease = this.lease;
    const target = this.replicas.candidates()[0];
    if (!lease || !target || this.opts.leaser.type === "static") return;
    try {
      await withTimeout(lease.handoff(target.identity.nodeId), SHUTDOWN_HANDOFF_MS);
      this.opts.log.info({ node: target.identity.nodeId, replica: target.identity.hostname }, "handed the lease over before shutting down");
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, "handoff on shutdown failed; releasing the lease instead");
      this.resumeWrites();
    }
  }

  /** The lease's handoff handler: stop writes first, then send the lease ID once the target has every commit. */
  private async deliverHandoff(nodeId: string, leaseId: string): Promise<void> {
    this.pauseWrites();
    const replica = this.replicas.find(nodeId);
    if (!replica) throw new NodeError("NODE_HANDOFF_FAILED", `no connected replica with node ID or hostname ${JSON.stringify(nodeId)}`);
    if (!replica.identity.candidate) throw new NodeError("NODE_HANDOFF_FAILED", `replica ${replica.identity.hostname} is not a lease candidate`);
    await replica.handoff(leaseId);
    this.opts.log.info({ replica: replica.identity.hostname, node: replica.identity.nodeId }, "lease handed off");
  }

  // ---- import ------------------------------------------------------------------------------------

  /**
   * On the primary: replaces database `name` (or creates it) with the SQLite file at `source`,
   * as one transaction every node applies whole (a snapshot LTX). The file is checked first
   * (STORE_BAD_IMPORT says why, and nothing changes). The LTX is built from the file while apps
   * keep writing; then the mount agent takes SQLite's write lock (writers wait), the LTX is
   * rebuilt if a commit slipped in meanwhile, and the agent writes every page under the
   * exclusive locks, so open connections see the old content or the new.
   */
  async importDatabase(name: string, source: string): Promise<{ position: Position; pageSize: number; pageCount: number }> {
    const { store, mountWriter, log } = this.opts;
    this.assertWritable(`import ${name}`);
    if (this.imports.has(name)) throw new NodeError("NODE_BUSY", `an import of ${name} is already running on this node`);
    const halted = this.haltGrants.holder(name);
    if (halted) throw new NodeError("NODE_BUSY", `replica ${halted.hostname} holds the HALT lock on ${name}: import once it is released`);
    const file = await checkImportFile(source);
    const db = store.databaseForReplication(name);
    const state = { holding: false };
    this.imports.set(name, state);
    let ltx: ReceivedLtx | null = null;
    let held = false;
    try {
      ltx = await importLtx(db, source, file, store.compress);
      if (db.exists) {
        await mountWriter.holdWrites(name);
        held = true;
        state.holding = true;
        this.bumpStatus();
        this.assertWritable(`import ${name}`);
        if (ltx.header.maxTxid !== db.position.txid + 1) {
          fs.rmSync(ltx.tmpPath, { force: true });
          ltx = await importLtx(db, source, file, store.compress);
        }
      } else {
        state.holding = true;
        this.bumpStatus();
      }
      await applyReceivedBatch(db, [ltx], mountWriter, { resetWal: true });
      ltx = null;
    } finally {
      if (ltx) fs.rmSync(ltx.tmpPath, { force: true });
      // Writable again before the lock goes: a writer waiting on SQLite's lock writes the moment
      // the agent lets go, before its answer reaches us (the HALT lock's end does the same).
      state.holding = false;
      if (held) await mountWriter.releaseWrites(name).catch((err) => log.warn({ err, db: name }, "releasing the import's write lock failed"));
      this.imports.delete(name);
      this.bumpStatus();
    }
    log.info({ db: name, txid: db.position.txid, pages: file.pageCount, pageSize: file.pageSize }, "database imported");
    return { position: db.position, ...file };
  }

  private assertWritable(what: string): void {
    if (this.currentRole === "primary" && !this.writesPaused && this.leaseHeld()) return;
    const primary = this.knownPrimary && !this.isPrimary ? ` (the primary is ${this.knownPrimary.hostname}, ${this.knownPrimary.advertiseUrl})` : "";
    throw new NodeError("NODE_NOT_PRIMARY", `cannot ${what}: this node is not the primary${primary}`);
  }

  // ---- the HALT lock (src/node/halt.ts) ---------------------------------------------------------

  /** On the primary: a replica asks for the HALT lock on `db`. */
  grantHaltLock(db: string, holder: HaltHolder): Promise<HaltGrantInfo> {
    return this.haltGrants.acquire(db, holder);
  }

  /**
   * For `litefs run -with-halt-lock-on` on this node: null on the primary (its commands write
   * directly); on a replica, the lock is taken from the primary and this node catches up to it.
   */
  async takeHaltLock(db: string): Promise<{ id: string; position: Position; ttlMs: number } | null> {
    if (this.isPrimary) return null;
    if (this.currentRole !== "replica") throw new NodeError("NODE_HALT_FAILED", `cannot take the HALT lock on ${db}: this node is ${this.currentRole}`);
    return this.haltHolds.acquire(db);
  }

  /** Renews a lock: the one this replica holds (and on its primary), or one this primary granted. */
  async renewHaltLock(db: string, id: string): Promise<void> {
    if (this.isPrimary) this.haltGrants.renew(db, id);
    else await this.haltHolds.renew(db, id);
  }

  /** Ends a lock; on a replica, throws NODE_HALT_FAILED when a commit made under it did not reach the primary. */
  async releaseHaltLock(db: string, id: string): Promise<void> {
    if (this.isPrimary) await this.haltGrants.release(db, id);
    else await this.haltHolds.release(db, id);
  }

  /** On the primary: a transaction of the replica holding the lock (one LTX file). */
  applyHaltTransaction(db: string, id: string, body: AsyncIterable<Uint8Array>): Promise<Position> {
    this.assertWritable(`apply a transaction to ${db}`);
    return this.haltGrants.applyTransaction(db, id, body);
  }

  // ---- the lease loop --------------------------------------------------------------------------

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
        // Undecided after an error (Consul unreachable): writes are refused as on a replica, not held.
        this.decideFirstRole();
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
    // Synchronous replication: a commit acknowledged in sync mode may be only on the in-sync replicas.
    const set = await this.opts.leaser.syncSet();
    if (!mayTakeLease(set, this.nodeIdHex)) {
      if (!this.outsideSyncSetLogged) {
        this.opts.log.warn(
          { inSync: set?.members.map((m) => m.hostname) },
          "not taking the lease: this node is not in the in-sync replica set, and one of them may hold commits it lacks (delete the <key>/sync key in Consul to allow it anyway)",
        );
      }
      this.outsideSyncSetLogged = true;
      return null;
    }
    this.outsideSyncSetLogged = false;
    try {
      return await this.opts.leaser.acquire();
    } catch (err) {
      if (isLeaseError(err, "LEASE_PRIMARY_EXISTS")) return null;
      throw err;
    }
  }

  /** Serves as primary until the lease ends; then turns read-only before anything else. */
  private async primaryTerm(lease: Lease): Promise<void> {
    try {
      await this.adoptClusterId();
    } catch (err) {
      await lease.close().catch(() => undefined);
      throw err;
    }
    this.lease = lease;
    const unsubscribe = lease.onHandoff(({ nodeId, leaseId }) => this.deliverHandoff(nodeId, leaseId));
    this.writesPaused = false;
    this.sync.startTerm();
    this.setRole("primary");
    this.decideFirstRole();
    this.opts.log.info({ lease: lease.id }, "acquired the primary lease");
    this.markReady();
    await new Promise<void>((resolve) => {
      if (lease.signal.aborted) resolve();
      else lease.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    unsubscribe();
    const reason = String((lease.signal.reason as Error)?.message ?? "lease ended");
    this.demote(reason);
    await this.haltGrants.releaseAll(`no longer the primary: ${reason}`);
    if (!this.stopped) await this.repairLocalState();
  }

  /** Read-only at once, every stream ended: another node may be primary any moment now. */
  private demote(reason: string): void {
    if (!this.lease) return;
    this.lease = null;
    this.writesPaused = false;
    if (!this.stopped) this.setRole("replica", reason);
    this.sync.endTerm(reason);
    this.replicas.endAll(reason);
    this.opts.log.warn({ reason }, "no longer the primary");
  }

  /**
   * A transaction cut off by the demotion left pages in the database file and a hot journal;
   * committed WAL frames would vanish from readers' view once the first replicated file resets
   * the -shm. Both are put right, through the mount, before anything is applied as a replica.
   */
  private async repairLocalState(): Promise<void> {
    const jobs: RepairJob[] = [];
    for (const db of this.opts.store.allDatabases()) {
      if (!db.exists) continue;
      if (db.journal.active) jobs.push({ db: db.name, kind: "rollback-journal" });
      if (db.files.wal.exists() && db.files.wal.size() > 0) jobs.push({ db: db.name, kind: "fold-wal", committedEnd: db.wal.state.committedEnd });
    }
    if (jobs.length === 0) return;
    for (let attempt = 1; ; attempt++) {
      try {
        const done = await this.opts.mountWriter.repair(jobs);
        this.opts.log.info({ repaired: done }, "rolled back cut-off transactions and folded the WAL after losing the primary role");
        return;
      } catch (err) {
        this.opts.log.error({ err: (err as Error).message, code: (err as NodeError).code, attempt }, "repair after demotion failed; retrying");
        if (this.stopped) return;
        await sleep(this.opts.reconnectDelayMs);
      }
    }
  }

  /** The cluster ID lives with the lease; a node from another cluster never becomes primary. */
  private async adoptClusterId(): Promise<void> {
    const { leaser, store } = this.opts;
    const local = readClusterId(store.dataDir);
    const shared = await leaser.clusterId();
    if (shared && local && shared !== local) {
      throw new NodeError("NODE_CLUSTER_MISMATCH", `this node belongs to cluster ${local} but the lease belongs to ${shared}: refusing to become primary`);
    }
    const id = shared ?? local ?? generateClusterId();
    if (!shared) await leaser.setClusterId(id);
    if (!local) writeClusterId(store.dataDir, id);
  }

  /** Streams from the primary until the session finds there is none and we could take over. */
  private async replicaTerm(): Promise<void> {
    const { leaser, log } = this.opts;
    this.setRole("replica");
    this.decideFirstRole();
    const ended = new Promise<void>((resolve) => (this.endReplicaTerm = resolve));
    let streamingFrom: PrimaryInfo | null = null;
    const session = this.opts.replicaClient({
      discoverPrimary: async () => {
        const info = await leaser.primaryInfo();
        streamingFrom = info;
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
      onPrimary: (primary) => this.setKnownPrimary(primary),
    });
    this.session = session;
    session.start();
    // stop() may have run while this term was being set up.
    if (this.stopped) this.endReplicaTerm?.();
    void session.waitUntilReady().then(() => {
      this.markReady();
      if (this.opts.promote && this.opts.candidate) {
        this.requestPromotion().catch((err) => log.warn({ err: (err as Error).message }, "lease.promote: promotion failed"));
      }
    });
    const stopWatching = this.watchLease(
      () => streamingFrom,
      (now) => {
        // A candidate with nobody holding the lease goes to acquire it; otherwise reconnect to whoever holds it.
        if ((now === null || this.isSelf(now)) && this.opts.candidate) this.endReplicaTerm?.();
        else session.resync();
      },
    );
    await ended;
    stopWatching();
    this.endReplicaTerm = null;
    await session.stop();
  }

  /**
   * A primary cut off by the network never closes its replicas' streams: a stream to it ends
   * only at the idle timeout, and a connection attempt hangs until undici's 10 s connect timeout,
   * all that time after its lease may have expired. Measured in a partition (network fault suite):
   * a candidate took over 7 s after the lease allowed it. So while the lease is Consul's, check
   * it every second and drop the attempt (the session re-discovers the primary, and a candidate
   * with no primary ends its replica term) as soon as it no longer names that primary.
   */
  private watchLease(current: () => PrimaryInfo | null, onMoved: (now: PrimaryInfo | null) => void): () => void {
    const { leaser, log } = this.opts;
    if (leaser.type === "static") return () => undefined;
    let watching = true;
    let toldAbout: PrimaryInfo | null = null;
    void (async () => {
      while (watching) {
        await sleep(LEASE_WATCH_MS);
        const from = current();
        // Once per discovered primary: the session re-discovers (a new object) when it reconnects.
        if (!watching || from === null || from === toldAbout) continue;
        const now = await leaser.primaryInfo().catch(() => undefined);
        if (!watching || now === undefined || current() !== from) continue;
        if (now === null || now.hostname !== from.hostname || now.advertiseUrl !== from.advertiseUrl) {
          log.info({ was: from.hostname, now: now?.hostname ?? null }, "the lease no longer names the primary this replica streams from; reconnecting");
          toldAbout = from;
          onMoved(now);
        }
      }
    })();
    return () => {
      watching = false;
    };
  }

  // ---- the one place the role changes ---------------------------------------------------------

  private setRole(role: NodeRole, reason?: string): void {
    const previous = this.currentRole;
    if (role === previous) return;
    this.currentRole = role;
    this.bumpStatus();
    // The TXID of every database at the change: what the new primary starts from, what a demoted one stopped at.
    const txids = Object.fromEntries(this.opts.store.knownDatabases().map((db) => [db.name, db.position.txid]));
    // A deposed primary's last capture, in wall-clock ms: after a pause, whether it wrote before or after it resumed.
    const lastCommit = previous === "primary" && this.lastLocalCommitAt !== null ? { lastLocalCommitAt: this.lastLocalCommitAt } : {};
    this.opts.log.info({ role, previous, reason, txids, ...lastCommit }, role === "primary" ? "this node is now the primary" : `this node is now ${role === "replica" ? "a replica" : "stopping"}`);
    this.events.emit({ type: "role", role, previous, reason });
    if (previous === "replica") void this.haltHolds.releaseAll(`this node is now ${role}`);
    // The primary is learnt again from the next stream.
    this.setKnownPrimary(role === "primary" ? this.selfInfo() : null);
  }

  private selfInfo(): PrimaryInfo {
    const { hostname, leaser, proxyUrl } = this.opts;
    return { hostname, advertiseUrl: leaser.advertiseUrl, ...(proxyUrl !== undefined && { proxyUrl }) };
  }

  private setKnownPrimary(primary: PrimaryInfo | null): void {
    const known = this.knownPrimary;
    if (primary?.hostname === known?.hostname && primary?.advertiseUrl === known?.advertiseUrl && primary?.proxyUrl === known?.proxyUrl) return;
    this.knownPrimary = primary;
    this.bumpStatus();
    this.events.emit({ type: "primary", hostname: primary?.hostname ?? null, advertiseUrl: primary?.advertiseUrl ?? null, isPrimary: this.isPrimary });
  }

  /**
   * The lease is still good by the clock, not only by the timer that ends the term: a process
   * paused past its TTL (SIGSTOP, a stalled VM) serves the FUSE requests queued meanwhile before
   * any timer runs, while another node may already be primary. Asking declares the lease lost
   * (the term then ends as usual), so nothing is captured or acknowledged after that moment.
   */
  private leaseHeld(): boolean {
    return this.lease === null || this.lease.held();
  }

  /**
   * The commit barrier of the lease: a commit captured while the lease ran out (the process was
   * paused in the middle of writing its LTX file) is answered with an I/O error, not a success.
   */
  private leaseBarrier(ev: CommitEvent): CommitWait {
    if (this.leaseHeld()) {
      this.lastLocalCommitAt = Math.max(this.lastLocalCommitAt ?? 0, ev.timestamp);
      return null;
    }
    return Promise.reject(
      new StoreError("STORE_COMMIT_LOST", `${ev.db.name}: TXID ${ev.position.txid} was captured after this node's lease ran out (paused past its TTL?): not acknowledged`),
    );
  }

  private pauseWrites(): void {
    this.writesPaused = true;
    this.bumpStatus();
  }

  private resumeWrites(): void {
    if (!this.lease) return;
    this.writesPaused = false;
    this.bumpStatus();
  }

  private bumpStatus(): void {
    this.status = Math.max(Date.now(), this.status + 1);
    const changed = this.statusChanged;
    this.statusChanged = signal();
    changed.resolve();
  }
}

function fromStore(ev: StoreEvent): NodeEvent {
  switch (ev.type) {
    case "commit":
      return { type: "commit", db: ev.db.name, source: ev.source, position: ev.position, pageSize: ev.pageSize, commit: ev.commit, timestamp: ev.timestamp };
    case "created":
      return { type: "created", db: ev.db.name };
    case "dropped":
      return { type: "dropped", db: ev.db.name, source: ev.source, position: ev.position };
  }
}


function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}
