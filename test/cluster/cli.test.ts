import { afterEach, describe, expect, it } from "vitest";
import type { NodeInfo } from "../../src/node/node.js";
import { Cluster } from "../support/cluster.js";
import { consul, consulNode, primaryAndCandidate } from "../support/consul-nodes.js";
import { CLI, LitefsNode, waitFor } from "../support/node-process.js";
import { isPrimary, waitForPrimary } from "../support/roles.js";
import { run, sqlite3 } from "../support/sqlite-clients.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

interface StatusDocument {
  health: string;
  exitCode: number;
  problems: string[];
  nodes: Array<{ hostname: string | null; role: string | null; url: string | null; asked: boolean; connected: boolean | null; error: string | null; info: NodeInfo }>;
}

function apiUrl(node: LitefsNode): string {
  return `http://127.0.0.1:${node.config.httpPort}`;
}

async function getInfo(node: LitefsNode): Promise<NodeInfo> {
  const res = await fetch(`${apiUrl(node)}/info`);
  return (await res.json()) as NodeInfo;
}

/** `litefs VERB -config <node's config> ARGS...` (flags before any `--`). */
function litefs(node: LitefsNode, verb: string, ...args: string[]) {
  return run(process.execPath, [CLI, verb, "-config", node.configPath, ...args]);
}

describe("the admin CLI against running nodes", () => {
  it("status, promote and handoff", async () => {
    const { a, b } = await primaryAndCandidate(cleanups);
    await sqlite3(a.db("s.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    await new Cluster(a, [b]).waitForConvergence("s.db");

    const status = await litefs(b, "status");
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^lease:\s+consul, held by node-a$/m);
    expect(status.stdout).toMatch(/^health:\s+healthy$/m);
    expect(status.stdout).toMatch(/^node-a\s+primary\s+0\.0s\s+http:\/\/127\.0\.0\.1:\d+$/m);
    expect(status.stdout).toMatch(/^node-b \*\s+replica\s+0\.0s\s+http:\/\/127\.0\.0\.1:\d+$/m);
    expect(status.stdout).toMatch(/s\.db\s+0000000000000002\/[0-9a-f]{16}/);

    const promote = await litefs(b, "promote");
    expect(promote.code, promote.stderr).toBe(0);
    expect(promote.stdout).toMatch(/now the primary/);
    expect(await isPrimary(b)).toBe(true);

    await waitFor(async () => (await litefs(a, "status")).stdout.includes("held by node-b"), 10_000, "node-a to follow node-b");
    const handoff = await litefs(b, "handoff", "node-a");
    expect(handoff.code, handoff.stderr).toBe(0);
    await waitForPrimary([a], 10_000);

    const bad = await litefs(a, "handoff", "nobody");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no connected replica with node ID or hostname "nobody"/);
  });

  it("status reports every node; -json agrees with each node's /info; stopping a replica makes it degraded, asking a stopped node exits 2", async () => {
    const cluster = await Cluster.start("status", 2);
    cleanups.push(() => cluster.cleanup());
    const [r0, r1] = cluster.replicas as [LitefsNode, LitefsNode];
    await sqlite3(cluster.primary.db("s.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    await cluster.waitForConvergence("s.db");

    // From a replica: it, the primary it names, and the primary's other replica.
    const fromReplica = await litefs(r0, "status", "-json");
    expect(fromReplica.code, fromReplica.stdout + fromReplica.stderr).toBe(0);
    const doc = JSON.parse(fromReplica.stdout) as StatusDocument;
    expect(doc).toMatchObject({ health: "healthy", exitCode: 0, problems: [], maxLagMs: 10_000, lease: { type: "static", holder: "primary" } });
    expect(doc.nodes.map((n) => [n.hostname, n.role, n.asked, n.connected])).toEqual([
      ["primary", "primary", false, null],
      ["replica0", "replica", true, true],
      ["replica1", "replica", false, true],
    ]);
    for (const [n, node] of [[doc.nodes[0]!, cluster.primary], [doc.nodes[1]!, r0], [doc.nodes[2]!, r1]] as const) {
      expect(n.url).toBe(apiUrl(node));
      const info = await getInfo(node);
      const { lagMs: _lag, replicas: _replicas, ...stable } = info;
      expect(n.info, node.config.hostname).toMatchObject(stable);
      expect(n.info.databases["s.db"]!.position).toBe(await node.pos("s.db"));
    }
    expect((await getInfo(cluster.primary)).replicas).toMatchObject([
      { hostname: "replica0", url: apiUrl(r0), connected: true },
      { hostname: "replica1", url: apiUrl(r1), connected: true },
    ]);

    // From the primary, in the human form, with -max-lag given.
    const table = await litefs(cluster.primary, "status", "-max-lag", "2s");
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^lease:\s+static, held by primary$/m);
    expect(table.stdout).toMatch(/^replica1\s+replica\s+0\.0s\s+http:\/\/127\.0\.0\.1:\d+$/m);

    await r1.stop();
    const degraded = await litefs(cluster.primary, "status", "-json");
    expect(degraded.code, degraded.stdout).toBe(1);
    const after = JSON.parse(degraded.stdout) as StatusDocument;
    expect(after.health).toBe("degraded");
    expect(after.nodes.find((n) => n.hostname === "replica1")).toMatchObject({ connected: false, info: null, error: expect.stringMatching(/cannot reach/) });
    expect(after.problems).toEqual([
      expect.stringMatching(/^replica replica1 disconnected from the primary primary at .*; cannot reach the litefs node at http:\/\/127\.0\.0\.1:\d+/),
    ]);
    const human = await litefs(r0, "status");
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^health:\s+degraded \(1 problem\)$/m);
    expect(human.stdout).toMatch(/^replica1\s+replica\s+-\s+http:\/\/127\.0\.0\.1:\d+\s+unreachable$/m);
    expect(human.stderr).toMatch(/^litefs: replica replica1 disconnected from the primary primary at /m);

    const stopped = await litefs(r1, "status");
    expect(stopped.code).toBe(2);
    expect(stopped.stderr).toMatch(/litefs: the node asked: cannot reach the litefs node at http:\/\/127\.0\.0\.1:\d+.*check -url/);

    const badFlag = await litefs(r0, "status", "-max-lag", "soon");
    expect(badFlag.code).toBe(1);
    expect(badFlag.stderr).toMatch(/max-lag.*invalid duration/);

    // The primary gone: a static replica's config names it (exit 2); by -url alone, no primary is known (exit 1).
    await cluster.primary.stop();
    await waitFor(async () => (await getInfo(r0)).primary === null, 10_000, "replica0 to lose its primary");
    const noPrimary = await litefs(r0, "status");
    expect(noPrimary.code, noPrimary.stderr).toBe(2);
    expect(noPrimary.stderr).toMatch(/^litefs: the primary \(lease.advertise-url of replica0\): cannot reach/m);
    const byUrl = await run(process.execPath, [CLI, "status", "-url", apiUrl(r0)]);
    expect(byUrl.code, byUrl.stderr).toBe(1);
    expect(byUrl.stderr).toMatch(/replica0 knows no primary/);
  });

  it("lease.promote makes a candidate take over once it has caught up", async () => {
    const double = await consul(cleanups);
    const a = await consulNode(cleanups, double, "node-a");
    await a.start();
    await waitForPrimary([a]);
    await sqlite3(a.db("p.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    const b = await consulNode(cleanups, double, "node-b", { promote: true });
    await b.start();
    await waitForPrimary([b], 20_000);
    expect(await sqlite3(b.db("p.db"), "SELECT count(*) FROM t;")).toBe("1");
  });

  it("run -if-candidate skips non-candidates; run -promote runs on a freshly promoted primary", async () => {
    const { double, a, b } = await primaryAndCandidate(cleanups);
    const c = await consulNode(cleanups, double, "node-c", { candidate: false });
    await c.start();
    await sqlite3(a.db("m.db"), "CREATE TABLE t (v);");
    await new Cluster(a, [b, c]).waitForConvergence("m.db");

    const skipped = await litefs(c, "run", "-if-candidate", "--", "sqlite3", c.db("m.db"), "INSERT INTO t VALUES ('from c');");
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stderr).toMatch(/not a lease candidate: skipping/);

    const migrated = await litefs(b, "run", "-promote", "-if-candidate", "--", "sqlite3", b.db("m.db"), "INSERT INTO t VALUES ('migration');");
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(await isPrimary(b)).toBe(true);
    expect(await sqlite3(b.db("m.db"), "SELECT group_concat(v) FROM t;")).toBe("migration");

    const failing = await litefs(b, "run", "--", "sh", "-c", "exit 5");
    expect(failing.code).toBe(5);
  });
});
