import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { VARIANTS, hostileRequest, type HostileResult } from "../support/hostile-client.js";
import { waitFor, type LitefsNode } from "../support/node-process.js";
import { info } from "../support/roles.js";
import { sqlite3 } from "../support/sqlite-clients.js";

/**
 * Clients that send a request (chunked 4 MiB garbage, a cut JSON body, a lying Content-Length...)
 * and then vanish with a TCP reset must not take a node down, whatever the endpoint. Every hostile
 * request goes to both the primary and its replica; after each endpoint both must still be
 * running, answer GET /info, and replicate a new commit.
 */
const ENDPOINTS: ReadonlyArray<readonly [method: string, path: string]> = [
  ["POST", "/stream"],
  ["GET", "/info"],
  ["POST", "/handoff"],
  ["POST", "/handoff?id=replica0"],
  ["POST", "/promote"],
  ["GET", "/events"],
  ["GET", "/metrics"],
  ["POST", "/import"],
  ["GET", "/export"],
  ["POST", "/halt"],
  ["POST", "/tx"],
  ["PUT", "/no/such/endpoint"],
];

const TOKEN = "h0stile-t0ken";
const DB = "hostile.db";

let cluster: Cluster;
/** Nodes that died during the run, with their logs (a restart starts a fresh log). */
const deaths: Array<{ node: string; during: string; logs: string }> = [];
let current = "setup";
let writes = 0;

function port(node: LitefsNode): number {
  return node.config.httpPort!;
}

function exited(node: LitefsNode): string | null {
  const p = node.proc;
  if (!p) return "no process";
  if (p.exitCode !== null || p.signalCode !== null) return `exited (code ${p.exitCode}, signal ${p.signalCode})`;
  return null;
}

function logTail(node: LitefsNode, n = 4000): string {
  return `--- ${node.config.hostname} log tail:\n${node.logs.slice(-n)}`;
}

function expectAllRunning(what: string): void {
  const dead = cluster.nodes.filter((n) => exited(n));
  expect(
    dead.map((n) => `${n.config.hostname}: ${exited(n)}`),
    `nodes down after ${what}\n${dead.map((n) => logTail(n)).join("\n")}`,
  ).toEqual([]);
}

/**
 * The replica's store reaches the primary's position (both per GET /info, which this test also
 * proves is still served) and, if given, the row `v` reads back on the replica through its mount.
 */
async function converged(timeoutMs: number, v?: string): Promise<void> {
  const [primary, replica] = cluster.nodes;
  let last = "";
  await waitFor(
    async () => {
      const [p, r] = await Promise.all(
        [primary, replica].map((n) => info(n).then((i) => i.databases[DB]?.position ?? "missing", (e: Error) => `error: ${e.message}`)),
      );
      last = `primary at ${p}, replica at ${r}`;
      if (p !== r || p.startsWith("error")) return false;
      if (v === undefined) return true;
      return (await sqlite3(replica.db(DB), `SELECT count(*) FROM t WHERE v = '${v}';`).catch(() => "0")) === "1";
    },
    timeoutMs,
    `the replica to reach the primary's position of ${DB}`,
  ).catch(async (err: Error) => {
    const pos = await Promise.all(cluster.nodes.map(async (n) => `${n.config.hostname} -pos: ${await n.pos(DB).catch((e: Error) => e.message)}`));
    throw new Error(`${err.message}\n${last}; ${pos.join(", ")}${v ? `; row '${v}' not on the replica` : ""}\n${cluster.nodes.map((n) => logTail(n, 2000)).join("\n")}`);
  });
}

/** Running, GET /info answers 200 (polled briefly), and, if asked, a new commit on the primary replicates. */
async function expectServing(what: string, opts: { write: boolean }): Promise<void> {
  expectAllRunning(what);
  for (const node of cluster.nodes) {
    let last = "";
    await waitFor(
      async () => {
        if (exited(node)) return true; // reported below, without waiting out the timeout
        return info(node).then(
          (i) => i.hostname === node.config.hostname,
          (err: Error) => ((last = err.message), false),
        );
      },
      5_000,
      `GET /info on ${node.config.hostname} after ${what}`,
    ).catch((err: Error) => {
      throw new Error(`${err.message} (last answer: ${last})\n${logTail(node)}`);
    });
  }
  expectAllRunning(what);
  if (opts.write) {
    const v = `after ${what.replace(/'/g, "")} #${++writes}`;
    await sqlite3(cluster.primary.db(DB), `INSERT INTO t (v) VALUES ('${v}');`);
    await converged(15_000, v);
  }
  // A crash a moment after the request (an error handler run late) shows up here.
  expectAllRunning(what);
}

/**
 * Vanishing at once (the reset may overtake what the server has not read yet), and after giving
 * the server up to a second to answer or hang up (it has then read past any body limit: a busy
 * node would otherwise only see ECONNRESET and never reach its error path).
 */
const LINGER_MS = [0, 1_000];

/** Throws every variant at one node, one after the other; both nodes are attacked at once. */
async function attack(method: string, path: string, token: string | undefined, lingers = LINGER_MS): Promise<Map<string, HostileResult>> {
  const results = new Map<string, HostileResult>();
  await Promise.all(
    cluster.nodes.map(async (node) => {
      for (const lingerMs of lingers) {
        for (const variant of VARIANTS) {
          const r = await hostileRequest(port(node), method, path, variant, { token, lingerMs });
          results.set(`${node.config.hostname} ${variant} linger=${lingerMs}`, r);
        }
      }
    }),
  );
  return results;
}

beforeAll(async () => {
  cluster = await Cluster.start("hostile", 1, { primary: { token: TOKEN }, replica: { token: TOKEN } });
  await sqlite3(cluster.primary.db(DB), "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('first');");
  await converged(30_000, "first");
});

afterAll(async () => {
  if (process.env.LITEFS_TEST_LOGS) for (const n of cluster?.nodes ?? []) console.log(n.config.hostname, n.logs);
  await cluster?.cleanup();
});

// A node killed by one endpoint is restarted (its earlier log kept) so every endpoint gets its own
// verdict instead of one crash failing the rest of the file.
beforeEach(async () => {
  if (!cluster) return;
  for (const node of cluster.nodes) {
    if (!exited(node)) continue;
    deaths.push({ node: node.config.hostname!, during: current, logs: node.logs });
    await node.kill9();
    await node.start();
  }
  if (deaths.length) await converged(20_000);
});

describe("a client that sends garbage and vanishes does not take a node down", () => {
  for (const [method, path] of ENDPOINTS) {
    it(`${method} ${path} (with the token)`, async () => {
      current = `${method} ${path}`;
      await attack(method, path, TOKEN);
      await expectServing(`hostile ${method} ${path}`, { write: true });
    });
  }

  it("the same garbage without the token gets 401 or a closed socket", async () => {
    for (const [method, path] of [["POST", "/stream"], ["GET", "/info"], ["POST", "/promote"]] as const) {
      current = `unauthenticated ${method} ${path}`;
      const results = await attack(method, path, undefined, [3_000]);
      for (const [key, r] of results) {
        expect(r.status === 401 || (r.status === null && r.closedByServer), `${method} ${path} ${key}: ${JSON.stringify({ ...r, response: r.response.slice(0, 200) })}`).toBe(true);
      }
      await expectServing(`unauthenticated ${method} ${path}`, { write: false });
    }
    for (const node of cluster.nodes) expect(node.logs).toMatch(/unauthorized request for \//);
    await expectServing("unauthenticated requests", { write: true });
  });

  it("no node died or logged a TypeError or an uncaught exception", () => {
    const logs = [...deaths.map((d) => `--- ${d.node} (died during ${d.during}):\n${d.logs}`), ...cluster.nodes.map((n) => `--- ${n.config.hostname}:\n${n.logs}`)];
    const bad = logs.filter((l) => /TypeError|uncaught/i.test(l));
    expect(
      deaths.map((d) => `${d.node} died during ${d.during}`),
      bad.map((l) => l.slice(-3000)).join("\n"),
    ).toEqual([]);
    expect(bad.map((l) => l.split("\n")[0]), bad.map((l) => l.slice(-3000)).join("\n")).toEqual([]);
  });
});
