import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { S3Server } from "./s3-server.js";

/**
 * Where a held upload stops: "request": the PUT never reaches S3 (the object is not stored);
 * "response": S3 stored the object but its answer never reaches the uploader.
 */
export type HoldAt = "request" | "response";

/**
 * An HTTP proxy in front of s3rver that can hold one upload forever, so a test can kill the
 * uploader while it is in the middle of it. Requests are forwarded unchanged (the SigV4 signature
 * covers the Host header the client sent, which is passed through as is).
 */
export class S3Proxy {
  private readonly server: http.Server;
  private armed: { at: HoldAt; match: RegExp; resolve: (key: string) => void } | null = null;
  private failing: { left: number; match: (req: http.IncomingMessage) => boolean } | null = null;
  /** Requests answered with a 500 so far. */
  failed = 0;
  private readonly open = new Set<http.ClientRequest>();
  port = 0;

  private constructor(private readonly target: S3Server) {
    this.server = http.createServer((req, res) => this.forward(req, res));
  }

  static async start(target: S3Server): Promise<S3Proxy> {
    const proxy = new S3Proxy(target);
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    proxy.port = (proxy.server.address() as AddressInfo).port;
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Holds the next PUT whose path matches; resolves with its path once it is held. */
  holdNextPut(at: HoldAt, match: RegExp): Promise<string> {
    return new Promise((resolve) => (this.armed = { at, match, resolve }));
  }

  disarm(): void {
    this.armed = null;
  }

  /** Answers the next `count` matching requests with S3's 500 InternalError ("Please try again"). */
  failNext(count: number, match: (req: http.IncomingMessage) => boolean): void {
    this.failing = { left: count, match };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    for (const up of this.open) up.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? "/";
    if (this.failing && this.failing.left > 0 && this.failing.match(req)) {
      this.failing.left--;
      this.failed++;
      req.resume();
      const body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>';
      res.writeHead(500, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const hold = this.armed && req.method === "PUT" && this.armed.match.test(url) ? this.armed : null;
    if (hold) this.armed = null;
    if (hold?.at === "request") {
      // Read and dropped: S3 never sees it, and the uploader never hears back.
      req.resume();
      req.once("end", () => hold.resolve(url));
      return;
    }
    const up = http.request({ host: "127.0.0.1", port: this.target.port, method: req.method, path: url, headers: req.headers }, (upRes) => {
      if (hold) {
        upRes.resume();
        upRes.once("end", () => hold.resolve(url));
        return;
      }
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    this.open.add(up);
    up.once("close", () => this.open.delete(up));
    up.on("error", () => res.destroy());
    res.once("close", () => {
      if (!res.writableFinished && !hold) up.destroy();
    });
    req.pipe(up);
  }
}
