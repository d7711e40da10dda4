import * as fs from "node:fs";
import { request } from "undici";
import { Position } from "../ltx/index.js";
import type { PrimaryInfo } from "../lease/index.js";
import { NodeError, type NodeErrorCode } from "../node/errors.js";
import type { HaltGrantInfo, HaltHolder } from "../node/halt.js";
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

  async acquireHalt(primary: PrimaryInfo, db: string, holder: HaltHolder): Promise<HaltGrantInfo> {
    const query = new URLSearchParams({ name: db, node: holder.nodeId, hostname: holder.hostname });
    // The primary waits a little for a busy lock before it answers.
    const text = await this.haltCall(primary, "POST", `/halt?${query}`, 30_000);
    try {
      const body = JSON.parse(text) as { id: string; position: string; ttlMs: number };
      return { id: body.id, position: Position.parse(body.position), ttlMs: body.ttlMs };
    } catch (err) {
      throw new HttpError("HTTP_PEER_FAILED", `the primary's answer to a HALT lock request is not a grant: ${(err as Error).message}`, { cause: err });
    }
  }

  async renewHalt(primary: PrimaryInfo, db: string, id: string): Promise<void> {
    await this.haltCall(primary, "POST", `/halt?${new URLSearchParams({ name: db, id })}`, 10_000);
  }

  async releaseHalt(primary: PrimaryInfo, db: string, id: string): Promise<void> {
    await this.haltCall(primary, "DELETE", `/halt?${new URLSearchParams({ name: db, id })}`, 10_000);
  }

  async sendTransaction(primary: PrimaryInfo, db: string, id: string, ltxPath: string): Promise<void> {
    const size = fs.statSync(ltxPath).size;
    await this.haltCall(primary, "POST", `/tx?${new URLSearchParams({ name: db, id })}`, 60_000, {
      body: fs.createReadStream(ltxPath),
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
    });
  }

  /** One call to the primary's HALT endpoints; its NodeError refusals come back as NodeErrors. */
  private async haltCall(
    primary: PrimaryInfo,
    method: "POST" | "DELETE",
    path: string,
    timeoutMs: number,
    extra: { body?: fs.ReadStream; headers?: Record<string, string> } = {},
  ): Promise<string> {
    let res;
    try {
      res = await request(new URL(path, primary.advertiseUrl), {
        method,
        dispatcher: this.connections?.dispatcher,
        body: extra.body,
        headers: { ...authHeaders(this.token), ...extra.headers },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (err) {
      throw new HttpError("HTTP_PEER_FAILED", `cannot reach the primary at ${primary.advertiseUrl}: ${(err as Error).message}`, { cause: err });
    } finally {
      extra.body?.destroy();
    }
    const text = await res.body.text();
    if (res.statusCode === 200) return text;
    const { message, code } = errorBody(text);
    if (code?.startsWith("NODE_HALT_") || code === "NODE_NOT_PRIMARY") throw new NodeError(code as NodeErrorCode, `primary ${primary.hostname}: ${message}`);
    throw new HttpError("HTTP_PEER_FAILED", `primary ${primary.hostname} answered ${method} ${path.split("?")[0]} with ${res.statusCode}: ${message}`, { status: res.statusCode });
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
  return errorBody(text).message;
}

/** The `error` and `code` fields of a JSON error answer; else the text itself and no code. */
export function errorBody(text: string): { message: string; code?: string } {
  try {
    const body = JSON.parse(text) as { error?: unknown; code?: unknown };
    if (body && typeof body.error === "string") return { message: body.error, ...(typeof body.code === "string" && { code: body.code }) };
  } catch {
    // plain text
  }
  return { message: text.trim().slice(0, 500) };
}
