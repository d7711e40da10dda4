import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { LitefsError } from "../errors.js";
import type { Store } from "../store/store.js";
import { isAuthorized } from "./auth.js";
import { StreamControl, serveStream } from "./stream-primary.js";
import { MAX_STREAM_REQUEST_BYTES, parseStreamRequest } from "./stream-request.js";

export interface ApiServerOptions {
  addr: string;
  token?: string;
  store: Store;
  log: Logger;
  hostname: string;
  compress: boolean;
  heartbeatMs?: number;
  /** The cluster ID the primary hands to replicas (created when this node first became primary). */
  clusterId: () => string | null;
  /** Extra routes (promote, handoff) added by the lease layer. */
  routes?: Record<string, (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>>;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The cluster API (http.addr, default :20202): POST /stream for replicas, GET /info for
 * operators. With http.token set, every endpoint requires the bearer token; a request without it
 * gets 401 and a log line, and nothing else.
 */
export class ApiServer {
  private readonly server: http.Server;
  private primaryAbort = new AbortController();
  port: number | null = null;
  /** Open replica streams by node ID. */
  private readonly streams = new Map<string, StreamControl>();

  constructor(private readonly opts: ApiServerOptions) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        const status = err instanceof HttpError ? err.status : 500;
        if (status >= 500) opts.log.error({ err, path: req.url }, "http request failed");
        else opts.log.warn({ path: req.url, status, remote: req.socket.remoteAddress }, (err as Error).message);
        if (!res.headersSent) sendJson(res, status, { error: (err as Error).message });
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 30_000;
  }

  async listen(): Promise<AddressInfo> {
    const { host, port } = parseAddr(this.opts.addr);
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", (err: NodeJS.ErrnoException) =>
        reject(new LitefsError("HTTP_LISTEN_FAILED", `cannot listen on http.addr ${this.opts.addr}: ${err.code === "EADDRINUSE" ? "address already in use" : err.message}`)),
      );
      this.server.listen(port, host || undefined, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    this.port = address.port;
    this.opts.log.info({ addr: `${address.address}:${address.port}` }, "http server listening");
    return address;
  }

  /** Node IDs of connected replicas that are lease candidates. */
  candidateReplicas(): string[] {
    return [...this.streams.values()].filter((c) => c.request.candidate).map((c) => c.request.nodeId);
  }

  /** Sends the lease ID to a connected replica once it has every commit (see StreamControl). */
  async handoffTo(nodeId: string, leaseId: string): Promise<void> {
    const control = this.streams.get(nodeId) ?? [...this.streams.values()].find((c) => c.request.hostname === nodeId);
    if (!control) throw new HttpError(400, `no connected replica with node ID or hostname ${JSON.stringify(nodeId)}`);
    if (!control.request.candidate) throw new HttpError(400, `replica ${control.request.hostname} is not a lease candidate`);
    await control.handoff(leaseId);
    this.opts.log.info({ replica: control.request.hostname }, "lease handed off");
  }

  /** Ends every replication stream (this node is no longer the primary). */
  endStreams(reason: string): void {
    this.primaryAbort.abort(reason);
    this.primaryAbort = new AbortController();
  }

  async close(): Promise<void> {
    this.endStreams("shutting down");
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (!isAuthorized(req, this.opts.token)) {
      req.resume();
      throw new HttpError(401, `unauthorized request for ${url.pathname}: missing or wrong bearer token`);
    }
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case "POST /stream":
        return this.stream(req, res);
      case "GET /info":
        return sendJson(res, 200, this.info());
      default: {
        const extra = this.opts.routes?.[route];
        if (extra) return extra(req, res);
        req.resume();
        throw new HttpError(404, `no such endpoint: ${route}`);
      }
    }
  }

  private async stream(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req, MAX_STREAM_REQUEST_BYTES);
    let parsed;
    try {
      parsed = parseStreamRequest(body);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    const { store } = this.opts;
    if (!store.isPrimary) throw new HttpError(503, "this node is not the primary");
    const clusterId = this.opts.clusterId();
    if (parsed.clusterId && clusterId && parsed.clusterId !== clusterId) {
      throw new HttpError(409, `replica ${parsed.hostname} belongs to cluster ${parsed.clusterId}, this primary to ${clusterId}`);
    }
    res.writeHead(200, {
      "content-type": "application/vnd.litefs.stream",
      "litefs-cluster-id": clusterId ?? "",
      "litefs-primary-hostname": this.opts.hostname,
    });
    res.flushHeaders();
    this.opts.log.info({ replica: parsed.hostname, node: parsed.nodeId }, "replica connected");
    const control = new StreamControl(parsed);
    this.streams.set(parsed.nodeId, control);
    try {
      await serveStream(
        parsed,
        res,
        { store, log: this.opts.log, compress: this.opts.compress, heartbeatMs: this.opts.heartbeatMs ?? 1000 },
        this.primaryAbort.signal,
        control,
      );
    } finally {
      if (this.streams.get(parsed.nodeId) === control) this.streams.delete(parsed.nodeId);
    }
    this.opts.log.info({ replica: parsed.hostname }, "replica disconnected");
  }

  private info(): object {
    const { store } = this.opts;
    return {
      hostname: this.opts.hostname,
      nodeId: store.nodeId.toString(16).padStart(16, "0"),
      clusterId: this.opts.clusterId(),
      isPrimary: store.isPrimary,
      primary: store.isPrimary ? this.opts.hostname : store.primaryHostname(),
      lagMs: store.lagMs(),
      replicas: [...this.streams.values()].map((c) => ({ hostname: c.request.hostname, nodeId: c.request.nodeId, candidate: c.request.candidate ?? false })),
      databases: Object.fromEntries(store.allDatabases().map((db) => [db.name, { position: db.position.toString(), exists: db.exists }])),
    };
  }
}

export function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(addr.slice(i + 1)) };
}

export async function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) {
    req.resume();
    throw new HttpError(400, `request body too large: ${declared} bytes (limit ${limit})`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      req.resume();
      throw new HttpError(400, `request body too large (limit ${limit} bytes)`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + "\n";
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
