import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";

/** Spare files kept ready; refilled when half are used. */
const DEFAULT_TARGET = 64;
/** Files created at once (libuv's thread pool has 4 threads; the LTX fsync timer needs one). */
const FILLERS = 3;
/** After a failed refill (inodes or space exhausted), the next attempt waits this long. */
const RETRY_AFTER_MS = 1000;

/**
 * Empty files created ahead of time on the thread pool and renamed into place when a file is
 * needed: every commit creates an LTX file (and in rollback-journal modes SQLite creates the
 * journal), and on some filesystems creating an inode is the slowest step of a commit (~1 ms on
 * the ext4 of this project's test machines, against ~0.02 ms for a rename: docs/benchmarks.md).
 * The folder must be on the same filesystem as the files' destinations (both under data.dir),
 * and its parent must exist: it is never created, so a fill still running when the data dir is
 * removed cannot bring it back. When none is ready, or the rename fails, the caller creates its
 * file itself.
 */
export class SpareFiles {
  private readonly ready: string[] = [];
  /** The fill in progress, if any. */
  private filling: Promise<void> | null = null;
  private closed = false;
  private retryAt = 0;
  private seq = 0;

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
