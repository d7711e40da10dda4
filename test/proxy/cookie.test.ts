import { afterEach, describe, expect, test, vi } from "vitest";
import {
  TXID_COOKIE,
  TXID_COOKIE_MAX_AGE_S,
  formatTxidCookieValue,
  readTxidCookie,
  txidSetCookie,
} from "../../src/proxy/cookie.js";

const txids = (...entries: [string, number][]) => new Map<string, number>(entries);

describe("formatTxidCookieValue", () => {
  test("with one database is LiteFS's exact format: the TXID as 16 lowercase hex digits", () => {
    expect(formatTxidCookieValue(txids(["db", 0x2a]))).toBe("000000000000002a");
    expect(formatTxidCookieValue(txids(["db", 0]))).toBe("0000000000000000");
    expect(formatTxidCookieValue(txids(["db", Number.MAX_SAFE_INTEGER]))).toBe("001fffffffffffff");
  });

  test("with several databases joins name:TXID pairs with &", () => {
    expect(formatTxidCookieValue(txids(["a.db", 1], ["b.db", 0xff]))).toBe("a.db:0000000000000001&b.db:00000000000000ff");
  });

  test("percent-encodes database names so & and : in a name cannot break the pairs", () => {
    const value = formatTxidCookieValue(txids(["a&b.db", 1], ["x:y.db", 2], ["my db", 3]));
    expect(value).toBe("a%26b.db:0000000000000001&x%3Ay.db:0000000000000002&my%20db:0000000000000003");
  });

  test("produces only characters allowed in a cookie value, whatever the names", () => {
    const value = formatTxidCookieValue(txids(['q"uo;te,\\ d', 1], ["ünïcödé 😀", 2]));
    // RFC 6265 cookie-octet: no CTLs, whitespace, DQUOTE, comma, semicolon or backslash.
    expect(value).toMatch(/^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$/);
  });
});

describe("txidSetCookie", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  test("sets __txid for the whole site, HttpOnly, for five minutes", () => {
    const header = txidSetCookie(txids(["db", 7]));
    const [pair, ...attrs] = header.split("; ");
    expect(pair).toBe(`${TXID_COOKIE}=0000000000000007`);
    expect(TXID_COOKIE).toBe("__txid");
    expect(TXID_COOKIE_MAX_AGE_S).toBe(300);
    expect(attrs).toContain("Path=/");
    expect(attrs).toContain("HttpOnly");
    expect(attrs).toContain("Max-Age=300");
  });

  test("Expires is five minutes from now, as an HTTP date", () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date("2024-03-01T12:00:00.000Z"));
    const header = txidSetCookie(txids(["db", 7]));
    const expires = /(?:^|; )Expires=([^;]+)/.exec(header)?.[1];
    expect(expires).toBe("Fri, 01 Mar 2024 12:05:00 GMT");
  });

  test("Expires tracks the real clock", () => {
    const before = Date.now();
    const header = txidSetCookie(txids(["db", 7]));
    const after = Date.now();
    const expires = Date.parse(/(?:^|; )Expires=([^;]+)/.exec(header)![1]);
    // HTTP dates have whole-second precision.
    expect(expires).toBeGreaterThanOrEqual(Math.floor((before + 300_000) / 1000) * 1000);
    expect(expires).toBeLessThanOrEqual(after + 300_000);
  });

  test("carries every database's TXID with several databases", () => {
    const header = txidSetCookie(txids(["a.db", 1], ["b.db", 2]));
    expect(header.startsWith("__txid=a.db:0000000000000001&b.db:0000000000000002; ")).toBe(true);
  });
});

describe("readTxidCookie", () => {
  test("finds nothing without a Cookie header", () => {
    expect(readTxidCookie(undefined, ["db"])).toEqual({ kind: "none" });
    expect(readTxidCookie("", ["db"])).toEqual({ kind: "none" });
  });

  test("finds nothing when only other cookies are present", () => {
    expect(readTxidCookie("session=abc; theme=dark", ["db"])).toEqual({ kind: "none" });
  });

  test("does not take a cookie whose name merely contains __txid", () => {
    expect(readTxidCookie("x__txid=0000000000000005; __txidx=0000000000000006", ["db"])).toEqual({ kind: "none" });
  });

  test("treats an empty __txid as no cookie", () => {
    expect(readTxidCookie("__txid=", ["db"])).toEqual({ kind: "none" });
    expect(readTxidCookie('__txid=""', ["db"])).toEqual({ kind: "none" });
  });

  test("reads LiteFS's single 16-hex-digit TXID", () => {
    expect(readTxidCookie("__txid=000000000000002a", ["db"])).toEqual({ kind: "txids", txids: txids(["db", 42]) });
  });

  test("accepts upper-case hex digits", () => {
    expect(readTxidCookie("__txid=00000000000000FF", ["db"])).toEqual({ kind: "txids", txids: txids(["db", 255]) });
  });

  test("a bare TXID counts for the first database", () => {
    expect(readTxidCookie("__txid=0000000000000009", ["first.db", "second.db"])).toEqual({
      kind: "txids",
      txids: txids(["first.db", 9]),
    });
  });

  test("finds __txid among other cookies, wherever it sits", () => {
    const want = { kind: "txids", txids: txids(["db", 3]) };
    expect(readTxidCookie("a=1; __txid=0000000000000003; b=2", ["db"])).toEqual(want);
    expect(readTxidCookie("__txid=0000000000000003; a=1", ["db"])).toEqual(want);
    expect(readTxidCookie("a=1;__txid=0000000000000003", ["db"])).toEqual(want);
    expect(readTxidCookie("a=1;   __txid=0000000000000003  ", ["db"])).toEqual(want);
  });

  test("skips cookie parts without an = sign", () => {
    expect(readTxidCookie("flag; __txid=0000000000000003", ["db"])).toEqual({ kind: "txids", txids: txids(["db", 3]) });
  });

  test("takes the first __txid when the header holds several", () => {
    expect(readTxidCookie("__txid=0000000000000001; __txid=0000000000000002", ["db"])).toEqual({
      kind: "txids",
      txids: txids(["db", 1]),
    });
  });

  test("unwraps a quoted value", () => {
    expect(readTxidCookie('__txid="0000000000000004"', ["db"])).toEqual({ kind: "txids", txids: txids(["db", 4]) });
    expect(readTxidCookie('a=1; __txid="a.db:0000000000000004"', ["a.db"])).toEqual({
      kind: "txids",
      txids: txids(["a.db", 4]),
    });
  });

  test("reads name:TXID pairs for several databases", () => {
    const got = readTxidCookie("__txid=a.db:0000000000000001&b.db:0000000000000002", ["a.db", "b.db"]);
    expect(got).toEqual({ kind: "txids", txids: txids(["a.db", 1], ["b.db", 2]) });
  });

  test("a pair for only some databases leaves the others without a TXID", () => {
    const got = readTxidCookie("__txid=b.db:0000000000000002", ["a.db", "b.db"]);
    expect(got).toEqual({ kind: "txids", txids: txids(["b.db", 2]) });
  });

  test("ignores entries for databases the proxy does not track", () => {
    const got = readTxidCookie("__txid=a.db:0000000000000001&gone.db:0000000000000099", ["a.db", "b.db"]);
    expect(got).toEqual({ kind: "txids", txids: txids(["a.db", 1]) });
  });

  test("an untracked entry still has to be well formed", () => {
    const got = readTxidCookie("__txid=a.db:0000000000000001&gone.db:zz", ["a.db"]);
    expect(got).toEqual({ kind: "malformed", value: "a.db:0000000000000001&gone.db:zz" });
  });

  test("only untracked entries give an empty set of TXIDs, not malformed", () => {
    expect(readTxidCookie("__txid=gone.db:0000000000000001", ["a.db"])).toEqual({ kind: "txids", txids: new Map() });
  });

  test("a database named twice waits for the higher TXID", () => {
    const got = readTxidCookie("__txid=a.db:0000000000000005&a.db:0000000000000003", ["a.db"]);
    expect(got).toEqual({ kind: "txids", txids: txids(["a.db", 5]) });
  });

  test("decodes percent-encoded names", () => {
    const got = readTxidCookie("__txid=a%26b.db:0000000000000001&x%3Ay.db:0000000000000002", ["a&b.db", "x:y.db"]);
    expect(got).toEqual({ kind: "txids", txids: txids(["a&b.db", 1], ["x:y.db", 2]) });
  });

  describe("reports malformed values", () => {
    const cases: [string, string][] = [
      ["a TXID that is too short", "00000000000002a"],
      ["a TXID that is too long", "00000000000000002a"],
      ["a TXID with non-hex digits", "000000000000002g"],
      ["a TXID with a 0x prefix", "0x0000000000002a"],
      ["a TXID above Number.MAX_SAFE_INTEGER", "0020000000000000"],
      ["the largest 64-bit TXID", "ffffffffffffffff"],
      ["a negative TXID", "-000000000000001"],
      ["a pair with no name", "a.db:0000000000000001&:0000000000000002"],
      ["a pair with no colon among pairs", "a.db:0000000000000001&0000000000000002"],
      ["an empty pair", "a.db:0000000000000001&"],
      ["a pair with no TXID", "a.db:"],
      ["a pair with a short TXID", "a.db:01"],
      ["a pair with a TXID above Number.MAX_SAFE_INTEGER", "a.db:0020000000000000"],
      ["a name with broken percent-encoding", "a%zz.db:0000000000000001"],
    ];
    test.each(cases)("%s", (_, value) => {
      expect(readTxidCookie(`x=1; __txid=${value}; y=2`, ["a.db", "b.db"])).toEqual({ kind: "malformed", value });
    });
  });

  test("the largest safe TXID is read exactly", () => {
    expect(readTxidCookie("__txid=001fffffffffffff", ["db"])).toEqual({
      kind: "txids",
      txids: txids(["db", Number.MAX_SAFE_INTEGER]),
    });
  });
});

describe("format then read", () => {
  const roundTrip = (m: Map<string, number>) => {
    const header = txidSetCookie(m);
    const cookie = header.slice(0, header.indexOf(";"));
    return readTxidCookie(`other=1; ${cookie}; more=2`, [...m.keys()]);
  };

  test("gives back a single database's TXID", () => {
    const m = txids(["only.db", 123456]);
    expect(roundTrip(m)).toEqual({ kind: "txids", txids: m });
  });

  test("gives back every database's TXID", () => {
    const m = txids(["a.db", 1], ["b.db", 0], ["c.db", Number.MAX_SAFE_INTEGER]);
    expect(roundTrip(m)).toEqual({ kind: "txids", txids: m });
  });

  test("survives names with &, :, %, =, ;, quotes, spaces and unicode", () => {
    const m = txids(
      ["a&b.db", 1],
      ["x:y.db", 2],
      ["with space.db", 3],
      ["100%.db", 4],
      ["k=v;.db", 5],
      ['"quoted".db', 6],
      ["données-😀.db", 7],
      [":", 8],
    );
    expect(roundTrip(m)).toEqual({ kind: "txids", txids: m });
  });

  test("a single database with an awkward name still round-trips (bare TXID)", () => {
    const m = txids(["a&b:c d😀.db", 77]);
    expect(formatTxidCookieValue(m)).toBe("000000000000004d");
    expect(roundTrip(m)).toEqual({ kind: "txids", txids: m });
  });
});
