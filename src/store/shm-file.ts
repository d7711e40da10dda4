import * as fs from "node:fs";
import { BackingFile } from "./backing-file.js";

/** One wal-index block (SQLite's WALINDEX_PGSZ): the index of the first 4,062 WAL frames. */
const WAL_INDEX_BLOCK = 32 * 1024;
/** Space kept past the size SQLite sees; more than this is given back when the file shrinks. */
const MAX_KEPT = 4 * 1024 * 1024;
const ZEROS = Buffer.alloc(64 * 1024);

/**
 * The backing file of a database's `-shm`, which keeps its disk space. SQLite's first connection
 * truncates the -shm to 3 bytes and grows it again (a byte written at the end of each 4 KiB
 * page), and the last one to close after a checkpoint unlinks it; so on a full data dir every new
 * WAL connection failed with ENOSPC ("disk I/O error") and a replica could not serve its last
 * state. Here the file on disk never shrinks below what it held (up to 4 MiB, and at least one
 * 32 KiB wal-index block from its creation) while the mount sees the sizes SQLite made:
 *
 * - a logical size: reads stop there, stat reports it, writes past it extend it;
 * - a truncation zeroes the bytes past the new size in place (a file that shrank reads back zeros
 *   where it grows again, as POSIX says; a stale wal-index header must never reappear), which
 *   needs no new blocks;
 * - an unlink hides the file (lookups miss it) and keeps its blocks; creating it again starts
 *   from an empty, zeroed file.
 *
 * The -shm holds nothing durable (SQLite rebuilds it from the WAL), so none of this state has
 * to survive a restart: the file on disk is its contents followed by zeros.
 */
export class ShmBackingFile extends BackingFile {
  /** What the mount sees; null until first needed (then the size on disk). */
  private logical: number | null = null;
  /** Unlinked through the mount: absent for lookups, blocks kept on disk. */
  private hidden = false;

  override exists(): boolean {
    return !this.hidden && super.exists();
  }

  override open(create = false): number {
    if (this.hidden) {
      if (!create) throw Object.assign(new Error(`ENOENT: ${this.path} was unlinked`), { code: "ENOENT" });
      // Created again: empty, and its old bytes must not show through when it grows.
      const fd = super.open(true);
      this.hidden = false;
      this.zero(0, this.physicalSize());
      this.logical = 0;
      return fd;
    }
    const existed = super.exists();
    const fd = super.open(create);
    if (!existed) {
      this.logical = 0;
      this.reserve(WAL_INDEX_BLOCK);
    }
    return fd;
  }

  override size(): number {
    if (this.hidden) return 0;
    return this.logicalSize();
  }

  override stat(): fs.Stats | null {
    if (this.hidden) return null;
    const st = super.stat();
    if (st) st.size = this.logicalSize();
    return st;
  }

  override read(buf: Uint8Array, length: number, position: number, offset = 0): number {
    const end = Math.min(position + length, this.size());
    if (end <= position) return 0;
    return super.read(buf, end - position, position, offset);
  }

  override readAt(position: number, length: number): Buffer {
    const buf = Buffer.alloc(length);
    if (this.exists()) this.read(buf, length, position);
    return buf;
  }

  override write(buf: Uint8Array, length: number, position: number, offset = 0): void {
    const size = this.logicalSize();
    super.write(buf, length, position, offset);
    this.logical = Math.max(size, position + length);
  }

  override truncate(size: number): void {
    this.open(true);
    const physical = this.physicalSize();
    if (size >= physical) {
      super.truncate(size);
      this.logical = size;
      return;
    }
    // Shrinking: keep the blocks (up to MAX_KEPT), zeroed past the new size.
    const keep = Math.max(size, Math.min(physical, MAX_KEPT));
    if (keep < physical) super.truncate(keep);
    this.zero(size, keep);
    this.logical = size;
  }

  override unlink(): void {
    if (this.hidden || !super.exists()) return;
    this.logical = 0;
    this.hidden = true;
    this.close();
  }

  private logicalSize(): number {
    this.logical ??= super.exists() ? this.physicalSize() : 0;
    return this.logical;
  }

  private physicalSize(): number {
    return super.stat()?.size ?? 0;
  }

  /** Grows the file on disk to `bytes` with zeros, best effort: a full disk just keeps it smaller. */
  private reserve(bytes: number): void {
    const physical = this.physicalSize();
    if (physical >= bytes) return;
    try {
      super.write(ZEROS, bytes - physical, physical);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
    }
  }

  private zero(from: number, to: number): void {
    for (let at = from; at < to; at += ZEROS.length) super.write(ZEROS, Math.min(ZEROS.length, to - at), at);
  }
}
