import * as fs from "node:fs";
import * as os from "node:os";
import type { Logger } from "pino";
import { LitefsError } from "../errors.js";
import type { Database, FileKind } from "../store/database.js";
import { StoreError } from "../store/errors.js";
import { APPLY_OPEN_FLAG } from "./apply-protocol.js";
import { DatabaseFileNode } from "./database-node.js";
import type { MountedStore } from "./mounted-store.js";
import { LAG_FILE, PRIMARY_FILE, fileName, parseMountPath, type MountEntry } from "./names.js";
import { SyntheticFileNode, lagNode, posNode, primaryNode } from "./synthetic-nodes.js";

type Callback = (...args: any[]) => void;

const E = os.constants.errno;
/** fuse-native wants negative errno values. */
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
  writable: boolean;
}

/** Called when capture fails after SQLite may already believe it committed (WAL). */
export type FatalHandler = (err: unknown) => void;

/**
 * The fuse-native operations for the mount: one flat directory of databases and their
 * companion files. Each FUSE request does one lookup, one backing I/O and one callback; errors
 * from the core become errno values with a log line that says why.
 */
export class FileSystem {
  private readonly handles = new Map<number, OpenFile>();
  private nextHandle = 1;
  private readonly uid = process.getuid?.() ?? 0;
  private readonly gid = process.getgid?.() ?? 0;
  private readonly startedAt = Date.now();
  private readonly isPrimary = (): boolean => this.store.isPrimary;

  constructor(
    private readonly store: MountedStore,
    private readonly dataDir: string,
    private readonly log: Logger,
    private readonly onFatal: FatalHandler,
  ) {}

  /** The operations object for fuse-native. */
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
      fsync: (p: string, _datasync: boolean, fh: number, cb: Callback) => this.fsync(fh, cb),
      fsyncdir: (_p: string, _datasync: boolean, _fh: number, cb: Callback) => this.fsyncdir(cb),
      flush: (_p: string, _fh: number, cb: Callback) => cb(0),
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
    return ops;
  }

  // ---- lookups -----------------------------------------------------------------------------

  private getattr(p: string, cb: Callback): void {
    const entry = parseMountPath(p);
    if (!entry) return cb(errno.ENOENT);
    if (entry.type === "root") return cb(0, this.dirStat());
    const node = this.nodeFor(entry);
    if (!node) return cb(errno.ENOENT);
    try {
      const st = node.stat();
      if (!st) return cb(errno.ENOENT);
      return cb(0, { ...st, uid: this.uid, gid: this.gid, nlink: 1 });
    } catch (err) {
      return cb(this.toErrno(err, p, "stat"));
    }
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
    if (this.store.primaryHostname() !== null) names.push(PRIMARY_FILE);
    names.push(LAG_FILE);
    return cb(0, names);
  }

  private nodeFor(entry: MountEntry): DatabaseFileNode | SyntheticFileNode | null {
    switch (entry.type) {
      case "database-file": {
        const db = this.store.database(entry.db);
        if (!db) return null;
        if (entry.kind !== "database" && !db.files[entry.kind].exists()) return null;
        return new DatabaseFileNode(db, entry.kind, this.isPrimary);
      }
      case "pos": {
        const db = this.store.database(entry.db);
        return db ? posNode(db) : null;
      }
      case "primary": {
        const host = this.store.primaryHostname();
        return host === null ? null : primaryNode(host, this.store.statusVersion());
      }
      case "lag":
        return lagNode(this.store.lagMs(), this.store.statusVersion());
      default:
        return null;
    }
  }

  // ---- open / create / release -------------------------------------------------------------

  private open(p: string, flags: number, cb: Callback): void {
    const entry = parseMountPath(p);
    if (!entry || entry.type === "root") return cb(errno.EISDIR);
    const node = this.nodeFor(entry);
    if (!node) return cb(errno.ENOENT);
    const wantsWrite = (flags & 3) !== fs.constants.O_RDONLY;
    if (wantsWrite && node instanceof DatabaseFileNode && !this.store.isPrimary && (flags & APPLY_OPEN_FLAG) !== 0) {
      // The apply agent's handle: the only writer of a replica's database.
      const applyNode = new DatabaseFileNode(node.db, node.kind, this.isPrimary, true);
      return cb(0, this.addHandle({ entry, node: applyNode, writable: true }));
    }
    if (wantsWrite && !node.canOpenForWrite()) return cb(errno.EACCES);
    return cb(0, this.addHandle({ entry, node, writable: wantsWrite }));
  }

  private create(p: string, _mode: number, cb: Callback): void {
    const entry = parseMountPath(p);
    if (!entry || entry.type === "root") return cb(errno.EISDIR);
    if (entry.type !== "database-file") return this.refuse(p, "this name is reserved for a file the mount provides", errno.EACCES, cb);
    try {
      let db: Database | undefined;
      if (entry.kind === "database") {
        if (!this.store.isPrimary) return this.refuse(p, "this node is a replica: databases are created on the primary", errno.EACCES, cb);
        db = this.store.database(entry.db) ?? this.store.createDatabase(entry.db);
      } else {
        db = this.store.database(entry.db);
        if (!db) return cb(errno.ENOENT);
        const node = new DatabaseFileNode(db, entry.kind, this.isPrimary);
        if (!node.canCreate()) return cb(errno.EACCES);
        db.create(entry.kind);
      }
      const node = new DatabaseFileNode(db, entry.kind, this.isPrimary);
      return cb(0, this.addHandle({ entry, node, writable: true }));
    } catch (err) {
      return cb(this.toErrno(err, p, "create"));
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
      return cb(file.node.read(buf, len, pos));
    } catch (err) {
      return cb(this.toErrno(err, this.describe(file), "read"));
    }
  }

  private write(p: string, fh: number, buf: Buffer, len: number, pos: number, cb: Callback): void {
    const file = this.handles.get(fh);
    if (!file) return cb(errno.EBADF);
    if (!(file.node instanceof DatabaseFileNode)) return cb(errno.EACCES);
    try {
      file.node.write(buf, len, pos);
      return cb(len);
    } catch (err) {
      if (err instanceof StoreError && err.code === "STORE_CAPTURE_FAILED" && file.node.kind === "wal") {
        // SQLite may already consider this transaction committed: stop; startup recovery repairs.
        this.onFatal(err);
      }
      return cb(this.toErrno(err, p, "write"));
    }
  }

  private truncate(p: string, size: number, cb: Callback): void {
    const entry = parseMountPath(p);
    const node = entry ? this.nodeFor(entry) : null;
    if (!node) return cb(errno.ENOENT);
    if (!(node instanceof DatabaseFileNode)) return cb(errno.EACCES);
    try {
      node.truncate(size);
      return cb(0);
    } catch (err) {
      return cb(this.toErrno(err, p, "truncate"));
    }
  }

  private ftruncate(p: string, fh: number, size: number, cb: Callback): void {
    const file = this.handles.get(fh);
    if (!file) return this.truncate(p, size, cb);
    if (!(file.node instanceof DatabaseFileNode)) return cb(errno.EACCES);
    try {
      file.node.truncate(size);
      return cb(0);
    } catch (err) {
      return cb(this.toErrno(err, p, "ftruncate"));
    }
  }

  private unlink(p: string, cb: Callback): void {
    const entry = parseMountPath(p);
    const node = entry ? this.nodeFor(entry) : null;
    if (!node) return cb(errno.ENOENT);
    if (!(node instanceof DatabaseFileNode)) return this.refuse(p, "this file is provided by the mount and cannot be removed", errno.EACCES, cb);
    try {
      node.unlink();
      return cb(0);
    } catch (err) {
      return cb(this.toErrno(err, p, "unlink"));
    }
  }

  private fsync(fh: number, cb: Callback): void {
    const file = this.handles.get(fh);
    if (!file) return cb(errno.EBADF);
    try {
      if (file.node instanceof DatabaseFileNode) file.node.sync();
      return cb(0);
    } catch (err) {
      return cb(this.toErrno(err, this.describe(file), "fsync"));
    }
  }

  /** Every database directory that changed is synced by the core itself; this covers the rest. */
  private fsyncdir(cb: Callback): void {
    cb(0);
  }

  private access(p: string, cb: Callback): void {
    const entry = parseMountPath(p);
    if (!entry) return cb(errno.ENOENT);
    if (entry.type === "root") return cb(0);
    return cb(this.nodeFor(entry) ? 0 : errno.ENOENT);
  }

  private statfs(cb: Callback): void {
    try {
      const st = fs.statfsSync(this.dataDir);
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
      mode: fs.constants.S_IFDIR | (this.store.isPrimary ? 0o755 : 0o555),
      size: 4096,
      nlink: 2,
      uid: this.uid,
      gid: this.gid,
      mtime: this.startedAt,
      atime: this.startedAt,
      ctime: this.startedAt,
    };
  }

  private refuse(p: string, why: string, code: number, cb: Callback): void {
    this.log.warn({ path: p }, why);
    cb(code);
  }

  private describe(file: OpenFile): string {
    const e = file.entry;
    return e.type === "database-file" ? `/${fileName(e.db, e.kind)}` : e.type;
  }

  private toErrno(err: unknown, p: string, op: string): number {
    if (err instanceof StoreError) {
      this.log.warn({ path: p, op, code: err.code }, err.message);
      switch (err.code) {
        case "STORE_READ_ONLY":
          return errno.EACCES;
        case "STORE_NOT_A_DATABASE":
        case "STORE_UNALIGNED_WRITE":
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
    this.log.error({ path: p, op, err }, `${op} ${p} failed`);
    return errno.EIO;
  }
}

export type { FileKind };
