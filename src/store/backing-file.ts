import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import type { SpareFiles } from "./spare-files.js";
import type { RepairFile } from "./sqlite-repair.js";

/** The read-ahead buffer of whole-file page passes (start-up recovery: see BackingFile.pageReader). */
export const PAGE_READ_AHEAD_BYTES = 4 << 20;

/**
 * One file under data.dir that backs a file of the mount. All I/O is synchronous on purpose:
 * it is called from FUSE handlers, and sync I/O on the *backing* filesystem is both safe and
 * faster than a round trip through the thread pool (DESIGN.md section 9). Never use this on the
 * mount itself.
 */
export class BackingFile {
  private fd: number | null = null;

  /** `spares`: where a file about to be created comes from (a rename is cheaper than a create: spare-files.ts). */
  constructor(
    readonly path: string,
    private readonly spares?: SpareFiles,
  ) {}

  exists(): boolean {
    return this.fd !== null || fs.existsSync(this.path);
  }

  /** Opens (creating when asked) and returns the descriptor; kept open until `close`. */
  open(create = false): number {
    if (this.fd === null) {
      if (create && this.spares && !fs.existsSync(this.path)) this.spares.take(this.path);
      this.fd = fs.openSync(this.path, create ? fs.constants.O_RDWR | fs.constants.O_CREAT : fs.constants.O_RDWR, 0o644);
    }
    return this.fd;
  }

  size(): number {
    if (this.fd !== null) return fs.fstatSync(this.fd).size;
    try {
      return fs.statSync(this.path).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw err;
    }
  }

  stat(): fs.Stats | null {
    try {
      return this.fd !== null ? fs.fstatSync(this.fd) : fs.statSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** Reads up to `length` bytes at `position`; short only at end of file. */
  read(buf: Uint8Array, length: number, position: number, offset = 0): number {
    const fd = this.open();
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, buf, offset + done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /** Reads exactly `length` bytes (zero-filled past end of file). */
  readAt(position: number, length: number): Buffer {
    const buf = Buffer.alloc(length);
    if (this.exists()) this.read(buf, length, position);
    return buf;
  }

  /**
   * A reader of pages (numbered from 1), for passes in page order: a page that follows the last
   * one read starts a read ahead whose window doubles while the pages keep following, so a whole
   * file, or a bulk transaction's thousands of contiguous pages, cost a few dozen reads and no
   * allocation per page, and a page elsewhere reads only itself. The window is at most
   * `readAhead`'s size when one is given (its contents are overwritten: passes one after the
   * other share one buffer instead of each leaving megabytes for the garbage collector), else
   * 1 MB. A page is valid until the next call; zero-filled past end of file, as `readAt`.
   */
  pageReader(pageSize: number, readAhead?: Buffer): (pgno: number) => Uint8Array {
    const maxPages = Math.floor((readAhead?.length ?? 1 << 20) / pageSize);
    if (maxPages < 1) throw new RangeError(`a read-ahead buffer of ${readAhead?.length} bytes cannot hold a ${pageSize}-byte page`);
    let buf = readAhead ?? Buffer.alloc(0);
    let first = 0;
    let count = 0;
    let window = 1;
    return (pgno) => {
      if (pgno < first || pgno >= first + count) {
        window = pgno === first + count ? Math.min(window * 2, maxPages) : 1;
        if (buf.length < window * pageSize) buf = Buffer.allocUnsafe(window * pageSize);
        first = pgno;
        count = window;
        const got = this.exists() ? this.read(buf, window * pageSize, (pgno - 1) * pageSize) : 0;
        buf.fill(0, got, window * pageSize);
      }
      const at = (pgno - first) * pageSize;
      return buf.subarray(at, at + pageSize);
    };
  }

  write(buf: Uint8Array, length: number, position: number, offset = 0): void {
    const fd = this.open(true);
    let done = 0;
    while (done < length) done += fs.writeSync(fd, buf, offset + done, length - done, position + done);
  }

  truncate(size: number): void {
    fs.ftruncateSync(this.open(true), size);
  }

  /** `dataOnly`: fdatasync (the data and the size, not the timestamps). */
  sync(dataOnly = false): void {
    if (this.fd === null) return;
    if (dataOnly) fs.fdatasyncSync(this.fd);
    else fs.fsyncSync(this.fd);
  }

  /**
   * This file as sqlite-repair.ts's RepairFile: writes and truncation create it if needed, reads
   * past its end are zero-filled.
   */
  asRepairFile(): RepairFile {
    return {
      size: () => this.size(),
      read: (offset, length) => this.readAt(offset, length),
      write: (data, offset) => this.write(data, data.length, offset),
      truncate: (size) => this.truncate(size),
    };
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  /**
   * Removes the file. `recycle`: into the spare pool instead, when there is one with room
   * (spare-files.ts); only for a file no other descriptor reads (the journal at its commit).
   */
  unlink(recycle = false): void {
    this.close();
    if (recycle && this.spares?.recycle(this.path)) return;
    try {
      fs.unlinkSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}

/** fsync a directory so a created, renamed or removed entry in it is durable. */
export function syncDirectory(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** As `syncDirectory`, on the thread pool. */
export async function syncDirectoryAsync(dir: string): Promise<void> {
  const fh = await fsp.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a file by path; `missingOk`: one removed meanwhile (retention) needs nothing. */
export function fsyncFile(file: string, missingOk = false): void {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (err) {
    if (missingOk && (err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** As `fsyncFile`, on the thread pool. */
export async function fsyncFileAsync(file: string, missingOk = false): Promise<void> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, "r");
  } catch (err) {
    if (missingOk && (err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
