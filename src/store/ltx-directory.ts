import * as fs from "node:fs";
import * as path from "node:path";
import * as fsp from "node:fs/promises";
import {
  HEADER_SIZE,
  LtxEncoder,
  TRAILER_SIZE,
  decodeHeader,
  decodeTrailer,
  formatLtxFilename,
  parseLtxFilename,
  type LtxHeader,
} from "../ltx/index.js";
import { syncFilesystem, syncFilesystemSync } from "../os/syncfs.js";
import { fsyncFile, fsyncFileAsync, syncDirectory, syncDirectoryAsync } from "./backing-file.js";
import type { SpareFiles } from "./spare-files.js";

export interface LtxFileInfo {
  minTxid: number;
  maxTxid: number;
  path: string;
}

export interface WrittenLtx {
  path: string;
  size: number;
  fileChecksum: bigint;
}

const TMP_SUFFIX = ".tmp";
/** Up to this many pending files the timer fsyncs one by one; more are made durable with one syncfs. */
const FSYNC_EACH_UP_TO = 2;
const WRITE_BUFFER_SIZE = 256 * 1024;

/**
 * The `ltx/` folder of one database: committed transaction files named `min-max.ltx`.
 *
 * A commit's file is written in place under its final name, in one synchronous call (nothing
 * else on the event loop can see it half-written), and is durable only when asked: either at
 * once (`write(..., durable)`) or later with every other pending file (`syncPending`, called
 * when SQLite fsyncs, and `syncPendingAsync`, the daemon's timer). No temporary name, rename or
 * per-file folder fsync: a file torn by a crash is told from a good one by its trailer's file
 * checksum, and startup recovery discards it (recover.ts).
 */
export class LtxDirectory {
  /** Files written but not yet fsynced (paths); their folder entries are pending too. */
  private readonly pending = new Set<string>();
  /** Bumped by every write that leaves something pending; the folder is synced up to `syncedGen`. */
  private writeGen = 0;
  private syncedGen = 0;

  constructor(
    readonly dir: string,
    private readonly skipSync: boolean,
    private readonly spares?: SpareFiles,
  ) {}

  /** Whether files written since the last sync await their fsync. */
  get hasPending(): boolean {
    return this.writeGen !== this.syncedGen;
  }

  /**
   * Makes every file written so far durable (each file, then the folder), synchronously: for a
   * FUSE fsync, which must not return before they are. Files the timer is syncing right now are
   * still in `pending` and are synced again here (an fsync of a clean file is cheap).
   */
  syncPending(): void {
    if (!this.hasPending) return;
    const gen = this.writeGen;
    // A WAL checkpoint's fsync can find a thousand files pending: one syncfs, not a thousand fsyncs.
    if (this.pending.size <= FSYNC_EACH_UP_TO || !syncFilesystemSync(this.dir)) {
      for (const file of this.pending) fsyncFile(file, true);
      syncDirectory(this.dir);
    }
    this.pending.clear();
    this.syncedGen = gen;
  }

  /** As `syncPending`, on the thread pool: what the daemon's timer calls, off the FUSE thread. */
  async syncPendingAsync(): Promise<void> {
    if (!this.hasPending) return;
    const gen = this.writeGen;
    const batch = [...this.pending];
    // Past a couple of files one syncfs (files and folder) beats an fsync each (see src/os/syncfs.ts).
    if (batch.length <= FSYNC_EACH_UP_TO || !(await syncFilesystem(this.dir))) {
      for (const file of batch) await fsyncFileAsync(file, true);
      await syncDirectoryAsync(this.dir);
    }
    for (const file of batch) this.pending.delete(file);
    if (this.syncedGen < gen) this.syncedGen = gen;
  }

  ensure(): void {
    fs.mkdirSync(this.dir, { recursive: true });
  }

  /** Files sorted by TXID. */
  list(): LtxFileInfo[] {
    const files: LtxFileInfo[] = [];
    for (const name of this.names()) {
      const parsed = parseLtxFilename(name);
      if (parsed) files.push({ ...parsed, path: path.join(this.dir, name) });
    }
    return files.sort((a, b) => a.maxTxid - b.maxTxid);
  }

  /** Temporary files left by a crash mid-write; called at startup only. */
  removeLeftovers(): number {
    const leftovers = this.names().filter((name) => name.endsWith(TMP_SUFFIX));
    for (const name of leftovers) fs.rmSync(path.join(this.dir, name), { force: true });
    return leftovers.length;
  }

  private names(): string[] {
    try {
      return fs.readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  }

  latest(): LtxFileInfo | null {
    const files = this.list();
    return files.length ? files[files.length - 1] : null;
  }

  pathOf(minTxid: number, maxTxid: number): string {
    return path.join(this.dir, formatLtxFilename(minTxid, maxTxid));
  }
  /** The post-apply checksum in the trailer of the file for `minTxid`..`maxTxid`; null when there is none (or it is unreadable). */
  postApplyChecksumOf(minTxid: number, maxTxid: number): bigint | null {
    try {
      return readPostApplyChecksum(this.pathOf(minTxid, maxTxid));
    } catch {
      return null;
    }
  }


  /**
   * Writes one LTX file under its final name. `fill` receives the encoder and adds the pages; it
   * returns the post-apply checksum for the trailer. `durable`: fsynced with its folder before
   * this returns (along with every pending file); otherwise pending until the next sync.
   */
  write(header: LtxHeader, compress: boolean, fill: (enc: LtxEncoder) => bigint, durable: boolean): WrittenLtx {
    const finalPath = this.pathOf(header.minTxid, header.maxTxid);
    const written = this.encode(finalPath, header, compress, fill, durable && !this.skipSync, true);
    if (this.skipSync) return written;
    this.writeGen++;
    if (durable) this.syncPending(); // the files still pending before it, and the folder
    else this.pending.add(finalPath);
    return written;
  }

  /** Encodes an LTX file at `filePath` and fsyncs it (unless skip-sync); removed again on failure. */
  writeTo(filePath: string, header: LtxHeader, compress: boolean, fill: (enc: LtxEncoder) => bigint): WrittenLtx {
    return this.encode(filePath, header, compress, fill, !this.skipSync);
  }

  private encode(
    filePath: string,
    header: LtxHeader,
    compress: boolean,
    fill: (enc: LtxEncoder) => bigint,
    fsync: boolean,
    useSpare = false,
  ): WrittenLtx {
    // A commit's file: a spare renamed into place (empty) when one is ready, instead of a create.
    const fd = useSpare && this.spares?.take(filePath) ? fs.openSync(filePath, "r+") : fs.openSync(filePath, "w", 0o644);
    try {
      const out = new BufferedWriter(fd);
      const enc = new LtxEncoder(header, (chunk) => out.write(chunk), { compress });
      const postApplyChecksum = fill(enc);
      const result = enc.finish(postApplyChecksum);
      out.flush();
      if (fsync) fs.fsyncSync(fd);
      fs.closeSync(fd);
      return { path: filePath, size: result.size, fileChecksum: result.fileChecksum };
    } catch (err) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
      fs.rmSync(filePath, { force: true });
      throw err;
    }
  }

  /** Moves an already-verified file (received from the primary) into place durably. */
  install(srcPath: string, minTxid: number, maxTxid: number): string {
    const finalPath = this.pathOf(minTxid, maxTxid);
    fs.renameSync(srcPath, finalPath);
    if (!this.skipSync) syncDirectory(this.dir);
    return finalPath;
  }

  remove(files: readonly LtxFileInfo[]): void {
    for (const f of files) {
      fs.rmSync(f.path, { force: true });
      this.pending.delete(f.path);
    }
    if (files.length && !this.skipSync) syncDirectory(this.dir);
  }

  /** A temporary path in this folder for a file being received. */
  tempPath(label: string): string {
    return path.join(this.dir, `${label}.${process.pid}.${Date.now()}${TMP_SUFFIX}`);
  }
}

/** Coalesces the encoder's small chunks into large writes. */
export class BufferedWriter {
  private buf = Buffer.allocUnsafe(WRITE_BUFFER_SIZE);
  private used = 0;

  constructor(private readonly fd: number) {}

  write(chunk: Uint8Array): void {
    if (chunk.length >= WRITE_BUFFER_SIZE) {
      this.flush();
      writeAll(this.fd, chunk);
      return;
    }
    if (this.used + chunk.length > WRITE_BUFFER_SIZE) this.flush();
    this.buf.set(chunk, this.used);
    this.used += chunk.length;
  }

  flush(): void {
    if (this.used > 0) writeAll(this.fd, this.buf.subarray(0, this.used));
    this.used = 0;
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done);
}

/** The post-apply checksum in an LTX file's trailer (its last TRAILER_SIZE bytes). */
export function readPostApplyChecksum(file: string): bigint {
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const tail = Buffer.alloc(TRAILER_SIZE);
    fs.readSync(fd, tail, 0, TRAILER_SIZE, size - TRAILER_SIZE);
    return decodeTrailer(tail).postApplyChecksum;
  } finally {
    fs.closeSync(fd);
  }
}

/** The header, post-apply checksum and size of a local LTX file, from its first and last bytes. */
export async function readLtxEnds(file: string): Promise<{ header: LtxHeader; postApplyChecksum: bigint; size: number }> {
  const fh = await fsp.open(file, "r");
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(HEADER_SIZE);
    await fh.read(head, 0, HEADER_SIZE, 0);
    const tail = Buffer.alloc(TRAILER_SIZE);
    await fh.read(tail, 0, TRAILER_SIZE, Math.max(0, size - TRAILER_SIZE));
    return { header: decodeHeader(head, file), postApplyChecksum: decodeTrailer(tail).postApplyChecksum, size };
  } finally {
    await fh.close();
  }
}
