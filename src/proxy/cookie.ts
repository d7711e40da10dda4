import { formatTxid, parseTxid } from "../ltx/index.js";

/** LiteFS's read-your-writes cookie. */
export const TXID_COOKIE = "__txid";
/** How long the cookie lives: as in LiteFS, long enough for any replica to catch up. */
export const TXID_COOKIE_MAX_AGE_S = 5 * 60;

/** What the `__txid` cookie of a request asks for. */
export type CookieTxids =
  | { kind: "none" }
  | { kind: "malformed"; value: string }
  /** The TXID each tracked database must reach before the read may run. */
  | { kind: "txids"; txids: Map<string, number> };

/**
 * The cookie's value. With one tracked database it is LiteFS's exact format, the TXID as 16 hex
 * digits; with several, `name:TXID` pairs joined by `&`, names percent-encoded, so every
 * database the client wrote keeps its own TXID.
 */
export function formatTxidCookieValue(txids: Map<string, number>): string {
  if (txids.size === 1) return formatTxid([...txids.values()][0]);
  return [...txids].map(([db, txid]) => `${encodeURIComponent(db)}:${formatTxid(txid)}`).join("&");
}

/** The Set-Cookie header for the TXIDs a write left behind. */
export function txidSetCookie(txids: Map<string, number>): string {
  const expires = new Date(Date.now() + TXID_COOKIE_MAX_AGE_S * 1000).toUTCString();
  return `${TXID_COOKIE}=${formatTxidCookieValue(txids)}; Path=/; Expires=${expires}; Max-Age=${TXID_COOKIE_MAX_AGE_S}; HttpOnly`;
}

/**
 * Reads `__txid` from a Cookie header against the tracked databases (`databases[0]` takes a bare
 * TXID, so a cookie set before a second database was added still counts). Entries for databases
 * the proxy does not track are ignored; anything unreadable is reported as malformed, and the
 * caller treats it as no cookie.
 */
export function readTxidCookie(header: string | undefined, databases: string[]): CookieTxids {
  const value = cookieValue(header, TXID_COOKIE);
  if (value === undefined || value === "") return { kind: "none" };
  const txids = new Map<string, number>();
  try {
    if (!value.includes(":")) {
      txids.set(databases[0], parseTxid(value));
      return { kind: "txids", txids };
    }
    for (const pair of value.split("&")) {
      const sep = pair.lastIndexOf(":");
      if (sep <= 0) return { kind: "malformed", value };
      const db = decodeURIComponent(pair.slice(0, sep));
      const txid = parseTxid(pair.slice(sep + 1));
      if (databases.includes(db)) txids.set(db, Math.max(txid, txids.get(db) ?? 0));
    }
  } catch {
    return { kind: "malformed", value };
  }
  return { kind: "txids", txids };
}

/** The first cookie named `name` in a Cookie header (RFC 6265: `a=1; b=2`). */
function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    return part.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1");
  }
  return undefined;
}
