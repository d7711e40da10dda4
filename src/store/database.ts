import * as fs from "node:fs";
import * as path from "node:path";
import type { Logger } from "pino";
import { CHECKSUM_FLAG, Position, TRAILER_SIZE, decodeTrailer, lockPgno, pageChecksum, type LtxHeader, type LtxEncoder } from "../ltx/index.js";
import { isDatabaseHeader, parseDatabaseHeader } from "../sqlite/index.js";
import { BackingFile } from "./backing-file.js";
import { JournalCapture } from "./capture-journal.js";
import { WalCapture } from "./capture-wal.js";
import { StoreError } from "./errors.js";
import { LtxDirectory, type WrittenLtx } from "./ltx-directory.js";
import { PageChecksums } from "./page-checksums.js";

export type FileKind = "database" | "journal" | "wal" | "shm";

export interface DatabaseOptions {
  name: string;
  /** data.dir/dbs/<name> */
  dir: string;
  compress: boolean;
  skipSync: boolean;
  nodeId: bigint;
  logger: Logger;
}

/** What a committed transaction changed, handed to listeners (replication, `-pos`). */
export interface CommitEvent {
  db: Database;
  position: Position;
  ltxPath: string;
}

/** Pages of a transaction as the capture layers hand them over: sorted by pgno. */
export interface TransactionPages {
  commit: number;
  pgnos: readonly number[];
  readPage(pgno: number): Uint8Array;
  walOffset?: number;
  walSize?: number;
  walSalt1?: number;
  walSalt2?: number;
  /** Record the transaction even if it left every page as it was (a WAL commit is never a rollback). */
  always?: boolean;
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
  readonly checksums = new PageChecksums();
  readonly journal: JournalCapture;
  readonly wal: WalCapture;
  readonly log: Logger;

  pageSize = 0;
  private pos = Position.ZERO;
  /** Strictly increasing ms timestamp of the last position change (the `-pos` file's mtime). */
  positionChangedAt = Date.now();
  private deleted = false;
  private readonly listeners = new Set<(ev: CommitEvent) => void>();

  constructor(private readonly opts: DatabaseOptions) {
    this.name = opts.name;
    this.dir = opts.dir;
    this.log = opts.logger.child({ db: opts.name });
    this.files = {
      database: new BackingFile(path.join(opts.dir, "database")),
      journal: new BackingFile(path.join(opts.dir, "journal")),
      wal: new BackingFile(path.join(opts.dir, "wal")),
      shm: new BackingFile(path.join(opts.dir, "shm")),
    };
    this.ltx = new LtxDirectory(path.join(opts.dir, "ltx"), opts.skipSync);
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

  onCommit(fn: (ev: CommitEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
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

  /** True when the header on disk says WAL mode (read/write version 2). */
  isWalMode(): boolean {
    if (this.files.database.size() < 100) return false;
    const hdr = this.files.database.readAt(0, 100);
    return isDatabaseHeader(hdr) && parseDatabaseHeader(hdr).writeVersion === 2;
  }

  // ---- file operations used by the FUSE adapter ----------------------------------------------

  read(kind: FileKind, buf: Uint8Array, length: number, position: number): number {
    const file = this.files[kind];
    if (!file.exists()) return 0;
    return file.read(buf, length, position);
  }

  write(kind: FileKind, buf: Uint8Array, length: number, position: number): void {
    switch (kind) {
      case "database":
        this.writeDatabase(buf, length, position);
        return;
      case "journal":
        this.journal.beforeJournalWrite(buf, length, position);
        this.files.journal.write(buf, length, position);
        this.journal.afterJournalWrite(buf, length, position);
        return;
      case "wal":
        this.files.wal.write(buf, length, position);
        this.wal.afterWrite(position, length);
        return;
      case "shm":
        this.files.shm.write(buf, length, position);
        return;
    }
  }

  truncate(kind: FileKind, size: number): void {
    switch (kind) {
      case "journal":
        if (size === 0) this.journal.onInvalidate("truncate");
        this.files.journal.truncate(size);
        return;
      case "wal":
        this.files.wal.truncate(size);
        this.wal.afterTruncate(size);
        return;
      case "database":
        this.journal.onDatabaseTruncate(size);
        this.files.database.truncate(size);
        return;
      case "shm":
        this.files.shm.truncate(size);
        return;
    }
  }

  sync(kind: FileKind): void {
    if (!this.opts.skipSync) this.files[kind].sync();
  }

  create(kind: FileKind): void {
    if (kind === "database") this.markCreated();
    else this.files[kind].open(true);
  }

  unlink(kind: FileKind): void {
    switch (kind) {
      case "journal":
        this.journal.onInvalidate("unlink");
        this.files.journal.unlink();
        return;
      case "wal":
        this.files.wal.unlink();
        this.wal.afterTruncate(0);
        return;
      case "shm":
        this.files.shm.unlink();
        return;
      case "database":
        this.drop();
        return;
    }
  }

  private writeDatabase(buf: Uint8Array, length: number, position: number): void {
    if (position === 0 && length >= 16 && !isDatabaseHeader(buf.subarray(0, Math.min(length, 100)))) {
      throw new StoreError(
        "STORE_NOT_A_DATABASE",
        `${this.name}: refusing write at offset 0: not a SQLite database (header magic missing); only SQLite databases can live on this mount`,
      );
    }
    if (position === 0 && length >= 100) this.pageSize = parseDatabaseHeader(buf.subarray(0, 100)).pageSize;
    if (this.pageSize === 0) this.refreshPageSize();
    if (this.pageSize === 0) {
      throw new StoreError("STORE_NOT_A_DATABASE", `${this.name}: write at offset ${position} before page 1 holds a SQLite header`);
    }
    if (this.journal.active) {
      this.journal.onDatabaseWrite(position, length);
    } else if (!this.isWalModeWrite(buf, length, position)) {
      throw new StoreError(
        "STORE_WRITE_OUTSIDE_TRANSACTION",
        `${this.name}: database written without a rollback journal; journal_mode OFF and MEMORY cannot be replicated (use DELETE, TRUNCATE, PERSIST or WAL)`,
      );
    }
    this.files.database.write(buf, length, position);
  }

  /** Outside a journal transaction, only WAL checkpoints may write the database file. */
  private isWalModeWrite(buf: Uint8Array, length: number, position: number): boolean {
    if (position === 0 && length >= 100) return parseDatabaseHeader(buf.subarray(0, 100)).writeVersion === 2;
    return this.isWalMode();
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
    for (const pgno of pgnos) {
      const sum = pageChecksum(pgno, tx.readPage(pgno));
      newSums.set(pgno, sum);
      if (sum !== this.checksums.get(pgno)) changed = true;
    }
    if (!changed && !tx.always) return null;

    const preApply = this.pos.postApplyChecksum;
    const postApply = this.checksums.checksumAfter(newSums, tx.commit);

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
    let written: WrittenLtx;
    try {
      written = this.ltx.write(header, this.opts.compress, (enc: LtxEncoder) => {
        for (const pgno of pgnos) enc.encodePage(pgno, tx.readPage(pgno));
        return postApply;
      });
    } catch (err) {
      throw new StoreError("STORE_CAPTURE_FAILED", `${this.name}: cannot write LTX for TXID ${txid}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.checksums.apply(newSums, tx.commit);
    this.pos = new Position(txid, postApply);
    this.deleted = false;
    this.emit(written.path);
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
      const written = this.ltx.write(header, this.opts.compress, () => CHECKSUM_FLAG);
      this.pos = new Position(txid, CHECKSUM_FLAG);
      this.emit(written.path);
    }
    this.checksums.clear();
    this.deleted = true;
    this.journal.reset();
    this.wal.reset();
    for (const kind of ["journal", "wal", "shm", "database"] as const) this.files[kind].unlink();
    this.log.info({ txid: this.pos.txid }, "database dropped");
  }

  // ---- replica side: changes received from the primary ---------------------------------------

  /** A write by the apply agent through the mount: already captured on the primary. */
  applyWrite(kind: FileKind, buf: Uint8Array, length: number, position: number): void {
    this.files[kind].write(buf, length, position);
  }

  applyTruncate(kind: FileKind, size: number): void {
    this.files[kind].truncate(size);
    // The agent emptied what a cut-off primary term left behind: forget its capture state.
    if (kind === "wal") this.wal.afterTruncate(size);
    if (kind === "journal" && size === 0) this.journal.reset();
  }

  /** The primary dropped this database. */
  dropReplica(position: Position): void {
    this.checksums.clear();
    this.journal.reset();
    this.wal.reset();
    for (const kind of ["journal", "wal", "shm", "database"] as const) this.files[kind].unlink();
    this.setPosition(position, true);
    this.log.info({ txid: position.txid }, "database dropped by the primary");
  }

  /** Tells listeners that a received file was applied (same event as a local commit). */
  notifyApplied(ltxPath: string): void {
    this.emit(ltxPath);
  }

  /**
   * Positions after each of the newest `limit` LTX files (oldest first): sent to a primary so it
   * can tell where our history left its own and name the TXIDs a snapshot discards.
   */
  recentHistory(limit = 64): Position[] {
    const out: Position[] = [];
    for (const f of this.ltx.list().slice(-limit)) {
      try {
        const fd = fs.openSync(f.path, "r");
        try {
          const size = fs.fstatSync(fd).size;
          const tail = Buffer.alloc(TRAILER_SIZE);
          fs.readSync(fd, tail, 0, TRAILER_SIZE, size - TRAILER_SIZE);
          out.push(new Position(f.maxTxid, decodeTrailer(tail).postApplyChecksum));
        } finally {
          fs.closeSync(fd);
        }
      } catch {
        // removed by retention meanwhile, or unreadable: history is advisory
      }
    }
    return out;
  }

  closeFiles(): void {
    for (const f of Object.values(this.files)) f.close();
  }

  private emit(ltxPath: string): void {
    this.touchPosition();
    const ev: CommitEvent = { db: this, position: this.pos, ltxPath };
    for (const fn of this.listeners) {
      try {
        fn(ev);
      } catch (err) {
        this.log.error({ err }, "commit listener failed");
      }
    }
  }
}

function rangeExcept(from: number, to: number, skip: number): number[] {
  const out: number[] = [];
  for (let p = from; p <= to; p++) if (p !== skip) out.push(p);
  return out;
}
