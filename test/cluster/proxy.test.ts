import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { Readable } from "node:stream";
import { request } from "undici";
import WebSocket from "ws";
import { LitefsNode, freePort, waitFor } from "../support/node-process.js";
import { fetchText, ProxyCluster } from "../support/web-app.js";

/** The __txid cookie a response sets, as a Cookie header value. */
function cookieOf(headers: Record<string, string | string[] | undefined>): string {
  const set = [headers["set-cookie"] ?? []].flat().find((c) => c.startsWith("__txid="));
  if (!set) throw new Error(`no __txid cookie in ${JSON.stringify(headers)}`);
  return set.split(";")[0];
}

async function postRow(url: string, note: string): Promise<{ id: number; node: string; cookie: string; status: number }> {
  const res = await fetchText(`${url}/rows`, { method: "POST", body: note });
  if (res.status !== 201) throw new Error(`POST ${url}/rows: ${res.status} ${res.body}`);
  return { ...(JSON.parse(res.body) as { id: number; node: string }), cookie: cookieOf(res.headers), status: res.status };
}

describe("proxy: writes forwarded from replicas, reads that see them", () => {
  let c: ProxyCluster;
  let stopLoad = false;
  /** Set while a test measures the daemons alone. */
  let pauseLoad: Promise<void> | null = null;
  let load: Promise<number> = Promise.resolve(0);

  beforeAll(async () => {
    c = await ProxyCluster.start("proxy", 1, { proxyYaml: '  passthrough: ["/assets/*"]\n  always-forward: ["/login"]' });
    await postRow(c.primary.proxyUrl, "first");
    // A steady background write load on the primary, straight to its proxy.
    load = (async () => {
      let n = 0;
      while (!stopLoad) {
        await pauseLoad;
        await postRow(c.primary.proxyUrl, `load ${n++}`);
      }
      return n;
    })();
  });

  afterAll(async () => {
    stopLoad = true;
    await load.catch(() => undefined);
    await c?.cleanup();
  });

  test("a write to a replica's proxy commits on the primary, and the cookie makes the next read see it, 200 times", async () => {
    const replica = c.replicas[0];
    for (let i = 0; i < 200; i++) {
      const written = await postRow(replica.proxyUrl, `mine ${i}`);
      expect(written.node).toBe("primary");
      const read = await fetchText(`${replica.proxyUrl}/rows/${written.id}`, { headers: { cookie: written.cookie } });
      expect(read.status, `read ${i} of row ${written.id}: ${read.body}`).toBe(200);
      expect(JSON.parse(read.body)).toMatchObject({ id: written.id, note: `mine ${i}`, node: "replica0" });
    }
  });

  test("Litefs-Consistency: strong reads what was committed before, without a cookie, 200 times", async () => {
    const replica = c.replicas[0];
    for (let i = 0; i < 200; i++) {
      const written = await postRow(c.primary.proxyUrl, `strong ${i}`);
      const read = await fetchText(`${replica.proxyUrl}/rows/${written.id}`, { headers: { "litefs-consistency": "strong" } });
      expect(read.status, `read ${i} of row ${written.id}: ${read.body}`).toBe(200);
      expect(JSON.parse(read.body)).toMatchObject({ id: written.id, node: "replica0" });
    }
  });

  test("passthrough paths stay on the node, always-forward paths go to the primary, the rest by method", async () => {
    const replica = c.replicas[0];
    const who = async (method: string, path: string) => JSON.parse((await fetchText(`${replica.proxyUrl}${path}`, { method: method as "GET" })).body) as { node: string; headers: Record<string, string> };
    expect((await who("POST", "/assets/logo.png")).node).toBe("replica0");
    expect((await who("GET", "/login")).node).toBe("primary");
    expect((await who("GET", "/whoami")).node).toBe("replica0");
    const forwarded = await who("POST", "/whoami");
    expect(forwarded.node).toBe("primary");
    // The primary's app sees the client and both proxies, never the loop marker.
    expect(forwarded.headers["x-forwarded-for"]).toBe("127.0.0.1, 127.0.0.1");
    expect(forwarded.headers["x-forwarded-host"]).toBe(`127.0.0.1:${replica.proxyPort}`);
    expect(forwarded.headers["x-forwarded-proto"]).toBe("http");
    expect(forwarded.headers.host).toBe(`127.0.0.1:${replica.proxyPort}`);
    expect(forwarded.headers["litefs-forwarded-by"]).toBeUndefined();
  });

  test("a forwarded write that reaches a replica is refused with 503 and Retry-After, never forwarded again", async () => {
    const res = await fetchText(`${c.replicas[0].proxyUrl}/rows`, { method: "POST", body: "loop?", headers: { "litefs-forwarded-by": "elsewhere" } });
    expect(res.status).toBe(503);
    expect(res.headers["retry-after"]).toBe("1");
    expect(res.body).toContain("no longer the primary");
  });

  test("100 MB request and response bodies stream through a forwarded write without being held in memory", async () => {
    const SIZE = 100 * 1024 * 1024;
    const daemons = [c.primary.node, c.replicas[0].node].map((n) => n.proc!.pid!);
    // The background load would be measured too (the replica applies every commit): paused here.
    let resumeLoad = (): void => undefined;
    pauseLoad = new Promise((resolve) => (resumeLoad = resolve));
    await c.cluster.waitForConvergence("app.db");
    const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    const transfer = async (size: number) => {
      const body = Readable.from(
        (function* () {
          for (let sent = 0; sent < size; sent += chunk.length) yield chunk;
        })(),
      );
      const res = await request(`${c.replicas[0].proxyUrl}/blob?respond=${size}`, { method: "POST", body, headers: { "content-type": "application/octet-stream" } });
      let received = 0;
      for await (const part of res.body) received += (part as Buffer).length;
      return { status: res.statusCode, received, trailers: res.trailers };
    };
    // Warm-up transfers: V8 and the allocators size their pools on first use; what is measured is the streaming.
    for (let i = 0; i < 2; i++) await transfer(20 * 1024 * 1024);
    const idle = daemons.map(rss);
    const peak = [...idle];
    const sampler = setInterval(() => daemons.forEach((pid, i) => (peak[i] = Math.max(peak[i], rss(pid)))), 50);
    try {
      const { status, received, trailers } = await transfer(SIZE);
      expect(status).toBe(200);
      expect(received).toBe(SIZE);
      // The primary's app counted every byte of the request; its trailer came back through both proxies.
      expect(trailers["x-received"]).toBe(String(SIZE));
    } finally {
      clearInterval(sampler);
      pauseLoad = null;
      resumeLoad();
    }
    const grew = peak.map((p, i) => (p - idle[i]) / 1024 / 1024);
    console.log(`proxy RSS growth while streaming 100 MB each way: primary ${grew[0].toFixed(1)} MB, replica ${grew[1].toFixed(1)} MB`);
    // Measured: 0.5-23 MB (buffers passed on, awaiting collection). Holding either body would add 100 MB.
    for (const g of grew) expect(g).toBeLessThan(32);
  });

  test("a WebSocket passes through a replica's proxy to its app", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${c.replicas[0].proxyPort}/ws`);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.once("open", () => ws.send("hello"));
      ws.once("message", (data) => resolve(String(data)));
      ws.once("error", reject);
    });
    ws.close();
    expect(reply).toBe("replica0: hello");
  });

  test("bad requests get a clear status, are logged once, and the proxy keeps serving", async () => {
    const replica = c.replicas[0];
    const logged = (text: string) => replica.node.logs.split("\n").filter((l) => l.includes(text)).length;

    // A malformed cookie counts as none: the read is served.
    const odd = await fetchText(`${replica.proxyUrl}/whoami?malformed-cookie`, { headers: { cookie: "__txid=zz-not-hex" } });
    expect(odd.status).toBe(200);
    await waitFor(() => logged("malformed __txid cookie") === 1, 5_000, "the malformed cookie to be logged");

    // An unknown read level.
    const level = await fetchText(`${replica.proxyUrl}/whoami`, { headers: { "litefs-consistency": "eventual" } });
    expect(level.status).toBe(400);
    expect(level.body).toContain("use strong, cookie or none");

    // A 64 KB header.
    const big = await fetchText(`${replica.proxyUrl}/whoami`, { headers: { "x-big": "a".repeat(64 * 1024) } });
    expect(big.status).toBe(431);
    await waitFor(() => logged("request headers too large") === 1, 5_000, "the large header to be logged");

    // A client that goes away halfway through its body.
    const socket = net.connect(replica.proxyPort, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(`POST /blob?gone-client HTTP/1.1\r\nhost: x\r\ncontent-length: ${10 * 1024 * 1024}\r\n\r\n`);
    socket.write(Buffer.alloc(1024 * 1024));
    // Gone once the request is on its way through both proxies to the primary's app.
    await waitFor(() => c.primary.app.logs.includes("blob /blob?gone-client"), 10_000, "the request to reach the primary's app");
    socket.destroy();
    await waitFor(() => logged("gone-client") === 1, 5_000, "the vanished client to be logged");

    // And the next request is served.
    expect((await fetchText(`${replica.proxyUrl}/whoami`)).status).toBe(200);
    // Logged once, not once per layer that noticed (an absence: given a moment to appear).
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(logged("gone-client")).toBe(1);
  });
});

describe("proxy: a replica cut off from the primary", () => {
  let c: ProxyCluster;

  beforeAll(async () => {
    c = await ProxyCluster.start("proxy-cut", 1, { proxyYaml: "  max-lag: 1s\n  primary-redirect-timeout: 1s" });
    const res = await fetchText(`${c.primary.proxyUrl}/rows`, { method: "POST", body: "before" });
    expect(res.status).toBe(201);
    await c.cluster.waitForConvergence("app.db");
  });

  afterAll(async () => {
    await c?.cleanup();
  });

  test("health is 503 while cut off and 200 once caught up; writes meanwhile get 503 after the redirect timeout", async () => {
    const replica = c.replicas[0];
    const health = async () => (await fetchText(`${replica.proxyUrl}/litefs/health`)).status;
    expect(await health()).toBe(200);
    c.link.refusing = true;
    c.link.dropAll();
    await waitFor(async () => (await health()) === 503, 15_000, "health to report the lag");
    const body = (await fetchText(`${replica.proxyUrl}/litefs/health`)).body;
    expect(body).toContain("proxy.max-lag is 1s");

    const started = Date.now();
    const write = await fetchText(`${replica.proxyUrl}/rows`, { method: "POST", body: "nobody to take it" });
    expect(write.status).toBe(503);
    expect(write.headers["retry-after"]).toBe("1");
    expect(write.body).toContain("no primary is known");
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);

    // The primary moves on meanwhile; the replica catches up once the link is back.
    expect((await fetchText(`${c.primary.proxyUrl}/rows`, { method: "POST", body: "while cut off" })).status).toBe(201);
    c.link.refusing = false;
    await c.cluster.waitForConvergence("app.db");
    await waitFor(async () => (await health()) === 200, 15_000, "health to recover");
  });

  test("the local app down answers 502 with the reason, and the proxy serves again once it is back", async () => {
    const replica = c.replicas[0];
    await replica.app.stop();
    const res = await fetchText(`${replica.proxyUrl}/whoami`);
    expect(res.status).toBe(502);
    expect(res.body).toContain(`cannot reach the application at 127.0.0.1:${replica.app.port}`);
    // A WebSocket upgrade gets the same answer.
    const socket = net.connect(replica.proxyPort, "127.0.0.1");
    let answer = "";
    socket.on("data", (d) => (answer += d.toString()));
    socket.write("GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    await new Promise((resolve) => socket.once("close", resolve));
    expect(answer).toMatch(/^HTTP\/1\.1 502 /);
    expect(answer).toContain("cannot reach the application");
    await replica.app.start();
    expect((await fetchText(`${replica.proxyUrl}/whoami`)).status).toBe(200);
  });
});

describe("proxy: options", () => {
  let c: ProxyCluster;

  beforeAll(async () => {
    c = await ProxyCluster.start("proxy-opts", 1, {
      databases: ["app.db", "other.db"],
      // write-timeout long enough for the 2 MB forwarded write below on a loaded machine.
      proxyYaml: "  fly-replay: true\n  read-header-timeout: 1s\n  write-timeout: 10s",
      replica: { env: { FLY_APP_NAME: "proxy-test" } },
    });
  });

  afterAll(async () => {
    await c?.cleanup();
  });

  test("with several databases the cookie carries a TXID for each, and a read waits for them", async () => {
    const written = await postRow(c.primary.proxyUrl, "two databases");
    expect(written.cookie).toMatch(/^__txid=app\.db:[0-9a-f]{16}&other\.db:0{16}$/);
    const read = await fetchText(`${c.replicas[0].proxyUrl}/rows/${written.id}`, { headers: { cookie: written.cookie } });
    expect(read.status, read.body).toBe(200);
  });

  test("on Fly.io with fly-replay, a replica answers small writes with fly-replay and forwards larger ones", async () => {
    const replica = c.replicas[0];
    const small = await fetchText(`${replica.proxyUrl}/rows`, { method: "POST", body: "replay me" });
    expect(small.headers["fly-replay"]).toBe("instance=primary");
    expect(small.body).toBe("");
    // Fly cannot replay a body over 1 MB: forwarded instead.
    const large = await fetchText(`${replica.proxyUrl}/rows`, { method: "POST", body: "x".repeat(2 * 1024 * 1024) });
    expect(large.status, large.body).toBe(201);
    expect(large.headers["fly-replay"]).toBeUndefined();
    expect(JSON.parse(large.body).node).toBe("primary");
  });

  test("a client that does not finish its headers gets 408 (read-header-timeout)", async () => {
    const socket = net.connect(c.replicas[0].proxyPort, "127.0.0.1");
    let answer = "";
    socket.on("data", (d) => (answer += d.toString()));
    socket.write("GET /whoami HTTP/1.1\r\nhost: x\r\n");
    await new Promise((resolve) => socket.once("close", resolve));
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  test("an answer not finished within write-timeout loses its connection", async () => {
    // A client that never reads a 200 MB answer: the proxy closes the connection after 10 s.
    const res = await request(`${c.primary.proxyUrl}/blob?respond=${200 * 1024 * 1024}`, { method: "POST", body: "" });
    expect(res.statusCode).toBe(200);
    await waitFor(() => c.primary.node.logs.includes("proxy.write-timeout"), 30_000, "the write timeout to be logged");
    await expect(res.body.arrayBuffer()).rejects.toThrow();
  });
});

test("a node whose proxy cannot listen stops with the reason", async () => {
  const blocker = net.createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => blocker.once("listening", resolve));
  const busy = (blocker.address() as net.AddressInfo).port;
  const node = await LitefsNode.create("proxy-busy", {
    httpPort: await freePort(),
    extraYaml: `proxy:\n  addr: "127.0.0.1:${busy}"\n  target: "127.0.0.1:1"\n  db: app.db`,
  });
  try {
    await node.start();
    const exit = await node.exit!;
    expect(exit.code).toBe(1);
    expect(node.logs).toContain(`cannot listen on proxy.addr 127.0.0.1:${busy}: address already in use`);
  } finally {
    blocker.close();
    await node.cleanup();
  }
});
