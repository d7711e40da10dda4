import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from "node:http";

/** Marks a write one proxy forwarded to the primary's: the receiver never forwards it again. */
export const FORWARDED_BY_HEADER = "litefs-forwarded-by";
/** A client's read level: `strong`, `cookie` (the default) or `none`. */
export const CONSISTENCY_HEADER = "litefs-consistency";

// RFC 9110 section 7.6.1: connection-specific, never passed on. `expect` is answered by this
// server (100-continue), and request trailers cannot be sent upstream.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);
const REQUEST_ONLY_DROPPED = new Set(["expect", "trailer", FORWARDED_BY_HEADER]);

/** Headers named in `Connection` are hop-by-hop too. */
function connectionTokens(headers: IncomingHttpHeaders): Set<string> {
  const value = headers.connection;
  return new Set((Array.isArray(value) ? value.join(",") : (value ?? "")).split(",").map((t) => t.trim().toLowerCase()).filter(Boolean));
}

/**
 * The headers a request goes upstream with: hop-by-hop ones dropped, the original Host kept
 * (apps build URLs from it), `X-Forwarded-For` extended with the client's address and
 * `X-Forwarded-Proto`/`-Host` set unless a proxy in front already set them.
 */
export function upstreamRequestHeaders(req: IncomingMessage, remoteAddress: string | undefined): Record<string, string | string[]> {
  const named = connectionTokens(req.headers);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || REQUEST_ONLY_DROPPED.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  const forwardedFor = req.headers["x-forwarded-for"];
  if (remoteAddress) out["x-forwarded-for"] = forwardedFor ? `${String(forwardedFor)}, ${remoteAddress}` : remoteAddress;
  out["x-forwarded-proto"] ??= "http";
  if (req.headers.host !== undefined) out["x-forwarded-host"] ??= req.headers.host;
  return out;
}

/** The upstream response's headers as the client gets them: hop-by-hop ones dropped, the rest as sent. */
export function downstreamResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = connectionTokens(headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  return out;
}
