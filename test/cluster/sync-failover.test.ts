import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { consul, consulNode, type Cleanups } from "../support/consul-nodes.js";
import { ROOT, sleep, waitFor, type LitefsNode } from "../support/node-process.js";
import { info, isPrimary, waitForPrimary } from "../support/roles.js";
import { sqlite3 } from "../support/sqlite-clients.js";

const WRITER = path.join(ROOT, "test/support/programs/writer.mjs");
const cleanups: Cleanups = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

/** Kills per run; the fault suite runs more (LITEFS_SYNC_KILLS). */
const KILLS = Number(process.env.LITEFS_SYNC_KILLS ?? 4);
/** Each failover takes seconds (a kill, an election, a remount): the budget grows with them. */
const KILLS_TIMEOUT = { timeout: 120_000 + KILLS * 30_000 };

/**
 * A writer process (test/support/programs/writer.mjs: one INSERT per transaction, each id printed
 * once its commit returned) on whichever node is primary, a new one after each failover with ids
 * of its own; records every acknowledged id. Hundreds of commits a second: the asynchronous
 * window is wide enough to be seen.
 */
function writeLoad(nodes: LitefsNode[], name: string): { acked: number[]; errors: Map<string, string>; stop: () => Promise<void> } {
  const acked: number[] = [];
  const errors = new Map<string, string>();
  let stopped = false;
  let current: ChildProcess | null = null;
  const loop = (async () => {
    for (let generation = 1; !stopped; generation++) {
      let primary: LitefsNode | null = null;
      for (const n of nodes) if (await isPrimary(n)) primary = n;
      if (!primary) {
        await sleep(50);
        continue;
      }
      const child = spawn(process.execPath, [WRITER, primary.db(name), "wal", String(generation * 1_000_000), "1000000", "2000"], { stdio: ["ignore", "pipe", "pipe"] });
      current = child;
      let buffered = "";
      child.stdout!.on("data", (d: Buffer) => {
        buffered += d.toString();
        const lines = buffered.split("\n");
        buffered = lines.pop()!;
        for (const l of lines) if (/^\d+$/.test(l)) acked.push(Number(l));
      });
      const host = primary.config.hostname ?? "";
      child.stderr!.on("data", (d: Buffer) => errors.set(host, d.toString().trim().slice(0, 300)));
      await new Promise((resolve) => child.once("exit", resolve));
      current = null;
      await sleep(20);
    }
  })();
  return {
    acked,
    errors,
    stop: async () => {
      stopped = true;
      current?.kill("SIGTERM");
      await loop;
    },
  };
}

/**
 * Three candidates on a Consul lease; the primary is killed (kill -9) again and again under a
 * write load; after each failover the killed node comes back as a replica. Returns how many
 * acknowledged writes the final primary lacks.
 */
async function killPrimaries(syncReplicas: number): Promise<{ acked: number; lost: number[] }> {
  const double = await consul(cleanups);
  const extraYaml = syncReplicas > 0 ? `replication:\n  sync-replicas: ${syncReplicas}\n  sync-timeout: 30s\n` : "";
  const nodes: LitefsNode[] = [];
  for (const name of ["node-a", "node-b", "node-c"]) nodes.push(await consulNode(cleanups, double, name, { extraYaml }));
  await nodes[0].start();
  await waitForPrimary([nodes[0]]);
  for (const n of nodes.slice(1)) await n.start();
  const name = "ledger.db";
  await sqlite3(nodes[0].db(name), "PRAGMA journal_mode=wal; CREATE TABLE acked (id INTEGER PRIMARY KEY, pad BLOB);");

  const load = writeLoad(nodes, name);
  try {
    for (let i = 0; i < KILLS; i++) {
      const primary = await waitForPrimary(nodes, 30_000);
      // A random moment: some writes in, some in flight.
      const before = load.acked.length;
      const want = before + 5 + Math.floor(Math.random() * 20);
      await waitFor(() => load.acked.length >= want, 60_000, "writes on the primary").catch(async (err: Error) => {
        const roles = await Promise.all(nodes.map(async (n) => `${n.config.hostname}: ${n.proc ? ((await info(n).catch(() => null))?.role ?? "no answer") : "down"}`));
        throw new Error(
          `${err.message} (failover ${i}, primary ${primary.config.hostname}; ${roles.join(", ")}; last errors ${JSON.stringify([...load.errors])})\n${primary.logs.slice(-3000)}`,
        );
      });
      await primary.kill9();
      // The session runs out (TTL) and the lock-delay passes; an in-sync replica takes over.
      double.advance(11_000);
      double.advance(1_000);
      const next = await waitForPrimary(nodes.filter((n) => n !== primary && n.proc), 30_000);
      expect(next).not.toBe(primary);
      await primary.start();
    }
    const before = load.acked.length;
    await waitFor(() => load.acked.length > before + 5, 60_000, "writes after the last failover");
  } finally {
    await load.stop();
  }
  const primary = await waitForPrimary(nodes, 30_000);
  const have = new Set((await sqlite3(primary.db(name), "SELECT id FROM acked")).split("\n").filter(Boolean).map(Number));
  return { acked: load.acked.length, lost: load.acked.filter((id) => !have.has(id)) };
}

describe("synchronous replication across failovers (Consul lease)", () => {
  it(`sync-replicas 1: kill -9 of the primary ${KILLS} times under writes loses no acknowledged commit`, KILLS_TIMEOUT, async () => {
    const { acked, lost } = await killPrimaries(1);
    console.log(`sync: ${KILLS} failovers, ${acked} acknowledged writes, ${lost.length} lost`);
    expect(acked).toBeGreaterThan(KILLS * 5);
    expect(lost).toEqual([]);
  });

  it(`asynchronous (the default): the same ${KILLS} failovers, with the acknowledged commits lost reported`, KILLS_TIMEOUT, async () => {
    const { acked, lost } = await killPrimaries(0);
    console.log(`async: ${KILLS} failovers, ${acked} acknowledged writes, ${lost.length} lost`);
    expect(acked).toBeGreaterThan(KILLS * 5);
    // What is lost is at most the writes of the asynchronous window before each kill.
    expect(lost.length).toBeLessThan(acked);
  });

  it("a candidate outside the in-sync set does not take the lease while the set names another", async () => {
    const double = await consul(cleanups);
    const extraYaml = "replication:\n  sync-replicas: 1\n  sync-timeout: 30s\n";
    const a = await consulNode(cleanups, double, "node-a", { extraYaml });
    await a.start();
    await waitForPrimary([a]);
    const b = await consulNode(cleanups, double, "node-b", { extraYaml });
    await b.start();
    await sqlite3(a.db("s.db"), "PRAGMA journal_mode=wal; CREATE TABLE t (v);");
    await waitFor(async () => (await info(a)).sync?.members?.length === 1, 20_000, "node-b in the in-sync set");
    // node-c joins after: not in the set (it is full).
    const c = await consulNode(cleanups, double, "node-c", { extraYaml });
    await c.start();
    await sqlite3(a.db("s.db"), "INSERT INTO t VALUES (1);");
    expect((await info(a)).sync?.members).toEqual(["node-b"]);
    // node-b freezes (still in the set: its stream has not ended), then the primary dies.
    b.proc!.kill("SIGSTOP");
    try {
      await a.kill9();
      double.advance(12_000);
      double.advance(1_000);
      // node-c waits: node-b (in the set) may hold commits it lacks.
      await waitFor(() => c.logs.includes("not in the in-sync replica set"), 20_000, "node-c to refuse the lease");
      expect(await isPrimary(c)).toBe(false);
    } finally {
      b.proc!.kill("SIGCONT");
    }
    // node-b comes back and takes over.
    const next = await waitForPrimary([b, c], 30_000);
    expect(next).toBe(b);
    expect(await sqlite3(b.db("s.db"), "SELECT count(*) FROM t")).toBe("1");
  });
});
