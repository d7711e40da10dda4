import * as fsp from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import type { ProxyError } from "../../src/proxy/errors.js";
import { upstreamRequestHeaders } from "../../src/proxy/headers.js";
import { Upstream, type UpstreamTarget } from "../../src/proxy/upstream.js";
import { makeTempDir } from "../support/node-process.js";
import { TestCa } from "../support/tls-certs.js";

/**
 * A replica's proxy forwards writes to the primary's proxy; when that is reached over https (a
 * TLS terminator in front of it), requests and WebSocket upgrades go over TLS, verified against
 * the system store plus http.tls.ca.
 */

let dir: string;
let caPem: Buffer;
let primaryProxy: https.Server;
let target: UpstreamTarget;
const fronts: http.Server[] = [];

beforeAll(async () => {
  dir = await makeTempDir("upstream-tls");
  const ca = await TestCa.create(dir);
  const files = await ca.issue("primary-proxy");
  caPem = await fsp.readFile(ca.cert);
  primaryProxy = https.createServer({ cert: await fsp.readFile(files.cert), key: await fsp.readFile(files.key) }, (req, res) => {
    res.end(`primary saw ${req.method} ${req.url} over ${(req.socket as { encrypted?: boolean }).encrypted ? "tls" : "plain"}`);
  });
  new WebSocketServer({ server: primaryProxy }).on("connection", (ws) => ws.on("message", (m) => ws.send(`echo ${String(m)}`)));
  await new Promise<void>((resolve) => primaryProxy.listen(0, "127.0.0.1", resolve));
  // The certificate names localhost too: reached by name, the name is checked (and sent as SNI).
  target = { origin: `https://localhost:${(primaryProxy.address() as AddressInfo).port}`, name: "the primary's proxy" };
});

afterAll(async () => {
  for (const f of fronts) f.closeAllConnections();
  await Promise.all(fronts.map((f) => new Promise((resolve) => f.close(resolve))));
  primaryProxy?.closeAllConnections();
  await new Promise((resolve) => primaryProxy?.close(resolve));
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

/** A plain HTTP server standing for the replica's proxy: everything goes through `upstream` to the primary's. */
async function replicaProxy(upstream: Upstream): Promise<string> {
  const front = http.createServer((req, res) => {
    upstream.forward(req, res, target, upstreamRequestHeaders(req, req.socket.remoteAddress)).catch((err: ProxyError) => res.writeHead(502).end(err.message));
  });
  front.on("upgrade", (req, socket, head) => {
    upstream.tunnel(req, socket, head, target, upstreamRequestHeaders(req, req.socket.remoteAddress)).catch((err: ProxyError) => socket.end(`HTTP/1.1 502 Bad Gateway\r\n\r\n${err.message}`));
  });
  fronts.push(front);
  await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
  return `127.0.0.1:${(front.address() as AddressInfo).port}`;
}

describe("forwarding to a primary's proxy at an https URL", () => {
  test("requests and WebSocket upgrades go over TLS, trusting http.tls.ca", async () => {
    const upstream = new Upstream({ trustedCa: caPem });
    const front = await replicaProxy(upstream);

    const res = await fetch(`http://${front}/write?x=1`, { method: "POST", body: "row" });
    expect(await res.text()).toBe("primary saw POST /write?x=1 over tls");

    const ws = new WebSocket(`ws://${front}/socket`);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.once("open", () => ws.send("hello"));
      ws.once("message", (m) => resolve(String(m)));
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, r) => reject(new Error(`upgrade answered ${r.statusCode}`)));
    });
    ws.close();
    expect(reply).toBe("echo hello");
    await upstream.close();
  });

  test("a certificate the system store and http.tls.ca do not vouch for is refused", async () => {
    const upstream = new Upstream();
    const front = await replicaProxy(upstream);
    const res = await fetch(`http://${front}/write`, { method: "POST", body: "row" });
    expect(res.status).toBe(502);
    expect(await res.text()).toMatch(/cannot reach the primary's proxy: .*certificate/);

    const ws = new WebSocket(`ws://${front}/socket`);
    const status = await new Promise<number>((resolve) => {
      ws.once("unexpected-response", (_req, r) => resolve(r.statusCode ?? 0));
      ws.once("open", () => resolve(101));
      ws.once("error", () => resolve(-1));
    });
    expect(status).toBe(502);
    await upstream.close();
  });
});
