import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Position } from "../../src/ltx/index.js";
import { Cluster } from "../support/cluster.js";
import { startConsulDouble } from "../support/consul-double.js";
import { EventStreamReader } from "../support/event-stream.js";
import { FaultProxy, type LinkConditions } from "../support/fault-proxy.js";
import { ScenarioTally } from "../support/fault-report.js";
import { LedgerClient, checkHistory, createLedger, ledgerDir, readHistory, TOTAL } from "../support/history.js";
import { NetLab, type NetHost } from "../support/netns.js";
import { LitefsNode, sleep, waitFor } from "../support/node-process.js";
import { apiUrl, waitForPrimary } from "../support/roles.js";
import { sqlite3 } from "../support/sqlite-clients.js";
import { WebApp, fetchText } from "../support/web-app.js";

/**
 * Networks (issue 12): every node runs in its own network namespace on a bridge the test creates
 * (test/support/netns.ts), so a partition is a link going down, not a process stopping. Delay and
 * loss come from a userspace TCP proxy on the path between replicas and the primary (the kernel
 * here has no netem). All of it under the ledger workload and its history checker.
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});
beforeAll(async () => {
  await NetLab.removeLeftovers();
});

const ITERATIONS = Number(process.env.LITEFS_NET_ITERATIONS ?? 3);
const DB = "ledger.db";
/** Every node listens on the same ports, each in its own namespace. */
const API_PORT = 20202;
const PROXY_PORT = 20280;
/** The Consul lease of test/support/node-process.ts: ttl 10s, lock-delay 1s. */
const TTL_MS = 10_000;
const LOCK_DELAY_MS = 1000;

async function newLab(): Promise<NetLab> {
  const lab = await NetLab.create();
  cleanups.push(() => lab.remove());
  return lab;
}

async function newLedgerDir(): Promise<string> {
  const dir = await ledgerDir();
  cleanups.push(() => fsp.rm(dir, { recursive: true, force: true }));
  return dir;
}

async function startClient(id: string, paths: string[], dir: string, pauseMs?: number): Promise<LedgerClient> {
  const client = await LedgerClient.start(id, paths, { dir, pauseMs });
  cleanups.push(() => client.stop());
  return client;
}

async function txid(node: LitefsNode, db = DB): Promise<number> {
  return Position.parse(await node.pos(db)).txid;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const ms = (v: number) => `${Math.round(v)} ms`;

/** The last transfer (seq and id) a node holds. */
async function lastTransfer(node: LitefsNode): Promise<{ seq: number; id: string }> {
  // A busy timeout: in rollback-journal mode a reader waits out the writer's commit.
  const [seq, id] = (await sqlite3(node.db(DB), ".timeout 5000\nSELECT seq || ' ' || id FROM transfers ORDER BY seq DESC LIMIT 1;")).split(" ");
  return { seq: Number(seq), id };
}

/**
 * `node` holds the primary's history up to at least the primary's length when asked: the same
 * transfer at its last seq (a deposed primary's own TXIDs compare as "ahead", so TXIDs say nothing).
 */
async function followsHistory(primary: LitefsNode, node: LitefsNode, timeoutMs = 60_000): Promise<void> {
  const want = (await lastTransfer(primary)).seq;
  await waitFor(
    async () => {
      const got = await lastTransfer(node).catch(() => null);
      if (!got || got.seq < want) return false;
      return (await sqlite3(primary.db(DB), `.timeout 5000\nSELECT id FROM transfers WHERE seq = ${got.seq};`)) === got.id;
    },
    timeoutMs,
    `${node.config.hostname} to hold the primary's history up to seq ${want}`,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- ${node.config.hostname}:\n${node.logs.slice(-3000)}\n--- ${primary.config.hostname}:\n${primary.logs.slice(-2000)}`);
  });
}

/** The replica reaches the TXID the primary has now (the load keeps running meanwhile). */
async function caughtUp(primary: LitefsNode, replica: LitefsNode, timeoutMs = 60_000): Promise<void> {
  const want = await txid(primary);
  await waitFor(async () => (await txid(replica).catch(() => -1)) >= want, timeoutMs, `${replica.config.hostname} to reach TXID ${want}`).catch((err: Error) => {
    throw new Error(`${err.message}\n--- ${replica.config.hostname}:\n${replica.logs.slice(-3000)}\n--- ${primary.config.hostname}:\n${primary.logs.slice(-2000)}`);
  });
}

/** A litefs node in its own namespace (not started). */
async function labNode(lab: NetLab, name: string, config: Partial<LitefsNode["config"]>): Promise<{ host: NetHost; node: LitefsNode }> {
  const host = await lab.addHost(name);
  const node = await LitefsNode.create(`net-${name}`, { hostname: name, httpPort: API_PORT, netns: { name: host.netns, ip: host.ip }, ...config });
  cleanups.push(() => node.cleanup());
  return { host, node };
}

interface ProxiedLabNode {
  host: NetHost;
  node: LitefsNode;
  app: WebApp;
}

interface StaticLab {
  lab: NetLab;
  primary: ProxiedLabNode;
  replicas: ProxiedLabNode[];
  /** The WAN between replicas and the primary (its API and its proxy), when asked for. */
  wan: { api: FaultProxy; proxy: FaultProxy } | null;
  cluster: Cluster;
}

/**
 * A static-lease cluster in namespaces, every node running the proxy in front of its web app
 * (test/support/programs/web-app.mjs, in the node's namespace). With `wan`, the primary
 * advertises a service address of the test's namespace where two FaultProxy instances (its API,
 * its proxy) play the network between it and the replicas: the stream, acknowledgements and
 * forwarded writes all cross it, and `conditionsFor` gives each replica's address its own link.
 */
async function staticLab(replicaCount: number, opts: { wan?: boolean; proxyYaml?: string[] } = {}): Promise<StaticLab> {
  const lab = await newLab();
  const primaryHost = await lab.addHost("primary");
  let advertise = `http://${primaryHost.ip}:${API_PORT}`;
  let wan: StaticLab["wan"] = null;
  if (opts.wan) {
    const service = await lab.addAddress(250);
    const api = await FaultProxy.start(API_PORT, { host: service, port: API_PORT, targetHost: primaryHost.ip });
    const proxy = await FaultProxy.start(PROXY_PORT, { host: service, port: PROXY_PORT, targetHost: primaryHost.ip });
    cleanups.push(() => api.close());
    cleanups.push(() => proxy.close());
    wan = { api, proxy };
    advertise = `http://${service}:${API_PORT}`;
  }
  const make = async (host: NetHost, candidate: boolean): Promise<ProxiedLabNode> => {
    const node = await LitefsNode.create(`net-${host.name}`, { hostname: host.name, httpPort: API_PORT, netns: { name: host.netns, ip: host.ip }, candidate, primaryUrl: advertise });
    cleanups.push(() => node.cleanup());
    const app = new WebApp(host.name, node.db("app.db"), host.netns);
    cleanups.push(() => app.stop());
    await app.start();
    node.config.extraYaml = ["proxy:", `  addr: "0.0.0.0:${PROXY_PORT}"`, `  target: "127.0.0.1:${app.port}"`, "  db: app.db", ...(opts.proxyYaml ?? []).map((l) => `  ${l}`)].join("\n");
    await node.writeConfig();
    return { host, node, app };
  };
  const primary = await make(primaryHost, true);
  const replicas: ProxiedLabNode[] = [];
  for (let i = 0; i < replicaCount; i++) replicas.push(await make(await lab.addHost(`replica${i}`), false));
  for (const n of [primary, ...replicas]) await n.node.start();
  return { lab, primary, replicas, wan, cluster: new Cluster(primary.node, replicas.map((r) => r.node)) };
}

describe("networks", () => {
  for (const journalMode of ["wal", "delete"] as const) {
    it(`a primary cut off from Consul and the replicas turns read-only within its TTL, a candidate takes over, one history survives (${journalMode})`, async () => {
      const tally = new ScenarioTally(`primary cut off from Consul and replicas (${journalMode})`);
      const lab = await newLab();
      const double = await startConsulDouble({ host: lab.gateway });
      cleanups.push(() => double.close());
      const members: Array<{ host: NetHost; node: LitefsNode }> = [];
      for (const name of ["node-a", "node-b", "node-c"]) members.push(await labNode(lab, name, { consulUrl: double.url, candidate: true, extraYaml: process.env.LITEFS_NET_JSON_LOGS ? "log:\n  format: json" : undefined }));
      const nodes = members.map((m) => m.node);
      await nodes[0].start();
      await waitForPrimary([nodes[0]]);
      for (const n of nodes.slice(1)) await n.start();
      await createLedger(nodes[0], DB, journalMode);
      for (const n of nodes.slice(1)) await caughtUp(nodes[0], n);

      // One client per node, each writing through its own node's mount only: a client is
      // acknowledged only while its node is primary, so each acknowledgement names its primary.
      const dir = await newLedgerDir();
      const clients: LedgerClient[] = [];
      for (const [i, n] of nodes.entries()) clients.push(await startClient(`n${i}`, [n.db(DB)], dir));

      const readOnly: number[] = [];
      const takeover: number[] = [];
      const converge: number[] = [];
      /** Per client: the windows in which its node was cut off while primary (for the lost-write check). */
      const cuts: Array<{ client: number; cutAt: number; readOnlyAt: number }> = [];
      let discarded = 0;
      let deposedSnapshots = 0;
      for (let i = 0; i < ITERATIONS; i++) {
        const primary = await waitForPrimary(nodes, 60_000);
        const pi = nodes.indexOf(primary);
        const client = clients[pi];
        const before = client.acked.length;
        await waitFor(() => client.acked.length > before + 20, 30_000, `${primary.config.hostname} to acknowledge transfers`).catch((err: Error) => {
          throw new Error(`${err.message}\nclient errors: ${client.errors.slice(-5).join(" | ")}\n${primary.logs.slice(-3000)}`);
        });
        await sleep(Math.random() * 1000); // a random moment of the load, not a synchronisation
        const cutAt = performance.now();
        await lab.cut(members[pi].host);
        tally.faults++;

        // Its app's writes start failing (the first error after the cut)...
        await waitFor(() => client.errorsAt.some((t) => t > cutAt), TTL_MS + 10_000, `${primary.config.hostname} to refuse writes`).catch((err: Error) => {
          throw new Error(`${err.message}\n${primary.logs.slice(-3000)}`);
        });
        expect(client.errors.at(-1), "the deposed primary's app is told the database is read-only").toMatch(/readonly|read-only|I\/O|busy|locked/i);

        // ...and a candidate on the other side takes over; its acknowledgements start only after
        // the deposed primary's stopped (never two primaries acknowledging at once).
        const others = nodes.filter((n) => n !== primary);
        const next = await waitForPrimary(others, TTL_MS * 3);
        const ni = nodes.indexOf(next);
        const nextAcked = clients[ni].acked.length;
        await waitFor(() => clients[ni].acked.length > nextAcked + 5, 30_000, `the new primary ${next.config.hostname} to acknowledge`);
        const firstNewAck = clients[ni].ackedAt.find((t) => t > cutAt)!;
        const lastOldAck = client.ackedAt.at(-1) ?? 0;
        expect(firstNewAck, "the new primary's first acknowledgement comes after the deposed primary's last").toBeGreaterThan(lastOldAck);
        // Read-only within the TTL: its last acknowledgement (or first refusal, if later) after the cut.
        const readOnlyAt = Math.max(lastOldAck, client.errorsAt.find((t) => t > cutAt)!);
        readOnly.push(readOnlyAt - cutAt);
        expect(readOnlyAt - cutAt, "the deposed primary stops acknowledging within its TTL").toBeLessThan(TTL_MS);
        cuts.push({ client: pi, cutAt, readOnlyAt });
        takeover.push(firstNewAck - cutAt);
        // The session expires at most a TTL after the cut, the key is free a lock-delay later, and
        // candidates watch the lease every second (a connection to the cut-off primary hangs for 10 s).
        if (firstNewAck - cutAt >= TTL_MS + LOCK_DELAY_MS + 4000) {
          const events = double.events.slice(-8).map((e) => JSON.stringify({ ...e, at: Math.round(e.at - (performance.timeOrigin + cutAt)) }));
          throw new Error(
            `a candidate took over ${ms(firstNewAck - cutAt)} after the cut (the lease allows it after at most ${ms(TTL_MS + LOCK_DELAY_MS)})\n` +
              `Consul double (ms after the cut): ${events.join("\n")}\n--- ${next.config.hostname}:\n${next.logs.slice(-4000)}`,
          );
        }
        tally.recovered(firstNewAck - cutAt);
        // The replica on this side follows the new primary meanwhile.
        for (const n of others.filter((n) => n !== next)) await followsHistory(next, n);

        // Healed: the deposed node rejoins as a replica of the surviving history.
        const healAt = performance.now();
        const logFrom = next.logs.length;
        await lab.heal(members[pi].host);
        await followsHistory(next, primary);
        converge.push(performance.now() - healAt);
        // The new primary names what it discarded of the deposed one (stream-primary.ts).
        const told = next.logs.slice(logFrom);
        for (const m of told.matchAll(/its TXIDs (\d+)\.\.(\d+) of ledger\.db are discarded/g)) discarded += Number(m[2]) - Number(m[1]) + 1;
        deposedSnapshots += [...told.matchAll(/of ledger\.db, which this primary never had/g)].length;
        tally.iterations++;
      }

      for (const c of clients) await c.stop();
      const primary = await waitForPrimary(nodes);
      const replicas = nodes.filter((n) => n !== primary);
      await new Cluster(primary, replicas).waitForConvergence(DB, 60_000);
      const verdict = await checkHistory(primary, replicas, DB, clients, { asyncWindow: true });
      // Only a deposed primary's acknowledgements may be lost: those it gave after the cut, before
      // it turned read-only, and those the replicas had not received yet at the cut (async lag).
      let afterCut = 0;
      for (const id of verdict.lost) {
        const ci = clients.findIndex((c) => c.acked.includes(id));
        const at = clients[ci].ackedAt[clients[ci].acked.indexOf(id)];
        const window = cuts.find((w) => w.client === ci && at <= w.readOnlyAt && at > w.cutAt - 10_000);
        expect(window, `lost transfer ${id} was acknowledged by ${nodes[ci].config.hostname} outside any of its partitions`).toBeDefined();
        if (at > window!.cutAt) afterCut++;
      }
      tally.acked = verdict.acked;
      tally.lost = verdict.lost.length;
      expect(verdict.acked).toBeGreaterThan(ITERATIONS * 20);
      await tally.report(
        `recovery = cut until the new primary acknowledges; deposed primary read-only (last acknowledgement or first refusal) after ${ms(percentile(readOnly, 50))} median / ${ms(Math.max(...readOnly))} max (TTL 10 s); ` +
          `heal until the deposed node holds the surviving history ${ms(percentile(converge, 50))} / ${ms(Math.max(...converge))}; ` +
          `async window: ${verdict.lost.length} acknowledged transfers lost (${afterCut} acknowledged after the cut), ${discarded} TXIDs of deposed primaries discarded by name, ${deposedSnapshots} deposed primaries reset by a snapshot without a common TXID; ` +
          `${verdict.rows} transfers, ${verdict.unacknowledged} committed without acknowledgement`,
      );
    });
  }

  it("a replica cut off keeps serving its last state, .lag, /litefs/health and /info say so, and it catches up after healing", async () => {
    const tally = new ScenarioTally("replica cut off (wal)");
    const { lab, primary, replicas, cluster } = await staticLab(2, { proxyYaml: ["max-lag: 2s"] });
    const [cut, other] = replicas;
    await createLedger(primary.node, DB, "wal");
    for (const r of replicas) await caughtUp(primary.node, r.node);
    const dir = await newLedgerDir();
    const client = await startClient("c1", [primary.node.db(DB)], dir);
    const health = () => lab.fetchFrom(cut.host, `http://127.0.0.1:${PROXY_PORT}/litefs/health`);
    const lagFile = async () => Number((await fsp.readFile(path.join(cut.node.mnt, ".lag"), "utf8")).trim());
    expect((await health()).status).toBe(200);

    const noticed: number[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      const acked = client.acked.length;
      await waitFor(() => client.acked.length > acked + 20, 30_000, "transfers before the cut");
      const cutAt = performance.now();
      await lab.cut(cut.host);
      tally.faults++;
      // .lag grows past proxy.max-lag; the proxy's health check and /info say so.
      await waitFor(async () => (await lagFile()) > 2000, 30_000, "the cut-off replica's .lag to pass 2 s");
      noticed.push(performance.now() - cutAt);
      const h = await health();
      expect(h.status, h.body).toBe(503);
      expect(h.body).toMatch(/behind the primary/);
      const nodeInfo = JSON.parse((await lab.fetchFrom(cut.host, `http://127.0.0.1:${API_PORT}/info`)).body) as { lagMs: number; isPrimary: boolean };
      expect(nodeInfo.lagMs).toBeGreaterThan(2000);
      expect(nodeInfo.isPrimary).toBe(false);
      // It serves its last state, intact, and that state does not move while the primary goes on.
      const stuckAt = await cut.node.pos(DB);
      const primaryAt = await txid(primary.node);
      const h1 = await readHistory(cut.node, DB);
      expect(h1.integrity).toBe("ok");
      expect(h1.total).toBe(TOTAL);
      expect(h1.problems).toEqual([]);
      const more = client.acked.length;
      await waitFor(() => client.acked.length > more + 50, 30_000, "the primary to keep acknowledging");
      await caughtUp(primary.node, other.node);
      expect(await cut.node.pos(DB)).toBe(stuckAt);
      expect(Position.parse(stuckAt).txid).toBeLessThan(await txid(primary.node));
      expect(Position.parse(stuckAt).txid).toBeLessThanOrEqual(primaryAt);

      const healAt = performance.now();
      await lab.heal(cut.host);
      await caughtUp(primary.node, cut.node);
      tally.recovered(performance.now() - healAt);
      await waitFor(async () => (await health()).status === 200 && (await lagFile()) === 0, 30_000, "health to be 200 and .lag 0 again");
      tally.iterations++;
    }
    await client.stop();
    await cluster.waitForConvergence(DB, 60_000);
    const verdict = await checkHistory(primary.node, cluster.replicas, DB, [client]);
    tally.acked = verdict.acked;
    tally.lost = verdict.lost.length;
    await tally.report(`recovery = heal until caught up; .lag past 2 s and /litefs/health 503 ${ms(percentile(noticed, 50))} after the cut (median)`);
  });

  it("loss and delay between replicas and the primary: replicas lag, then converge", async () => {
    const tally = new ScenarioTally("loss and delay replica-primary (wal)");
    const { primary, replicas, wan, cluster } = await staticLab(2, { wan: true });
    await createLedger(primary.node, DB, "wal");
    for (const r of replicas) await caughtUp(primary.node, r.node);
    const dir = await newLedgerDir();
    const client = await startClient("c1", [primary.node.db(DB)], dir);
    const phases: Array<{ name: string; link: LinkConditions }> = [
      { name: "100 ms RTT", link: { oneWayMs: 50 } },
      { name: "100 ms RTT, 5% loss", link: { oneWayMs: 50, loss: 0.05 } },
      { name: "100 ms RTT, 20% loss, resets", link: { oneWayMs: 50, loss: 0.2, reset: 0.01 } },
    ];
    const notes: string[] = [];
    for (const phase of phases) {
      wan!.api.conditions = phase.link;
      wan!.proxy.conditions = phase.link;
      const resetsBefore = wan!.api.resets;
      const faultAt = performance.now();
      tally.faults++;
      // Under load for a while: sample how far behind the replicas are (TXIDs).
      const behind: number[] = [];
      const acked = client.acked.length;
      const until = performance.now() + 8000;
      while (performance.now() < until) {
        const p = await txid(primary.node);
        for (const r of replicas) behind.push(p - (await txid(r.node)));
        await sleep(100);
      }
      expect(client.acked.length, "the primary keeps acknowledging").toBeGreaterThan(acked);
      expect(Math.max(...behind), `replicas lag behind the primary (${phase.name})`).toBeGreaterThan(0);
      // Healed: the replicas converge with the load still running.
      wan!.api.conditions = {};
      wan!.proxy.conditions = {};
      const healAt = performance.now();
      for (const r of replicas) await caughtUp(primary.node, r.node);
      tally.recovered(performance.now() - healAt);
      tally.iterations++;
      notes.push(`${phase.name}: behind p50 ${percentile(behind, 50)} / max ${Math.max(...behind)} TXIDs, ${wan!.api.resets - resetsBefore} resets, converged ${ms(performance.now() - healAt)} after healing (phase ${ms(healAt - faultAt)})`);
    }
    await client.stop();
    await cluster.waitForConvergence(DB, 60_000);
    const verdict = await checkHistory(primary.node, cluster.replicas, DB, [client]);
    tally.acked = verdict.acked;
    tally.lost = verdict.lost.length;
    await tally.report(`recovery = link healed until caught up; ${notes.join("; ")}`);
  });

  it("three regions, 30, 80 and 150 ms round trips: replication lag and forwarded-write latency per region", async () => {
    const rtts = [30, 80, 150];
    const { primary, replicas, wan, cluster } = await staticLab(3, { wan: true });
    const region = new Map(replicas.map((r, i) => [r.host.ip, { oneWayMs: rtts[i] / 2 }]));
    wan!.api.conditionsFor = (address) => region.get(address.replace(/^::ffff:/, ""));
    wan!.proxy.conditionsFor = wan!.api.conditionsFor;
    await createLedger(primary.node, DB, "wal");
    for (const r of replicas) await caughtUp(primary.node, r.node);

    // Replication lag: when each commit's event arrives from the primary, and when the replica's
    // event for it (or a later TXID) arrives; the test reaches every node directly.
    const readers = [primary, ...replicas].map((n) => new EventStreamReader(apiUrl(n.node)));
    cleanups.push(async () => {
      for (const r of readers) await r.close();
    });
    const dir = await newLedgerDir();
    // Paced (about 40 transfers a second at most), so the lag measured is the network's and the
    // apply's, not a backlog of a replica that cannot keep up with an unpaced writer on two cores.
    const client = await startClient("c1", [primary.node.db(DB)], dir, 25);
    const acked = client.acked.length;
    await waitFor(() => client.acked.length > acked + 400, 60_000, "400 transfers under the three-region load");
    await client.stop();
    for (const r of replicas) await caughtUp(primary.node, r.node);
    const txEvents = (reader: EventStreamReader) =>
      reader.events.flatMap((ev, i) => (ev.type === "tx" && ev.db === DB ? [{ txid: parseInt(ev.data.txID!, 16), at: reader.arrivedAt[i] }] : []));
    const commits = txEvents(readers[0]);
    const lags = replicas.map((_, ri) => {
      const applied = txEvents(readers[ri + 1]);
      const out: number[] = [];
      let j = 0;
      for (const c of commits) {
        while (j < applied.length && applied[j].txid < c.txid) j++;
        if (j < applied.length) out.push(applied[j].at - c.at);
      }
      return out;
    });

    // Forwarded writes: POST /rows on each replica's proxy goes to the primary's across its region.
    const WRITES = Number(process.env.LITEFS_NET_WRITES ?? 40);
    const timeWrites = async (proxyUrl: string): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < WRITES; i++) {
        const t0 = performance.now();
        const res = await fetchText(`${proxyUrl}/rows`, { method: "POST", body: `w${i}` });
        out.push(performance.now() - t0);
        expect(res.status, res.body).toBe(201);
        expect(JSON.parse(res.body).node).toBe("primary");
      }
      return out;
    };
    const local = await timeWrites(`http://${primary.host.ip}:${PROXY_PORT}`);
    const forwarded: number[][] = [];
    for (const r of replicas) forwarded.push(await timeWrites(`http://${r.host.ip}:${PROXY_PORT}`));

    await cluster.waitForConvergence(DB, 60_000);
    await cluster.waitForConvergence("app.db", 60_000);
    const verdict = await checkHistory(primary.node, cluster.replicas, DB, [client]);
    expect(verdict.lost).toEqual([]);
    for (const [i, rtt] of rtts.entries()) {
      const tally = new ScenarioTally(`three regions: ${rtt} ms RTT replica`);
      tally.iterations = lags[i].length;
      tally.acked = verdict.acked;
      const lagP50 = percentile(lags[i], 50);
      const fwdP50 = percentile(forwarded[i], 50);
      await tally.report(
        `replication lag p50 ${ms(lagP50)} / p99 ${ms(percentile(lags[i], 99))} over ${lags[i].length} commits; ` +
          `forwarded write p50 ${ms(fwdP50)} / p99 ${ms(percentile(forwarded[i], 99))} (${WRITES} writes; on the primary's proxy p50 ${ms(percentile(local, 50))})`,
      );
      // The round trip is in there: a write forwarded across the region costs at least one RTT.
      expect(lags[i].length).toBeGreaterThan(100);
      expect(fwdP50).toBeGreaterThanOrEqual(rtt);
      expect(lagP50).toBeGreaterThanOrEqual(rtt / 2);
    }
    const p50s = forwarded.map((f) => percentile(f, 50));
    expect(p50s[0]).toBeLessThan(p50s[2]);
  });
});
