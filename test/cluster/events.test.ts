import * as fsp from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { Position } from "../../src/ltx/index.js";
import { Cluster } from "../support/cluster.js";
import { primaryAndCandidate, type Cleanups } from "../support/consul-nodes.js";
import { EventStreamReader, type StreamEvent } from "../support/event-stream.js";
import { apiUrl, info, post, waitForPrimary } from "../support/roles.js";
import { sqlite3 } from "../support/sqlite-clients.js";

/**
 * The node's event stream, as GET /events shows it (LiteFS's shape): `init` first, then role
 * changes and every commit and applied file, in the order they happened.
 */

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

const txids = (events: StreamEvent[], db: string): string[] => events.filter((e) => e.type === "tx" && e.db === db).map((e) => e.data.txID!);
const hex = (n: number): string => n.toString(16).padStart(16, "0");

describe("the event stream", () => {
  it("shows a handoff's role changes and every commit and applied file with the right TXIDs, in order", async () => {
    const { a, b } = await primaryAndCandidate(cleanups);
    const name = "events.db";
    const eventsA = new EventStreamReader(apiUrl(a));
    const eventsB = new EventStreamReader(apiUrl(b));
    cleanups.push(() => eventsA.close(), () => eventsB.close());
    await eventsA.waitFor((e) => e.type === "init", "init on node-a");
    await eventsB.waitFor((e) => e.type === "init", "init on node-b");
    expect(eventsA.events[0]).toEqual({ type: "init", data: { isPrimary: true, hostname: "node-a" } });
    expect(eventsB.events[0].type).toBe("init");
    expect(eventsB.events[0].data.isPrimary).toBe(false);

    // Four local commits on the primary: four tx events there, four applied files on the replica.
    await sqlite3(a.db(name), "CREATE TABLE t (v);");
    for (let i = 1; i <= 3; i++) await sqlite3(a.db(name), `INSERT INTO t VALUES (${i});`);
    await new Cluster(a, [b]).waitForConvergence(name);
    const pos = Position.parse(await a.pos(name));
    expect(pos.txid).toBe(4);
    const first = [1, 2, 3, 4].map(hex);
    await eventsB.waitFor((e) => e.type === "tx" && e.data.txID === hex(4), "node-b applies TXID 4");
    expect(txids(eventsA.events, name)).toEqual(first);
    expect(txids(eventsB.events, name)).toEqual(first);
    for (const events of [eventsA.events, eventsB.events]) {
      const last = events.filter((e) => e.type === "tx" && e.db === name).at(-1)!;
      expect(last.data).toMatchObject({ txID: hex(4), postApplyChecksum: pos.postApplyChecksum.toString(16).padStart(16, "0"), pageSize: 4096 });
      expect(last.data.commit).toBeGreaterThan(0);
      expect(Date.parse(last.data.timestamp!)).toBeGreaterThan(Date.now() - 120_000);
    }

    // Handoff: node-a says it is no longer primary, node-b that it is; after the commits.
    const res = await post(a, "/handoff?id=node-b");
    expect(res.status, res.body).toBe(200);
    await waitForPrimary([b], 20_000);
    const demoted = await eventsA.waitFor((e) => e.type === "primaryChange" && e.data.isPrimary === false, "node-a demoted");
    const promoted = await eventsB.waitFor((e) => e.type === "primaryChange" && e.data.isPrimary === true, "node-b promoted");
    expect(promoted.data.hostname).toBe("node-b");
    const lastTx = (events: StreamEvent[]) => events.findLastIndex((e) => e.type === "tx" && e.data.txID === hex(4));
    expect(eventsA.events.indexOf(demoted)).toBeGreaterThan(lastTx(eventsA.events));
    expect(eventsB.events.indexOf(promoted)).toBeGreaterThan(lastTx(eventsB.events));
    // node-a learns who the new primary is once it streams from it.
    await eventsA.waitFor((e) => e.type === "primaryChange" && e.data.isPrimary === false && e.data.hostname === "node-b", "node-a follows node-b");
    expect(await info(a)).toMatchObject({ isPrimary: false, primary: "node-b", primaryUrl: apiUrl(b) });
    expect(await info(b)).toMatchObject({ isPrimary: true, primary: "node-b", primaryUrl: apiUrl(b) });

    // A commit on the new primary, then a drop (a tx with commit 0), seen on both nodes in order.
    await sqlite3(b.db(name), "INSERT INTO t VALUES (5);");
    await new Cluster(b, [a]).waitForConvergence(name);
    await fsp.unlink(b.db(name));
    for (const events of [eventsA, eventsB]) {
      const drop = await events.waitFor((e) => e.type === "tx" && e.db === name && e.data.commit === 0, "the drop");
      expect(drop.data.txID).toBe(hex(6));
      expect(txids(events.events, name)).toEqual([...first, hex(5), hex(6)]);
    }
  });
});
