import { describe, expect, test } from "vitest";
import { Position, formatLtxFilename, formatTxid, parseLtxFilename, parseTxid } from "../../src/ltx/index.js";
import { expectCode } from "./helpers.js";

describe("TXID text", () => {
  test("is 16 lowercase hex digits", () => {
    expect(formatTxid(13)).toBe("000000000000000d");
    expect(formatTxid(0)).toBe("0000000000000000");
    expect(formatTxid(Number.MAX_SAFE_INTEGER)).toBe("001fffffffffffff");
    expect(parseTxid("000000000000000d")).toBe(13);
    expect(parseTxid("000000000000000D")).toBe(13);
  });

  test("refuses TXIDs a JS number cannot hold exactly", () => {
    const err = expectCode(() => parseTxid("0020000000000000"), "LTX_BAD_TXID");
    expect(err.message).toContain("0020000000000000");
    expectCode(() => formatTxid(2 ** 53), "LTX_BAD_TXID");
    expectCode(() => formatTxid(-1), "LTX_BAD_TXID");
    expectCode(() => formatTxid(1.5), "LTX_BAD_TXID");
  });

  test("refuses malformed text", () => {
    for (const s of ["d", "0x0000000000000d", "000000000000000d\n", "00000000000000zz"]) {
      expectCode(() => parseTxid(s), "LTX_BAD_TXID");
    }
  });
});

describe("Position", () => {
  test("prints as %016x/%016x and parses back", () => {
    const p = new Position(13, 0xfe3831a381c602b9n);
    expect(p.toString()).toBe("000000000000000d/fe3831a381c602b9");
    const q = Position.parse("000000000000000d/fe3831a381c602b9");
    expect(q.txid).toBe(13);
    expect(q.postApplyChecksum).toBe(0xfe3831a381c602b9n);
    expect(q.equals(p)).toBe(true);
  });

  test("equality needs both the TXID and the checksum", () => {
    const p = new Position(13, 0xfe3831a381c602b9n);
    expect(p.equals(new Position(13, 0xfe3831a381c602b8n))).toBe(false);
    expect(p.equals(new Position(12, 0xfe3831a381c602b9n))).toBe(false);
  });

  test("zero is TXID 0 with checksum 0", () => {
    expect(Position.ZERO.isZero()).toBe(true);
    expect(Position.ZERO.toString()).toBe("0000000000000000/0000000000000000");
    expect(new Position(1, 0n).isZero()).toBe(false);
  });

  test("refuses malformed text with a position error", () => {
    for (const s of ["", "000000000000000d", "000000000000000d-fe3831a381c602b9", "000000000000000d/fe3831a381c602b9\n"]) {
      expectCode(() => Position.parse(s), "LTX_BAD_POSITION");
    }
    expectCode(() => Position.parse("ffffffffffffffff/fe3831a381c602b9"), "LTX_BAD_TXID");
  });
});

describe("LTX file names", () => {
  test("are <min>-<max>.ltx", () => {
    expect(formatLtxFilename(13, 13)).toBe("000000000000000d-000000000000000d.ltx");
    expect(formatLtxFilename(1, 255)).toBe("0000000000000001-00000000000000ff.ltx");
    expect(parseLtxFilename("000000000000000d-000000000000000d.ltx")).toEqual({ minTxid: 13, maxTxid: 13 });
  });

  test("other names are not LTX files", () => {
    for (const name of [
      "000000000000000d-000000000000000d.ltx.tmp",
      "000000000000000D-000000000000000d.ltx",
      "000000000000000d.ltx",
      "database",
      "0000000000000001-0000000000000002.LTX",
    ]) {
      expect(parseLtxFilename(name)).toBeNull();
    }
  });

  test("a well-formed name with an unrepresentable TXID is an error, not silently skipped", () => {
    expectCode(() => parseLtxFilename("0000000000000001-ffffffffffffffff.ltx"), "LTX_BAD_TXID");
  });
});
