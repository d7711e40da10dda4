/**
 * XXH32 (seed 0 by default), the hash the LZ4 frame format uses for its descriptor checksum,
 * optional block checksums and content checksum. Streaming, so a frame can be checked block by
 * block without holding its content.
 */

const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function round(acc: number, lane: number): number {
  return Math.imul(rotl((acc + Math.imul(lane, P2)) | 0, 13), P1);
}

function readLE32(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
}

export class Xxh32 {
  private v1 = 0;
  private v2 = 0;
  private v3 = 0;
  private v4 = 0;
  private total = 0;
  /** Bytes of an incomplete 16-byte stripe carried to the next update(). */
  private readonly tail = new Uint8Array(16);
  private tailLength = 0;

  constructor(private readonly seed = 0) {
    this.reset();
  }

  reset(): this {
    this.v1 = (this.seed + P1 + P2) | 0;
    this.v2 = (this.seed + P2) | 0;
    this.v3 = this.seed | 0;
    this.v4 = (this.seed - P1) | 0;
    this.total = 0;
    this.tailLength = 0;
    return this;
  }

  update(data: Uint8Array, start = 0, end = data.length): this {
    this.total += end - start;
    let i = start;
    if (this.tailLength > 0) {
      const take = Math.min(16 - this.tailLength, end - i);
      this.tail.set(data.subarray(i, i + take), this.tailLength);
      this.tailLength += take;
      i += take;
      if (this.tailLength < 16) return this;
      this.stripes(this.tail, 0, 16);
      this.tailLength = 0;
    }
    const whole = i + ((end - i) & ~15);
    this.stripes(data, i, whole);
    if (whole < end) {
      this.tail.set(data.subarray(whole, end));
      this.tailLength = end - whole;
    }
    return this;
  }

  private stripes(b: Uint8Array, start: number, end: number): void {
    let v1 = this.v1;
    let v2 = this.v2;
    let v3 = this.v3;
    let v4 = this.v4;
    for (let i = start; i < end; i += 16) {
      v1 = round(v1, readLE32(b, i));
      v2 = round(v2, readLE32(b, i + 4));
      v3 = round(v3, readLE32(b, i + 8));
      v4 = round(v4, readLE32(b, i + 12));
    }
    this.v1 = v1;
    this.v2 = v2;
    this.v3 = v3;
    this.v4 = v4;
  }

  /** The hash of everything passed to update() so far, as an unsigned 32-bit number. */
  digest(): number {
    let h: number;
    if (this.total >= 16) {
      h = (rotl(this.v1, 1) + rotl(this.v2, 7) + rotl(this.v3, 12) + rotl(this.v4, 18)) | 0;
    } else {
      h = (this.seed + P5) | 0;
    }
    // The spec adds the length modulo 2^32.
    h = (h + (this.total % 0x100000000)) | 0;
    const t = this.tail;
    let i = 0;
    for (; i + 4 <= this.tailLength; i += 4) {
      h = Math.imul(rotl((h + Math.imul(readLE32(t, i), P3)) | 0, 17), P4);
    }
    for (; i < this.tailLength; i++) {
      h = Math.imul(rotl((h + Math.imul(t[i], P5)) | 0, 11), P1);
    }
    h ^= h >>> 15;
    h = Math.imul(h, P2);
    h ^= h >>> 13;
    h = Math.imul(h, P3);
    h ^= h >>> 16;
    return h >>> 0;
  }
}

const scratch = new Xxh32();

export function xxh32(data: Uint8Array, start = 0, end = data.length): number {
  return scratch.reset().update(data, start, end).digest();
}
