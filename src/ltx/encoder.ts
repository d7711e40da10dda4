/**
 * Synchronous, sink-based LTX encoder. The FUSE layer writes LTX files from inside a request
 * handler with synchronous writes to a backing file, so nothing here awaits. Output is
 * coalesced into chunks of up to 64 KiB (one LZ4 block when compressing): the file is never
 * held whole, and the sink sees few, large writes.
 */
import { CHECKSUM_FLAG, pageCrc } from "./checksum.js";
import { Crc64, type Crc64Extension, crc64Extension } from "./crc64.js";
import { LtxError, hex16 } from "./errors.js";
import {
  HEADER_FLAG_COMPRESS_LZ4,
  type LtxHeader,
  PAGE_HEADER_SIZE,
  encodeHeader,
  isCompressed,
  isSnapshot,
} from "./header.js";
import { Lz4FrameWriter } from "./lz4-frame.js";
import { PageSequence } from "./page-sequence.js";
import { TRAILER_CHECKSUMMED_SIZE, encodeTrailer } from "./trailer.js";

/**
 * Receives the encoded file in order. Each chunk is newly allocated and belongs to the sink
 * (it may be kept, e.g. queued for an asynchronous write).
 */
export type LtxSink = (chunk: Uint8Array) => void;

export interface LtxEncoderOptions {
  /** LZ4-compress the page block; default: as the header's flag bit 0 says. */
  compress?: boolean;
  /** File name for error messages. */
  name?: string;
}

export interface LtxEncodeResult {
  fileChecksum: bigint;
  postApplyChecksum: bigint;
  /** Bytes handed to the sink. */
  size: number;
}

const CHUNK_SIZE = 64 << 10;
const FLAG_HI = 0x80000000;

/** Copies small writes into 64 KiB chunks and passes them on when full. */
class ChunkedOutput {
  private pending = new Uint8Array(CHUNK_SIZE);
  private length = 0;
  size = 0;

  constructor(private readonly sink: LtxSink) {}

  write(data: Uint8Array): void {
    let i = 0;
    while (i < data.length) {
      const take = Math.min(CHUNK_SIZE - this.length, data.length - i);
      this.pending.set(data.subarray(i, i + take), this.length);
      this.length += take;
      i += take;
      if (this.length === CHUNK_SIZE) this.flush();
    }
  }

  /**
   * Passes on a chunk the caller gives up (an LZ4 block), after whatever is pending, without
   * copying, so compressed output leaves as soon as each block is complete. Only the frame's
   * few-byte header and end are coalesced with their neighbours.
   */
  writeOwned(chunk: Uint8Array): void {
    if (chunk.length < 64) {
      this.write(chunk);
      return;
    }
    this.flush();
    this.size += chunk.length;
    this.sink(chunk);
  }

  flush(): void {
    if (this.length === 0) return;
    const out = this.length === CHUNK_SIZE ? this.pending : this.pending.slice(0, this.length);
    if (this.length === CHUNK_SIZE) this.pending = new Uint8Array(CHUNK_SIZE);
    this.size += this.length;
    this.length = 0;
    this.sink(out);
  }
}

export class LtxEncoder {
  /** The header as written (flag bit 0 follows the `compress` option). */
  readonly header: Readonly<LtxHeader>;
  private readonly out: ChunkedOutput;
  private readonly lz4: Lz4FrameWriter | null;
  private readonly pages: PageSequence;
  private readonly fileCrc = new Crc64();
  private readonly pageCrc = new Crc64();
  private readonly frameExt: Crc64Extension;
  private readonly pgnoBytes = new Uint8Array(PAGE_HEADER_SIZE);
  private readonly name: string | undefined;
  /** XOR of the page checksums written, to check a snapshot's post-apply checksum. */
  private sumHi = FLAG_HI;
  private sumLo = 0;
  private count = 0;
  private state: "open" | "finished" | "failed" = "open";

  constructor(header: LtxHeader, sink: LtxSink, opts: LtxEncoderOptions = {}) {
    const compress = opts.compress ?? isCompressed(header);
    this.name = opts.name;
    this.header = {
      ...header,
      flags: compress ? header.flags | HEADER_FLAG_COMPRESS_LZ4 : header.flags & ~HEADER_FLAG_COMPRESS_LZ4,
    };
    const headerBytes = encodeHeader(this.header, this.name);
    this.pages = new PageSequence(this.header, this.name);
    this.frameExt = crc64Extension(PAGE_HEADER_SIZE + header.pageSize);
    this.out = new ChunkedOutput(sink);
    this.fileCrc.update(headerBytes);
    this.guard(() => {
      this.out.write(headerBytes);
    });
    this.lz4 = compress ? new Lz4FrameWriter((chunk) => this.out.writeOwned(chunk)) : null;
  }

  /** Pages written so far. */
  get pageCount(): number {
    return this.count;
  }

  /**
   * Appends one page and returns its page checksum (bit63 | crc64(pgno ‖ data)), which the
   * caller can use for the database checksum without hashing the page again. A page that
   * breaks a rule is refused before anything is written, leaving the encoder usable.
   */
  encodePage(pgno: number, data: Uint8Array): bigint {
    this.assertOpen();
    if (!Number.isInteger(pgno) || pgno < 1 || pgno > 0xffffffff) {
      throw new LtxError("LTX_BAD_PAGE", `bad page number ${pgno}`, this.name);
    }
    if (data.length !== this.header.pageSize) {
      throw new LtxError("LTX_BAD_PAGE", `page ${pgno} has ${data.length} bytes, expected ${this.header.pageSize}`, this.name);
    }
    this.pages.next(pgno);

    const crc = pageCrc(this.pageCrc, pgno, data);
    this.fileCrc.append(this.frameExt, crc.hi, crc.lo);
    this.sumHi ^= crc.hi;
    this.sumLo ^= crc.lo;
    this.count++;
    const b = this.pgnoBytes;
    b[0] = pgno >>> 24;
    b[1] = pgno >>> 16;
    b[2] = pgno >>> 8;
    b[3] = pgno;
    this.guard(() => {
      this.writePageBlock(this.pgnoBytes);
      this.writePageBlock(data);
    });
    return CHECKSUM_FLAG | crc.digest();
  }

  /**
   * Writes the terminator and trailer. For a snapshot (or a deletion, commit 0) the file holds
   * the whole database, so `postApplyChecksum` must equal the checksum of its pages.
   */
  finish(postApplyChecksum: bigint): LtxEncodeResult {
    this.assertOpen();
    if (postApplyChecksum < 0n || postApplyChecksum >= 1n << 64n || (postApplyChecksum & CHECKSUM_FLAG) === 0n) {
      throw new LtxError("LTX_BAD_CHECKSUM", `post-apply checksum must have bit 63 set, found ${hex16(postApplyChecksum)}`, this.name);
    }
    this.pages.end();
    if (isSnapshot(this.header) || this.header.commit === 0) {
      const computed = (BigInt((this.sumHi | FLAG_HI) >>> 0) << 32n) | BigInt(this.sumLo >>> 0);
      if (computed !== postApplyChecksum) {
        throw new LtxError(
          "LTX_POST_APPLY_CHECKSUM_MISMATCH",
          `post-apply checksum mismatch: given ${hex16(postApplyChecksum)}, the pages give ${hex16(computed)}`,
          this.name,
        );
      }
    }

    const terminator = new Uint8Array(PAGE_HEADER_SIZE);
    this.fileCrc.update(terminator);
    const trailer = encodeTrailer({ postApplyChecksum, fileChecksum: 0n });
    this.fileCrc.update(trailer, 0, TRAILER_CHECKSUMMED_SIZE);
    const fileChecksum = CHECKSUM_FLAG | this.fileCrc.digest();
    const trailerBytes = encodeTrailer({ postApplyChecksum, fileChecksum });

    this.guard(() => {
      this.writePageBlock(terminator);
      this.lz4?.end();
      this.out.write(trailerBytes);
      this.out.flush();
    });
    this.state = "finished";
    return { fileChecksum, postApplyChecksum, size: this.out.size };
  }

  private writePageBlock(bytes: Uint8Array): void {
    if (this.lz4) this.lz4.write(bytes);
    else this.out.write(bytes);
  }

  private assertOpen(): void {
    if (this.state !== "open") {
      throw new LtxError("LTX_CLOSED", `encoder is ${this.state === "failed" ? "broken by an earlier error" : "finished"}`, this.name);
    }
  }

  /** A sink that throws leaves the output torn, so the encoder refuses further use. */
  private guard(write: () => void): void {
    try {
      write();
    } catch (err) {
      this.state = "failed";
      throw err;
    }
  }
}

/** Encodes a whole file in memory (tests, small files, snapshots of small databases). */
export function encodeLtx(
  header: LtxHeader,
  pages: Iterable<{ pgno: number; data: Uint8Array }>,
  postApplyChecksum: bigint,
  opts: LtxEncoderOptions = {},
): Uint8Array {
  const chunks: Uint8Array[] = [];
  const enc = new LtxEncoder(header, (chunk) => chunks.push(chunk), opts);
  for (const { pgno, data } of pages) enc.encodePage(pgno, data);
  const { size } = enc.finish(postApplyChecksum);
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
