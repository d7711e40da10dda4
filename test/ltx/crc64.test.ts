import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { Crc64, Crc64Extension, crc64 } from "../../src/ltx/index.js";

/** Bit-at-a-time CRC-64/ISO straight from the definition, with Go's update semantics. */
function referenceCrc64(data: Uint8Array, prev = 0n): bigint {
  const mask = (1n << 64n) - 1n;
  let crc = ~prev & mask;
  for (const byte of data) {
    crc ^= BigInt(byte);
    for (let i = 0; i < 8; i++) crc = crc & 1n ? (crc >> 1n) ^ 0xd800000000000000n : crc >> 1n;
  }
  return ~crc & mask;
}

const bytes = (s: string) => new TextEncoder().encode(s);

describe("crc64", () => {
  test("check value of 123456789 is Go's crc64.ISO value", () => {
    expect(crc64(bytes("123456789"))).toBe(0xb90956c775a41001n);
  });

  test("empty input leaves the previous value unchanged, like crc64.Update", () => {
    expect(crc64(new Uint8Array(0))).toBe(0n);
    expect(crc64(new Uint8Array(0), 0x1234n)).toBe(0x1234n);
  });

  test("matches the bitwise definition for any bytes at any alignment", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(7), fc.bigInt(0n, (1n << 64n) - 1n), (data, shift, prev) => {
        // Copy behind `shift` bytes so the word path meets every alignment.
        const backing = new Uint8Array(data.length + shift);
        backing.set(data, shift);
        const view = backing.subarray(shift);
        expect(crc64(view, prev)).toBe(referenceCrc64(data, prev));
      }),
    );
  });

  test("chains: crc64(b, crc64(a)) equals crc64(a ‖ b)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }), (a, b) => {
        const ab = new Uint8Array([...a, ...b]);
        expect(crc64(b, crc64(a))).toBe(crc64(ab));
        expect(new Crc64().update(a).update(b).digest()).toBe(crc64(ab));
      }),
    );
  });

  test("update over a sub-range equals hashing that slice", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.nat(), fc.nat(), (data, x, y) => {
        const start = x % data.length;
        const end = start + (y % (data.length - start + 1));
        expect(new Crc64().update(data, start, end).digest()).toBe(crc64(data.slice(start, end)));
      }),
    );
  });

  test("updateUint32BE hashes the four big-endian bytes", () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.uint8Array({ maxLength: 20 }), (v, before) => {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(v);
        expect(new Crc64().update(before).updateUint32BE(v).digest()).toBe(crc64(b, crc64(before)));
      }),
    );
  });

  test("append(crc of B) equals update(B): a block's CRC can be reused for a running CRC", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 600 }), (a, b) => {
        const block = new Crc64().update(b);
        const appended = new Crc64().update(a).append(new Crc64Extension(b.length), block.hi, block.lo);
        expect(appended.digest()).toBe(crc64(new Uint8Array([...a, ...b])));
      }),
    );
  });

  test("reset(prev) continues from a previous result", () => {
    const c = new Crc64(crc64(bytes("1234")));
    expect(c.update(bytes("56789")).digest()).toBe(0xb90956c775a41001n);
    expect(c.reset().update(bytes("123456789")).digest()).toBe(0xb90956c775a41001n);
  });
});
