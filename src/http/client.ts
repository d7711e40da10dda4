import { request } from "undici";
import type { PrimaryInfo } from "../lease/index.js";
import type { PeerApi } from "../node/seams.js";
import { authHeaders } from "./auth.js";
import { HttpError } from "./errors.js";

/** Calls another node's cluster API, with this cluster's bearer token. */
export class PeerClient implements PeerApi {
  constructor(private readonly token: string | undefined) {}

  async requestHandoff(primary: PrimaryInfo, nodeId: string): Promise<void> {
    let res;
    try {
      res = await request(new URL(`/handoff?id=${encodeURIComponent(nodeId)}`, primary.advertiseUrl), {
        method: "POST",
        headers: authHeaders(this.token),
        headersTimeout: 30_000,
      });
    } catch (err) {
      throw new HttpError("HTTP_PEER_FAILED", `cannot reach the primary at ${primary.advertiseUrl}: ${(err as Error).message}`, { cause: err });
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new HttpError("HTTP_PEER_FAILED", `${res.statusCode}: ${errorText(text)}`);
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
