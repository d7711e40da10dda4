import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { backupStatus, create, expectUnbrokenChain, litefs, txidOf, waitForBackup, writeLoad, type StoredObject } from "../support/backup.js";
import { ScenarioTally } from "../support/fault-report.js";
import { LitefsNode, freePort, makeTempDir, sleep, waitFor, withTimeout } from "../support/node-process.js";
import { scrape } from "../support/prometheus.js";
import { S3Proxy, type HoldAt } from "../support/s3-proxy.js";
import { S3Server } from "../support/s3-server.js";

/**
 * Backups under faults, against a real S3-compatible server (s3rver): kill -9 of the primary in
 * the middle of an upload (held by a proxy before S3 stored the object, or after it stored it but
 * before the answer came back), and S3 down for a full minute under a write load. Local retention
 * is 5 s, so a file removed before it was shipped would break the chain.
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

const KILLS = Number(process.env.LITEFS_BACKUP_KILLS ?? 6);
const OUTAGE_MS = Number(process.env.LITEFS_S3_OUTAGE_MS ?? 60_000);

async function s3Primary(label: string, backupYaml: string): Promise<LitefsNode> {
  const node = await LitefsNode.create(label, {
    candidate: true,
    httpPort: await freePort(),
    hostname: label,
    retention: "5s",
    retentionMonitorInterval: "1s",
    extraYaml: backupYaml,
  });
  cleanups.push(() => node.cleanup());
  await node.start();
  return node;
}

/** The restored state at `txid` (by the CLI, from the node's backup config): its position. */
async function restoredAt(node: LitefsNode, db: string, txid?: number): Promise<string> {
  const dir = await makeTempDir("restore");
  try {
    const out = path.join(dir, "out.db");
    const r = await litefs(["restore", "-name", db, "-config", node.configPath, ...(txid === undefined ? [] : ["-txid", String(txid)]), "-o", out]);
    if (r.code !== 0) throw new Error(`litefs restore -txid ${txid}: ${r.stderr}`);
    return /at position ([0-9a-f]{16}\/[0-9a-f]{16})/.exec(r.stdout)?.[1] ?? "";
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** Positions the backup restores differently from what the node had (at most `sample` of them, plus `always`): lost transactions. */
async function restoreMismatches(node: LitefsNode, db: string, positions: string[], sample: number, always: number[] = []): Promise<string[]> {
  const byTxid = new Map(positions.map((p) => [txidOf(p), p]));
  const picks = new Set([...always.filter((t) => byTxid.has(t)), ...[...byTxid.keys()].sort(() => Math.random() - 0.5).slice(0, sample)]);
  const wrong: string[] = [];
  for (const txid of picks) {
    const got = await restoredAt(node, db, txid);
    if (got !== byTxid.get(txid)) wrong.push(`TXID ${txid}: restored ${got}, committed ${byTxid.get(txid)}`);
  }
  return wrong;
}

/** Every TXID of level 0 is in exactly one object (no gap, no duplicate), and every object verifies. */
async function expectWholeChain(objects: StoredObject[], upTo: number): Promise<void> {
  expectUnbrokenChain(objects, 0, upTo);
  const l0 = objects.filter((o) => o.level === 0);
  expect(new Set(l0.map((o) => o.minTxid)).size, "level-0 objects starting at the same TXID").toBe(l0.length);
  const verify = await litefs(["ltx", "verify", ...objects.map((o) => o.path)]);
  expect(verify.code, verify.stderr).toBe(0);
}

describe("backups under faults (s3rver)", () => {
  it(`kill -9 of the primary in the middle of an upload: after each restart the chain continues with no gap and no duplicate (${KILLS} kills)`, async () => {
    const tally = new ScenarioTally("kill -9 primary mid-upload (s3)");
    const s3 = await S3Server.start();
    cleanups.push(() => s3.close());
    const proxy = await S3Proxy.start(s3);
    cleanups.push(() => proxy.close());
    const prefix = "midupload";
    const node = await s3Primary("bk-midupload", s3.backupYaml(prefix, { interval: "200ms", levels: "[2s, 4s]" }, proxy.endpoint));
    const db = "mid.db";
    await create(node, db);
    // The chain has started (TXID 1 shipped): each restart then has a chain to continue.
    await waitForBackup(node, db);
    const positions: string[] = [];
    const heldTxids: number[] = [];
    for (let i = 0; i < KILLS; i++) {
      const at: HoldAt = i % 2 === 0 ? "request" : "response";
      const load = writeLoad(node, db);
      const held = proxy.holdNextPut(at, /\/ltx\/0\//);
      const key = await withTimeout(held, 60_000, `an upload of a level-0 object to hold (${at})`).catch(async (err: Error) => {
        await load.stop();
        throw new Error(`${err.message}\n${node.logs.slice(-3000)}`);
      });
      // Stopped before the kill: an insert into the bare mount dir would create a stray file there.
      await load.stop();
      positions.push(...load.positions);
      const txid = Number.parseInt(/(\w{16})-\w{16}\.ltx/.exec(key)![1], 16);
      heldTxids.push(txid);
      const killedAt = performance.now();
      await node.kill9();
      tally.faults++;
      await node.start();
      const pos = await waitForBackup(node, db, 60_000);
      tally.recovered(performance.now() - killedAt);
      const logs = node.logs; // of the restarted process only
      expect(logs, "the restarted primary continues the backup's chain").toContain("continuing the chain");
      expect(logs).not.toMatch(/chain break|gap:/);
      const objects = await s3.objects(prefix, db);
      await expectWholeChain(objects, txidOf(pos));
      // The object whose upload was cut off is there exactly once, whichever side of S3 the cut was.
      expect(objects.filter((o) => o.level === 0 && o.minTxid === txid).length, `level-0 object of TXID ${txid} (${at})`).toBe(1);
      tally.iterations++;
    }
    const newest = await node.pos(db);
    expect(await restoredAt(node, db)).toBe(newest);
    const wrong = await restoreMismatches(node, db, positions, 6, heldTxids.flatMap((t) => [t - 1, t]));
    tally.acked = positions.length;
    tally.lost = wrong.length;
    await tally.report(`uploads held before S3 stored them: ${Math.ceil(KILLS / 2)}, after: ${Math.floor(KILLS / 2)}; ${txidOf(newest)} transactions backed up`);
    expect(wrong).toEqual([]);
  });

  it(`S3 down for ${OUTAGE_MS / 1000} s under load: lag and the failure show meanwhile, then the backlog ships with nothing lost or duplicated`, async () => {
    const tally = new ScenarioTally(`S3 down ${OUTAGE_MS / 1000} s`);
    const s3 = await S3Server.start();
    cleanups.push(() => s3.close());
    const prefix = "outage";
    const node = await s3Primary("bk-outage60", s3.backupYaml(prefix, { interval: "200ms", levels: "[5s, 15s]" }));
    const db = "outage.db";
    await create(node, db);
    const before = await waitForBackup(node, db);
    await s3.pause();
    tally.faults++;
    const downAt = performance.now();
    const load = writeLoad(node, db);
    let maxLagMs = 0;
    let checks = 0;
    try {
      await waitFor(async () => ((await backupStatus(node, db))?.error ?? null) !== null, 30_000, "the backup failure to show while S3 is down");
      // The outage lasts OUTAGE_MS; meanwhile, every second, the lag grows and the failure shows.
      while (performance.now() - downAt < OUTAGE_MS) {
        const st = await backupStatus(node, db);
        const metrics = await scrape(node);
        expect(st?.position, "the backup position while S3 is down").toBe(before);
        expect(st?.error).not.toBeNull();
        expect(metrics.value("litefs_backup_failing", { db })).toBe(1);
        expect(st!.lagMs, "the lag never goes back while nothing ships").toBeGreaterThanOrEqual(maxLagMs);
        maxLagMs = st!.lagMs;
        checks++;
        await sleep(1000); // the pace of the checks, not a synchronisation
      }
      expect(maxLagMs, "lag at the end of the outage").toBeGreaterThan(OUTAGE_MS * 0.7);
      expect((await scrape(node)).value("litefs_backup_lag_seconds", { db })).toBeGreaterThan((OUTAGE_MS * 0.7) / 1000);
    } finally {
      await s3.resume();
    }
    const resumedAt = performance.now();
    await load.stop();
    const after = await waitForBackup(node, db, 120_000);
    const shippedMs = performance.now() - resumedAt;
    tally.recovered(shippedMs);
    tally.iterations++;
    const st = await backupStatus(node, db);
    expect(st?.error).toBeNull();
    expect((await scrape(node)).value("litefs_backup_lag_seconds", { db })).toBe(0);
    expect((await scrape(node)).value("litefs_backup_failing", { db })).toBe(0);
    expect(node.logs).not.toMatch(/chain break|gap:/);
    const objects = await s3.objects(prefix, db);
    await expectWholeChain(objects, txidOf(after));
    expect(await restoredAt(node, db)).toBe(after);
    const positions = load.positions;
    const wrong = await restoreMismatches(node, db, positions, 8, [txidOf(before) + 1, txidOf(positions.at(-1)!)]);
    tally.acked = positions.length;
    tally.lost = wrong.length;
    await tally.report(
      `${positions.length} commits during the outage shipped ${Math.round(shippedMs)} ms after S3 came back; lag peaked at ${Math.round(maxLagMs / 1000)} s (${checks} checks)`,
    );
    expect(wrong).toEqual([]);
  });
});
