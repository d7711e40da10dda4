import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import * as net from "node:net";
import * as tls from "node:tls";
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Agent, request } from "undici";
import { ProxyError } from "./errors.js";
import { downstreamResponseHeaders } from "./headers.js";

/** Where a request goes: the local application or the primary's proxy. */
export interface UpstreamTarget {
  /** `http://host:port` */
  origin: string;
  /** For messages: "the application at localhost:8081". */
  name: string;
}

/** Go's `host:port` (host may be empty, IPv6 in brackets). */
export function splitHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(":");
  return { host: hostPort.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(hostPort.slice(i + 1)) };
}

/** `host:port` as an origin; an empty host is this machine. */
export function originOf(hostPort: string): string {
  const { host, port } = splitHostPort(hostPort);
  const name = host === "" ? "localhost" : host.includes(":") ? `[${host}]` : host;
  return `http://${name}:${port}`;
}

/**
 * Sends requests upstream and their answers back, streamed both ways with backpressure (a body
 * of any size passes in flat memory). Keeps connections alive per origin. An https origin (a
 * primary's proxy behind a TLS terminator) is verified against the system store, and
 * `trustedCa` when given.
 */
export class Upstream {
  private readonly agent: Agent;
  private readonly tunnels = new Set<Duplex>();
  private readonly tls: tls.ConnectionOptions;

  constructor(opts: { trustedCa?: Buffer } = {}) {
    this.tls = opts.trustedCa ? { ca: [...tls.rootCertificates, opts.trustedCa.toString("utf8")] } : {};
    // No time limits of its own: the client's side has the proxy's server timeouts.
    this.agent = new Agent({ headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 4_000, connect: this.tls });
  }

  /**
   * Forwards `req` to `target` and streams the answer to `res`. `beforeResponse` adds headers
   * once the upstream answer's head has arrived (the `__txid` cookie). Rejects with
   * PROXY_UPSTREAM_FAILED if the target cannot be reached, PROXY_CLIENT_GONE if the client left;
   * once the answer has started, a broken upstream destroys the client's connection.
   */
  async forward(
    req: IncomingMessage,
    res: ServerResponse,
    target: UpstreamTarget,
    headers: Record<string, string | string[]>,
    beforeResponse?: () => OutgoingHttpHeaders,
  ): Promise<void> {
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.once("close", onClose);
    try {
      const hasBody = req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
      let answer;
      try {
        answer = await request(target.origin + originForm(req.url), {
          dispatcher: this.agent,
          method: req.method as "GET",
          headers,
          body: hasBody ? req : undefined,
          signal: abort.signal,
        });
      } catch (err) {
        if (clientGone(req, res)) throw new ProxyError("PROXY_CLIENT_GONE", "the client went away before its request was forwarded", { cause: err });
        throw new ProxyError("PROXY_UPSTREAM_FAILED", `cannot reach ${target.name}: ${describeError(err)}`, { cause: err });
      }
      const out = downstreamResponseHeaders(answer.headers);
      Object.assign(out, mergeSetCookie(out, beforeResponse?.()));
      res.writeHead(answer.statusCode, out);
      try {
        await pipeline(answer.body, res, { end: false });
      } catch (err) {
        if (clientGone(req, res)) throw new ProxyError("PROXY_CLIENT_GONE", "the client went away while its answer was streamed", { cause: err });
        res.destroy();
        throw new ProxyError("PROXY_UPSTREAM_FAILED", `${target.name} broke off its answer: ${describeError(err)}`, { cause: err });
      }
      if (Object.keys(answer.trailers).length > 0) res.addTrailers(answer.trailers as OutgoingHttpHeaders);
      res.end();
    } finally {
      res.off("close", onClose);
    }
  }

  /**
   * Passes an upgrade (a WebSocket) through to `target`: the request head is written as
   * received, with the forwarding headers, and bytes then flow both ways until either side closes.
   */
  tunnel(req: IncomingMessage, socket: Duplex, head: Buffer, target: UpstreamTarget, headers: Record<string, string | string[]>): Promise<void> {
    const url = new URL(target.origin);
    return new Promise((resolve, reject) => {
      const upstream = this.connect(url);
      this.tunnels.add(upstream).add(socket);
      let connected = false;
      const done = () => {
        this.tunnels.delete(upstream);
        this.tunnels.delete(socket);
      };
      upstream.once(upstream instanceof tls.TLSSocket ? "secureConnect" : "connect", () => {
        connected = true;
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (const [name, value] of Object.entries(headers)) for (const v of [value].flat()) lines.push(`${name}: ${v}`);
        // The upgrade itself is what this hop is for.
        lines.push(`connection: ${String(req.headers.connection ?? "upgrade")}`, `upgrade: ${String(req.headers.upgrade)}`);
        upstream.write(lines.join("\r\n") + "\r\n\r\n");
        if (head.length > 0) upstream.write(head);
        socket.pipe(upstream).pipe(socket);
        resolve();
      });
      upstream.once("error", (err) => {
        // Not connected: the client's socket stays open for the caller's 502.
        if (connected) socket.destroy();
        else reject(new ProxyError("PROXY_UPSTREAM_FAILED", `cannot reach ${target.name}: ${describeError(err)}`, { cause: err }));
      });
      socket.once("error", () => upstream.destroy());
      upstream.once("close", () => {
        if (connected) socket.destroy();
        done();
      });
      socket.once("close", () => {
        upstream.destroy();
        done();
      });
    });
  }

  private connect(url: URL): net.Socket {
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (url.protocol !== "https:") return net.connect(Number(url.port || 80), host);
    // SNI takes a name, never an address (RFC 6066).
    return tls.connect({ ...this.tls, host, port: Number(url.port || 443), ...(net.isIP(host) === 0 && { servername: host }) });
  }

  async close(): Promise<void> {
    for (const s of this.tunnels) s.destroy();
    await this.agent.destroy();
  }
}

/** The request target as a path: an absolute-form target (`GET http://host/x`) loses its origin. */
function originForm(target: string | undefined): string {
  if (target === undefined || target === "") return "/";
  if (target.startsWith("/")) return target;
  try {
    const url = new URL(target);
    return url.pathname + url.search;
  } catch {
    return `/${target}`;
  }
}

function clientGone(req: IncomingMessage, res: ServerResponse): boolean {
  return (req.destroyed && !req.complete) || (res.destroyed && !res.writableFinished);
}

function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e.code ?? e.cause?.code;
  const message = e.cause?.message ?? e.message;
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/** Adds `extra` to the answer's headers, keeping every Set-Cookie the upstream sent. */
function mergeSetCookie(headers: OutgoingHttpHeaders, extra: OutgoingHttpHeaders | undefined): OutgoingHttpHeaders {
  if (!extra) return {};
  const merged: OutgoingHttpHeaders = { ...extra };
  if (extra["set-cookie"] !== undefined && headers["set-cookie"] !== undefined) {
    merged["set-cookie"] = [headers["set-cookie"], extra["set-cookie"]].flat().map(String);
  }
  return merged;
}
