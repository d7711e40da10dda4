import * as fsp from "node:fs/promises";
import type { Readable } from "node:stream";
import { decodeLtxStream, formatChecksum, isSnapshot, type LtxHeader, type LtxTrailer } from "../ltx/index.js";

/** The file's header does not apply to the position asked for (a different chain). Nothing was written. */
export class ChainMismatch extends Error {
  constructor(readonly header: LtxHeader) {
    super(`pre-apply checksum ${formatChecksum(header.preApplyChecksum)} does not fit`);
  }
}

/** Up to this many bytes of consecutive pages are written to the file at once. */
const RUN_BYTES = 1 << 20;

/**
 * A database being rebuilt from LTX files, in a plain file: page N at (N - 1) x page size, the
 * way SQLite lays it out, so a restore's result is this file itself. Pages are written as each
 * file is decoded and never held whole: a 1 GB database needs no 1 GB of memory. `touched`
 * records the pages written (compaction re-encodes only those).
 */
export class PageFile {
  pageSize = 0;
  commit = 0;
  readonly touched = new Set<number>();
  private run: { start: number; pages: Uint8Array[] } | null = null;
  private runBytes = 0;

  private constructor(
    readonly path: string,
    private readonly fh: fsp.FileHandle,
  ) {}

  static async create(path: string): Promise<PageFile> {
    return new PageFile(path, await fsp.open(path, "w+", 0o644));
  }

  /**
   * Decodes one LTX file from `source` and writes its pages here. `expectPre`: the checksum the
   * database has now; a file that applies to another one throws ChainMismatch before any page is
   * written (snapshots apply to anything). Any other damage throws the decoder's LtxError, and
   * the pages written before it make this file unusable.
   */
  async apply(source: Readable, expectPre: bigint | null, name: string): Promise<{ header: LtxHeader; trailer: LtxTrailer }> {
    let header: LtxHeader | null = null;
    try {
      for await (const ev of decodeLtxStream(source, { name })) {
        if (ev.type === "header") {
          header = ev.header;
          if (expectPre !== null && !isSnapshot(header) && header.preApplyChecksum !== expectPre) throw new ChainMismatch(header);
          if (this.pageSize !== 0 && header.pageSize !== this.pageSize && !isSnapshot(header)) {
            throw new ChainMismatch(header);
          }
          this.pageSize = header.pageSize;
          if (isSnapshot(header)) await this.reset();
        } else if (ev.type === "page") {
          await this.writePage(ev.pgno, ev.data);
        } else {
          await this.flush();
          this.commit = header!.commit;
          return { header: header!, trailer: ev.trailer };
        }
      }
    } finally {
      this.run = null;
      this.runBytes = 0;
      source.destroy();
    }
    throw new Error(`${name}: ended without a trailer`); // decodeLtxStream throws first
  }

  /** Reads page `pgno` as written (zeros if it never was). */
  async readPage(pgno: number): Promise<Uint8Array> {
    const buf = Buffer.alloc(this.pageSize);
    await this.fh.read(buf, 0, this.pageSize, (pgno - 1) * this.pageSize);
    return buf;
  }

  /** Cuts the file to `commit` pages and makes it durable. */
  async finish(): Promise<void> {
    await this.fh.truncate(this.commit * this.pageSize);
    await this.fh.sync();
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }

  private async reset(): Promise<void> {
    await this.fh.truncate(0);
    this.touched.clear();
  }

  private async writePage(pgno: number, data: Uint8Array): Promise<void> {
    this.touched.add(pgno);
    const run = this.run;
    if (run && run.start + run.pages.length === pgno && this.runBytes < RUN_BYTES) {
      run.pages.push(data);
      this.runBytes += data.length;
      return;
    }
    await this.flush();
    this.run = { start: pgno, pages: [data] };
    this.runBytes = data.length;
  }

  private async flush(): Promise<void> {
    const run = this.run;
    if (!run) return;
    this.run = null;
    this.runBytes = 0;
    await this.fh.writev(run.pages, (run.start - 1) * this.pageSize);
  }
}
