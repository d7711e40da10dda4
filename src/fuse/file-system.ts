import * as fs from "node:fs";
import * as os from "node:os";
import type { Logger } from "pino";
import { LitefsError } from "../errors.js";
import type { Database, FileKind } from "../store/database.js";
import { StoreError } from "../store/errors.js";
import type { CommitWait } from "../store/events.js";
import type { Store } from "../store/store.js";
import type { WriteAuthority } from "../store/write-authority.js";
import { DatabaseFileNode, statDatabaseFile } from "./database-node.js";
import { LAG_FILE, PRIMARY_FILE, fileName, parseMountPath, type MountEntry } from "./names.js";
import { SyntheticFileNode, lagNode, posNode, primaryNode } from "./synthetic-nodes.js";
import { accessFor, truncateWith, unlinkWith, writeWith, type HandleAccess } from "./write-access.js";

type Callback = (...args: any[]) => void;

/** How many parsed paths getattr remembers before it starts over. */
const MAX_REMEMBERED_ENTRIES = 1024;

const E = os.constants.errno;
/** The binding (vendor/litefs-fuse, fuse-native's interface) wants negative errno values. */
export const errno = {
  EPERM: -E.EPERM,
  ENOENT: -E.ENOENT,
  EIO: -E.EIO,
  EBADF: -E.EBADF,
  EACCES: -E.EACCES,
  EEXIST: -E.EEXIST,
  EINVAL: -E.EINVAL,
  EISDIR: -E.EISDIR,
  ENOTDIR: -E.ENOTDIR,
  ENOSYS: -E.ENOSYS,
  EROFS: -E.EROFS,
} as const;

interface OpenFile {
  entry: MountEntry;
  node: DatabaseFileNode | SyntheticFileNode;
  access: HandleAccess;
}

/** What the mount shows of the node's state (implemented by the Node, src/node/node.ts). */
export interface MountedNode {
  readonly isPrimary: boolean;
  writeAuthority(db: string): WriteAuthority;
  /**
   * Pending until the lease loop first decides this node's role (then null): the mount is served
   * a moment before that, and a node about to be primary must not refuse a write open meanwhile.
   */
  roleDecided(): Promise<void> | null;
  /** Hostname of the primary while this replica knows it; null on the primary. */
  primaryHostname(): string | null;
  /** Replication lag in milliseconds (0 on the primary). */
  lagMs(): number;
  /** Changes whenever `.primary` or `.lag` content may have changed (their mtime). */
  statusVersion(): number;
}

export interface FileSystemOptions {
  store: Store;
  node: MountedNode;
  /** Is this process (as the kernel reports the caller of a request) the node's mount agent? */
  isMountAgent(pid: number): boolean;
  /** The process that made the FUSE request being handled (read synchronously at its start). */
  callerPid(): number;
  log: Logger;
  /** Called when capture fails after SQLite may already believe it committed (WAL). */
  onFatal(err: unknown): void;
  /** Times every request (metrics); absent: nothing is timed. */
  observer?: FuseObserver;
}

/**
 * Watches the mount's requests (src/metrics/). `timer` is asked once per operation when the
 * operations are built; the function it returns is called for every answered request of that
 * operation, on the thread that serves FUSE, so it must be cheap and must not throw.
 */
export interface FuseObserver {
  timer(op: string): (seconds: number) => void;
}

/**
 * The path-based FUSE operations for the mount: one flat directory of databases and their
 * companion files. Each FUSE request does one lookup, one backing I/O and one callback; errors
 * from the core become errno values with a log line that says why.
 */
export class FileSystem {
  private readonly handles = new Map<number, OpenFile>();
  private nextHandle = 1;
  private readonly uid = process.getuid?.() ?? 0;
  private readonly gid = process.getgid?.() ?? 0;
  private readonly startedAt = Date.now();
  private readonly store: Store;
  private readonly node: MountedNode;
  private readonly log: Logger;
  /** Paths already parsed (entries are immutable). */
  private readonly entries = new Map<string, MountEntry | null>();
  /** Every getattr answer of a database file, reused: the binding copies it before the callback returns. */
  private readonly statReply = { mode: 0, size: 0, mtime: 0, atime: 0, ctime: 0, uid: this.uid, gid: this.gid, nlink: 1 };
  /** performance.now() when the handler of the request being handled started; NaN between requests. */
  private handlerStartedAt = NaN;

  constructor(private readonly opts: FileSystemOptions) {
    this.store = opts.store;
    this.node = opts.node;
    this.log = opts.log;
  }

  /** The operations object for the binding (vendor/litefs-fuse). */
  operations(): Record<string, Callback> {
    const ops: Record<string, Callback> = {
      getattr: (p: string, cb: Callback) => this.getattr(p, cb),
      fgetattr: (p: string, _fh: number, cb: Callback) => this.getattr(p, cb),
      readdir: (p: string, cb: Callback) => this.readdir(p, cb),
      open: (p: string, flags: number, cb: Callback) => this.open(p, flags, cb),
      create: (p: string, mode: number, cb: Callback) => this.create(p, mode, cb),
      read: (p: string, fh: number, buf: Buffer, len: number, pos: number, cb: Callback) => this.read(fh, buf, len, pos, cb),
      write: (p: string, fh: number, buf: Buffer, len: number, pos: number, cb: Callback) => this.write(p, fh, buf, len, pos, cb),
      truncate: (p: string, size: number, cb: Callback) => this.truncate(p, size, cb),
      ftruncate: (p: string, fh: number, size: number, cb: Callback) => this.ftruncate(p, fh, size, cb),
      unlink: (p: string, cb: Callback) => this.unlink(p, cb),
      fsync: (p: string, datasync: boolean, fh: number, cb: Callback) => this.fsync(fh, datasync, cb),
      fsyncdir: (_p: string, _datasync: boolean, _fh: number, cb: Callback) => this.fsyncdir(cb),
      // No flush: there is nothing to do at close(), and without the operation the binding answers
      // ENOSYS once, after which the kernel stops sending FLUSH (a round trip per close).
      release: (_p: string, fh: number, cb: Callback) => this.release(fh, cb),
      opendir: (_p: string, _flags: number, cb: Callback) => cb(0, 0),
      releasedir: (_p: string, _fh: number, cb: Callback) => cb(0),
      access: (p: string, _mode: number, cb: Callback) => this.access(p, cb),
      statfs: (_p: string, cb: Callback) => this.statfs(cb),
      utimens: (p: string, _atime: number, _mtime: number, cb: Callback) => this.access(p, cb),
      chmod: (p: string, _mode: number, cb: Callback) => this.access(p, cb),
      chown: (p: string, _uid: number, _gid: number, cb: Callback) => this.access(p, cb),
      mkdir: (p: string, _mode: number, cb: Callback) => this.refuse(p, "subdirectories are not supported on this mount", errno.EPERM, cb),
      rmdir: (p: string, cb: Callback) => this.refuse(p, "subdirectories are not supported on this mount", errno.ENOENT, cb),
      rename: (p: string, dest: string, cb: Callback) =>
        this.refuse(p, `rename to ${dest} is not supported: databases cannot be renamed on this mount`, errno.EPERM, cb),
      link: (p: string, _dest: string, cb: Callback) => this.refuse(p, "hard links are not supported", errno.EPERM, cb),
      symlink: (p: string, _dest: string, cb: Callback) => this.refuse(p, "symlinks are not supported", errno.EPERM, cb),
      mknod: (p: string, _mode: number, _dev: number, cb: Callback) => this.refuse(p, "only regular files are supported", errno.EPERM, cb),
    };
    for (const op of Object.keys(ops)) ops[op] = this.timed(op, ops[op]);
    return ops;
  }

  /**
   * When the handler of the FUSE request being handled right now started (performance.now()),
   * or NaN outside a handler. A handler runs to its reply, or to a commit wait, without
   * yielding: whatever the Store reports meanwhile (a commit) happened inside that request.
   */
  requestStartedAt(): number {
    return this.handlerStartedAt;
  }

  /** Wraps an operation: marks the handler's start and, with an observer, times the request to its answer. */
  private timed(op: string, handler: Callback): Callback {
    const observe = this.opts.observer?.timer(op);
    return (...args: any[]) => {
      const started = performance.now();
      if (observe) {
        const cb = args[args.length - 1] as Callback;
        args[args.length - 1] = (...result: any[]) => {
          observe((performance.now() - started) / 1000);
          cb(...result);
        };
      }
      this.handlerStartedAt = started;
      try {
        handler(...args);
      } finally {
        this.handlerStartedAt = NaN;
      }
    };
  }

  // ---- lookups -----------------------------------------------------------------------------

  private getattr(p: string, cb: Callback): void {
    const entry = this.entryOf(p);
    if (!entry) return cb(errno.ENOENT);
    if (entry.type === "root") return cb(0, this.dirStat());
    try {
      if (entry.type === "database-file") {
        // The hot lookup (SQLite stats its files on every transaction): no node, no new object.
        const db = this.store.database(entry.db);
        const out = this.statReply;
        if (!db || !statDatabaseFile(db, entry.kind, this.node.writeAuthority(db.name), out)) return cb(errno.ENOENT);
        return cb(0, out);
      }
      const st = this.nodeFor(entry)?.stat();
      if (!st) return cb(errno.ENOENT);
      return cb(0, { ...st, uid: this.uid, gid: this.gid, nlink: 1 });
    } catch (err) {
      return cb(this.toErrno(err, p, "stat"));
    }
  }

  /** parseMountPath, remembered: the same few names are looked up over and over. */
  private entryOf(p: string): MountEntry | null {
    let entry = this.entries.get(p);
    if (entry === undefined) {
      entry = parseMountPath(p);
      if (this.entries.size >= MAX_REMEMBERED_ENTRIES) this.entries.clear(); // names probed at random must not grow it forever
      this.entries.set(p, entry);
    }
    return entry;
  }

  private readdir(p: string, cb: Callback): void {
    if (p !== "/") return cb(errno.ENOTDIR);
    const names: string[] = [];
    for (const name of this.store.databaseNames()) {
      const db = this.store.database(name);
      if (!db) continue;
      names.push(name, `${name}-pos`);
      for (const kind of ["journal", "wal", "shm"] as const) if (db.files[kind].exists()) names.push(fileName(name, kind));
    }
    if (this.node.primaryHostname() !== null) names.push(PRIMARY_FILE);
    names.push(LAG_FILE);
    return cb(0, names);
  }

  private nodeFor(entry: MountEntry): DatabaseFileNode | SyntheticFileNode | null {
    switch (entry.type) {
      case "database-file": {
        const db = this.store.database(entry.db);
        if (!db) return null;
        if (entry.kind !== "database" && !db.files[entry.kind].exists()) return null;
        return new DatabaseFileNode(db, entry.kind, this.node.writeAuthority(db.name));
      }
      case "pos": {
        const db = this.store.database(entry.db);
        return db ? posNode(db) : null;
      }
      case "primary": {
        const host = this.node.primaryHostname();
        return host === null ? null : primaryNode(host, this.node.statusVersion());
      }
      case "lag":
        return lagNode(this.node.lagMs(), this.node.statusVersion());
      default:
        return null;
    }
  }

  // ---- open / create / release -------------------------------------------------------------

  private open(p: string, flags: number, cb: Callback, caller = this.opts.callerPid()): void {
    const entry = parseMountPath(p);
    if (!entry || entry.type === "root") return cb(errno.EISDIR);
    const wantsWrite = (flags & 3) !== fs.constants.O_RDONLY;
    const deciding = wantsWrite ? this.node.roleDecided() : null;
    if (deciding) return void deciding.then(() => this.open(p, flags, cb, caller));
    const node = this.nodeFor(entry);
    if (!node) {
      // The kernel opens (never creates) a name it still caches after the Store discarded it (a
      // refused first write): on the primary, a write open gets the empty database it expects.
      if (entry.type === "database-file" && entry.kind === "database" && wantsWrite && this.node.writeAuthority(entry.db) === "primary") return this.create(p, 0o644, cb, caller);
      return cb(errno.ENOENT);
    }
    if (!(node instanceof DatabaseFileNode)) return wantsWrite ? cb(errno.EACCES) : cb(0, this.addHandle({ entry, node, access: "read" }));
    const authority = this.node.writeAuthority(node.db.name);
    const access = accessFor(authority, node.kind, wantsWrite, () => this.opts.isMountAgent(caller));
    if (access === null) {
      // Debug only: every SQLite connection on a replica tries read-write first, then falls back.
      this.log.debug({ path: p, pid: caller }, `${p}: open for writing refused: this node is a replica (write on the primary)`);
      return cb(errno.EACCES);
    }
    return cb(0, this.addHandle({ entry, node, access }));
  }

  private create(p: string, mode: number, cb: Callback, caller = this.opts.callerPid()): void {
    const entry = parseMountPath(p);
    if (!entry || entry.type === "root") return cb(errno.EISDIR);
    const deciding = this.node.roleDecided();
    if (deciding) return void deciding.then(() => this.create(p, mode, cb, caller));
    if (entry.type !== "database-file") return this.refuse(p, "this name is reserved for a file the mount provides", errno.EACCES, cb, caller);
    try {
      const existing = this.store.database(entry.db);
      const authority = this.node.writeAuthority(entry.db);
      // A create is a write open: on a replica, WAL readers may create -wal and -shm, nothing else.
      const access = accessFor(authority, entry.kind, true, () => this.opts.isMountAgent(caller));
      if (access === null) {
        if (entry.kind !== "database") return cb(errno.EACCES); // a SQLite writer on a replica, refused at the database already
        return this.refuse(p, "create refused: this node is a replica: databases are created on the primary", errno.EACCES, cb, caller);
      }
      let db: Database;
      if (entry.kind === "database") {
        db = existing ?? this.store.createDatabase(entry.db);
      } else {
        if (!existing) return cb(errno.ENOENT);
        db = existing;
        db.create(entry.kind);
      }
      const node = new DatabaseFileNode(db, entry.kind, authority);
      return cb(0, this.addHandle({ entry, node, access }));
    } catch (err) {
      return cb(this.toErrno(err, p, "create", caller));
    }
  }

  private release(fh: number, cb: Callback): void {
    this.handles.delete(fh);
    cb(0);
  }

  private addHandle(file: OpenFile): number {
    let fh = this.nextHandle++;
    if (this.nextHandle > 0x7fffffff) this.nextHandle = 1;
    while (this.handles.has(fh)) fh = this.nextHandle++;
    this.handles.set(fh, file);
    return fh;
  }

  // ---- data ---------------------------------------------------------------------------------

  private read(fh: number, buf: Buffer, len: number, pos: number, cb: Callback): void {
    const file = this.handles.get(fh);
    if (!file) return cb(errno.EBADF);
    try {
      if (file.node instanceof SyntheticFileNode) {
        // Made-up content is read as it is now, never as it was at open: libfuse's auto_cache
        // stats the file after our open, and a position that moved in between would otherwise
        // leave old content cached under the new mtime until the next change.
        return cb(this.nodeFor(file.entry)?.read(buf, len, pos) ?? 0);
      }
      return cb(file.node.read(buf, len, pos));
    } catch (err) {
      return cb(this.toErrno(err, this.describe(file), "read"));
    }
  }

  private write(p: string, fh: number, buf: Buffer, len: number, pos: number, cb: Callback): void {
    const file = this.handles.get(fh);
    if (!file) return cb(errno.EBADF);
    if (!(file.node instanceof DatabaseFileNode)) return cb(errno.EACCES);
    const { db, kind } = file.node;
    try {
      const wait = writeWith(file.access, this.node.writeAuthority(db.name), db, kind, buf, len, pos);
      return this.reply(wait, cb, len, p, "write");
    } catch (err) {
      if (err instanceof StoreError && err.code === "STORE_CAPTURE_FAILED" && kind === "wal") {
        // SQLite may already consider this transaction committed: stop; startup recovery repairs.
        this.opts.onFatal(err);
      }
      return cb(this.toErrno(err, p, "write"));
    }
  }

  /** A truncation by path (`truncate(1)`): the caller's access is decided as an open's would be. */
  private truncate(p: string, size: number, cb: Callback): void {
    const caller = this.opts.callerPid();
    const entry = parseMountPath(p);
    const node = entry ? this.nodeFor(entry) : null;
    if (!node) return cb(errno.ENOENT);
    if (!(node instanceof DatabaseFileNode)) return cb(errno.EACCES);
    const authority = this.node.writeAuthority(node.db.name);
    const access = accessFor(authority, node.kind, true, () => this.opts.isMountAgent(caller)) ?? "read";
    this.truncateThrough(access, authority, node, size, p, "truncate", cb, caller);
  }

  private ftruncate(p: string, fh: number, size: number, cb: Callback): void {
    const caller = this.opts.callerPid();
    const file = this.handles.get(fh);
    if (!file) return this.truncate(p, size, cb);
    if (!(file.node instanceof DatabaseFileNode)) return cb(errno.EACCES);
    const authority = this.node.writeAuthority(file.node.db.name);
    this.truncateThrough(file.access, authority, file.node, size, p, "ftruncate", cb, caller);
  }

  private truncateThrough(access: HandleAccess, authority: WriteAuthority, node: DatabaseFileNode, size: number, p: string, op: string, cb: Callback, caller: number): void {
    try {
      return this.reply(truncateWith(access, authority, node.db, node.kind, size), cb, 0, p, op);
    } catch (err) {
      return cb(this.toErrno(err, p, op, caller));
    }
  }

  private unlink(p: string, cb: Callback): void {
    const caller = this.opts.callerPid();
    const entry = parseMountPath(p);
    const node = entry ? this.nodeFor(entry) : null;
    if (!node) return cb(errno.ENOENT);
    if (!(node instanceof DatabaseFileNode)) return this.refuse(p, "this file is provided by the mount and cannot be removed", errno.EACCES, cb, caller);
    try {
      return this.reply(unlinkWith(this.node.writeAuthority(node.db.name), node.db, node.kind), cb, 0, p, "unlink");
    } catch (err) {
      return cb(this.toErrno(err, p, "unlink", caller));
    }
  }

  /**
   * Answers at once, or once a commit the request completed may be acknowledged: other requests
   * are served meanwhile (the binding answers each request whenever its callback runs). A commit
   * that can no longer be acknowledged (STORE_COMMIT_LOST: this node stopped being primary while
   * it waited for replicas) fails with EIO, so SQLite reports an I/O error instead of a success
   * the cluster does not hold. Any other rejection: SQLite could not be told the truth, so the node stops.
   */
  private reply(wait: CommitWait, cb: Callback, result: number, p: string, op: string): void {
    if (wait === null) return cb(result);
    wait.then(
      () => cb(result),
      (err) => {
        if (err instanceof StoreError && err.code === "STORE_COMMIT_LOST") {
          this.log.error({ path: p, op, err: err.message }, "commit not acknowledged: answered with an I/O error");
          return cb(errno.EIO);
        }
        this.log.fatal({ err, path: p, op }, "a commit barrier failed");
        this.opts.onFatal(err);
      },
    );
  }

  /** `datasync`: the app called fdatasync (SQLite on Linux does for every sync), and so do we. */
  private fsync(fh: number, datasync: boolean, cb: Callback): void {
    const file = this.handles.get(fh);
    if (!file) return cb(errno.EBADF);
    try {
      if (file.node instanceof DatabaseFileNode) file.node.db.sync(file.node.kind, datasync);
      return cb(0);
    } catch (err) {
      return cb(this.toErrno(err, this.describe(file), "fsync"));
    }
  }

  /**
   * SQLite fsyncs the mount's directory after creating a journal or WAL: like any fsync it
   * makes the LTX files written so far durable first. The backing folders it names are synced
   * by the core itself.
   */
  private fsyncdir(cb: Callback): void {
    try {
      this.store.syncAllLtx();
      return cb(0);
    } catch (err) {
      return cb(this.toErrno(err, "/", "fsyncdir"));
    }
  }

  private access(p: string, cb: Callback): void {
    const entry = parseMountPath(p);
    if (!entry) return cb(errno.ENOENT);
    if (entry.type === "root") return cb(0);
    return cb(this.nodeFor(entry) ? 0 : errno.ENOENT);
  }

  private statfs(cb: Callback): void {
    try {
      const st = fs.statfsSync(this.store.dataDir);
      return cb(0, {
        bsize: st.bsize,
        frsize: st.bsize,
        blocks: st.blocks,
        bfree: st.bfree,
        bavail: st.bavail,
        files: st.files,
        ffree: st.ffree,
        favail: st.ffree,
        fsid: 0,
        flag: 0,
        namemax: 255,
      });
    } catch (err) {
      return cb(this.toErrno(err, "/", "statfs"));
    }
  }

  // ---- helpers ------------------------------------------------------------------------------

  private dirStat(): object {
    return {
      mode: fs.constants.S_IFDIR | (this.node.isPrimary ? 0o755 : 0o555),
      size: 4096,
      nlink: 2,
      uid: this.uid,
      gid: this.gid,
      mtime: this.startedAt,
      atime: this.startedAt,
      ctime: this.startedAt,
    };
  }

  private refuse(p: string, why: string, code: number, cb: Callback, pid?: number): void {
    this.log.warn({ path: p, pid }, `${p}: ${why}`);
    cb(code);
  }

  private describe(file: OpenFile): string {
    const e = file.entry;
    return e.type === "database-file" ? `/${fileName(e.db, e.kind)}` : e.type;
  }

  /** The database a path belongs to and its TXID, for log lines; empty for the mount's own files. */
  private dbContext(p: string): { db?: string; txid?: number } {
    const entry = parseMountPath(p);
    if (entry?.type !== "database-file") return {};
    return { db: entry.db, txid: this.store.database(entry.db)?.position.txid };
  }

  /** `pid`: the caller, logged with refusals so an operator can tell which process tried. */
  private toErrno(err: unknown, p: string, op: string, pid?: number): number {
    if (err instanceof StoreError) {
      this.log.warn({ path: p, ...this.dbContext(p), op, code: err.code, pid }, err.message);
      switch (err.code) {
        case "STORE_READ_ONLY":
          return errno.EACCES;
        case "STORE_WRITE_OUTSIDE_TRANSACTION":
          return errno.EPERM;
        case "STORE_NOT_A_DATABASE":
        case "STORE_BAD_NAME":
          return errno.EINVAL;
        case "STORE_NOT_FOUND":
          return errno.ENOENT;
        default:
          return errno.EIO;
      }
    }
    const code = (err as NodeJS.ErrnoException)?.code;
    if (!(err instanceof LitefsError) && code && code in E) {
      this.log.warn({ path: p, op, err }, `${op} ${p}: ${code}`);
      return -E[code as keyof typeof E];
    }
    this.log.error({ path: p, ...this.dbContext(p), op, err }, `${op} ${p} failed`);
    return errno.EIO;
  }
}

export type { FileKind };
