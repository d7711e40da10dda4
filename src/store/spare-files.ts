import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";

/** Spare files kept ready; refilled when half are used. */
const DEFAULT_TARGET = 64;
/** Files created at once (libuv's thread pool has 4 threads; the LTX fsync timer needs one). */
const FILLERS = 3;
/** After a failed refill (inodes or space exhausted), the next attempt waits this long. */
const RETRY_AFTER_MS = 1000;
/** Recycled files kept at most, as a multiple of the target (beyond it they are removed). */
const MAX_READY_FACTOR = 2;
/** Where recycled files wait, inside the spare folder. */
const RECYCLED_DIR = "recycled";

/**
 * Empty files created ahead of time on the thread pool and renamed into place when a file is
 * needed: every commit creates an LTX file (and in rollback-journal modes SQLite creates the
 * journal), and on some filesystems creating an inode is the slowest step of a commit (~1 ms on
 * the ext4 of this project's test machines, against ~0.02 ms for a rename: docs/benchmarks.md).
 * The folder must be on the same filesystem as the files' destinations (both under data.dir),
 * and its parent must exist: it is never created, so a fill still running when the data dir is
 * removed cannot bring it back. When none is ready, or the rename fails, the caller creates its
 * file itself.
 *
 * A file that would be removed can be recycled instead (`recycle`): renamed into the pool and
 * emptied. On the ext4 of the test machines (no journal) a removal also makes the next creates
 * slower: the allocator skips, one by one, inodes freed in the last minutes.
 */
export class SpareFiles {
  private readonly ready: string[] = [];
  /** The fill in progress, if any. */
  private filling: Promise<void> | null = null;
  private closed = false;
  private retryAt = 0;
  private seq = 0;
  /** Recycled files being emptied (not ready yet). */
  private emptying = 0;

  constructor(
    private readonly dir: string,
    private readonly target = DEFAULT_TARGET,
  ) {}

  /** Moves a spare (empty) file to `dest`, which must not exist; false when none was ready. */
  take(dest: string): boolean {
    const spare = this.ready.pop();
    this.refill();
    if (spare === undefined) return false;
    try {
      fs.renameSync(spare, dest);
      return true;
    } catch {
      return false; // e.g. EXDEV: dest is on another filesystem; the caller creates it
    }
  }

  /**
   * Removes `file` from its folder by moving it into the pool, where it is emptied before it is
   * handed out again; false (nothing moved) when the pool is full or closed, or the rename fails:
   * the caller then removes the file itself. The name goes at once, as with unlink, so only a
   * file nobody reads any more may be recycled: a reader's descriptor would see it emptied.
   */
  recycle(file: string): boolean {
    if (this.closed || this.ready.length + this.emptying >= this.target * MAX_READY_FACTOR) return false;
    const dest = path.join(this.dir, RECYCLED_DIR, String(++this.seq));
    try {
      fs.renameSync(file, dest); // fails until a first fill has made the folder
    } catch {
      return false;
    }
    this.emptying++;
    fsp.truncate(dest, 0).then(
      () => {
        this.emptying--;
        if (this.closed) return; // left for the folder's removal at the next start
        this.ready.push(dest);
      },
      () => {
        this.emptying--;
        fs.rm(dest, { force: true }, () => undefined);
      },
    );
    return true;
  }

  /**
   * Stops refilling; resolves once a fill in progress has stopped. The spares left are removed
   * with the folder at the next start.
   */
  close(): Promise<void> {
    this.closed = true;
    return this.filling ?? Promise.resolve();
  }

  private refill(): void {
    if (this.filling || this.closed || this.ready.length > this.target / 2 || Date.now() < this.retryAt) return;
    this.filling = this.fill()
      .catch(() => {
        this.retryAt = Date.now() + RETRY_AFTER_MS; // no inode or no space: callers create their files meanwhile
      })
      .finally(() => {
        this.filling = null;
      });
  }

  /**
   * Creates files until `target` are ready, FILLERS at a time, each in its own folder: creates in
   * one folder wait for each other (its lock), in separate folders they overlap (~4x faster here).
   */
  private async fill(): Promise<void> {
    await mkdirIfMissing(this.dir);
    await mkdirIfMissing(path.join(this.dir, RECYCLED_DIR));
    const filler = async (i: number) => {
      const dir = path.join(this.dir, String(i));
      await mkdirIfMissing(dir);
      while (!this.closed && this.ready.length < this.target) {
        const file = path.join(dir, String(++this.seq));
        await (await fsp.open(file, "wx", 0o644)).close();
        this.ready.push(file);
      }
    };
    await Promise.all(Array.from({ length: FILLERS }, (_, i) => filler(i)));
  }
}

/** Creates one folder (never its parents); one that exists is fine. */
async function mkdirIfMissing(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}
