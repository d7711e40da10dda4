/**
 * CRC-64/ISO exactly as Go's hash/crc64 computes it with crc64.MakeTable(crc64.ISO): reflected,
 * polynomial 0x1B (0xD800000000000000 reflected), register initialised to all ones and inverted
 * on output. `crc64(b, crc64(a))` equals `crc64(a ‖ b)`, as Go's crc64.Update does.
 *
 * Speed matters (every page of every transaction and the whole database at startup go through
 * here), so the loop works on two unsigned 32-bit halves instead of BigInt, eight bytes at a
 * time with slicing-by-8 tables, reading aligned input as 32-bit little-endian words.
 * BigInt appears only at the edges (digest, seeding).
 */

/** High half of the reflected ISO polynomial; the low half is zero. */
const POLY_HI = 0xd8000000;

/** Slicing-by-8 tables: entry `k * 256 + b` is the CRC of byte b followed by k zero bytes. */
const T_HI = new Uint32Array(8 * 256);
const T_LO = new Uint32Array(8 * 256);

for (let b = 0; b < 256; b++) {
  let hi = 0;
  let lo = b;
  for (let bit = 0; bit < 8; bit++) {
    const carry = lo & 1;
    lo = ((lo >>> 1) | (hi << 31)) >>> 0;
    hi = carry ? (hi >>> 1) ^ POLY_HI : hi >>> 1;
  }
  T_HI[b] = hi;
  T_LO[b] = lo;
}
for (let k = 1; k < 8; k++) {
  for (let b = 0; b < 256; b++) {
    const prevHi = T_HI[(k - 1) * 256 + b];
    const prevLo = T_LO[(k - 1) * 256 + b];
    const i = prevLo & 0xff;
    T_HI[k * 256 + b] = T_HI[i] ^ (prevHi >>> 8);
    T_LO[k * 256 + b] = T_LO[i] ^ ((prevLo >>> 8) | (prevHi << 24));
  }
}

/** The word path reads native-endian 32-bit words; the tables assume little-endian ones. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Streaming CRC-64/ISO. The value is kept in Go's convention (what crc64.Checksum would return
 * for the bytes so far) as two unsigned 32-bit halves, so hot loops can read `hi`/`lo` without
 * allocating a BigInt.
 */
export class Crc64 {
  hi = 0;
  lo = 0;

  constructor(prev: bigint = 0n) {
    this.reset(prev);
  }

  /** Starts over from `prev` (0 for a fresh CRC, or a previous result to continue it). */
  reset(prev: bigint = 0n): this {
    this.hi = Number((prev >> 32n) & 0xffffffffn);
    this.lo = Number(prev & 0xffffffffn);
    return this;
  }

  update(data: Uint8Array, start = 0, end = data.length): this {
    // Work on the inverted register, as the algorithm is defined; invert back on the way out.
    let hi = ~this.hi;
    let lo = ~this.lo;
    let i = start;

    if (LITTLE_ENDIAN && end - start >= 16) {
      // Single bytes until the 32-bit view can start on an aligned address.
      for (; ((data.byteOffset + i) & 3) !== 0; i++) {
        const t = (lo ^ data[i]) & 0xff;
        lo = T_LO[t] ^ ((lo >>> 8) | (hi << 24));
        hi = T_HI[t] ^ (hi >>> 8);
      }
      const words = (end - i) >>> 3;
      const w = new Uint32Array(data.buffer, data.byteOffset + i, words * 2);
      for (let j = 0; j < w.length; j += 2) {
        lo ^= w[j];
        hi ^= w[j + 1];
        const a = 1792 + (lo & 0xff);
        const b = 1536 + ((lo >>> 8) & 0xff);
        const c = 1280 + ((lo >>> 16) & 0xff);
        const d = 1024 + (lo >>> 24);
        const e = 768 + (hi & 0xff);
        const f = 512 + ((hi >>> 8) & 0xff);
        const g = 256 + ((hi >>> 16) & 0xff);
        const h = hi >>> 24;
        hi = T_HI[a] ^ T_HI[b] ^ T_HI[c] ^ T_HI[d] ^ T_HI[e] ^ T_HI[f] ^ T_HI[g] ^ T_HI[h];
        lo = T_LO[a] ^ T_LO[b] ^ T_LO[c] ^ T_LO[d] ^ T_LO[e] ^ T_LO[f] ^ T_LO[g] ^ T_LO[h];
      }
      i += words * 8;
    } else {
      for (; i + 8 <= end; i += 8) {
        lo ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
        hi ^= data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24);
        const a = 1792 + (lo & 0xff);
        const b = 1536 + ((lo >>> 8) & 0xff);
        const c = 1280 + ((lo >>> 16) & 0xff);
        const d = 1024 + (lo >>> 24);
        const e = 768 + (hi & 0xff);
        const f = 512 + ((hi >>> 8) & 0xff);
        const g = 256 + ((hi >>> 16) & 0xff);
        const h = hi >>> 24;
        hi = T_HI[a] ^ T_HI[b] ^ T_HI[c] ^ T_HI[d] ^ T_HI[e] ^ T_HI[f] ^ T_HI[g] ^ T_HI[h];
        lo = T_LO[a] ^ T_LO[b] ^ T_LO[c] ^ T_LO[d] ^ T_LO[e] ^ T_LO[f] ^ T_LO[g] ^ T_LO[h];
      }
    }
    for (; i < end; i++) {
      const t = (lo ^ data[i]) & 0xff;
      lo = T_LO[t] ^ ((lo >>> 8) | (hi << 24));
      hi = T_HI[t] ^ (hi >>> 8);
    }

    this.hi = ~hi >>> 0;
    this.lo = ~lo >>> 0;
    return this;
  }

  /** Same as update() with the 4 big-endian bytes of `v`, without allocating them. */
  updateUint32BE(v: number): this {
    let hi = ~this.hi;
    let lo = ~this.lo;
    for (let shift = 24; shift >= 0; shift -= 8) {
      const t = (lo ^ (v >>> shift)) & 0xff;
      lo = T_LO[t] ^ ((lo >>> 8) | (hi << 24));
      hi = T_HI[t] ^ (hi >>> 8);
    }
    this.hi = ~hi >>> 0;
    this.lo = ~lo >>> 0;
    return this;
  }

  /**
   * Continues this CRC as if a block of `ext.length` bytes had been fed to update(), given only
   * that block's own CRC (crcHi, crcLo). Lets a page's CRC, computed once, serve both as its page
   * checksum and as its share of the file checksum.
   */
  append(ext: Crc64Extension, crcHi: number, crcLo: number): this {
    // crc(A ‖ B) = M^len(B) · crc(A) ⊕ crc(B): the ones-init and ones-xorout cancel out.
    const hi = this.hi;
    const lo = this.lo;
    const H = ext.hiTable;
    const L = ext.loTable;
    const a = lo & 0xff;
    const b = 256 + ((lo >>> 8) & 0xff);
    const c = 512 + ((lo >>> 16) & 0xff);
    const d = 768 + (lo >>> 24);
    const e = 1024 + (hi & 0xff);
    const f = 1280 + ((hi >>> 8) & 0xff);
    const g = 1536 + ((hi >>> 16) & 0xff);
    const h = 1792 + (hi >>> 24);
    this.hi = (H[a] ^ H[b] ^ H[c] ^ H[d] ^ H[e] ^ H[f] ^ H[g] ^ H[h] ^ crcHi) >>> 0;
    this.lo = (L[a] ^ L[b] ^ L[c] ^ L[d] ^ L[e] ^ L[f] ^ L[g] ^ L[h] ^ crcLo) >>> 0;
    return this;
  }

  digest(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }
}

/**
 * The linear map "shift the register through `length` zero bytes" (M^length), as eight 256-entry
 * tables so applying it costs 16 lookups. Build once per length (e.g. per page size) and reuse.
 */
export class Crc64Extension {
  readonly hiTable = new Uint32Array(8 * 256);
  readonly loTable = new Uint32Array(8 * 256);

  constructor(readonly length: number) {
    // Image of each of the 64 basis bits, then every byte value as a XOR of its bits' images.
    const imgHi = new Uint32Array(64);
    const imgLo = new Uint32Array(64);
    for (let bit = 0; bit < 64; bit++) {
      let hi = bit >= 32 ? 2 ** (bit - 32) : 0;
      let lo = bit < 32 ? 2 ** bit : 0;
      let n = length;
      for (; n >= 8; n -= 8) {
        const a = 1792 + (lo & 0xff);
        const b = 1536 + ((lo >>> 8) & 0xff);
        const c = 1280 + ((lo >>> 16) & 0xff);
        const d = 1024 + (lo >>> 24);
        const e = 768 + (hi & 0xff);
        const f = 512 + ((hi >>> 8) & 0xff);
        const g = 256 + ((hi >>> 16) & 0xff);
        const h = hi >>> 24;
        const nh = T_HI[a] ^ T_HI[b] ^ T_HI[c] ^ T_HI[d] ^ T_HI[e] ^ T_HI[f] ^ T_HI[g] ^ T_HI[h];
        lo = T_LO[a] ^ T_LO[b] ^ T_LO[c] ^ T_LO[d] ^ T_LO[e] ^ T_LO[f] ^ T_LO[g] ^ T_LO[h];
        hi = nh;
      }
      for (; n > 0; n--) {
        const t = lo & 0xff;
        lo = T_LO[t] ^ ((lo >>> 8) | (hi << 24));
        hi = T_HI[t] ^ (hi >>> 8);
      }
      imgHi[bit] = hi;
      imgLo[bit] = lo;
    }
    for (let k = 0; k < 8; k++) {
      for (let v = 1; v < 256; v++) {
        const low = 31 - Math.clz32(v & -v); // lowest set bit of v
        const rest = k * 256 + (v & (v - 1));
        this.hiTable[k * 256 + v] = this.hiTable[rest] ^ imgHi[k * 8 + low];
        this.loTable[k * 256 + v] = this.loTable[rest] ^ imgLo[k * 8 + low];
      }
    }
  }
}

const scratch = new Crc64();

/** Go's crc64.Update(prev, crc64.MakeTable(crc64.ISO), data); crc64(data) is crc64.Checksum. */
export function crc64(data: Uint8Array, prev: bigint = 0n): bigint {
  return scratch.reset(prev).update(data).digest();
}

const extensions = new Map<number, Crc64Extension>();

/** Cached Crc64Extension per length: there are only seven page sizes. */
export function crc64Extension(length: number): Crc64Extension {
  let ext = extensions.get(length);
  if (!ext) {
    ext = new Crc64Extension(length);
    extensions.set(length, ext);
  }
  return ext;
}
