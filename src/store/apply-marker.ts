import * as fs from "node:fs";
import * as path from "node:path";
import { formatTxid } from "../ltx/index.js";
import { fsyncFileAsync, syncDirectoryAsync } from "./backing-file.js";

const MARKER_FILE = "applying";

/**
 * `dbs/<name>/applying`: the first TXID of received files whose pages may be in the database
 * file only in part. Written durably before a batch is installed, removed once the database file
 * holds the batch durably and nothing newer is installed. Startup recovery replays the LTX files
 * from that TXID, and only those: without it, a crash mid-apply cannot be told from damage, and
 * the whole retained history had to be replayed to be safe.
 *
 * While it exists it keeps the smallest TXID written (a failed apply leaves pages of files
 * that a later, shorter batch does not overwrite) and the largest TXID those batches reached.
 */
export class ApplyMarker {
  readonly path: string;
  /** The TXID range the file names (null: no file); `through` is kept in memory only. */
  private from: number | null = null;
  private through = 0;

  constructor(
    dir: string,
    private readonly skipSync: boolean,
  ) {
    this.path = path.join(dir, MARKER_FILE);
  }

  /** The TXID the file names; "unreadable" for a file that names none (torn); null when there is none. */
  read(): number | "unreadable" | null {
    let text: string;
    try {
      text = fs.readFileSync(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
    const m = /^([0-9a-f]{16})\n$/.exec(text);
    return m ? parseInt(m[1], 16) : "unreadable";
  }

  /**
   * Records that files `from`..`through` are about to be written into the database. Returns a
   * promise that settles once the record is durable (null: nothing to wait for). The file is
   * written synchronously (the backing filesystem, never the mount); the fsyncs run on the
   * thread pool, alongside those of the batch's files.
   */
  begin(from: number, through: number): Promise<void> | null {
    this.through = Math.max(this.through, through);
    if (this.from !== null && this.from <= from) return null;
    // Through a temporary name: a crash never leaves a marker that names no TXID.
    const tmp = `${this.path}.tmp`;
    fs.writeFileSync(tmp, `${formatTxid(from)}\n`);
    fs.renameSync(tmp, this.path);
    this.from = from;
    if (this.skipSync) return null;
    return Promise.all([fsyncFileAsync(this.path), syncDirectoryAsync(path.dirname(this.path))]).then(() => undefined);
  }

  /**
   * The database file now holds every page up to `txid` durably (the caller fsynced it): the
   * marker goes once no file it covers is ahead of that. Not fsynced: a marker that comes back
   * after a power cut only makes recovery replay files the database already holds.
   */
  end(txid: number, everything = false): void {
    if (this.from === null || (!everything && txid < this.through)) return;
    this.clear();
  }

  /** Removes the marker (recovery resolved it, or the database was replaced or dropped). */
  clear(): void {
    fs.rmSync(this.path, { force: true });
    fs.rmSync(`${this.path}.tmp`, { force: true });
    this.from = null;
    this.through = 0;
  }
}
