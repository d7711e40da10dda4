import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import type { Logger } from "pino";
import { isSnapshot, type Position } from "../ltx/index.js";
import type { PrimaryInfo } from "../lease/index.js";
import { applyReceivedBatch, ReceiveBatch } from "../store/apply.js";
import type { Database } from "../store/database.js";
import type { CommitEvent, CommitWait } from "../store/events.js";
import type { MountWriter, RepairJob } from "../store/mount-writer.js";
import type { Store } from "../store/store.js";
import { signal, sleep } from "./async.js";
import { NodeError } from "./errors.js";
import type { PeerApi } from "./seams.js";

/**
 * The HALT lock (LiteFS's migration flow, DESIGN.md section 9): a replica takes the primary's
 * write lock on one database, writes it locally, and sends each commit to the primary, which
 * applies it and streams it to everyone. The FUSE binding sees no lock requests, so the lock is
 * taken through the cluster API by `litefs run -with-halt-lock-on`, not by locking a -lock file.
 *
 * HaltGrants is the primary's side, HaltHolds the replica's; the Node owns one of each and asks
 * them for the database's write authority.
 */

/** A lock whose holder stops renewing it ends this long after the last renewal (or transaction). */
export const HALT_LOCK_TTL_MS = 30_000;
/** How long the primary keeps one acquire request waiting for a busy lock before it answers "busy" (the holder's CLI says it waits, and asks again). */
const GRANT_WAIT_MS = 2_000;
/** How long a replica waits to reach the primary's position once it has the lock. */
const CATCH_UP_MS = 30_000;
/** Ended locks whose outcome a replica keeps for the holder's release call. */
const MAX_ENDED = 64;

export interface HaltHolder {
  nodeId: string;
  hostname: string;
}

/** What the primary answers a replica that asked for the lock. */
export interface HaltGrantInfo {
  id: string;
  /** The primary's position when the lock was granted: the replica writes from exactly here. */
  position: Position;
  ttlMs: number;
}

interface Grant {
  id: string;
  db: string;
  holder: HaltHolder;
  since: number;
  /** The mount agent holds SQLite's write lock on the database. */
  holding: boolean;
  timer: NodeJS.Timeout | null;
  /** Transactions are applied one at a time, in the order they arrive. */
  chain: Promise<unknown>;
}

export interface HaltGrantsOptions {
  store: Store;
  mountWriter: MountWriter;
  log: Logger;
  /** Throws NODE_NOT_PRIMARY unless this node may write now. */
  assertWritable(what: string): void;
  /** An import of the database is running (it holds the write lock too). */
  importing(db: string): boolean;
  /** The write authority of a database changed. */
  onChange(): void;
}

/** On the primary: who holds each database's HALT lock, and the transactions they send. */
export class HaltGrants {
  private readonly grants = new Map<string, Grant>();
  private freed = signal();

  constructor(private readonly opts: HaltGrantsOptions) {}

  /** The mount agent holds the database's write lock for a replica (write authority "held"). */
  holds(db: string): boolean {
    return this.grants.get(db)?.holding ?? false;
  }

  /** Who holds the lock on `db`, if anyone (for refusals and /info). */
  holder(db: string): HaltHolder | null {
    return this.grants.get(db)?.holder ?? null;
  }

  /**
   * Grants the lock on `db` to `holder`, waiting up to GRANT_WAIT_MS while another holds it (then
   * NODE_HALT_BUSY: the replica asks again). The primary's writers wait on SQLite's lock from here
   * on; in WAL mode committed frames are folded into the database file first, so the replica's
   * pages can be written there.
   */
  async acquire(db: string, holder: HaltHolder): Promise<HaltGrantInfo> {
    const { store, mountWriter, log } = this.opts;
    const deadline = Date.now() + GRANT_WAIT_MS;
    let database: Database;
    for (;;) {
      this.opts.assertWritable(`grant the HALT lock on ${db}`);
      const found = store.database(db);
      if (!found?.exists) throw new NodeError("NODE_HALT_FAILED", `no database ${JSON.stringify(db)} on the primary: create or import it before taking its HALT lock`);
      database = found;
      const current = this.grants.get(db);
      if (!current && !this.opts.importing(db)) break;
      const left = deadline - Date.now();
      if (left <= 0) {
        const by = current ? `${current.holder.hostname} (node ${current.holder.nodeId}) since ${new Date(current.since).toISOString()}` : "an import";
        throw new NodeError("NODE_HALT_BUSY", `the HALT lock on ${db} is held by ${by}`);
      }
      await Promise.race([this.freed.promise, sleep(Math.min(left, 1000))]);
    }

    const grant: Grant = { id: randomBytes(8).toString("hex"), db, holder, since: Date.now(), holding: false, timer: null, chain: Promise.resolve() };
    this.grants.set(db, grant);
    try {
      await mountWriter.holdWrites(db);
      grant.holding = true;
      this.opts.onChange();
      // WAL mode: committed frames go to the database file (the replica's pages are written
      // there), and the index is made valid for connections that open while we hold WRITE.
      await mountWriter.repair([{ db, kind: "fold-wal", committedEnd: database.wal.state.committedEnd }]);
      this.opts.assertWritable(`grant the HALT lock on ${db}`);
    } catch (err) {
      await this.end(grant, "granting failed");
      throw err instanceof NodeError ? err : new NodeError("NODE_HALT_FAILED", `cannot take the write lock on ${db}: ${(err as Error).message}`, { cause: err });
    }
    this.arm(grant);
    log.info({ db, txid: database.position.txid, holder: holder.hostname, node: holder.nodeId }, "HALT lock granted: this node's writers wait until it is released");
    return { id: grant.id, position: database.position, ttlMs: HALT_LOCK_TTL_MS };
  }

  renew(db: string, id: string): void {
    this.arm(this.granted(db, id));
  }

  /** Ends the lock (idempotent: false when `id` no longer holds it). */
  async release(db: string, id: string): Promise<boolean> {
    const grant = this.grants.get(db);
    if (!grant || grant.id !== id) return false;
    await this.end(grant, "released by its holder");
    return true;
  }

  /**
   * A transaction of the holder: one LTX file that must follow the database's position exactly
   * (pre-apply checksum included) and verify, or nothing changes. Applied through the mount
   * agent under the held lock, recorded in ltx/ and streamed to every replica, the holder too.
   */
  applyTransaction(db: string, id: string, body: AsyncIterable<Uint8Array>): Promise<Position> {
    const grant = this.granted(db, id);
    this.arm(grant);
    const run = grant.chain.then(() => this.apply(grant, body));
    grant.chain = run.catch(() => undefined);
    return run;
  }

  /** Every lock ends: this node is no longer the primary, or it is stopping. */
  async releaseAll(reason: string): Promise<void> {
    for (const grant of [...this.grants.values()]) await this.end(grant, reason);
  }

  private async apply(grant: Grant, body: AsyncIterable<Uint8Array>): Promise<Position> {
    const { store, mountWriter, log } = this.opts;
    if (this.grants.get(grant.db) !== grant) throw lost(grant.db);
    const db = store.database(grant.db)!;
    const batch = new ReceiveBatch(db, 1);
    const receiver = batch.receiver(`transaction from ${grant.holder.hostname}`);
    try {
      for await (const chunk of body) receiver.write(chunk);
      const received = receiver.finish();
      // A transaction sent again after its answer was lost: the primary already has it.
      if (!received) return db.position;
      if (isSnapshot(received.header) || received.header.commit === 0) {
        fs.rmSync(received.tmpPath, { force: true });
        throw new NodeError("NODE_HALT_FAILED", `${grant.db}: a HALT lock holder sends transactions that follow the primary's position, not a snapshot or a deletion`);
      }
      batch.add(received);
    } catch (err) {
      receiver.abort();
      throw err;
    }
    try {
      await applyReceivedBatch(db, batch.files, mountWriter);
    } catch (err) {
      batch.discard();
      throw err;
    }
    log.info({ db: grant.db, txid: db.position.txid, holder: grant.holder.hostname }, "applied a transaction of the HALT lock holder");
    return db.position;
  }

  private granted(db: string, id: string): Grant {
    const grant = this.grants.get(db);
    if (!grant || grant.id !== id) throw lost(db);
    return grant;
  }

  /** (Re)starts the expiry: HALT_LOCK_TTL_MS without a renewal or a transaction ends the lock. */
  private arm(grant: Grant): void {
    if (grant.timer) clearTimeout(grant.timer);
    grant.timer = setTimeout(() => {
      this.opts.log.warn({ db: grant.db, holder: grant.holder.hostname }, `HALT lock expired: its holder did not renew it for ${HALT_LOCK_TTL_MS / 1000}s`);
      void this.end(grant, "expired");
    }, HALT_LOCK_TTL_MS);
    grant.timer.unref();
  }

  private async end(grant: Grant, reason: string): Promise<void> {
    if (this.grants.get(grant.db) !== grant) return;
    this.grants.delete(grant.db);
    if (grant.timer) clearTimeout(grant.timer);
    await grant.chain;
    if (grant.holding) {
      grant.holding = false;
      await this.opts.mountWriter.releaseWrites(grant.db).catch((err) => this.opts.log.error({ err, db: grant.db }, "letting go of the HALT write lock failed"));
    }
    this.opts.onChange();
    const freed = this.freed;
    this.freed = signal();
    freed.resolve();
    this.opts.log.info({ db: grant.db, holder: grant.holder.hostname, reason }, "HALT lock ended");
  }
}

function lost(db: string): NodeError {
  return new NodeError("NODE_HALT_LOST", `the HALT lock on ${db} is not held by this request's holder (it expired, was released, or the primary changed)`);
}

// ---- the replica's side ------------------------------------------------------------------------

interface Hold {
  id: string;
  db: string;
  primary: PrimaryInfo;
  timer: NodeJS.Timeout | null;
  /** Commits sent to the primary, one after the other. */
  chain: Promise<void>;
  /** Why the primary did not take a commit: the lock is broken and the node resynchronises. */
  failure: Error | null;
}

export interface HaltHoldsOptions {
  store: Store;
  mountWriter: MountWriter;
  peers: PeerApi;
  log: Logger;
  holder: HaltHolder;
  /** The primary this replica streams from, or null. */
  primary(): PrimaryInfo | null;
  onChange(): void;
  /** Reconnects the replication stream, so the primary compares positions again (and sends a snapshot if ours left its history). */
  resync(): void;
}

/** On a replica: the HALT locks it holds for `litefs run` commands, and the commits they send. */
export class HaltHolds {
  private readonly active = new Map<string, Hold>();
  /** Locks ending or ended, by lock ID: how they ended (a failure, or null), for the holder's release call. */
  private readonly ended = new Map<string, Promise<string | null>>();

  constructor(private readonly opts: HaltHoldsOptions) {}

  /** This node holds the lock on `db` (write authority "halted"). */
  holds(db: string): boolean {
    return this.active.has(db);
  }

  /**
   * Asks the primary for the lock, then waits until this replica is at exactly the primary's
   * position; from then on writes to `db` here are captured and each commit goes to the primary.
   */
  async acquire(db: string): Promise<{ id: string; position: Position; ttlMs: number }> {
    const { peers, log } = this.opts;
    const primary = this.opts.primary();
    if (!primary) throw new NodeError("NODE_NO_PRIMARY", `cannot take the HALT lock on ${db}: this replica is not connected to a primary`);
    if (this.active.has(db)) throw new NodeError("NODE_HALT_BUSY", `the HALT lock on ${db} is held by another command on this node`);
    const grant = await peers.acquireHalt(primary, db, this.opts.holder);
    try {
      await this.catchUp(db, grant.position);
    } catch (err) {
      await peers.releaseHalt(primary, db, grant.id).catch(() => undefined);
      throw err;
    }
    if (this.active.has(db) || this.opts.primary()?.advertiseUrl !== primary.advertiseUrl) {
      await peers.releaseHalt(primary, db, grant.id).catch(() => undefined);
      throw new NodeError("NODE_HALT_FAILED", `the primary changed while taking the HALT lock on ${db}: try again`);
    }
    const hold: Hold = { id: grant.id, db, primary, timer: null, chain: Promise.resolve(), failure: null };
    this.active.set(db, hold);
    this.arm(hold);
    this.opts.onChange();
    log.info({ db, txid: grant.position.txid, primary: primary.hostname }, "holding the HALT lock: writes to this database on this node go to the primary");
    return { id: grant.id, position: grant.position, ttlMs: grant.ttlMs };
  }

  /** The holder is alive: renews the lock here and on the primary. */
  async renew(db: string, id: string): Promise<void> {
    const hold = this.held(db, id);
    this.arm(hold);
    try {
      await this.opts.peers.renewHalt(hold.primary, db, id);
    } catch (err) {
      if (err instanceof NodeError && err.code === "NODE_HALT_LOST") {
        this.fail(hold, err);
      }
      throw err;
    }
  }

  /**
   * The command is done: the lock ends here (cut-off transactions rolled back, the WAL folded into
   * the database file) and then on the primary. Throws NODE_HALT_FAILED when a commit did not reach
   * the primary: it was discarded here, and the command's work is not all on the cluster.
   */
  async release(db: string, id: string): Promise<void> {
    const hold = this.active.get(db);
    if (hold?.id === id) this.finish(hold, "released");
    const ending = this.ended.get(id);
    if (!ending) throw new NodeError("NODE_HALT_LOST", `this node holds no HALT lock ${id} on ${db}`);
    const failure = await ending;
    this.ended.delete(id);
    if (failure) throw new NodeError("NODE_HALT_FAILED", failure);
  }

  /** Every lock ends: the node is stopping or its role changed. */
  async releaseAll(reason: string): Promise<void> {
    for (const hold of [...this.active.values()]) {
      hold.failure ??= new Error(`the HALT lock on ${hold.db} ended early: ${reason}`);
      await this.finish(hold, reason);
    }
  }

  /**
   * The store's commit barrier: a local commit to a database this node holds the lock on reaches
   * the primary before SQLite hears it completed. A commit the primary refuses has already
   * happened here: the lock breaks, the database is resynchronised from the primary, and the
   * holder's release reports it. SQLite is not told (it could not undo the commit).
   */
  barrier(ev: CommitEvent): CommitWait {
    const hold = this.active.get(ev.db.name);
    if (!hold || ev.source !== "local") return null;
    const ltxPath = ev.ltxPath;
    const txid = ev.position.txid;
    hold.chain = hold.chain.then(async () => {
      if (hold.failure) return;
      try {
        await this.opts.peers.sendTransaction(hold.primary, hold.db, hold.id, ltxPath);
      } catch (err) {
        this.opts.log.error({ err: (err as Error).message, db: hold.db, txid }, "the primary did not take a transaction made under the HALT lock: discarding it here");
        this.fail(hold, new Error(`the primary did not take TXID ${txid} of ${hold.db}: ${(err as Error).message}; it was discarded`));
      }
    });
    return hold.chain;
  }

  private fail(hold: Hold, err: Error): void {
    hold.failure ??= err;
    // Not awaited: the commit that failed is still waiting for this barrier, holding SQLite's lock.
    void this.finish(hold, "failed");
  }

  private async catchUp(db: string, target: Position): Promise<void> {
    const { store } = this.opts;
    const deadline = Date.now() + CATCH_UP_MS;
    for (;;) {
      const pos = store.database(db)?.position;
      if (pos?.txid === target.txid && pos.postApplyChecksum === target.postApplyChecksum) return;
      if (pos && pos.txid >= target.txid) {
        throw new NodeError("NODE_HALT_FAILED", `${db} on this replica is at ${pos.toString()}, the primary at ${target.toString()}: they differ; wait for the replica to resynchronise and try again`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new NodeError("NODE_HALT_FAILED", `${db}: this replica did not catch up with the primary (${target.toString()}) within ${CATCH_UP_MS / 1000}s`);
      await nextCommit(store, db, left);
    }
  }

  private held(db: string, id: string): Hold {
    const hold = this.active.get(db);
    if (hold?.id === id) return hold;
    throw new NodeError("NODE_HALT_LOST", `this node no longer holds HALT lock ${id} on ${db}`);
  }

  private arm(hold: Hold): void {
    if (hold.timer) clearTimeout(hold.timer);
    hold.timer = setTimeout(() => {
      this.opts.log.warn({ db: hold.db }, `HALT lock expired: litefs run did not renew it for ${HALT_LOCK_TTL_MS / 1000}s`);
      hold.failure ??= new Error(`the HALT lock on ${hold.db} expired: its holder did not renew it for ${HALT_LOCK_TTL_MS / 1000}s`);
      void this.finish(hold, "expired");
    }, HALT_LOCK_TTL_MS);
    hold.timer.unref();
  }

  /**
   * Read-only again at once; then, once the last commit was sent, cut-off transactions are rolled
   * back and the WAL is folded (replicated pages go to the database file), and the primary lets go.
   */
  private finish(hold: Hold, reason: string): Promise<string | null> {
    const ending = this.ended.get(hold.id);
    if (ending) return ending;
    this.active.delete(hold.db);
    if (hold.timer) clearTimeout(hold.timer);
    this.opts.onChange();
    const done = this.wrapUp(hold, reason);
    this.ended.set(hold.id, done);
    // A holder that died never asks how its lock ended: keep the answers of the last few only.
    for (const id of this.ended.keys()) {
      if (this.ended.size <= MAX_ENDED) break;
      this.ended.delete(id);
    }
    return done;
  }

  private async wrapUp(hold: Hold, reason: string): Promise<string | null> {
    const { store, mountWriter, peers, log } = this.opts;
    await hold.chain;
    const db = store.database(hold.db);
    const jobs: RepairJob[] = [];
    if (db?.exists && db.journal.active) jobs.push({ db: hold.db, kind: "rollback-journal" });
    if (db?.exists && db.files.wal.exists() && db.files.wal.size() > 0) jobs.push({ db: hold.db, kind: "fold-wal", committedEnd: db.wal.state.committedEnd });
    try {
      if (jobs.length > 0) await mountWriter.repair(jobs);
    } catch (err) {
      hold.failure ??= new Error(`putting ${hold.db} right after the HALT lock failed: ${(err as Error).message}`);
    }
    if (hold.failure) this.opts.resync();
    await peers.releaseHalt(hold.primary, hold.db, hold.id).catch((err) => log.warn({ err: (err as Error).message, db: hold.db }, "the primary did not confirm the HALT lock's release (it expires on its own)"));
    log.info({ db: hold.db, txid: db?.position.txid, reason, failed: hold.failure !== null }, "HALT lock released");
    return hold.failure?.message ?? null;
  }
}

/** Resolves at the next commit to `db` (or after `ms`). */
function nextCommit(store: Store, db: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    const unsubscribe = store.onCommit((ev) => {
      if (ev.db.name === db) done();
    });
    function done(): void {
      clearTimeout(timer);
      unsubscribe();
      resolve();
    }
  });
}

