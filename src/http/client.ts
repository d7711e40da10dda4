import { request } from "undici";
import { Position } from "../ltx/index.js";
import type { PrimaryInfo } from "../lease/index.js";
import type { PeerApi } from "../node/seams.js";
import { authHeaders } from "./auth.js";
import { HttpError } from "./errors.js";
import type { PeerConnections } from "./tls.js";

/** Calls another node's cluster API, with this cluster's bearer token (and certificate, with http.tls.ca). */
export class PeerClient implements PeerApi {
  constructor(
    private readonly token: string | undefined,
    private readonly connections?: PeerConnections,
  ) {}

  async requestHandoff(primary: PrimaryInfo, nodeId: string): Promise<void> {
    let res;
    try {
      res = await request(new URL(`/handoff?id=${encodeURIComponent(nodeId)}`, primary.advertiseUrl), {
        method: "POST",
        headers: authHeaders(this.token),
        dispatcher: this.connections?.dispatcher,
        headersTimeout: 30_000,
      });
    } catch (err) {
      throw new HttpError("HTTP_PEER_FAILED", `cannot reach the primary at ${primary.advertiseUrl}: ${(err as Error).message}`, { cause: err });
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new HttpError("HTTP_PEER_FAILED", `${res.statusCode}: ${errorText(text)}`);
  }

  /** The primary's TXID per database, from its /info (what a strong read waits for). */
  async primaryTxids(primary: PrimaryInfo): Promise<Map<string, number>> {
    let res;
    try {
      res = await request(new URL("/info", primary.advertiseUrl), {
        headers: authHeaders(this.token),
        dispatcher: this.connections?.dispatcher,
        headersTimeout: 5_000,
        bodyTimeout: 5_000,
      });
    } catch (err) {
      throw new HttpError("HTTP_PEER_FAILED", `cannot reach ${primary.advertiseUrl}: ${(err as Error).message}`, { cause: err });
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new HttpError("HTTP_PEER_FAILED", `${primary.advertiseUrl}/info answered ${res.statusCode}: ${errorText(text)}`);
    try {
      const info = JSON.parse(text) as { databases: Record<string, { position: string }> };
      return new Map(Object.entries(info.databases).map(([db, { position }]) => [db, Position.parse(position).txid]));
    } catch (err) {
      throw new HttpError("HTTP_PEER_FAILED", `${primary.advertiseUrl}/info is not a node's info: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** The `error` field of a JSON error answer, else the text itself. */
export function errorText(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: unknown };
    if (body && typeof body.error === "string") return body.error;
  } catch {
    // plain text
  }
  return text.trim().slice(0, 500);
}
