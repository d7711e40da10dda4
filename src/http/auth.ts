import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

/** True when no token is configured, or the request carries `Authorization: Bearer <token>`. */
export function isAuthorized(req: IncomingMessage, token: string | undefined): boolean {
  if (!token) return true;
  const header = req.headers.authorization ?? "";
  const match = /^Bearer (.+)$/.exec(header);
  if (!match) return false;
  const given = Buffer.from(match[1]);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The one place the bearer header is built (http.token); every client of the cluster API uses it. */
export function authHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}
