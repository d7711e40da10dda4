import * as fsp from "node:fs/promises";
import type { Logger } from "pino";
import type { BackupConfig } from "../config/index.js";
import { Position, formatTxid } from "../ltx/index.js";
import type { Database } from "../store/database.js";
import type { Store } from "../store/store.js";
import { mergeRun } from "./compact.js";
import { SNAPSHOT_LEVEL, byTxid, objectPath, type BackupFile } from "./layout.js";
import { listLocalLtx } from "./local-ltx.js";
import { readLtxEnds } from "../store/ltx-directory.js";
import { readHeader, readPostApply } from "./restore.js";
import type { BackupTarget, ObjectRef } from "./target.js";

export interface ShipperOptions {
  store: Store;
  target: BackupTarget;
  config: Pick<BackupConfig, "intervalMs" | "snapshotIntervalMs" | "retentionMs" | "levelsMs">;
  log: Logger;
}

/** What `litefs status` and /metrics show per database. */
export interface DatabaseBackupStatus {
  /** The newest position in the backup (null until the shipper has read or written it). */
  position: string | null;
  txid: number;
  /** How long the oldest commit not yet in the backup has waited (0: all shipped). */
  lagMs: number;
  /** The last failure, until a cycle succeeds. */
  error: string | null;
  /** Header timestamp of the newest snapshot in the backup (ms), 0 if none known. */
  snapshotAt: number;
}

/** What the shipper knows of one database's backup. */
class DbState {
  ready = false;
  shipped: Position | null = null;
  /** The backup's objects, read at start and kept up to date by what this node writes and deletes. */
  objects: BackupFile[] = [];
  /** Header timestamps of snapshot objects (read once each). */
  readonly timestamps = new Map<string, number>();
  snapshotAt = 0;
  compactedAt: number[] = [];
  retainedAt = 0;
  pendingSince: number | null = null;
  error: string | null = null;
  loggedError: string | null = null;
}

/** Retention of the backup runs at most this often. */
const RETENTION_EVERY_MS = 60_000;
/** At most this many objects are merged into one. */
const MAX_RUN = 4096;

/**
 * Ships a primary's LTX files to the backup target (DESIGN.md section 11): every `interval`,
 * each database's files above the backup's position go to level 0, in TXID order, each only
 * once the one before it is stored; level-0 runs are merged into coarser levels; a snapshot is
 * taken every snapshot-interval; retention removes what no point of the window needs.
 *
 * Runs only while this node is primary (start/stop, driven by the node's role events). On start
 * it reads the backup's newest position per database and continues from it when the local
 * history holds that exact position (same TXID, same checksum): no gap, no duplicate. Otherwise
 * it is a chain break (a deposed primary's transactions, a replica behind the backup) or a gap
 * (the history no longer reaches back): the objects past the fork are removed, and the chain
 * starts again from a snapshot of the live database; either is logged.
 */
export class Shipper {
  private readonly states = new Map<string, DbState>();
  private running: { abort: AbortController; loop: Promise<void> } | null = null;
  private readonly unsubscribe: () => void;

  constructor(private readonly opts: ShipperOptions) {
    opts.store.setRetentionFloor((db) => this.retentionFloor(db));
    // A commit starts the lag clock when everything before it was shipped.
    this.unsubscribe = opts.store.onCommit((ev) => {
      if (!this.running || ev.source !== "local") return;
      const s = this.state(ev.db.name);
      s.pendingSince ??= ev.timestamp;
    });
  }

  get isRunning(): boolean {
    return this.running !== null;
  }

  /** This node became primary. */
  start(): void {
    if (this.running) return;
    for (const s of this.states.values()) s.ready = false; // another primary may have shipped meanwhile
    const abort = new AbortController();
    this.opts.log.info({ target: this.opts.target.url }, "backup: shipping to the target while this node is primary");
    this.running = { abort, loop: this.loop(abort.signal) };
  }

  /** This node stopped being primary (or stops): no new upload starts; waits up to `waitMs` for the one in flight. */
  async stop(waitMs = 5000): Promise<void> {
    const running = this.running;
    if (!running) return;
    this.running = null;
    running.abort.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([running.loop, new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    this.opts.log.info("backup: stopped shipping (this node is not the primary)");
  }

  async close(): Promise<void> {
    await this.stop();
    this.unsubscribe();
  }

  status(): Record<string, DatabaseBackupStatus> {
    const out: Record<string, DatabaseBackupStatus> = {};
    if (!this.running) return out;
    const now = Date.now();
    for (const db of this.opts.store.knownDatabases()) {
      const s = this.states.get(db.name);
      const behind = !s?.shipped || s.shipped.txid < db.position.txid;
      out[db.name] = {
        position: s?.shipped?.toString() ?? null,
        txid: s?.shipped?.txid ?? 0,
        lagMs: behind ? Math.max(0, now - (s?.pendingSince ?? now)) : 0,
        error: s?.error ?? null,
        snapshotAt: s?.snapshotAt ?? 0,
      };
    }
    return out;
  }

  /** Runs one cycle over every database now (tests, the first cycle after start). */
  private async loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      for (const db of this.opts.store.knownDatabases()) {
        if (signal.aborted) break;
        await this.cycle(db, signal);
      }
      await sleep(this.opts.config.intervalMs, signal);
    }
  }

  private async cycle(db: Database, signal: AbortSignal): Promise<void> {
    const s = this.state(db.name);
    try {
      if (!s.ready) await this.init(db, s);
      await this.ship(db, s, signal);
      if (!signal.aborted) await this.compact(db, s, signal);
      if (!signal.aborted) await this.snapshotIfDue(db, s);
      if (!signal.aborted) await this.retain(db, s);
      s.error = null;
      s.loggedError = null;
    } catch (err) {
      s.error = (err as Error).message;
      if (s.loggedError !== s.error) {
        s.loggedError = s.error;
        this.opts.log.warn({ db: db.name, err: s.error, shipped: s.shipped?.toString() ?? null }, "backup: failed; retrying every interval");
      }
    }
  }

  private state(name: string): DbState {
    let s = this.states.get(name);
    if (!s) {
      s = new DbState();
      this.states.set(name, s);
    }
    return s;
  }

  /** The backup's last TXID while shipping; 0 (keep everything) until it is known; no floor on a replica. */
  private retentionFloor(db: Database): number | null {
    if (!this.running) return null;
    return this.states.get(db.name)?.shipped?.txid ?? 0;
  }

  // ---- continuing the chain -------------------------------------------------------------------

  private async init(db: Database, s: DbState): Promise<void> {
    const { target, log } = this.opts;
    s.objects = await target.list(db.name);
    s.compactedAt = this.opts.config.levelsMs.map(() => Date.now());
    const snapshots = s.objects.filter((f) => f.level === SNAPSHOT_LEVEL).sort(byTxid);
    s.snapshotAt = snapshots.length ? await this.timestampOf(s, snapshots.at(-1)!) : 0;
    const tip = [...s.objects].sort(byTxid).at(-1);
    if (!tip) {
      s.shipped = null;
      const local = (await listLocalLtx(db.ltx.dir))[0];
      if (local && local.minTxid === 1) {
        // The local history starts at the database's first transaction: it is the chain's start.
        s.shipped = Position.ZERO;
        s.snapshotAt = Date.now();
      } else {
        await this.snapshot(db, s, "the backup holds nothing for this database yet");
      }
      s.ready = true;
      return;
    }
    const there = new Position(tip.maxTxid, await readPostApply(target, tip));
    const here = await this.localPositionAt(db, there.txid);
    if (here?.equals(there)) {
      s.shipped = there;
      log.info({ db: db.name, position: there.toString() }, "backup: continuing the chain from the backup's position");
    } else if (here === null && db.position.txid > there.txid) {
      s.shipped = there;
      await this.snapshot(db, s, `gap: the local LTX files no longer reach back to the backup's position ${there.toString()}`);
    } else {
      // Our history left the backup's (or is behind it): what the backup holds past the fork was discarded.
      const fork = Math.min(db.position.txid, there.txid - 1);
      const discarded = s.objects.filter((f) => f.maxTxid > fork);
      log.warn(
        { db: db.name, backup: there.toString(), local: here?.toString() ?? db.position.toString(), removed: discarded.length },
        "backup: chain break: this node's history does not contain the backup's position; removing the objects past the fork and starting from a new snapshot",
      );
      await this.remove(s, discarded);
      s.shipped = null;
      await this.snapshot(db, s, "chain break");
    }
    s.ready = true;
  }

  /** This node's position at `txid`, from its current position or an LTX file ending there; null if it does not know. */
  private async localPositionAt(db: Database, txid: number): Promise<Position | null> {
    if (db.position.txid === txid) return db.position;
    const f = (await listLocalLtx(db.ltx.dir)).find((l) => l.maxTxid === txid);
    if (!f) return null;
    return new Position(txid, (await readLtxEnds(f.path)).postApplyChecksum);
  }

  private async ship(db: Database, s: DbState, signal: AbortSignal): Promise<void> {
    const shipped = () => s.shipped ?? Position.ZERO;
    if (shipped().txid >= db.position.txid) {
      s.pendingSince = null;
      return;
    }
    for (const f of await listLocalLtx(db.ltx.dir)) {
      if (signal.aborted) return;
      const pos = shipped();
      if (f.maxTxid <= pos.txid) continue;
      const ends = await readLtxEnds(f.path);
      s.pendingSince = ends.header.timestamp;
      let level = 0;
      if (f.minTxid === 1 && pos.txid > 0) {
        level = SNAPSHOT_LEVEL; // a snapshot this node received as a replica: a new start for the chain
      } else if (f.minTxid !== pos.txid + 1 || (f.minTxid > 1 && ends.header.preApplyChecksum !== pos.postApplyChecksum)) {
        await this.snapshot(db, s, `gap: the next local file is ${objectPath({ db: db.name, level: 0, ...f })}, the backup is at ${pos.toString()}`);
        return;
      }
      const ref = { db: db.name, level, minTxid: f.minTxid, maxTxid: f.maxTxid };
      await this.put(s, ref, f.path, ends.size);
      if (level === SNAPSHOT_LEVEL) s.timestamps.set(objectPath(ref), ends.header.timestamp);
      s.shipped = new Position(f.maxTxid, ends.postApplyChecksum);
      s.pendingSince = null;
      // The storage answers again: status and litefs_backup_failing stop showing the old failure
      // as soon as the backlog moves, not only once the whole cycle (compaction, retention) is done.
      s.error = null;
    }
  }

  private async put(s: DbState, ref: ObjectRef, file: string, size: number): Promise<void> {
    await this.opts.target.put(ref, file, size);
    s.objects = s.objects.filter((o) => objectPath(o) !== objectPath(ref));
    s.objects.push({ ...ref, size });
  }

  private async remove(s: DbState, files: readonly BackupFile[]): Promise<void> {
    if (files.length === 0) return;
    await this.opts.target.delete(files);
    const gone = new Set(files.map(objectPath));
    s.objects = s.objects.filter((o) => !gone.has(objectPath(o)));
  }

  /**
   * Uploads a snapshot of the live database (built off the FUSE thread while commits go on, as a
   * replica's snapshot is; it holds exactly the position it started at). The backup continues from it.
   */
  private async snapshot(db: Database, s: DbState, why: string, restartsChain = true): Promise<void> {
    if (!db.exists || db.position.txid === 0) return; // a dropped database: its deletion file carries on
    const written = await this.opts.store.writeSnapshot(db, "backup-snapshot");
    const tmp = written.path;
    try {
      const pos = written.position;
      const ref = { db: db.name, level: SNAPSHOT_LEVEL, minTxid: 1, maxTxid: pos.txid };
      await this.put(s, ref, tmp, written.size);
      s.timestamps.set(objectPath(ref), written.header.timestamp);
      s.snapshotAt = written.header.timestamp;
      // A periodic snapshot leaves level 0 as it is: every transaction stays reachable by time.
      if (restartsChain && (!s.shipped || s.shipped.txid < pos.txid)) {
        if (s.shipped && s.shipped.txid > 0) this.opts.log.warn({ db: db.name, from: s.shipped.toString(), to: pos.toString(), why }, "backup: the chain restarts from a snapshot");
        s.shipped = pos;
      }
      this.opts.log.info({ db: db.name, position: pos.toString(), bytes: written.size, why }, "backup: snapshot uploaded");
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  private async snapshotIfDue(db: Database, s: DbState): Promise<void> {
    if (Date.now() - s.snapshotAt < this.opts.config.snapshotIntervalMs) return;
    const newest = s.objects.filter((f) => f.minTxid === 1).reduce((m, f) => Math.max(m, f.maxTxid), 0);
    if (newest >= db.position.txid) {
      s.snapshotAt = Date.now();
      return;
    }
    await this.snapshot(db, s, "snapshot-interval", false);
  }

  // ---- compaction and retention ---------------------------------------------------------------

  /** Level k merges the runs of level k-1 that it does not cover yet, every levels[k-1]. */
  private async compact(db: Database, s: DbState, signal: AbortSignal): Promise<void> {
    const levels = this.opts.config.levelsMs;
    for (let k = 1; k <= levels.length; k++) {
      if (signal.aborted || Date.now() - s.compactedAt[k - 1]! < levels[k - 1]!) continue;
      const covered = s.objects.filter((f) => f.level === k).reduce((m, f) => Math.max(m, f.maxTxid), 0);
      const src = s.objects.filter((f) => f.level === k - 1 && f.minTxid > 1 && f.minTxid > covered).sort(byTxid);
      const run: BackupFile[] = [];
      for (const f of src) {
        if (run.length && f.minTxid !== run.at(-1)!.maxTxid + 1) break;
        run.push(f);
        if (run.length >= MAX_RUN) break;
      }
      if (run.length < 2) continue;
      const tmp = this.opts.store.tempPath(`backup-l${k}`);
      try {
        const merged = await mergeRun(this.opts.target, run, tmp, { compress: this.opts.store.compress, nodeId: this.opts.store.nodeId });
        const ref = { db: db.name, level: k, minTxid: merged.header.minTxid, maxTxid: merged.header.maxTxid };
        await this.put(s, ref, tmp, merged.size);
        this.opts.log.debug({ db: db.name, level: k, files: merged.covered.length, object: objectPath(ref) }, "backup: compacted");
      } finally {
        await fsp.rm(tmp, { force: true });
      }
      s.compactedAt[k - 1] = Date.now();
    }
  }

  /**
   * Keeps what restoring any point of the last `retention` needs: the newest snapshot taken at
   * or before the window's start, and everything after it. Older objects are removed.
   */
  private async retain(db: Database, s: DbState): Promise<void> {
    const now = Date.now();
    if (now - s.retainedAt < Math.min(RETENTION_EVERY_MS, this.opts.config.retentionMs)) return;
    s.retainedAt = now;
    const cutoff = now - this.opts.config.retentionMs;
    const snapshots = s.objects.filter((f) => f.minTxid === 1).sort(byTxid);
    let base: BackupFile | null = null;
    for (let i = snapshots.length - 1; i >= 0; i--) {
      if ((await this.timestampOf(s, snapshots[i]!)) <= cutoff) {
        base = snapshots[i]!;
        break;
      }
    }
    if (!base) return;
    const old = s.objects.filter((f) => f.maxTxid <= base.maxTxid && objectPath(f) !== objectPath(base));
    if (old.length === 0) return;
    await this.remove(s, old);
    for (const f of old) s.timestamps.delete(objectPath(f));
    this.opts.log.info({ db: db.name, removed: old.length, keptFrom: objectPath(base), before: formatTxid(base.maxTxid) }, "backup: retention removed objects no point in the window needs");
  }

  private async timestampOf(s: DbState, f: BackupFile): Promise<number> {
    const key = objectPath(f);
    let ts = s.timestamps.get(key);
    if (ts === undefined) {
      ts = (await readHeader(this.opts.target, f)).timestamp;
      s.timestamps.set(key, ts);
    }
    return ts;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
