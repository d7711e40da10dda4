import fc from "fast-check";
import { compressFrameSync, compressSync, decompressFrameSync } from "lz4-napi";
import { describe, expect, test } from "vitest";
import { LZ4_FRAME_MAGIC, Lz4FrameReader, Lz4FrameWriter } from "../../src/ltx/lz4-frame.js";
import { Xxh32, xxh32 } from "../../src/ltx/xxh32.js";
import { expectCode } from "./helpers.js";

const text = (s: string) => new TextEncoder().encode(s);

/** Compressible but not trivial: repeated records with a counter. */
function sample(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i % 97 < 60 ? (i >> 7) + seed : (i * 2654435761) >>> 27) & 0xff;
  return b;
}

function random(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function writeFrame(data: Uint8Array, opts?: ConstructorParameters<typeof Lz4FrameWriter>[1]): Uint8Array {
  const chunks: Uint8Array[] = [];
  const w = new Lz4FrameWriter((c) => chunks.push(c), opts);
  w.write(data);
  w.end();
  return new Uint8Array(Buffer.concat(chunks));
}

/** Reads one frame from `input` fed in `step`-byte pieces; returns content and bytes consumed. */
function readFrame(input: Uint8Array, step = input.length): { content: Uint8Array; consumed: number } {
  const out: Uint8Array[] = [];
  const r = new Lz4FrameReader((c) => out.push(Buffer.from(c)));
  let consumed = 0;
  for (let i = 0; i < input.length && !r.done; i += step) {
    consumed += r.write(input, i, Math.min(i + step, input.length));
  }
  expect(r.done).toBe(true);
  return { content: new Uint8Array(Buffer.concat(out)), consumed };
}

/** Byte equality without a per-element deep compare (slow on large arrays). */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length);
  expect(Buffer.compare(actual, expected)).toBe(0);
}

function le32(v: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

/** Frame header with the given FLG/BD (and optional descriptor fields) and a correct HC byte. */
function frameHeader(flg: number, bd: number, extra: Uint8Array = new Uint8Array(0)): Uint8Array {
  const desc = new Uint8Array([flg, bd, ...extra]);
  return new Uint8Array([...le32(LZ4_FRAME_MAGIC), ...desc, (xxh32(desc) >>> 8) & 0xff]);
}

describe("xxh32", () => {
  test("matches the reference test vectors", () => {
    expect(xxh32(text(""))).toBe(0x02cc5d05);
    expect(xxh32(text("a"))).toBe(0x550d7456);
    expect(xxh32(text("abc"))).toBe(0x32d153ff);
    expect(xxh32(text("Nobody inspects the spammish repetition"))).toBe(0xe2293b2f);
  });

  test("streaming in any pieces equals hashing at once", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(40)), (data, cuts) => {
        const h = new Xxh32();
        let i = 0;
        for (const c of cuts) {
          h.update(data, i, Math.min(i + c, data.length));
          i = Math.min(i + c, data.length);
        }
        h.update(data, i);
        expect(h.digest()).toBe(xxh32(data));
      }),
    );
  });
});

describe("LZ4 frame writer", () => {
  test("writes what LiteFS writes: 64 KiB independent blocks with a content checksum", () => {
    const f = writeFrame(sample(200_000));
    expect(Buffer.from(f).readUInt32LE(0)).toBe(LZ4_FRAME_MAGIC);
    expect(f[4]).toBe(0x64); // version 01, independent blocks, content checksum
    expect(f[5]).toBe(0x40); // 64 KiB blocks
  });

  test("its frames decode with another implementation (lz4_flex)", () => {
    for (const data of [new Uint8Array(0), text("x"), sample(65536), sample(200_000), random(150_000)]) {
      expectSameBytes(decompressFrameSync(Buffer.from(writeFrame(data))), data);
    }
  });

  test("stores incompressible blocks as they are, with the size's high bit set", () => {
    const data = random(1000);
    const f = Buffer.from(writeFrame(data));
    const size = f.readUInt32LE(7);
    expect(size >>> 31).toBe(1);
    expect(size & 0x7fffffff).toBe(1000);
    expectSameBytes(readFrame(f).content, data);
  });

  test("holds at most one block: output appears as each 64 KiB fills", () => {
    const chunks: Uint8Array[] = [];
    const w = new Lz4FrameWriter((c) => chunks.push(c));
    const headerChunks = chunks.length;
    w.write(sample(65535));
    expect(chunks.length).toBe(headerChunks);
    w.write(sample(1));
    expect(chunks.length).toBe(headerChunks + 1);
  });
});

describe("LZ4 frame reader", () => {
  test("round-trips any content fed in any piece size", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.nat(300_000).map((n) => sample(n))),
        fc.integer({ min: 1, max: 70_000 }),
        (data, step) => {
          expectSameBytes(readFrame(writeFrame(data), step).content, data);
        },
      ),
      { numRuns: 40 },
    );
  });

  test("reads frames written by lz4_flex (256 KiB blocks, with and without block checksums)", () => {
    const data = sample(700_000, 3);
    for (const blockChecksums of [false, true]) {
      const f = compressFrameSync(Buffer.from(data), { contentChecksum: true, blockChecksums });
      expectSameBytes(readFrame(f, 1000).content, data);
    }
  });

  test("stops exactly at the end of the frame and leaves what follows", () => {
    const frame = writeFrame(sample(100_000));
    const trailer = text("TRAILER-16-BYTES");
    const input = new Uint8Array([...frame, ...trailer]);
    for (const step of [1, 7, 4096, input.length]) {
      expect(readFrame(input, step).consumed).toBe(frame.length);
    }
  });

  test("reads linked blocks, which refer back into the previous block", () => {
    const data = sample(100_000, 9);
    const first = data.subarray(0, 65536);
    const second = data.subarray(65536);
    const block = (c: Buffer) => [...le32(c.length - 4), ...c.subarray(4)];
    const frame = new Uint8Array([
      ...frameHeader(0x44, 0x40), // linked blocks, content checksum
      ...block(compressSync(Buffer.from(first))),
      ...block(compressSync(Buffer.from(second), Buffer.from(first))),
      ...le32(0),
      ...le32(xxh32(data)),
    ]);
    expectSameBytes(readFrame(frame, 333).content, data);
  });

  test("checks the optional content size", () => {
    const data = sample(5000);
    const c = compressSync(Buffer.from(data));
    const size = (n: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(n);
      return b;
    };
    const frame = (n: bigint) =>
      new Uint8Array([...frameHeader(0x68, 0x40, size(n)), ...le32(c.length - 4), ...c.subarray(4), ...le32(0)]);
    expectSameBytes(readFrame(frame(5000n)).content, data);
    expectCode(() => readFrame(frame(5001n)), "LTX_BAD_LZ4");
  });

  describe("refuses damaged frames", () => {
    const good = writeFrame(sample(100_000));
    const damaged = (at: number, value: number) => {
      const b = Uint8Array.from(good);
      b[at] = value;
      return b;
    };

    test("bad magic", () => {
      expect(expectCode(() => readFrame(damaged(0, 0x05)), "LTX_BAD_LZ4").message).toContain("magic");
    });

    test("descriptor checksum", () => {
      expect(expectCode(() => readFrame(damaged(6, good[6] ^ 1)), "LTX_BAD_LZ4").message).toContain("descriptor checksum");
    });

    test("wrong version, reserved bits, dictionary, unknown block size", () => {
      for (const [flg, bd] of [
        [0x84, 0x40],
        [0x66, 0x40],
        [0x64, 0xc0],
        [0x65, 0x40],
        [0x64, 0x30],
      ]) {
        const f = new Uint8Array([...frameHeader(flg, bd), ...le32(0), ...le32(xxh32(new Uint8Array(0)))]);
        expectCode(() => readFrame(f), "LTX_BAD_LZ4");
      }
    });

    test("a block larger than the frame's block size", () => {
      const f = new Uint8Array([...frameHeader(0x60, 0x40), ...le32(65537)]);
      expectCode(() => readFrame(f), "LTX_BAD_LZ4");
    });

    test("content checksum", () => {
      const at = good.length - 1;
      expect(expectCode(() => readFrame(damaged(at, good[at] ^ 0x80)), "LTX_BAD_LZ4").message).toContain(
        "content checksum",
      );
    });

    test("block checksum", () => {
      const data = sample(10_000);
      const f = Uint8Array.from(compressFrameSync(Buffer.from(data), { contentChecksum: false, blockChecksums: true }));
      f[f.length - 5] ^= 1; // last byte of the block checksum, before the end mark
      expect(expectCode(() => readFrame(f), "LTX_BAD_LZ4").message).toContain("block 0 checksum");
    });

    test("a block that does not decompress", () => {
      const f = new Uint8Array([...frameHeader(0x60, 0x40), ...le32(3), 0xf0, 0xff, 0xff, ...le32(0)]);
      expect(expectCode(() => readFrame(f), "LTX_BAD_LZ4").message).toContain("does not decompress");
    });
  });

  test("describes where it stopped, for truncation messages", () => {
    const frame = writeFrame(sample(100_000));
    const r = new Lz4FrameReader(() => {}, "x.ltx", 100);
    r.write(frame, 0, 20);
    expect(r.describe()).toMatch(/^byte 120, inside LZ4 block 0 \(9 of \d+ bytes\)$/);
  });
});
