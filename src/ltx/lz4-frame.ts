/**
 * The LZ4 frame format (lz4_Frame_format.md v1.6.x), owned here so that:
 * - the reader knows exactly where the frame ends: an LTX trailer follows it with no length
 *   prefix, so reading one byte too many (or too few) breaks the file;
 * - both sides stream one block at a time, holding at most one block, inside synchronous code
 *   (the FUSE layer encodes LTX files from a request handler).
 *
 * Blocks are compressed and decompressed by lz4-napi's block functions (lz4_flex, native),
 * which use a 4-byte little-endian size prefix around a standard LZ4 block. The frame layout
 * (magic, FLG/BD descriptor and its checksum, block sizes with the "stored uncompressed" bit,
 * end mark, xxh32 content checksum) is done here. lz4-napi's own frame functions were not used:
 * they take and return whole buffers and cannot report where a frame ends inside a longer input.
 */
import { compressSync, uncompressSync } from "lz4-napi";
import { LtxError } from "./errors.js";
import { Xxh32, xxh32 } from "./xxh32.js";

export const LZ4_FRAME_MAGIC = 0x184d2204;

/** Block maximum sizes by the BD byte's 3-bit code. */
const BLOCK_SIZE_BY_ID: Record<number, number> = { 4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20 };

const FLG_VERSION_MASK = 0xc0;
const FLG_VERSION_01 = 0x40;
const FLG_BLOCK_INDEPENDENCE = 0x20;
const FLG_BLOCK_CHECKSUM = 0x10;
const FLG_CONTENT_SIZE = 0x08;
const FLG_CONTENT_CHECKSUM = 0x04;
const FLG_RESERVED = 0x02;
const FLG_DICT_ID = 0x01;
const BD_RESERVED = 0x8f;

/** High bit of a block size field: the block is stored as is. A size field of zero ends the data. */
const BLOCK_UNCOMPRESSED = 0x80000000;

/** Linked blocks may refer back this far into earlier blocks' output. */
const LINKED_WINDOW = 64 << 10;

export interface Lz4FrameWriterOptions {
  /** Block maximum size: 64 KiB (LiteFS's choice and the default), 256 KiB, 1 MiB or 4 MiB. */
  blockSize?: number;
  /** Append the xxh32 of the uncompressed content (default true, as LiteFS does). */
  contentChecksum?: boolean;
}

/**
 * Writes one LZ4 frame with independent blocks. Holds at most one block of input; every chunk
 * handed to the sink is newly allocated and belongs to the sink.
 */
export class Lz4FrameWriter {
  private readonly block: Buffer;
  private blockLength = 0;
  private readonly checksum: Xxh32 | null;
  private ended = false;

  constructor(
    private readonly sink: (chunk: Uint8Array) => void,
    opts: Lz4FrameWriterOptions = {},
  ) {
    const blockSize = opts.blockSize ?? 64 << 10;
    const id = Object.keys(BLOCK_SIZE_BY_ID).find((k) => BLOCK_SIZE_BY_ID[Number(k)] === blockSize);
    if (id === undefined) throw new RangeError(`unsupported LZ4 block size ${blockSize}`);
    this.block = Buffer.allocUnsafe(blockSize);
    this.checksum = opts.contentChecksum === false ? null : new Xxh32();

    const header = new Uint8Array(7);
    new DataView(header.buffer).setUint32(0, LZ4_FRAME_MAGIC, true);
    header[4] = FLG_VERSION_01 | FLG_BLOCK_INDEPENDENCE | (this.checksum ? FLG_CONTENT_CHECKSUM : 0);
    header[5] = Number(id) << 4;
    header[6] = (xxh32(header, 4, 6) >>> 8) & 0xff;
    sink(header);
  }

  write(data: Uint8Array): void {
    if (this.ended) throw new Error("LZ4 frame already ended");
    this.checksum?.update(data);
    let i = 0;
    while (i < data.length) {
      const take = Math.min(this.block.length - this.blockLength, data.length - i);
      this.block.set(data.subarray(i, i + take), this.blockLength);
      this.blockLength += take;
      i += take;
      if (this.blockLength === this.block.length) this.flushBlock();
    }
  }

  /** Writes the last partial block, the end mark and the content checksum. */
  end(): void {
    if (this.ended) return;
    if (this.blockLength > 0) this.flushBlock();
    this.ended = true;
    const tail = new Uint8Array(this.checksum ? 8 : 4);
    if (this.checksum) new DataView(tail.buffer).setUint32(4, this.checksum.digest(), true);
    this.sink(tail);
  }

  private flushBlock(): void {
    const n = this.blockLength;
    this.blockLength = 0;
    // compressSync answers with a 4-byte size prefix: reuse those bytes for the block size field.
    const out = compressSync(this.block.subarray(0, n));
    if (out.length - 4 < n) {
      out.writeUInt32LE(out.length - 4, 0);
      this.sink(out);
    } else {
      // Incompressible: the format stores such blocks as they are.
      const raw = Buffer.allocUnsafe(4 + n);
      raw.writeUInt32LE((BLOCK_UNCOMPRESSED | n) >>> 0, 0);
      this.block.copy(raw, 4, 0, n);
      this.sink(raw);
    }
  }
}

// Reader states, in frame order.
const S_MAGIC = 0;
const S_DESCRIPTOR = 1;
const S_BLOCK_SIZE = 2;
const S_BLOCK_DATA = 3;
const S_BLOCK_CHECKSUM = 4;
const S_CONTENT_CHECKSUM = 5;
const S_DONE = 6;

/**
 * Push-based reader of exactly one LZ4 frame. write() consumes bytes up to the end of the frame
 * and says how many it took, so whatever follows the frame stays with the caller. Decompressed
 * content goes to `onData` one block at a time; the chunk is only valid during the call.
 */
export class Lz4FrameReader {
  private state = S_MAGIC;
  /** Small fields (magic, descriptor, sizes, checksums) are collected here. */
  private readonly field = new Uint8Array(15);
  private fieldLength = 0;
  private fieldNeed = 4;

  private flags = 0;
  private blockMax = 0;
  private contentSize: bigint | null = null;
  private contentChecksum: Xxh32 | null = null;
  private produced = 0;

  /** Block being collected, after 4 bytes of room for lz4-napi's size prefix. */
  private block: Buffer = Buffer.alloc(0);
  private blockNeed = 0;
  private blockLength = 0;
  private blockStored = false;
  private blockIndex = 0;
  /** Tail of earlier output that linked blocks may refer to. */
  private history: Buffer | null = null;

  /** Bytes of the frame consumed so far. */
  consumed = 0;

  constructor(
    private readonly onData: (chunk: Uint8Array) => void,
    private readonly file?: string,
    /** Where the frame starts in the enclosing file, for messages. */
    private readonly baseOffset = 0,
  ) {}

  get done(): boolean {
    return this.state === S_DONE;
  }

  write(input: Uint8Array, start = 0, end = input.length): number {
    let i = start;
    while (i < end && this.state !== S_DONE) {
      if (this.state === S_BLOCK_DATA) {
        const take = Math.min(this.blockNeed - this.blockLength, end - i);
        this.block.set(input.subarray(i, i + take), 4 + this.blockLength);
        this.blockLength += take;
        i += take;
        this.consumed += take;
        if (this.blockLength === this.blockNeed) this.blockComplete();
      } else {
        const take = Math.min(this.fieldNeed - this.fieldLength, end - i);
        this.field.set(input.subarray(i, i + take), this.fieldLength);
        this.fieldLength += take;
        i += take;
        this.consumed += take;
        if (this.fieldLength === this.fieldNeed) this.fieldComplete();
      }
    }
    return i - start;
  }

  /** Where reading stopped, for a truncation message. */
  describe(): string {
    const where = `byte ${this.baseOffset + this.consumed}`;
    switch (this.state) {
      case S_MAGIC:
      case S_DESCRIPTOR:
        return `${where}, inside the LZ4 frame header`;
      case S_BLOCK_SIZE:
        return `${where}, inside the size of LZ4 block ${this.blockIndex}`;
      case S_BLOCK_DATA:
        return `${where}, inside LZ4 block ${this.blockIndex} (${this.blockLength} of ${this.blockNeed} bytes)`;
      case S_BLOCK_CHECKSUM:
        return `${where}, inside the checksum of LZ4 block ${this.blockIndex}`;
      case S_CONTENT_CHECKSUM:
        return `${where}, inside the LZ4 content checksum`;
      default:
        return `${where}, after the LZ4 frame`;
    }
  }

  private fail(detail: string): never {
    throw new LtxError("LTX_BAD_LZ4", `${detail} (LZ4 frame starting at byte ${this.baseOffset})`, this.file);
  }

  private expectField(n: number): void {
    this.fieldLength = 0;
    this.fieldNeed = n;
  }

  private fieldLE32(at: number): number {
    const f = this.field;
    return (f[at] | (f[at + 1] << 8) | (f[at + 2] << 16) | (f[at + 3] << 24)) >>> 0;
  }

  private fieldComplete(): void {
    switch (this.state) {
      case S_MAGIC: {
        const magic = this.fieldLE32(0);
        if (magic !== LZ4_FRAME_MAGIC) {
          this.fail(`bad LZ4 frame magic: expected 0x${LZ4_FRAME_MAGIC.toString(16)}, found 0x${magic.toString(16)}`);
        }
        // Descriptor: FLG and BD first; their flags say how many optional bytes follow.
        this.state = S_DESCRIPTOR;
        this.expectField(2);
        return;
      }
      case S_DESCRIPTOR: {
        if (this.fieldNeed === 2) {
          this.flags = this.field[0];
          const bd = this.field[1];
          if ((this.flags & FLG_VERSION_MASK) !== FLG_VERSION_01) {
            this.fail(`unsupported LZ4 frame version ${(this.flags >>> 6) & 3}, expected 1`);
          }
          if (this.flags & FLG_RESERVED || bd & BD_RESERVED) this.fail("reserved bits set in LZ4 frame descriptor");
          if (this.flags & FLG_DICT_ID) this.fail("LZ4 frame needs a dictionary, which LTX never uses");
          this.blockMax = BLOCK_SIZE_BY_ID[(bd >>> 4) & 7] ?? 0;
          if (this.blockMax === 0) this.fail(`invalid LZ4 block maximum size code ${(bd >>> 4) & 7}`);
          // Keep FLG/BD in place and collect the optional content size and the checksum byte.
          this.fieldNeed = 2 + (this.flags & FLG_CONTENT_SIZE ? 8 : 0) + 1;
          return;
        }
        const descriptorLength = this.fieldNeed - 1;
        const expected = (xxh32(this.field, 0, descriptorLength) >>> 8) & 0xff;
        const found = this.field[descriptorLength];
        if (expected !== found) {
          this.fail(`LZ4 frame descriptor checksum mismatch: expected 0x${hex2(expected)}, found 0x${hex2(found)}`);
        }
        if (this.flags & FLG_CONTENT_SIZE) {
          this.contentSize = new DataView(this.field.buffer).getBigUint64(2, true);
        }
        this.contentChecksum = this.flags & FLG_CONTENT_CHECKSUM ? new Xxh32() : null;
        this.block = Buffer.allocUnsafe(4 + this.blockMax);
        // lz4-napi reads the prefix as the largest output it may produce.
        this.block.writeUInt32LE(this.blockMax, 0);
        this.state = S_BLOCK_SIZE;
        this.expectField(4);
        return;
      }
      case S_BLOCK_SIZE: {
        const v = this.fieldLE32(0);
        if (v === 0) {
          this.endOfBlocks();
          return;
        }
        this.blockStored = (v & BLOCK_UNCOMPRESSED) !== 0;
        this.blockNeed = (v & ~BLOCK_UNCOMPRESSED) >>> 0;
        if (this.blockNeed > this.blockMax) {
          this.fail(`LZ4 block ${this.blockIndex} claims ${this.blockNeed} bytes, more than the frame's ${this.blockMax}-byte blocks`);
        }
        if (this.blockNeed === 0) this.fail(`LZ4 block ${this.blockIndex} is empty`);
        this.blockLength = 0;
        this.state = S_BLOCK_DATA;
        return;
      }
      case S_BLOCK_CHECKSUM: {
        const expected = xxh32(this.block, 4, 4 + this.blockNeed);
        const found = this.fieldLE32(0);
        if (expected !== found) {
          this.fail(`LZ4 block ${this.blockIndex} checksum mismatch: expected ${hex8(expected)}, found ${hex8(found)}`);
        }
        this.emitBlock();
        return;
      }
      case S_CONTENT_CHECKSUM: {
        const expected = this.contentChecksum!.digest();
        const found = this.fieldLE32(0);
        if (expected !== found) {
          this.fail(`LZ4 content checksum mismatch: expected ${hex8(expected)}, found ${hex8(found)}`);
        }
        this.state = S_DONE;
        return;
      }
    }
  }

  private blockComplete(): void {
    if (this.flags & FLG_BLOCK_CHECKSUM) {
      this.state = S_BLOCK_CHECKSUM;
      this.expectField(4);
    } else {
      this.emitBlock();
    }
  }

  private emitBlock(): void {
    let out: Uint8Array;
    if (this.blockStored) {
      out = this.block.subarray(4, 4 + this.blockNeed);
    } else {
      const linked = (this.flags & FLG_BLOCK_INDEPENDENCE) === 0 && this.history !== null;
      try {
        out = linked
          ? uncompressSync(this.block.subarray(0, 4 + this.blockNeed), this.history)
          : uncompressSync(this.block.subarray(0, 4 + this.blockNeed));
      } catch (err) {
        this.fail(`LZ4 block ${this.blockIndex} does not decompress (${(err as Error).message})`);
      }
    }
    this.produced += out.length;
    this.contentChecksum?.update(out);
    if ((this.flags & FLG_BLOCK_INDEPENDENCE) === 0) this.remember(out);
    this.blockIndex++;
    this.state = S_BLOCK_SIZE;
    this.expectField(4);
    this.onData(out);
  }

  private remember(out: Uint8Array): void {
    const prev = this.history ?? Buffer.alloc(0);
    const joined = Buffer.concat([prev, out]);
    this.history = joined.length > LINKED_WINDOW ? joined.subarray(joined.length - LINKED_WINDOW) : joined;
  }

  private endOfBlocks(): void {
    if (this.contentSize !== null && this.contentSize !== BigInt(this.produced)) {
      this.fail(`LZ4 content size mismatch: header says ${this.contentSize} bytes, blocks hold ${this.produced}`);
    }
    if (this.contentChecksum) {
      this.state = S_CONTENT_CHECKSUM;
      this.expectField(4);
    } else {
      this.state = S_DONE;
    }
  }
}

function hex2(v: number): string {
  return v.toString(16).padStart(2, "0");
}

function hex8(v: number): string {
  return v.toString(16).padStart(8, "0");
}
