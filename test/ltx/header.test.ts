import { describe, expect, test } from "vitest";
import {
  CHECKSUM_FLAG,
  HEADER_SIZE,
  type LtxHeader,
  TRAILER_SIZE,
  decodeHeader,
  decodeTrailer,
  encodeHeader,
  encodeTrailer,
  isSnapshot,
  validateHeader,
  validateTrailer,
} from "../../src/ltx/index.js";
import { INCREMENTAL, expectCode, fixture, header, rawHeader } from "./helpers.js";

describe("header layout", () => {
  test("decodes the LiteFS-written fixture", () => {
    const h = decodeHeader(fixture(INCREMENTAL.file));
    expect(h).toEqual({
      flags: 0,
      pageSize: 4096,
      commit: 10,
      minTxid: 13,
      maxTxid: 13,
      timestamp: 0,
      preApplyChecksum: INCREMENTAL.preApply,
      walOffset: 0,
      walSize: 0,
      walSalt1: 0,
      walSalt2: 0,
      nodeId: 0n,
    });
    expect(isSnapshot(h)).toBe(false);
  });

  test("encodes back to the same 100 bytes", () => {
    const buf = fixture(INCREMENTAL.file);
    expect(Buffer.from(encodeHeader(decodeHeader(buf))).equals(buf.subarray(0, HEADER_SIZE))).toBe(true);
  });

  test("puts every field at its big-endian offset", () => {
    const h: LtxHeader = {
      flags: 1,
      pageSize: 65536,
      commit: 0x01020304,
      minTxid: 0x1112131415,
      maxTxid: 0x1f1e1d1c1b1a,
      timestamp: 1_700_000_000_123,
      preApplyChecksum: 0x8899aabbccddeeffn,
      walOffset: 32,
      walSize: 4152,
      walSalt1: 0xdeadbeef,
      walSalt2: 0x01020304,
      nodeId: 0xfedcba9876543210n,
    };
    const b = Buffer.from(encodeHeader(h));
    expect(b.toString("latin1", 0, 4)).toBe("LTX1");
    expect(b.readUInt32BE(4)).toBe(1);
    expect(b.readUInt32BE(8)).toBe(65536);
    expect(b.readUInt32BE(12)).toBe(0x01020304);
    expect(b.readBigUInt64BE(16)).toBe(0x1112131415n);
    expect(b.readBigUInt64BE(24)).toBe(0x1f1e1d1c1b1an);
    expect(b.readBigUInt64BE(32)).toBe(1_700_000_000_123n);
    expect(b.readBigUInt64BE(40)).toBe(0x8899aabbccddeeffn);
    expect(b.readBigUInt64BE(48)).toBe(32n);
    expect(b.readBigUInt64BE(56)).toBe(4152n);
    expect(b.readUInt32BE(64)).toBe(0xdeadbeef);
    expect(b.readUInt32BE(68)).toBe(0x01020304);
    expect(b.readBigUInt64BE(72)).toBe(0xfedcba9876543210n);
    expect(b.subarray(80).every((x) => x === 0)).toBe(true);
    expect(decodeHeader(b)).toEqual(h);
  });
});

describe("header rules", () => {
  test("a valid incremental and a valid snapshot pass", () => {
    validateHeader(header());
    validateHeader(header({ minTxid: 1, maxTxid: 1, preApplyChecksum: 0n }));
    validateHeader(header({ walOffset: 32, walSize: 4152, walSalt1: 1, walSalt2: 2 }));
  });

  test("bad magic", () => {
    const err = expectCode(() => decodeHeader(rawHeader({ magic: "LTX2" }), "x.ltx"), "LTX_BAD_MAGIC");
    expect(err.message).toContain("x.ltx");
    expect(err.message).toContain("4c545832");
    expect(err.file).toBe("x.ltx");
  });

  test("unknown flags", () => {
    const err = expectCode(() => validateHeader(header({ flags: 2 })), "LTX_UNKNOWN_FLAGS");
    expect(err.message).toContain("0x00000002");
  });

  test("page size must be a power of two from 512 to 65536", () => {
    for (const pageSize of [0, 256, 1000, 4095, 131072]) {
      expectCode(() => validateHeader(header({ pageSize })), "LTX_BAD_PAGE_SIZE");
    }
    for (let pageSize = 512; pageSize <= 65536; pageSize *= 2) validateHeader(header({ pageSize }));
  });

  test("TXIDs start at 1 and the minimum does not exceed the maximum", () => {
    expectCode(() => validateHeader(header({ minTxid: 0 })), "LTX_BAD_TXID");
    expectCode(() => validateHeader(header({ minTxid: 7, maxTxid: 6 })), "LTX_TXID_ORDER");
  });

  test("a TXID above 2^53-1 in a file is refused, not rounded", () => {
    const err = expectCode(() => decodeHeader(rawHeader({ maxTxid: 1n << 53n })), "LTX_BAD_TXID");
    expect(err.message).toContain("20000000000000");
  });

  test("WAL offset and size are both zero or both set; salts need an offset", () => {
    expectCode(() => validateHeader(header({ walOffset: 32 })), "LTX_BAD_HEADER");
    expectCode(() => validateHeader(header({ walSize: 4152 })), "LTX_BAD_HEADER");
    expectCode(() => validateHeader(header({ walSalt1: 9 })), "LTX_BAD_HEADER");
    expectCode(() => decodeHeader(rawHeader({ walOffset: 1n << 63n })), "LTX_BAD_HEADER");
  });

  test("a snapshot has pre-apply checksum 0", () => {
    const err = expectCode(
      () => validateHeader(header({ minTxid: 1, maxTxid: 3, preApplyChecksum: CHECKSUM_FLAG | 5n })),
      "LTX_SNAPSHOT_RULE",
    );
    expect(err.message).toContain("8000000000000005");
  });

  test("an incremental file has a pre-apply checksum with bit 63 set", () => {
    expectCode(() => validateHeader(header({ preApplyChecksum: 0n })), "LTX_BAD_CHECKSUM");
    expectCode(() => validateHeader(header({ preApplyChecksum: 5n })), "LTX_BAD_CHECKSUM");
  });

  test("encodeHeader refuses an invalid header", () => {
    expectCode(() => encodeHeader(header({ pageSize: 100 })), "LTX_BAD_PAGE_SIZE");
  });
});

describe("trailer", () => {
  test("is post-apply then file checksum, big-endian", () => {
    const t = { postApplyChecksum: 0xfe3831a381c602b9n, fileChecksum: 0x9496a29358326fb5n };
    const b = encodeTrailer(t);
    expect(b.length).toBe(TRAILER_SIZE);
    const buf = fixture(INCREMENTAL.file);
    expect(Buffer.from(b).equals(buf.subarray(buf.length - TRAILER_SIZE))).toBe(true);
    expect(decodeTrailer(b)).toEqual(t);
  });

  test("checksums without bit 63 are refused", () => {
    expectCode(() => validateTrailer({ postApplyChecksum: 1n, fileChecksum: CHECKSUM_FLAG }), "LTX_BAD_CHECKSUM");
    expectCode(() => validateTrailer({ postApplyChecksum: CHECKSUM_FLAG, fileChecksum: 1n }), "LTX_BAD_CHECKSUM");
  });
});
