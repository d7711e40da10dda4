import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { ProxyConfig } from "../config/index.js";
import type { PrimaryInfo } from "../lease/index.js";
import type { Node } from "../node/node.js";
import type { Store } from "../store/store.js";
import { readTxidCookie, txidSetCookie } from "./cookie.js";
import { ProxyError } from "./errors.js";
import { CONSISTENCY_HEADER, FORWARDED_BY_HEADER, upstreamRequestHeaders } from "./headers.js";
import { PathPatterns } from "./patterns.js";
import { originOf, splitHostPort, Upstream, type UpstreamTarget } from "./upstream.js";

/** How long a read waits for the local database to reach the TXID it asks for (LiteFS: 5 s). */
export const TXID_WAIT_MS = 5_000;
/** Fly.io's proxy replays request bodies up to this size; larger ones are forwarded instead. */
const FLY_REPLAY_MAX_BODY = 1024 * 1024;
export const HEALTH_PATH = "/litefs/health";

/** What the proxy reads from the node that owns the role and the primary (DESIGN.md section 8). */
export type ProxyNode = Pick<Node, "isPrimary" | "primary" | "lagMs" | "statusChange" | "writeAuthority" | "events" | "hostname">;

export interface ProxyServerOptions {
  config: ProxyConfig & { addr: string; target: string };
  node: ProxyNode;
  store: Pick<Store, "database">;
  /** Asks the primary's cluster API for the TXID of each database (reads with `Litefs-Consistency: strong`). */
  primaryTxids: (primary: PrimaryInfo) => Promise<Map<string, number>>;
  /** http.tls.ca: trusted besides the system store when the primary's proxy is reached over https. */
  trustedCa?: Buffer;
  log: Logger;
  /** FLY_APP_NAME: set when running on Fly.io. */
  flyAppName?: string;
}

type Consistency = "cookie" | "strong" | "none";
type WriteRoute = { kind: "local" } | { kind: "forward"; primary: PrimaryInfo & { proxyUrl: string } } | { kind: "fly-replay"; hostname: string };

/**
 * The application proxy (LiteFS `docs:proxy`, extended): it sits in front of the app on every
 * node. Reads wait until this node has the client's last write (the `__txid` cookie), or the
 * primary's position (`Litefs-Consistency: strong`), then go to the local app; writes go to the
 * app on the primary, which sets the cookie, and replicas forward them to the primary's proxy,
 * streamed both ways. Every failure is answered with a status and a one-line reason, and logged once.
 */
export class ProxyServer {
  private readonly server: http.Server;
  private readonly upstream: Upstream;
  private readonly target: UpstreamTarget;
  private readonly passthrough: PathPatterns;
  private readonly alwaysForward: PathPatterns;
  private readonly log: Logger;

  constructor(private readonly opts: ProxyServerOptions) {
    const { config } = opts;
    this.log = opts.log.child({ component: "proxy" });
    this.upstream = new Upstream({ trustedCa: opts.trustedCa });
    this.target = { origin: originOf(config.target), name: `the application at ${config.target} (proxy.target)` };
    this.passthrough = new PathPatterns(config.passthrough);
    this.alwaysForward = new PathPatterns(config.alwaysForward);
    const readTimeout = config.readTimeoutMs;
    this.server = http.createServer({
      requestTimeout: readTimeout,
      // Node refuses a header timeout longer than a non-zero request timeout.
      headersTimeout: readTimeout > 0 ? Math.min(config.readHeaderTimeoutMs, readTimeout) : config.readHeaderTimeoutMs,
      connectionsCheckingInterval: 1_000,
    });
    this.server.keepAliveTimeout = config.idleTimeoutMs;
    this.server.on("request", (req, res) => this.respond(req, res));
    this.server.on("upgrade", (req, socket, head) => this.upgrade(req, socket, head));
    this.server.on("clientError", (err, socket) => this.clientError(err, socket));
  }

  async listen(): Promise<AddressInfo> {
    const { host, port } = splitHostPort(this.opts.config.addr);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(
          new ProxyError("PROXY_LISTEN_FAILED", `cannot listen on proxy.addr ${this.opts.config.addr}: ${err.code === "EADDRINUSE" ? "address already in use" : err.message}`),
        );
      this.server.once("error", onError);
      this.server.listen(port, host || undefined, () => {
        this.server.off("error", onError);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    this.log.info({ addr: `${address.address}:${address.port}`, target: this.opts.config.target, databases: this.opts.config.databases }, "proxy listening");
    return address;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.upstream.close();
  }

  // ---- one request ----------------------------------------------------------------------------

  private respond(req: http.IncomingMessage, res: http.ServerResponse): void {
    // Read now: once the client is gone its socket is detached from the request.
    const remote = req.socket.remoteAddress;
    const started = Date.now();
    const context = { method: req.method, path: req.url, remote };
    req.on("error", () => undefined); // a client that leaves mid-body ends this request only
    res.on("error", () => undefined);
    const stopTimer = this.writeTimeout(res, context);
    this.route(req, res, remote)
      .then((route) => {
        if (this.opts.config.debug) this.log.info({ ...context, route, status: res.statusCode, ms: Date.now() - started }, "proxied");
      })
      .catch((err: unknown) => this.fail(err, req, res, context))
      .finally(stopTimer);
  }

  /** Routes in LiteFS's order: passthrough, health, reads, writes. Resolves to the route taken (for proxy.debug). */
  private async route(req: http.IncomingMessage, res: http.ServerResponse, remote: string | undefined): Promise<string> {
    // The raw path, as the app will see it (a URL parser would read `//host/x` as a host).
    const path = (req.url ?? "/").split("?")[0];
    const headers = upstreamRequestHeaders(req, remote);
    if (this.passthrough.matches(path)) {
      await this.upstream.forward(req, res, this.target, headers);
      return "passthrough";
    }
    const isRead = req.method === "GET" || req.method === "HEAD";
    if (isRead && path === HEALTH_PATH) {
      req.resume();
      this.health(res);
      return "health";
    }
    if (isRead && !this.alwaysForward.matches(path)) {
      await this.waitForReadLevel(req, res);
      await this.upstream.forward(req, res, this.target, headers);
      return "read";
    }
    const write = await this.writeRoute(req, res);
    switch (write.kind) {
      case "local":
        await this.upstream.forward(req, res, this.target, headers, () => ({ "set-cookie": txidSetCookie(this.localTxids()) }));
        return "write";
      case "fly-replay":
        req.resume();
        res.writeHead(200, { "fly-replay": `instance=${write.hostname}`, "content-length": 0 });
        res.end();
        return "fly-replay";
      case "forward": {
        const primary: UpstreamTarget = { origin: write.primary.proxyUrl, name: `the primary's proxy at ${write.primary.proxyUrl} (${write.primary.hostname})` };
        await this.upstream.forward(req, res, primary, { ...headers, [FORWARDED_BY_HEADER]: this.opts.node.hostname });
        return "forwarded";
      }
    }
  }

  private health(res: http.ServerResponse): void {
    const { node, config } = this.opts;
    const lagMs = node.lagMs(); // 0 on the primary
    if (lagMs > config.maxLagMs) {
      sendText(res, 503, `unhealthy: this replica is ${(lagMs / 1000).toFixed(1)}s behind the primary (proxy.max-lag is ${config.maxLagMs / 1000}s)\n`);
    } else {
      sendText(res, 200, "OK\n");
    }
  }

  // ---- reads ----------------------------------------------------------------------------------

  /** Holds a read until this node has what the client must see (its cookie, or the primary's position). */
  private async waitForReadLevel(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const level = consistencyOf(req);
    if (level === "none") return;
    const { databases } = this.opts.config;
    const wants = new Map<string, number>();
    const cookie = readTxidCookie(req.headers.cookie, databases);
    if (cookie.kind === "malformed") {
      this.log.info({ path: req.url, cookie: cookie.value.slice(0, 100) }, "malformed __txid cookie: the read does not wait");
    } else if (cookie.kind === "txids") {
      for (const [db, txid] of cookie.txids) wants.set(db, txid);
    }
    if (level === "strong" && !this.opts.node.isPrimary) {
      const primary = await this.waitForPrimary(res);
      let txids: Map<string, number>;
      try {
        txids = await this.opts.primaryTxids(primary);
      } catch (err) {
        throw new ProxyError("PROXY_UPSTREAM_FAILED", `cannot ask the primary ${primary.hostname} for its position: ${(err as Error).message}`, { cause: err });
      }
      for (const db of databases) wants.set(db, Math.max(wants.get(db) ?? 0, txids.get(db) ?? 0));
    }
    await this.waitForTxids(wants, res);
  }

  private async waitForPrimary(res: http.ServerResponse): Promise<PrimaryInfo> {
    const { node, config } = this.opts;
    const deadline = Date.now() + config.primaryRedirectTimeoutMs;
    for (;;) {
      const changed = node.statusChange();
      const primary = node.primary();
      if (primary) return primary;
      if (!(await waitUntil(changed, deadline, res))) {
        throw new ProxyError("PROXY_NO_PRIMARY", `no primary is known after ${config.primaryRedirectTimeoutMs / 1000}s (proxy.primary-redirect-timeout)`);
      }
    }
  }

  private localTxid(db: string): number {
    return this.opts.store.database(db)?.position.txid ?? 0;
  }

  private localTxids(): Map<string, number> {
    return new Map(this.opts.config.databases.map((db) => [db, this.localTxid(db)]));
  }

  private async waitForTxids(wants: Map<string, number>, res: http.ServerResponse): Promise<void> {
    const behind = () => [...wants].filter(([db, txid]) => this.localTxid(db) < txid);
    if (behind().length === 0) return;
    const reached = await new Promise<boolean>((resolve) => {
      const finish = (ok: boolean) => {
        unsubscribe();
        clearTimeout(timer);
        res.off("close", onClose);
        resolve(ok);
      };
      const unsubscribe = this.opts.node.events.subscribe((ev) => {
        if (ev.type === "commit" && wants.has(ev.db) && behind().length === 0) finish(true);
      });
      const timer = setTimeout(() => finish(behind().length === 0), TXID_WAIT_MS);
      const onClose = () => finish(false);
      res.once("close", onClose);
    });
    if (res.destroyed) throw new ProxyError("PROXY_CLIENT_GONE", "the client went away while its read waited for replication");
    if (!reached) {
      const lagging = behind()
        .map(([db, txid]) => `${db} is at TXID ${this.localTxid(db)}, the read needs ${txid}`)
        .join("; ");
      throw new ProxyError("PROXY_TXID_TIMEOUT", `this replica did not catch up within ${TXID_WAIT_MS / 1000}s: ${lagging}`);
    }
  }

  // ---- writes ---------------------------------------------------------------------------------

  /**
   * Where a write goes: the local app when this node may write; else the primary's proxy (or a
   * fly-replay answer). Waits up to proxy.primary-redirect-timeout while no primary is known or
   * the primary is handing its lease over. A write another proxy forwarded is never sent on.
   */
  private async writeRoute(req: http.IncomingMessage, res: http.ServerResponse): Promise<WriteRoute> {
    const { node, config } = this.opts;
    const forwardedBy = req.headers[FORWARDED_BY_HEADER];
    const deadline = Date.now() + config.primaryRedirectTimeoutMs;
    for (;;) {
      const changed = node.statusChange();
      // "held" (an import, a HALT) counts too: the app's write then waits on SQLite's lock, as it would without a proxy.
      if (node.writeAuthority(config.databases[0]) !== "replica") return { kind: "local" };
      if (forwardedBy !== undefined && !node.isPrimary) {
        throw new ProxyError("PROXY_NOT_PRIMARY", `write forwarded by ${String(forwardedBy)} reached ${node.hostname}, which is no longer the primary`);
      }
      const primary = node.isPrimary ? null : node.primary();
      if (primary && this.flyReplayable(req)) return { kind: "fly-replay", hostname: primary.hostname };
      if (primary?.proxyUrl) return { kind: "forward", primary: { ...primary, proxyUrl: primary.proxyUrl } };
      if (!(await waitUntil(changed, deadline, res))) {
        const why = primary
          ? `the primary ${primary.hostname} publishes no proxy URL (is proxy.target set on it?)`
          : node.isPrimary
            ? "this primary is handing its lease over"
            : "no primary is known";
        throw new ProxyError("PROXY_NO_PRIMARY", `cannot route the write: ${why}, still after ${config.primaryRedirectTimeoutMs / 1000}s (proxy.primary-redirect-timeout)`);
      }
    }
  }

  /** On Fly.io with proxy.fly-replay, LiteFS's answer, for the bodies Fly can replay. */
  private flyReplayable(req: http.IncomingMessage): boolean {
    if (!this.opts.config.flyReplay || !this.opts.flyAppName) return false;
    if (req.headers["transfer-encoding"] !== undefined) return false;
    return Number(req.headers["content-length"] ?? 0) <= FLY_REPLAY_MAX_BODY;
  }

  // ---- upgrades and errors --------------------------------------------------------------------

  /** WebSockets (any upgrade) pass through to the local app. */
  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const remote = req.socket.remoteAddress;
    socket.on("error", () => undefined);
    this.upstream.tunnel(req, socket, head, this.target, upstreamRequestHeaders(req, remote)).catch((err: ProxyError) => {
      this.log.warn({ method: req.method, path: req.url, remote, code: err.code }, err.message);
      writeRawResponse(socket, err.status, err.message);
    });
  }

  /** A request Node could not parse (a 64 KB header, a timeout, garbage): answered and logged once. */
  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, why] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "request headers too large (the proxy accepts up to 16 KB)"]
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "request not received in time (proxy.read-header-timeout / proxy.read-timeout)"]
          : [400, `malformed request: ${err.message}`];
    this.log.warn({ status, code: err.code }, why);
    writeRawResponse(socket, status, why);
  }

  private fail(err: unknown, req: http.IncomingMessage, res: http.ServerResponse, context: Record<string, unknown>): void {
    if (err instanceof ProxyError && err.code === "PROXY_CLIENT_GONE") {
      this.log.info(context, err.message);
      res.destroy();
      return;
    }
    const status = err instanceof ProxyError ? err.status : 500;
    if (status === 500) this.log.error({ ...context, err }, "proxy request failed");
    else this.log.warn({ ...context, status, code: (err as ProxyError).code }, (err as Error).message);
    req.resume(); // drain what the client still sends, so the connection can be reused
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: http.OutgoingHttpHeaders = status === 503 ? { "retry-after": "1" } : {};
    sendText(res, status, `litefs proxy: ${(err as Error).message}\n`, headers);
  }

  /** proxy.write-timeout (Go's WriteTimeout): an answer not finished in time loses its connection. */
  private writeTimeout(res: http.ServerResponse, context: Record<string, unknown>): () => void {
    const ms = this.opts.config.writeTimeoutMs;
    if (ms <= 0) return () => undefined;
    const timer = setTimeout(() => {
      if (res.writableFinished) return;
      this.log.warn(context, `answer not finished within proxy.write-timeout (${ms / 1000}s): connection closed`);
      res.destroy();
    }, ms);
    return () => clearTimeout(timer);
  }
}

function consistencyOf(req: http.IncomingMessage): Consistency {
  const value = req.headers[CONSISTENCY_HEADER];
  if (value === undefined) return "cookie";
  const level = String(value).trim().toLowerCase();
  if (level === "cookie" || level === "strong" || level === "none") return level;
  throw new ProxyError("PROXY_BAD_REQUEST", `unknown ${CONSISTENCY_HEADER} ${JSON.stringify(String(value))}: use strong, cookie or none`);
}

/** Waits for `changed` until `deadline`; false on timeout or when the client has gone. */
async function waitUntil(changed: Promise<void>, deadline: number, res: http.ServerResponse): Promise<boolean> {
  const left = deadline - Date.now();
  if (left <= 0 || res.destroyed) return false;
  let timer: NodeJS.Timeout | undefined;
  let onClose: (() => void) | undefined;
  const outcome = await Promise.race([
    changed.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), left))),
    new Promise<boolean>((resolve) => res.once("close", (onClose = () => resolve(false)))),
  ]);
  clearTimeout(timer);
  res.off("close", onClose!);
  if (res.destroyed) throw new ProxyError("PROXY_CLIENT_GONE", "the client went away while its request waited for a primary");
  return outcome;
}

function sendText(res: http.ServerResponse, status: number, text: string, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

function writeRawResponse(socket: Duplex, status: number, message: string): void {
  const body = `litefs proxy: ${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ""}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
