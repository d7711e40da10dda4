/**
 * Push-based LTX decoder: feed chunks of any size, get the header and pages out as soon as
 * their bytes are in, and a verified trailer from end(). Everything the format promises is
 * checked: header rules, page order, the LZ4 frame (ending exactly where the trailer begins),
 * the file checksum, and the post-apply checksum wherever the file alone determines it
 * (snapshots and deletions).
 *
 * Each page's CRC is computed once and used twice: as the page checksum handed to the caller
 * and, through Crc64.append, as that frame's share of the file checksum.
 */
import { createReadStream } from "node:fs";
import { CHECKSUM_FLAG, pageCrc } from "./checksum.js";
import { Crc64, type Crc64Extension, crc64Extension } from "./crc64.js";
import { LtxError, hex16 } from "./errors.js";
import {
  HEADER_SIZE,
  type LtxHeader,
  PAGE_BLOCK_TERMINATOR,
  PAGE_HEADER_SIZE,
  decodeHeader,
  isCompressed,
  isSnapshot,
  validateHeader,
} from "./header.js";
import { Lz4FrameReader } from "./lz4-frame.js";
import { PageSequence } from "./page-sequence.js";
import { type LtxTrailer, TRAILER_CHECKSUMMED_SIZE, TRAILER_SIZE, decodeTrailer, validateTrailer } from "./trailer.js";

export interface LtxPage {
  pgno: number;
  /** Owned by the receiver (unless the decoder was made with sharedPageBuffer). */
  data: Uint8Array;
  /** Page checksum, bit63 | crc64(pgno ‖ data). */
  checksum: bigint;
}

export type LtxEvent =
  | { type: "header"; header: LtxHeader }
  | ({ type: "page" } & LtxPage)
  /** Only once the whole file has verified. */
  | { type: "trailer"; trailer: LtxTrailer };

export interface LtxSummary {
  header: LtxHeader;
  trailer: LtxTrailer;
  pageCount: number;
  /** Bytes of the file as stored (compressed if it is). */
  size: number;
}

export interface LtxDecoderOptions {
  /** File name for error messages. */
  name?: string;
  /**
   * Every page event's `data` is one buffer, overwritten by the next page: for a caller that
   * keeps only page numbers and checksums (no allocation per page; a snapshot has one per page).
   */
  sharedPageBuffer?: boolean;
}

const FLAG_HI = 0x80000000;

// Decoder states.
const D_HEADER = 0;
const D_PAGES = 1;
const D_TRAILER = 2;
const D_DONE = 3;
const D_FAILED = 4;

// Page-block parser states.
const P_PGNO = 0;
const P_DATA = 1;
const P_END = 2;

export class LtxDecoder {
  private state = D_HEADER;
  private readonly name: string | undefined;
  private readonly sharedPageBuffer: boolean;
  /** Bytes of the stored file consumed so far. */
  private offset = 0;
  private events: LtxEvent[] = [];

  private readonly headerBytes = new Uint8Array(HEADER_SIZE);
  private headerLength = 0;
  private _header: LtxHeader | null = null;

  private pages: PageSequence | null = null;
  private lz4: Lz4FrameReader | null = null;
  private frameExt: Crc64Extension | null = null;
  private readonly fileCrc = new Crc64();
  private readonly crc = new Crc64();
  private pageState = P_PGNO;
  private readonly pgnoBytes = new Uint8Array(PAGE_HEADER_SIZE);
  private pgnoLength = 0;
  private pgno = 0;
  private page: Uint8Array = new Uint8Array(0);
  private pageLength = 0;
  private count = 0;
  private sumHi = FLAG_HI;
  private sumLo = 0;

  private readonly trailerBytes = new Uint8Array(TRAILER_SIZE);
  private trailerLength = 0;
  private _trailer: LtxTrailer | null = null;

  constructor(opts: LtxDecoderOptions = {}) {
    this.name = opts.name;
    this.sharedPageBuffer = opts.sharedPageBuffer ?? false;
  }

  /** The header, once its 100 bytes have arrived and passed validation. */
  get header(): LtxHeader | null {
    return this._header;
  }

  /**
   * Feeds the next bytes of the file; returns the header and pages they completed, in order.
   * Events are appended to `into` when given, so that if the chunk turns out to be damaged part
   * way, the caller still has everything completed before the error was thrown.
   */
  write(chunk: Uint8Array, into: LtxEvent[] = []): LtxEvent[] {
    if (this.state === D_FAILED) throw this.closed("failed on an earlier error");
    this.events = into;
    try {
      this.consume(chunk);
    } catch (err) {
      this.state = D_FAILED;
      throw err;
    }
    return this.events;
  }

  /** Declares the input complete: returns the verified summary, or throws LTX_TRUNCATED. */
  end(): LtxSummary {
    if (this.state === D_FAILED) throw this.closed("failed on an earlier error");
    if (this.state !== D_DONE) {
      const err = new LtxError("LTX_TRUNCATED", `truncated: file ends at byte ${this.offset}, ${this.whereNow()}`, this.name);
      this.state = D_FAILED;
      throw err;
    }
    return { header: this._header!, trailer: this._trailer!, pageCount: this.count, size: this.offset };
  }

  private closed(why: string): LtxError {
    return new LtxError("LTX_CLOSED", `decoder ${why}`, this.name);
  }

  private whereNow(): string {
    switch (this.state) {
      case D_HEADER:
        return `inside the header (${this.headerLength} of ${HEADER_SIZE} bytes)`;
      case D_PAGES:
        if (this.lz4) return `inside the compressed page block: ${this.lz4.describe()}`;
        return this.pageState === P_DATA
          ? `inside page ${this.pgno} (${this.pageLength} of ${this._header!.pageSize} bytes)`
          : `where a page number or the page block terminator belongs (after ${this.count} pages)`;
      default:
        return `inside the trailer (${this.trailerLength} of ${TRAILER_SIZE} bytes)`;
    }
  }

  private consume(chunk: Uint8Array): void {
    let i = 0;
    const end = chunk.length;
    while (i < end) {
      switch (this.state) {
        case D_HEADER: {
          const take = Math.min(HEADER_SIZE - this.headerLength, end - i);
          this.headerBytes.set(chunk.subarray(i, i + take), this.headerLength);
          this.headerLength += take;
          i += take;
          this.offset += take;
          if (this.headerLength === HEADER_SIZE) this.headerComplete();
          break;
        }
        case D_PAGES: {
          let n: number;
          if (this.lz4) {
            n = this.lz4.write(chunk, i, end);
            if (this.lz4.done && this.pageState !== P_END) {
              throw new LtxError(
                "LTX_BAD_LZ4",
                `LZ4 frame ends at byte ${this.offset + n} before the page block terminator (after ${this.count} pages)`,
                this.name,
              );
            }
          } else {
            n = this.pageBlock(chunk, i, end);
          }
          i += n;
          this.offset += n;
          if (this.pageState === P_END && (!this.lz4 || this.lz4.done)) this.state = D_TRAILER;
          break;
        }
        case D_TRAILER: {
          const take = Math.min(TRAILER_SIZE - this.trailerLength, end - i);
          this.trailerBytes.set(chunk.subarray(i, i + take), this.trailerLength);
          this.trailerLength += take;
          i += take;
          this.offset += take;
          if (this.trailerLength === TRAILER_SIZE) this.trailerComplete();
          break;
        }
        default:
          throw new LtxError(
            "LTX_TRAILING_BYTES",
            `unexpected bytes after the trailer: the file should end at byte ${this.offset}`,
            this.name,
          );
      }
    }
  }

  private headerComplete(): void {
    const h = decodeHeader(this.headerBytes, this.name);
    validateHeader(h, this.name);
    this._header = h;
    this.fileCrc.update(this.headerBytes);
    this.pages = new PageSequence(h, this.name);
    this.frameExt = crc64Extension(PAGE_HEADER_SIZE + h.pageSize);
    if (isCompressed(h)) {
      this.lz4 = new Lz4FrameReader((data) => this.decompressed(data), this.name, HEADER_SIZE);
    }
    this.state = D_PAGES;
    this.events.push({ type: "header", header: h });
  }

  private decompressed(data: Uint8Array): void {
    const n = this.pageBlock(data, 0, data.length);
    if (n < data.length) {
      throw new LtxError(
        "LTX_BAD_LZ4",
        `LZ4 frame holds ${data.length - n} bytes after the page block terminator`,
        this.name,
      );
    }
  }

  /** Parses page-block bytes (uncompressed); returns how many it used, stopping after the terminator. */
  private pageBlock(buf: Uint8Array, start: number, end: number): number {
    let i = start;
    const pageSize = this._header!.pageSize;
    while (i < end && this.pageState !== P_END) {
      if (this.pageState === P_PGNO) {
        const take = Math.min(PAGE_HEADER_SIZE - this.pgnoLength, end - i);
        this.pgnoBytes.set(buf.subarray(i, i + take), this.pgnoLength);
        this.pgnoLength += take;
        i += take;
        if (this.pgnoLength < PAGE_HEADER_SIZE) continue;
        const b = this.pgnoBytes;
        this.pgno = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
        this.pgnoLength = 0;
        if (this.pgno === PAGE_BLOCK_TERMINATOR) {
          this.pages!.end();
          this.fileCrc.update(b);
          this.pageState = P_END;
        } else {
          this.pages!.next(this.pgno);
          if (!this.sharedPageBuffer || this.page.length !== pageSize) this.page = new Uint8Array(pageSize);
          this.pageLength = 0;
          this.pageState = P_DATA;
        }
      } else {
        const take = Math.min(pageSize - this.pageLength, end - i);
        this.page.set(buf.subarray(i, i + take), this.pageLength);
        this.pageLength += take;
        i += take;
        if (this.pageLength === pageSize) this.pageComplete();
      }
    }
    return i - start;
  }

  private pageComplete(): void {
    const crc = pageCrc(this.crc, this.pgno, this.page);
    this.fileCrc.append(this.frameExt!, crc.hi, crc.lo);
    this.sumHi ^= crc.hi;
    this.sumLo ^= crc.lo;
    this.count++;
    this.events.push({ type: "page", pgno: this.pgno, data: this.page, checksum: CHECKSUM_FLAG | crc.digest() });
    this.pageState = P_PGNO;
  }

  private trailerComplete(): void {
    const t = decodeTrailer(this.trailerBytes);
    this.fileCrc.update(this.trailerBytes, 0, TRAILER_CHECKSUMMED_SIZE);
    const computed = CHECKSUM_FLAG | this.fileCrc.digest();
    if (computed !== t.fileChecksum) {
      throw new LtxError(
        "LTX_FILE_CHECKSUM_MISMATCH",
        `file checksum mismatch: trailer says ${hex16(t.fileChecksum)}, contents give ${hex16(computed)}`,
        this.name,
      );
    }
    validateTrailer(t, this.name);
    const h = this._header!;
    if (isSnapshot(h) || h.commit === 0) {
      // The file holds the whole database, so its pages alone give the post-apply checksum.
      const pagesSum = (BigInt((this.sumHi | FLAG_HI) >>> 0) << 32n) | BigInt(this.sumLo >>> 0);
      checkPostApplyChecksum(t, pagesSum, this.name);
    }
    this._trailer = t;
    this.state = D_DONE;
  }
}

/**
 * Throws LTX_POST_APPLY_CHECKSUM_MISMATCH unless `computed` (the database checksum after
 * applying the file) matches the trailer. For the store, once it has applied an incremental file.
 */
export function checkPostApplyChecksum(trailer: LtxTrailer, computed: bigint, name?: string): void {
  if (computed !== trailer.postApplyChecksum) {
    throw new LtxError(
      "LTX_POST_APPLY_CHECKSUM_MISMATCH",
      `post-apply checksum mismatch: trailer says ${hex16(trailer.postApplyChecksum)}, database gives ${hex16(computed)}`,
      name,
    );
  }
}

/**
 * Decodes a stream (e.g. a Node Readable or an HTTP body) without holding the file: yields the
 * header, each page as it completes, and finally the trailer once the whole file has verified.
 * Any error, including one found at the very end, is thrown from the iteration; a consumer must
 * not treat the pages as good until it has seen the trailer event.
 */
export async function* decodeLtxStream(
  source: AsyncIterable<Uint8Array>,
  opts: LtxDecoderOptions = {},
): AsyncGenerator<LtxEvent, LtxSummary> {
  const dec = new LtxDecoder(opts);
  for await (const chunk of source) {
    const events: LtxEvent[] = [];
    try {
      dec.write(chunk, events);
    } catch (err) {
      // Hand out what came before the damage (a dump shows it), then the error.
      yield* events;
      throw err;
    }
    yield* events;
  }
  const summary = dec.end();
  yield { type: "trailer", trailer: summary.trailer };
  return summary;
}

/** decodeLtxStream over a file, read in 1 MiB chunks. Errors name the path. */
export function decodeLtxFile(path: string, opts: LtxDecoderOptions = {}): AsyncGenerator<LtxEvent, LtxSummary> {
  return decodeLtxStream(createReadStream(path, { highWaterMark: 1 << 20 }), { name: path, ...opts });
}

export interface DecodedLtx {
  header: LtxHeader;
  pages: LtxPage[];
  trailer: LtxTrailer;
}

/** Decodes and verifies a whole file held in memory. */
export function decodeLtx(buf: Uint8Array, name?: string): DecodedLtx {
  const dec = new LtxDecoder({ name });
  const pages: LtxPage[] = [];
  for (const ev of dec.write(buf)) {
    if (ev.type === "page") pages.push({ pgno: ev.pgno, data: ev.data, checksum: ev.checksum });
  }
  const { header, trailer } = dec.end();
  return { header, pages, trailer };
}

/**
 * Checks a file (bytes in memory, or a path read as a stream) end to end, keeping no pages.
 * Resolves to its summary or rejects with the first LtxError found.
 */
export async function verifyLtx(source: Uint8Array | string, name?: string): Promise<LtxSummary> {
  if (typeof source !== "string") {
    const dec = new LtxDecoder({ name });
    dec.write(source);
    return dec.end();
  }
  const gen = decodeLtxFile(source, { name: name ?? source });
  for (;;) {
    const r = await gen.next();
    if (r.done) return r.value;
  }
}
