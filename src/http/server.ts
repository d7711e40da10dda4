import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type { TlsFiles } from "../config/index.js";
import { LitefsError } from "../errors.js";
import type { Node } from "../node/node.js";
import type { NodeErrorCode } from "../node/errors.js";
import type { StoreErrorCode } from "../store/errors.js";
import type { Position } from "../ltx/index.js";
import type { Store } from "../store/store.js";
import { isAuthorized } from "./auth.js";
import { HttpError } from "./errors.js";
import { sendJson } from "./respond.js";
import { serveEvents } from "./events.js";
import { haltRoutes } from "./halt.js";
import { serveExport, serveImport } from "./import-export.js";
import type { ReplicationObserver } from "./stream-observer.js";
import { serveStream } from "./stream-primary.js";
import { MAX_STREAM_REQUEST_BYTES, parseStreamRequest } from "./stream-request.js";
import { serverTlsOptions } from "./tls.js";

export interface ApiServerOptions {
  addr: string;
  token?: string;
  /** http.tls, read: serve https (with a CA, mutual TLS). */
  tls?: TlsFiles;
  /** Read per request (a getter is fine): the node may be created after the API has bound its port. */
  readonly node: Node;
  store: Store;
  log: Logger;
  compress: boolean;
  heartbeatMs?: number;
  /** Routes only tests install (LITEFS_TEST_HOOKS); never present in production. */
  testRoutes?: Record<string, Route>;
  /** More fields for GET /info from parts the Node does not own (e.g. `backup`, src/backup/). */
  info?: () => Record<string, unknown>;
  /** GET /metrics (src/metrics/); without it the endpoint does not exist. */
  metrics?: MetricsSource;
  /**
   * Times requests (metrics): asked once per route (`"GET /info"`, ...; `"other"` for anything
   * that matched none), the function it returns is called with each request's duration once its
   * answer ended (a stream's when it closed).
   */
  requestTimer?: (route: string) => (seconds: number) => void;
  replicationObserver?: ReplicationObserver;
}

/** What serves GET /metrics: the exposition text and its content type. */
export interface MetricsSource {
  readonly contentType: string;
  scrape(): Promise<string>;
}

export type Route = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<void>;

/** The route label of requests that matched no route (a wrong path, probes, scanners). */
const OTHER_ROUTE = "other";

/** How the Store's refusals answer over HTTP (the rest are 500). */
const STORE_STATUS: Partial<Record<StoreErrorCode, number>> = {
  STORE_BAD_IMPORT: 400,
  STORE_BAD_NAME: 400,
  STORE_NOT_FOUND: 404,
  STORE_POSITION_MISMATCH: 409,
  STORE_CHECKSUM_MISMATCH: 409,
};

/** How the Node's refusals answer over HTTP. */
const NODE_STATUS: Record<NodeErrorCode, number> = {
  NODE_NOT_PRIMARY: 503,
  NODE_NOT_CANDIDATE: 400,
  NODE_NO_PRIMARY: 400,
  NODE_HANDOFF_UNSUPPORTED: 400,
  NODE_HANDOFF_FAILED: 409,
  NODE_PROMOTION_TIMEOUT: 504,
  NODE_CLUSTER_MISMATCH: 409,
  NODE_BUSY: 409,
  NODE_HALT_BUSY: 409,
  NODE_HALT_LOST: 409,
  NODE_HALT_FAILED: 409,
};

/** Why a TLS handshake was refused, for the log line, by Node's error code. */
const HANDSHAKE_REFUSALS: Record<string, string> = {
  ERR_SSL_HTTP_REQUEST: "plain HTTP request on the TLS port refused: use https:// (http.tls is set)",
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: "TLS client without a certificate refused (http.tls.ca requires one)",
};

/**
 * The cluster API (http.addr, default :20202). With http.token set, every endpoint requires the
 * bearer token; a request without it gets 401 and a log line, and nothing else. With http.tls it
 * is served over https, and with http.tls.ca a client must present a certificate that CA signed
 * (the token still applies on top); a refused handshake closes the connection and is logged. A
 * client that goes away mid-request costs its request and nothing more.
 */
export class ApiServer {
  private readonly server: http.Server;
  private readonly routes: Record<string, Route>;
  /** With TLS: every connection, so close() also ends those still in their handshake (unknown to the HTTP layer). */
  private readonly sockets = new Set<Socket>();
  /** One timer per route (and OTHER_ROUTE), made once: nothing is looked up by label per request. */
  private readonly timers = new Map<string, (seconds: number) => void>();
  port: number | null = null;

  constructor(private readonly opts: ApiServerOptions) {
    // The node is read per request: the daemon creates it after the API has bound its port.
    const node = (): Node => opts.node;
    this.routes = {
      "POST /stream": (req, res) => this.stream(req, res),
      "GET /info": async (req, res) => {
        req.resume();
        sendJson(res, 200, { ...node().info(), ...opts.info?.() });
      },
      "GET /events": async (req, res) => {
        req.resume();
        await serveEvents(node(), res, opts.log);
      },
      "POST /handoff": async (req, res, url) => {
        req.resume();
        const target = url.searchParams.get("id");
        if (!target) throw new HttpError("HTTP_BAD_REQUEST", "handoff needs ?id=<node ID or hostname of a connected candidate replica>");
        await node().handoff(target);
        sendJson(res, 200, { handedOffTo: target });
      },
      "POST /import": (req, res, url) => serveImport(req, res, url, node(), opts.store),
      "GET /export": (req, res, url) => serveExport(req, res, url, opts.store),
      ...haltRoutes(node),
      "POST /ack": async (req, res, url) => {
        req.resume();
        const nodeId = url.searchParams.get("node");
        const db = url.searchParams.get("db");
        const txid = Number(url.searchParams.get("txid"));
        if (!nodeId || !db || !Number.isSafeInteger(txid) || txid <= 0) throw new HttpError("HTTP_BAD_REQUEST", "ack needs ?node=<node ID>&db=<database>&txid=<TXID, a positive integer>");
        node().acknowledge(nodeId, db, txid);
        sendJson(res, 200, { acked: txid });
      },
      "POST /promote": async (req, res) => {
        req.resume();
        const { changed } = await node().promote();
        sendJson(res, 200, { primary: true, changed });
      },
      ...(opts.metrics && { "GET /metrics": (req, res) => serveMetrics(req, res, opts.metrics!) }),
      ...opts.testRoutes,
    };
    if (opts.requestTimer) for (const route of [...Object.keys(this.routes), OTHER_ROUTE]) this.timers.set(route, opts.requestTimer(route));
    const respond = (req: http.IncomingMessage, res: http.ServerResponse) => this.respond(req, res);
    if (opts.tls) {
      this.server = https.createServer(serverTlsOptions(opts.tls), respond);
      this.server.on("tlsClientError", (err: NodeJS.ErrnoException & { reason?: string }, socket: TLSSocket) => this.refusedHandshake(err, socket));
      this.server.on("connection", (socket: Socket) => {
        this.sockets.add(socket);
        socket.once("close", () => this.sockets.delete(socket));
      });
    } else {
      this.server = http.createServer(respond);
    }
    this.server.keepAliveTimeout = 30_000;
  }

  /** SIGHUP: new connections use these files; open ones keep theirs. Throws if they cannot be used. */
  setTlsFiles(files: TlsFiles): void {
    if (!(this.server instanceof https.Server)) throw new HttpError("HTTP_INTERNAL", "the cluster API is not served over TLS");
    this.server.setSecureContext(serverTlsOptions(files));
  }

  async listen(): Promise<AddressInfo> {
    const { host, port } = parseAddr(this.opts.addr);
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", (err: NodeJS.ErrnoException) =>
        reject(new HttpError("HTTP_LISTEN_FAILED", `cannot listen on http.addr ${this.opts.addr}: ${err.code === "EADDRINUSE" ? "address already in use" : err.message}`)),
      );
      this.server.listen(port, host || undefined, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    this.port = address.port;
    const tls = this.opts.tls ? (this.opts.tls.ca ? "mutual" : "server") : undefined;
    this.opts.log.info({ addr: `${address.address}:${address.port}`, ...(tls && { tls }) }, "http server listening");
    return address;
  }

  async close(): Promise<void> {
    // No node yet when the daemon failed to start after the API was listening.
    (this.opts.node as Node | undefined)?.replicas.endAll("shutting down");
    // A response's writes are corked until the next tick: let the last ones out first (an
    // /events subscriber then hears this node step down before its connection closes).
    await new Promise((resolve) => setImmediate(resolve));
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** One line per refused handshake; Node has already closed the connection. */
  private refusedHandshake(err: NodeJS.ErrnoException & { reason?: string }, socket: TLSSocket): void {
    const remote = socket.remoteAddress;
    // A certificate that fails verification is dropped by Node after the handshake; this error then says ECONNRESET.
    const unverified = socket.authorizationError as unknown as string | null;
    if (unverified) {
      this.opts.log.warn({ remote, reason: unverified }, `TLS client certificate refused (${unverified}, verified against http.tls.ca)`);
      return;
    }
    if (err.code === "ECONNRESET" || err.code === "EPIPE") {
      this.opts.log.debug({ remote, code: err.code }, "TLS client went away during the handshake");
      return;
    }
    const message = HANDSHAKE_REFUSALS[err.code ?? ""] ?? `TLS handshake refused: ${err.reason ?? err.message}`;
    this.opts.log.warn({ remote, code: err.code }, message);
  }

  private respond(req: http.IncomingMessage, res: http.ServerResponse): void {
    // Read now: once the client is gone its socket is detached from the request.
    const remote = req.socket.remoteAddress;
    const started = { method: req.method, path: req.url };
    if (this.timers.size > 0) this.time(req, res);
    // A client that goes away mid-body surfaces as an error on the request: it ends this request only.
    req.on("error", () => undefined);
    res.on("error", () => undefined);
    this.handle(req, res).catch((err: unknown) => {
      const gone = req.destroyed && (res.destroyed || !res.writable);
      const status = httpStatus(err);
      if (gone && status >= 500) {
        this.opts.log.info({ ...started, remote }, "client went away before its request was answered");
      } else if (status === 500) {
        this.opts.log.error({ err, ...started, remote }, "http request failed");
      } else {
        this.opts.log.warn({ ...started, status, remote, code: (err as LitefsError).code }, (err as Error).message);
      }
      if (res.destroyed || res.writableEnded) return;
      if (!res.headersSent) sendJson(res, status, { error: (err as Error).message, code: (err as LitefsError).code ?? "HTTP_INTERNAL" });
      else res.destroy();
    });
  }

  /** Observes the request's duration under its route once its answer has ended or been cut off. */
  private time(req: http.IncomingMessage, res: http.ServerResponse): void {
    const startedAt = performance.now();
    const path = req.url ?? "/";
    const q = path.indexOf("?");
    const observe = this.timers.get(`${req.method} ${q < 0 ? path : path.slice(0, q)}`) ?? this.timers.get(OTHER_ROUTE)!;
    res.once("close", () => observe((performance.now() - startedAt) / 1000));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (!isAuthorized(req, this.opts.token)) {
      req.resume();
      throw new HttpError("HTTP_UNAUTHORIZED", `unauthorized request for ${url.pathname}: missing or wrong bearer token`);
    }
    const route = this.routes[`${req.method} ${url.pathname}`];
    if (!route) {
      req.resume();
      throw new HttpError("HTTP_NOT_FOUND", `no such endpoint: ${req.method} ${url.pathname}`);
    }
    await route(req, res, url);
  }

  private async stream(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req, MAX_STREAM_REQUEST_BYTES);
    let parsed;
    try {
      parsed = parseStreamRequest(body);
    } catch (err) {
      throw new HttpError("HTTP_BAD_REQUEST", (err as Error).message);
    }
    const { node, store, log } = this.opts;
    if (!node.isPrimary) throw new HttpError("HTTP_NOT_PRIMARY", "this node is not the primary");
    const clusterId = node.clusterId();
    if (parsed.clusterId && clusterId && parsed.clusterId !== clusterId) {
      throw new HttpError("HTTP_CONFLICT", `replica ${parsed.hostname} belongs to cluster ${parsed.clusterId}, this primary to ${clusterId}`);
    }
    // Where the replica forwards application writes (the proxy); absent without one.
    const proxyUrl = node.primary()?.proxyUrl;
    res.writeHead(200, {
      "content-type": "application/vnd.litefs.stream",
      "litefs-cluster-id": clusterId ?? "",
      "litefs-primary-hostname": node.hostname,
      ...(proxyUrl && { "litefs-primary-proxy-url": proxyUrl }),
      // Synchronous replication: the replica acknowledges each LTX file once durable (POST /ack).
      ...(node.syncEnabled && { "litefs-sync-acks": "1" }),
      // How many transactions the replica is behind: the size of its first catch-up (a progress bar).
      "litefs-catch-up-txids": String(catchUpTxids(store, parsed.positions, parsed.databases)),
    });
    res.flushHeaders();
    log.info({ replica: parsed.hostname, node: parsed.nodeId }, "replica connected");
    const replica = node.replicas.connect({ nodeId: parsed.nodeId, hostname: parsed.hostname, candidate: parsed.candidate ?? false, url: parsed.apiUrl ?? null }, parsed.databases);
    try {
      const streamOpts = { store, log, compress: this.opts.compress, heartbeatMs: this.opts.heartbeatMs ?? 1000, observer: this.opts.replicationObserver };
      await serveStream(parsed, res, streamOpts, node.replicas.signal, replica);
    } finally {
      node.replicas.disconnect(replica);
    }
    log.info({ replica: parsed.hostname }, "replica disconnected");
  }
}

async function serveMetrics(req: http.IncomingMessage, res: http.ServerResponse, metrics: MetricsSource): Promise<void> {
  req.resume();
  const text = await metrics.scrape();
  res.writeHead(200, { "content-type": metrics.contentType, "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

/** Transactions a replica at `positions` lacks of the databases it wants (all of a database it has none of, or a diverged one). */
function catchUpTxids(store: Store, positions: ReadonlyMap<string, Position>, wanted: readonly string[] | null): number {
  let total = 0;
  for (const db of store.allDatabases()) {
    if (wanted && !wanted.includes(db.name)) continue;
    const have = positions.get(db.name)?.txid ?? 0;
    total += have <= db.position.txid ? db.position.txid - have : db.position.txid;
  }
  return total;
}

function httpStatus(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (err instanceof LitefsError && err.code in NODE_STATUS) return NODE_STATUS[err.code as NodeErrorCode];
  if (err instanceof LitefsError && err.code in STORE_STATUS) return STORE_STATUS[err.code as StoreErrorCode]!;
  return 500;
}

function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(addr.slice(i + 1)) };
}

export async function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) {
    req.resume();
    throw new HttpError("HTTP_BAD_REQUEST", `request body too large: ${declared} bytes (limit ${limit})`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      req.resume();
      throw new HttpError("HTTP_BAD_REQUEST", `request body too large (limit ${limit} bytes)`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

