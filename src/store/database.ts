import * as path from "node:path";
import type { Logger } from "pino";
import { CHECKSUM_FLAG, Position, lockPgno, pageChecksum, type LtxHeader, type LtxEncoder } from "../ltx/index.js";
import { DB_HEADER_SIZE, isDatabaseHeader, parseDatabaseHeader } from "../sqlite/index.js";
import { ApplyMarker } from "./apply-marker.js";
import { BackingFile } from "./backing-file.js";
import { JournalCapture } from "./capture-journal.js";
import { WalCapture } from "./capture-wal.js";
import { StoreError } from "./errors.js";
import type { ChangeSource, CommitWait, StoreEvent } from "./events.js";
import { LtxDirectory, readPostApplyChecksum, type WrittenLtx } from "./ltx-directory.js";
import { PageChecksums } from "./page-checksums.js";
import { ShmBackingFile } from "./shm-file.js";
import type { SnapshotView } from "./snapshot.js";
import type { SpareFiles } from "./spare-files.js";

export type FileKind = "database" | "journal" | "wal" | "shm";

export interface DatabaseOptions {
  name: string;
  /** data.dir/dbs/<name> */
  dir: string;
  compress: boolean;
  skipSync: boolean;
  /**
   * Every commit's LTX is fsynced before SQLite hears the commit completed, whatever SQLite's
   * synchronous setting (synchronous replication promises it). Otherwise a WAL commit's LTX is
   * made durable at SQLite's next fsync, or by the Store's timer (see Database.sync).
   */
  durableCommits: boolean;
  nodeId: bigint;
  /** Empty files made ahead of time, for the LTX files and the backing files this database creates. */
  spares?: SpareFiles;
  logger: Logger;
  /** Tells the Store what changed; for a local commit, answers what the commit must wait for. */
  notify(ev: StoreEvent): CommitWait;
  /** A database created on the mount that never held a committed page was refused its first write: remove it. */
  discard(db: Database): void;
}

/** Points an operator at the supported way to replace a database's contents. */
const USE_IMPORT = "to replace a database, use `litefs import`";

/** Up to this many pages a transaction is checksummed before its LTX is written (commitTransaction). */
const SUM_FIRST_UP_TO_PAGES = 256;
/** Thrown out of an LTX's fill when a big transaction turns out to have changed no page. */
const NOTHING_CHANGED = new Error("the transaction changed no page");

/** Pages of a transaction as the capture layers hand them over: sorted by pgno. */
export interface TransactionPages {
  commit: number;
  pgnos: readonly number[];
  /** A page as it is now; used before the next call, so a reader may reuse its buffer. */
  readPage(pgno: number): Uint8Array;
  /**
   * The database's page checksums already hold every page's (adoption, which computed them just
   * before): the pages are read only to encode them, and no per-page map of a whole file is built.
   * Only for the first transaction, a snapshot of `commit` pages.
   */
  sumsRecorded?: boolean;
  walOffset?: number;
  walSize?: number;
  walSalt1?: number;
  walSalt2?: number;
  /** Record the transaction even if it left every page as it was (a WAL commit is never a rollback). */
  always?: boolean;
  /**
   * false: write the LTX uncompressed whatever data.compress says. For a whole-file snapshot
   * taken in one synchronous pass (adoption): lz4-napi's output buffers are freed by finalizers
   * that run only when the event loop turns, so compressing a 1 GB file in one go held ~1.2 GB.
   */
  compress?: boolean;
  /** Fsync the LTX before returning even without `durableCommits` (a rollback-journal commit: see capture-journal.ts). */
  durable?: boolean;
  /** Receives the checksum of every page the transaction wrote, once it is recorded. */
  onRecorded?(sums: ReadonlyMap<number, bigint>): void;
}

/**
 * One database: its backing files, its position (TXID + rolling checksum) and the capture of
 * committed transactions into LTX files. Knows nothing of FUSE or HTTP: the adapters call the
 * file operations below.
 */
export class Database {
  readonly name: string;
  readonly dir: string;
  readonly files: Record<FileKind, BackingFile>;
  readonly ltx: LtxDirectory;
  /** Set while received files may be in the database file only in part (apply.ts, recover.ts). */
  readonly applyMarker: ApplyMarker;
  readonly checksums = new PageChecksums();
  readonly journal: JournalCapture;
  readonly wal: WalCapture;
  readonly log: Logger;

  pageSize = 0;
  private pos = Position.ZERO;
  /** Strictly increasing ms timestamp of the last position change (the `-pos` file's mtime). */
  positionChangedAt = Date.now();
  private deleted = false;
  /** What the local commits of the current FUSE request wait for (see CommitWait). */
  private commitWait: CommitWait = null;
  /** Snapshots being written: each keeps the pages it still needs before they change (snapshot.ts). */
  private readonly snapshotViews = new Set<SnapshotView>();
  /** Batches of received LTX files being written into the file (applyReceivedBatch), and who waits for none. */
  private appliesRunning = 0;
  private applyWaiters: Array<() => void> = [];
  /** Counts for operators (read by src/metrics/): writes to each file since this process started, LTX files retention removed. */
  readonly stats: { writes: Record<FileKind, number>; ltxReaped: number } = { writes: { database: 0, journal: 0, wal: 0, shm: 0 }, ltxReaped: 0 };

  constructor(private readonly opts: DatabaseOptions) {
    this.name = opts.name;
    this.dir = opts.dir;
    this.log = opts.logger.child({ db: opts.name });
    this.files = {
      database: new BackingFile(path.join(opts.dir, "database"), opts.spares),
      journal: new BackingFile(path.join(opts.dir, "journal"), opts.spares),
      wal: new BackingFile(path.join(opts.dir, "wal"), opts.spares),
      // Keeps its disk space, so WAL readers still open on a full data dir (see ShmBackingFile).
      shm: new ShmBackingFile(path.join(opts.dir, "shm")),
    };
    this.ltx = new LtxDirectory(path.join(opts.dir, "ltx"), opts.skipSync, opts.spares);
    this.applyMarker = new ApplyMarker(opts.dir, opts.skipSync);
    this.journal = new JournalCapture(this);
    this.wal = new WalCapture(this);
  }

  get position(): Position {
    return this.pos;
  }

  get skipSync(): boolean {
    return this.opts.skipSync;
  }

  /** A database exists on the mount while its file does and it was not dropped. */
  get exists(): boolean {
    return !this.deleted && this.files.database.exists();
  }

  /** Pages this database holds as of its position (0: nothing committed, or dropped). */
  get committedPages(): number {
    return this.checksums.pageCount;
  }

  /** Set by recovery and by replica apply: the position the files now hold. */
  setPosition(pos: Position, deleted = false): void {
    this.pos = pos;
    this.deleted = deleted;
    this.touchPosition();
  }

  private touchPosition(): void {
    this.positionChangedAt = Math.max(Date.now(), this.positionChangedAt + 1);
  }

  markCreated(): void {
    this.deleted = false;
    this.files.database.open(true);
  }

  /** Reads the page size from the database header once page 1 exists. */
  refreshPageSize(): void {
    if (this.files.database.size() < 100) return;
    const hdr = this.files.database.readAt(0, 100);
    if (isDatabaseHeader(hdr)) this.pageSize = parseDatabaseHeader(hdr).pageSize;
  }

  // ---- file operations used by the FUSE adapter ----------------------------------------------

  read(kind: FileKind, buf: Uint8Array, length: number, position: number): number {
    const file = this.files[kind];
    if (!file.exists()) return 0;
    return file.read(buf, length, position);
  }

  /**
   * A write on the primary. Returns what SQLite must wait for before it hears the write
   * completed, when the write completed a commit and something holds commits (else null).
   */
  write(kind: FileKind, buf: Uint8Array, length: number, position: number): CommitWait {
    this.assertNotDeleted("write", kind);
    this.stats.writes[kind]++;
    switch (kind) {
      case "database":
        this.writeDatabase(buf, length, position);
        break;
      case "journal":
        this.journal.journalChanged();
        this.journal.beforeJournalWrite(buf, length, position);
        this.files.journal.write(buf, length, position);
        this.journal.afterJournalWrite(buf, length, position);
        break;
      case "wal":
        this.beforeChange("wal", position, position + length);
        this.files.wal.write(buf, length, position);
        this.wal.afterWrite(buf, position, length);
        break;
      case "shm":
        this.files.shm.write(buf, length, position);
        break;
    }
    return this.takeCommitWait();
  }

  /** A truncation on the primary; returns as `write` does. */
  truncate(kind: FileKind, size: number): CommitWait {
    this.assertNotDeleted("truncate", kind);
    switch (kind) {
      case "journal":
        this.journal.journalChanged();
        if (size === 0) this.journal.onInvalidate("truncate");
        this.files.journal.truncate(size);
        break;
      case "wal":
        this.beforeChange("wal", size, Infinity);
        this.files.wal.truncate(size);
        this.wal.afterTruncate(size);
        break;
      case "database":
        this.checkDatabaseTruncate(size);
        this.beforeChange("database", size, Infinity);
        this.files.database.truncate(size);
        break;
      case "shm":
        this.files.shm.truncate(size);
        break;
    }
    return this.takeCommitWait();
  }

  /**
   * SQLite fsyncs one of the database's files: every LTX written so far becomes durable before
   * the file does, so whatever SQLite made durable is never ahead of the LTX history.
   * `dataOnly`: fdatasync, as the app asked (SQLite on Linux does for every sync).
   */
  sync(kind: FileKind, dataOnly = false): void {
    if (this.opts.skipSync) return;
    this.ltx.syncPending();
    this.files[kind].sync(dataOnly);
  }

  create(kind: FileKind): void {
    if (kind === "journal") this.journal.journalChanged();
    if (kind === "database") this.markCreated();
    else this.files[kind].open(true);
  }

  /** An unlink on the primary; returns as `write` does. */
  unlink(kind: FileKind): CommitWait {
    switch (kind) {
      case "journal":
        this.journal.journalChanged();
        this.journal.onInvalidate("unlink");
        // Recycled: nothing reads a journal's backing file after its commit, and its inode is
        // the next journal's (DELETE mode creates and removes one per transaction).
        this.files.journal.unlink(true);
        break;
      case "wal":
        this.beforeChange("wal", 0, Infinity);
        this.files.wal.unlink();
        this.wal.afterTruncate(0);
        break;
      case "shm":
        this.files.shm.unlink();
        break;
      case "database":
        this.drop();
        break;
    }
    return this.takeCommitWait();
  }

  private takeCommitWait(): CommitWait {
    const wait = this.commitWait;
    this.commitWait = null;
    return wait;
  }

  /**
   * Every change to the database file must be part of a SQLite transaction: a write while a
   * rollback journal is active, or a WAL checkpoint copying committed pages. Anything else
   * (journal_mode OFF, `echo > db`, `dd`, a non-SQLite file) is refused before it touches a byte.
   */
  private writeDatabase(buf: Uint8Array, length: number, position: number): void {
    if (position === 0 && length >= 16 && !isDatabaseHeader(buf.subarray(0, Math.min(length, DB_HEADER_SIZE)))) {
      this.refuse("STORE_NOT_A_DATABASE", "refusing write at offset 0: not a SQLite database (header magic missing); only SQLite databases can live on this mount");
    }
    if (position === 0 && length >= DB_HEADER_SIZE) this.pageSize = parseDatabaseHeader(buf.subarray(0, DB_HEADER_SIZE)).pageSize;
    if (this.pageSize === 0) this.refreshPageSize();
    if (this.pageSize === 0) this.refuse("STORE_NOT_A_DATABASE", `write at offset ${position} before page 1 holds a SQLite header`);
    if (this.journal.active) {
      this.journal.onDatabaseWrite(position, length);
    } else {
      if (!this.isCheckpointWrite(buf, length, position)) {
        this.refuse(
          "STORE_WRITE_OUTSIDE_TRANSACTION",
          `database written outside a SQLite transaction (no rollback journal, not a WAL checkpoint of committed pages): refused; ` +
            `journal_mode OFF and MEMORY cannot be replicated (use DELETE, TRUNCATE, PERSIST or WAL); ${USE_IMPORT}`,
        );
      }
      // SQLite fsyncs the WAL before a checkpoint (which synced them already) unless synchronous=OFF:
      // even then the database file never holds a page whose LTX a power cut could lose.
      if (!this.opts.skipSync) this.ltx.syncPending();
    }
    this.beforeChange("database", position, position + length);
    this.files.database.write(buf, length, position);
  }

  /** A WAL checkpoint writes whole pages, each a version some committed transaction of this WAL left. */
  private isCheckpointWrite(buf: Uint8Array, length: number, position: number): boolean {
    const pageSize = this.pageSize;
    if (position % pageSize !== 0 || length % pageSize !== 0) return false;
    for (let off = 0; off < length; off += pageSize) {
      const pgno = (position + off) / pageSize + 1;
      const sum = pageChecksum(pgno, buf.subarray(off, off + pageSize));
      if (sum !== this.checksums.get(pgno) && !this.wal.isCommittedVersion(pgno, sum)) return false;
    }
    return true;
  }

  /**
   * SQLite cuts the database file inside a journal transaction, or to the committed size right
   * after a commit (VACUUM in DELETE mode: after the journal is gone) or at a WAL checkpoint.
   * Cutting to the committed size changes no committed page; any other size would.
   */
  private checkDatabaseTruncate(size: number): void {
    if (this.journal.active || size === this.files.database.size()) return;
    if (size === this.committedPages * this.pageSize) return;
    this.refuse(
      "STORE_WRITE_OUTSIDE_TRANSACTION",
      `refusing to change the database file's size to ${size} bytes outside a SQLite transaction; ${USE_IMPORT}`,
    );
  }

  /** Throws the refusal; a database created on the mount that never held a committed page goes away with it. */
  private refuse(code: "STORE_NOT_A_DATABASE" | "STORE_WRITE_OUTSIDE_TRANSACTION", why: string): never {
    if (this.committedPages === 0 && !this.deleted) {
      this.deleted = true;
      this.opts.discard(this);
    }
    throw new StoreError(code, `${this.name}: ${why}`);
  }

  private assertNotDeleted(op: string, kind: FileKind): void {
    if (this.deleted) throw new StoreError("STORE_NOT_FOUND", `${this.name}: ${op} of ${kind} refused: the database was dropped or discarded`);
  }

  // ---- commit capture (called by capture-journal / capture-wal) ------------------------------

  /**
   * Writes the LTX for one committed transaction and advances the position. Returns null when
   * the transaction changed nothing (a rollback that restored every page, or an empty commit).
   */
  commitTransaction(tx: TransactionPages): WrittenLtx | null {
    const pageSize = this.pageSize;
    const lock = lockPgno(pageSize);
    const txid = this.pos.txid + 1;
    const snapshot = txid === 1;
    const pgnos = snapshot ? rangeExcept(1, tx.commit, lock) : tx.pgnos.filter((p) => p <= tx.commit && p !== lock);

    const newSums = new Map<number, bigint>();
    let changed = tx.commit !== this.checksums.pageCount;
    const record = (pgno: number, sum: bigint) => {
      newSums.set(pgno, sum);
      if (sum !== this.checksums.get(pgno)) changed = true;
    };
    if (tx.sumsRecorded && (!snapshot || tx.commit !== this.checksums.pageCount)) {
      throw new StoreError("STORE_CAPTURE_FAILED", `${this.name}: recorded page checksums stand only for a first snapshot of every page`);
    }
    // A small transaction is checksummed before anything is written, so one that changed nothing (a
    // no-op UPDATE, a rollback) costs no file. A big one is checksummed as it is encoded: each page
    // read and hashed once, not twice (a 24 MB commit saved ~25 ms); its file goes again in the
    // rare case it changed nothing.
    const sumFirst = !tx.sumsRecorded && !tx.always && pgnos.length <= SUM_FIRST_UP_TO_PAGES;
    if (sumFirst) {
      for (const pgno of pgnos) record(pgno, pageChecksum(pgno, tx.readPage(pgno)));
      if (!changed) return null;
    }
    const sumWhileEncoding = !tx.sumsRecorded && !sumFirst;

    const preApply = this.pos.postApplyChecksum;

    const header: LtxHeader = {
      flags: 0,
      pageSize,
      commit: tx.commit,
      minTxid: txid,
      maxTxid: txid,
      timestamp: Date.now(),
      preApplyChecksum: snapshot ? 0n : preApply,
      walOffset: tx.walOffset ?? 0,
      walSize: tx.walSize ?? 0,
      walSalt1: tx.walSalt1 ?? 0,
      walSalt2: tx.walSalt2 ?? 0,
      nodeId: this.opts.nodeId,
    };
    let postApply = 0n;
    let written: WrittenLtx;
    try {
      written = this.ltx.write(
        header,
        this.opts.compress && tx.compress !== false,
        (enc: LtxEncoder) => {
          for (const pgno of pgnos) {
            const sum = enc.encodePage(pgno, tx.readPage(pgno));
            if (sumWhileEncoding) record(pgno, sum);
          }
          if (sumWhileEncoding && !changed && !tx.always) throw NOTHING_CHANGED;
          postApply = tx.sumsRecorded ? this.checksums.checksum : this.checksums.checksumAfter(newSums, tx.commit);
          return postApply;
        },
        this.opts.durableCommits || tx.durable === true,
      );
    } catch (err) {
      if (err === NOTHING_CHANGED) return null; // the file was removed with the throw
      throw new StoreError("STORE_CAPTURE_FAILED", `${this.name}: cannot write LTX for TXID ${txid}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.checksums.apply(newSums, tx.commit);
    this.pos = new Position(txid, postApply);
    this.deleted = false;
    tx.onRecorded?.(newSums);
    this.emitCommit("local", written.path, header.timestamp, tx.commit);
    return written;
  }

  /** Dropping a database writes a deletion LTX (commit 0) so replicas drop it too. */
  drop(): void {
    if (this.deleted) return;
    const txid = this.pos.txid + 1;
    if (this.pos.txid > 0 && this.pageSize > 0) {
      const header: LtxHeader = {
        flags: 0,
        pageSize: this.pageSize,
        commit: 0,
        minTxid: txid,
        maxTxid: txid,
        timestamp: Date.now(),
        preApplyChecksum: this.pos.postApplyChecksum,
        walOffset: 0,
        walSize: 0,
        walSalt1: 0,
        walSalt2: 0,
        nodeId: this.opts.nodeId,
      };
      const written = this.ltx.write(header, this.opts.compress, () => CHECKSUM_FLAG, true);
      this.pos = new Position(txid, CHECKSUM_FLAG);
      this.emitCommit("local", written.path, header.timestamp, 0);
    }
    this.deleted = true;
    this.removeFiles();
    this.log.info({ txid: this.pos.txid }, "database dropped");
    this.opts.notify({ type: "dropped", db: this, source: "local", position: this.pos });
  }

  // ---- replica side: changes received from the primary ---------------------------------------

  /** A write by the mount agent through the mount: already captured on the primary. */
  applyWrite(kind: FileKind, buf: Uint8Array, length: number, position: number): void {
    this.stats.writes[kind]++;
    if (kind === "journal") this.journal.journalChanged();
    this.beforeChange(kind, position, position + length);
    this.files[kind].write(buf, length, position);
  }

  applyTruncate(kind: FileKind, size: number): void {
    if (kind === "journal") this.journal.journalChanged();
    this.beforeChange(kind, size, Infinity);
    this.files[kind].truncate(size);
    // The agent emptied what a cut-off primary term left behind: forget its capture state.
    if (kind === "wal") this.wal.afterTruncate(size);
    if (kind === "journal" && size === 0) this.journal.reset();
  }

  /** Removes the database's files and forgets their pages and capture state (a drop, or a discarded create). */
  removeFiles(): void {
    for (const view of this.snapshotViews) view.fail("the database's files were removed");
    this.checksums.clear();
    this.journal.reset();
    this.wal.reset();
    for (const kind of ["journal", "wal", "shm", "database"] as const) this.files[kind].unlink();
  }

  /** The primary dropped this database. */
  dropReplica(position: Position): void {
    this.removeFiles();
    this.setPosition(position, true);
    this.log.info({ txid: position.txid }, "database dropped by the primary");
  }

  /** Tells listeners that a received file was applied (the same event as a local commit). */
  notifyApplied(ltxPath: string, header: Pick<LtxHeader, "timestamp" | "commit" | "pageSize">): void {
    this.emitCommit("applied", ltxPath, header.timestamp, header.commit, header.pageSize);
    if (header.commit === 0) this.opts.notify({ type: "dropped", db: this, source: "applied", position: this.pos });
  }

  /**
   * Positions after each of the newest `limit` LTX files (oldest first): sent to a primary so it
   * can tell where our history left its own and name the TXIDs a snapshot discards.
   */
  recentHistory(limit = 64): Position[] {
    const out: Position[] = [];
    for (const f of this.ltx.list().slice(-limit)) {
      try {
        out.push(new Position(f.maxTxid, readPostApplyChecksum(f.path)));
      } catch {
        // removed by retention meanwhile, or unreadable: history is advisory
      }
    }
    return out;
  }

  // ---- snapshots ------------------------------------------------------------------------------

  /** A snapshot starts keeping the pages it needs (snapshot.ts); returns its removal. */
  addSnapshotView(view: SnapshotView): () => void {
    this.snapshotViews.add(view);
    return () => this.snapshotViews.delete(view);
  }

  /**
   * A batch of received files starts being written into the file; the returned function says it is
   * recorded (its position set). Meanwhile the file holds pages of a position it does not report yet.
   */
  beginApply(): () => void {
    this.appliesRunning++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.appliesRunning > 0) return;
      const waiters = this.applyWaiters;
      this.applyWaiters = [];
      for (const wake of waiters) wake();
    };
  }

  /**
   * Resolves once no batch is being written: the file then holds exactly the position. A snapshot
   * starts there, synchronously after it resolves, and its view catches every later write.
   */
  async applyIdle(): Promise<void> {
    while (this.appliesRunning > 0) await new Promise<void>((resolve) => this.applyWaiters.push(resolve));
  }

  /** Bytes [start, end) of a backing file are about to change: running snapshots keep what they still need first. */
  private beforeChange(kind: FileKind, start: number, end: number): void {
    for (const view of this.snapshotViews) view.beforeChange(kind, start, end);
  }

  closeFiles(): void {
    for (const f of Object.values(this.files)) f.close();
  }

  private emitCommit(source: ChangeSource, ltxPath: string, timestamp: number, commit: number, pageSize = this.pageSize): void {
    this.touchPosition();
    const wait = this.opts.notify({ type: "commit", db: this, source, position: this.pos, pageSize, commit, timestamp, ltxPath });
    if (wait) this.commitWait = this.commitWait ? this.commitWait.then(() => wait) : wait;
  }
}

function rangeExcept(from: number, to: number, skip: number): number[] {
  const out: number[] = [];
  for (let p = from; p <= to; p++) if (p !== skip) out.push(p);
  return out;
}
