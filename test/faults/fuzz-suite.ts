import * as fsp from "node:fs/promises";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeLtxFrameHeader, FrameType } from "../../src/http/frames.js";
import { ScenarioTally } from "../support/fault-report.js";
import { rawRequest, type RawResult } from "../support/hostile-client.js";
import { LitefsNode, freePort, waitFor } from "../support/node-process.js";
import { info } from "../support/roles.js";
import { fetchText, ProxyCluster } from "../support/web-app.js";

/**
 * Hostile input, generated (fast-check): /stream bodies, every API endpoint's parameters and
 * headers, the proxy's requests and cookies, and the frames a replica reads from its primary.
 * Every answer must come (no hang), must not be a 500 (an unhandled error), and afterwards every
 * node still runs, answers, keeps its data and replicates a new write. `runs` per property:
 * a few hundred in npm test, thousands in npm run test:faults.
 */
export function fuzzSuite(runs: number): void {
  let c: ProxyCluster;
  const tally = new ScenarioTally("hostile input (fuzz)");

  beforeAll(async () => {
    c = await ProxyCluster.start("fuzz", 1);
    await post(c.primary.proxyUrl, "before the fuzz");
  });
  afterAll(async () => {
    await tally.report(`${runs} cases per property`);
    await c?.cleanup();
  });

  async function post(url: string, note: string): Promise<number> {
    const res = await fetchText(`${url}/rows`, { method: "POST", body: note });
    if (res.status !== 201) throw new Error(`POST ${url}/rows: ${res.status} ${res.body}`);
    return (JSON.parse(res.body) as { id: number }).id;
  }

  async function note(url: string, id: number): Promise<string | null> {
    const res = await fetchText(`${url}/rows/${id}`);
    return res.status === 200 ? (JSON.parse(res.body) as { note: string }).note : null;
  }

  /** Both nodes run and answer /info, the first row is intact, a new write replicates. */
  async function expectServing(after: string): Promise<void> {
    for (const n of c.nodes) {
      expect(n.node.proc?.exitCode ?? null, `${n.node.config.hostname} exited after ${after}:\n${n.node.logs.slice(-3000)}`).toBe(null);
      expect((await info(n.node)).hostname).toBe(n.node.config.hostname);
    }
    const replica = c.replicas[0].proxyUrl;
    const id = await post(replica, `after ${after}`); // forwarded to the primary
    await waitFor(async () => (await note(replica, id)) === `after ${after}`, 15_000, `the write after ${after} on the replica`);
    for (const n of c.nodes) expect(await note(n.proxyUrl, 1)).toBe("before the fuzz");
    expect(c.nodes.flatMap((n) => n.node.logs.match(/.*(TypeError|uncaught|http request failed).*/g) ?? [])).toEqual([]);
  }

  function judge(what: string, r: RawResult): void {
    tally.faults++;
    expect(r.hung, `${what}: no answer within 5 s`).toBe(false);
    expect(r.status === 500, `${what}: ${r.head}`).toBe(false);
  }

  const apiPorts = () => c.nodes.map((n) => n.node.config.httpPort!);
  const text = fc.string({ maxLength: 40 });
  const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,60}$/);
  const headerName = fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/);
  const query = fc.array(fc.tuple(fc.constantFrom("name", "id", "node", "hostname", "pos", "since", "x"), text), { maxLength: 4 });
  const position = fc.oneof(fc.constant("0000000000000001/0000000000000000"), fc.stringMatching(/^[0-9a-f]{0,17}\/[0-9a-fz]{0,17}$/), text);
  const streamBody = fc.oneof(
    fc.json().map((j) => Buffer.from(j)),
    fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b)),
    fc
      .record(
        {
          nodeId: fc.oneof(fc.constant("00000000000000ff"), text),
          hostname: fc.oneof(fc.constant("fuzzer"), text, fc.integer()),
          clusterId: fc.oneof(fc.constant(""), text),
          candidate: fc.oneof(fc.boolean(), text),
          apiUrl: fc.oneof(fc.webUrl(), text),
          databases: fc.oneof(fc.constant(null), fc.array(text, { maxLength: 3 })),
          positions: fc.dictionary(fc.oneof(fc.constant("app.db"), text), position, { maxKeys: 3 }),
          history: fc.dictionary(fc.oneof(fc.constant("app.db"), text), fc.array(position, { maxLength: 3 }), { maxKeys: 2 }),
        },
        { requiredKeys: [] },
      )
      .map((o) => Buffer.from(JSON.stringify(o))),
  );

  function request(method: string, path: string, headers: Array<[string, string]>, body: Buffer): Buffer {
    const lines = [`${method} ${path} HTTP/1.1`, "Host: fuzz", ...headers.map(([k, v]) => `${k}: ${v}`), `Content-Length: ${body.length}`, "Connection: close", "", ""];
    return Buffer.concat([Buffer.from(lines.join("\r\n"), "latin1"), body]);
  }

  describe("hostile input: generated requests never crash, hang or corrupt a node", () => {
    it("POST /stream with generated bodies", async () => {
      await fc.assert(
        fc.asyncProperty(streamBody, fc.nat(1), async (body, which) => {
          judge("POST /stream", await rawRequest(apiPorts()[which], request("POST", "/stream", [["Content-Type", "application/json"]], body)));
        }),
        { numRuns: runs },
      );
      await expectServing("POST /stream fuzz");
    });

    it("every API endpoint with generated parameters, headers and bodies", async () => {
      const endpoint = fc.constantFrom("GET /info", "GET /events", "POST /import", "GET /export", "POST /halt", "DELETE /halt", "POST /tx", "POST /promote", "POST /handoff", "GET /metrics", "GET /nothing");
      await fc.assert(
        fc.asyncProperty(
          endpoint,
          query,
          fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }),
          fc.uint8Array({ maxLength: 2048 }),
          fc.nat(1),
          async (ep, q, headers, body, which) => {
            const [method, path] = ep.split(" ");
            const qs = q.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
            // The database under load is never named: a valid HALT or import on it is a legitimate request.
            const safe = headers.filter(([k]) => !/^(content-length|transfer-encoding|host|connection)$/i.test(k));
            judge(`${ep}?${qs}`, await rawRequest(apiPorts()[which], request(method, qs ? `${path}?${qs}` : path, safe, Buffer.from(body))));
          },
        ),
        { numRuns: runs },
      );
      await expectServing("API fuzz");
    });

    it("the proxy with generated methods, paths, headers and __txid cookies", async () => {
      const proxyPorts = c.nodes.map((n) => n.proxyPort);
      const cookie = fc.oneof(
        fc.stringMatching(/^[0-9a-fA-F]{0,20}$/),
        fc.array(fc.tuple(fc.oneof(fc.constant("app.db"), text), fc.stringMatching(/^[0-9a-z%]{0,18}$/)), { maxLength: 3 }).map((ps) => ps.map(([d, t]) => `${encodeURIComponent(d)}:${t}`).join("&")),
        headerValue,
      );
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"),
          fc.oneof(fc.constantFrom("/rows", "/rows/1", "/litefs/health", "/"), fc.webPath()),
          cookie,
          fc.array(fc.tuple(headerName, headerValue), { maxLength: 3 }),
          fc.nat(1),
          async (method, path, txid, headers, which) => {
            const safe = headers.filter(([k]) => !/^(content-length|transfer-encoding|host|connection|cookie)$/i.test(k));
            const p = path.startsWith("/") ? path : `/${path}`;
            // POST /rows writes a row: a legitimate write, which the checks below then see replicate.
            const r = await rawRequest(proxyPorts[which], request(method, p, [...safe, ["Cookie", `a=b; __txid=${txid}`]], Buffer.alloc(0)), 10_000);
            tally.faults++;
            expect(r.hung, `${method} ${p} __txid=${txid}`).toBe(false);
            expect(r.status === 500, `${method} ${p} __txid=${txid}: ${r.head}`).toBe(false);
          },
        ),
        { numRuns: Math.ceil(runs / 2) },
      );
      await expectServing("proxy fuzz");
    });

    it("a replica fed generated frames by a fake primary keeps its data and keeps serving", async () => {
      const cases = fc.sample(frameStream, runs);
      const served: number[] = [];
      const fake = http.createServer((req, res) => {
        req.resume();
        const body = cases[served.length % cases.length];
        served.push(body.length);
        res.writeHead(200, { "content-type": "application/vnd.litefs.stream", "litefs-cluster-id": "", "litefs-primary-hostname": "fake" });
        res.end(body);
      });
      await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
      const victim = await LitefsNode.create("fuzz-frames", {
        candidate: false,
        httpPort: await freePort(),
        hostname: "victim",
        primaryUrl: `http://127.0.0.1:${(fake.address() as AddressInfo).port}`,
      });
      try {
        await victim.start();
        // Each broken stream costs the replica a reconnect backoff (up to 2 s here): fewer cases.
        const want = Math.max(10, Math.min(Math.ceil(runs / 10), 100));
        await waitFor(() => served.length >= want || victim.proc?.exitCode !== null, want * 3_000, `${want} streams served`);
        tally.faults += served.length;
        expect(victim.proc?.exitCode ?? null, victim.logs.slice(-3000)).toBe(null);
        expect(victim.logs).not.toMatch(/TypeError|uncaught/);
        // Nothing the fake primary named escaped the data dir.
        const escaped = await fsp.readdir("/tmp").then((names) => names.filter((n) => n.startsWith("fuzz-escape")));
        expect(escaped).toEqual([]);
        expect(await fsp.readdir(victim.mnt)).toBeDefined();
      } finally {
        fake.closeAllConnections();
        fake.close();
        await victim.cleanup();
      }
    }, 400_000);
  });
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};
/** Names a primary must never be trusted with: traversal, separators, control bytes. */
const frameName = fc.oneof(
  fc.constantFrom("app.db", "../fuzz-escape.db", "../../../../tmp/fuzz-escape-2.db", "/tmp/fuzz-escape-3.db", "a/b.db", "", ".", "..", "x\u0000y.db"),
  fc.string({ maxLength: 30 }),
);
const frame = fc.oneof(
  fc.tuple(frameName, fc.uint8Array({ maxLength: 600 })).map(([name, bytes]) => Buffer.concat([encodeLtxFrameHeader(name, bytes.length), Buffer.from(bytes)])),
  fc.tuple(frameName, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })).map(([name, size]) => {
    const n = Buffer.from(name);
    return Buffer.concat([Buffer.from([FrameType.Ltx]), u16(n.length), n, u64(size)]);
  }),
  fc.constant(Buffer.from([FrameType.Ready])),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((t) => Buffer.concat([Buffer.from([FrameType.Heartbeat]), u64(t)])),
  fc.tuple(fc.constantFrom(FrameType.Handoff, FrameType.End), fc.string({ maxLength: 50 })).map(([t, s]) => Buffer.concat([Buffer.from([t]), u16(Buffer.byteLength(s)), Buffer.from(s)])),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
);
const frameStream = fc.array(frame, { maxLength: 6 }).map((fs) => Buffer.concat(fs));
