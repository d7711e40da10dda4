import { spawn, type ChildProcess } from "node:child_process";
import * as fsp from "node:fs/promises";
import * as net from "node:net";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Position } from "../../src/ltx/index.js";
import { Cluster } from "../support/cluster.js";
import { primaryAndCandidate, type Cleanups } from "../support/consul-nodes.js";
import { EventStreamReader, type StreamEvent } from "../support/event-stream.js";
import { CLI, LitefsNode, ROOT, freePort, waitFor, withTimeout } from "../support/node-process.js";
import { apiUrl, info, post, waitForPrimary } from "../support/roles.js";
import { run, sqlite3 } from "../support/sqlite-clients.js";

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

/** A process whose output is collected as it comes. */
function started(cmd: string, args: string[]): { proc: ChildProcess; out: () => string; err: () => string; exit: Promise<number | null> } {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (err += d));
  const exit = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  return { proc, out: () => out, err: () => err, exit };
}

/** A client of GET /events that reads the response headers and then nothing more. */
function stalledSubscriber(port: number): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write("GET /events HTTP/1.1\r\nHost: litefs\r\n\r\n"));
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    socket.once("error", reject);
    socket.once("data", () => {
      socket.pause();
      socket.removeListener("error", reject);
      socket.on("error", () => undefined); // a reset when the node cuts it off
      resolve({ socket, closed });
    });
  });
}

describe("a subscriber that stops reading", () => {
  it("is disconnected, the other subscribers get every event, and the node commits at the same rate meanwhile", async () => {
    // skip-sync: the commit rate is bound by FUSE round trips, not by this machine's disk.
    const node = await LitefsNode.create("events-stall", { httpPort: await freePort(), hostname: "solo", extraYaml: "skip-sync: true" });
    cleanups.push(() => node.cleanup());
    await node.start();
    // A long name makes every tx event about 400 bytes: fewer commits fill the stalled subscriber's buffers.
    const name = `${"s".repeat(190)}.db`;
    const reader = new EventStreamReader(apiUrl(node));
    cleanups.push(() => reader.close());
    await reader.waitFor((e) => e.type === "init", "init");

    const writer = started(process.execPath, [path.join(ROOT, "test/support/programs/writer.mjs"), node.db(name), "wal", "1", "1000000000", "5000", "16"]);
    cleanups.push(async () => {
      writer.proc.kill("SIGKILL");
      await writer.exit;
    });
    const commits = () => writer.out().split("\n").length - 1;
    const measure = async (until: () => Promise<boolean> | boolean, what: string) => {
      const [c0, t0] = [commits(), performance.now()];
      await waitFor(async () => writer.proc.exitCode !== null || (await until()), 60_000, what);
      expect(writer.proc.exitCode, `the writer stopped: ${writer.err()}`).toBeNull();
      return { commits: commits() - c0, ms: performance.now() - t0 };
    };
    await measure(() => commits() >= 200, "the writer to warm up");

    // Window 1: no stalled subscriber.
    const free = await measure(() => commits() >= 200 + 1500, "1500 commits");
    // Window 2: from the moment a subscriber stops reading until the node has disconnected it.
    const disconnectsBefore = node.logs.split("event stream subscriber is not reading").length;
    const stalled = await stalledSubscriber(node.config.httpPort!);
    const withStall = await measure(() => node.logs.split("event stream subscriber is not reading").length > disconnectsBefore, "the stalled subscriber to be disconnected");
    // Its connection is gone: once it reads again it finds the end of the stream.
    stalled.socket.resume();
    await withTimeout(stalled.closed, 10_000, "the stalled subscriber's connection to close");
    writer.proc.kill("SIGTERM");
    await writer.exit;

    // It took thousands of events to fill its buffers: the node kept committing all along, at its rate.
    expect(withStall.commits).toBeGreaterThan(1000);
    const rate = (w: { commits: number; ms: number }) => w.commits / w.ms;
    expect(rate(withStall), `commits/s without ${(rate(free) * 1000).toFixed(0)}, with a stalled subscriber ${(rate(withStall) * 1000).toFixed(0)}`).toBeGreaterThan(rate(free) * 0.3);

    // The subscriber that kept reading has every commit, in order, without a gap.
    const last = Position.parse(await node.pos(name)).txid;
    await reader.waitFor((e) => e.type === "tx" && e.data.txID === hex(last), `TXID ${last}`);
    expect(txids(reader.events, name)).toEqual(Array.from({ length: last }, (_, i) => hex(i + 1)));
    expect(node.logs.split("event stream subscriber is not reading").length).toBe(disconnectsBefore + 1);
  });
});

describe("litefs events", () => {
  it("prints the node's events as JSON lines, exits 0 on Ctrl-C and 1 when the node is unreachable or goes away", async () => {
    const node = await LitefsNode.create("events-cli", { httpPort: await freePort(), hostname: "solo", token: "events-secret" });
    cleanups.push(() => node.cleanup());
    await node.start();

    // -config: the node's address and token from its litefs.yml.
    const follow = started(process.execPath, [CLI, "events", "-config", node.configPath]);
    cleanups.push(async () => {
      follow.proc.kill("SIGKILL");
      await follow.exit;
    });
    const lines = () => follow.out().split("\n").filter(Boolean).map((l) => JSON.parse(l) as StreamEvent);
    await waitFor(() => lines().length > 0 || follow.proc.exitCode !== null, 20_000, `the init event (stderr: ${follow.err()})`);
    expect(lines()[0]).toEqual({ type: "init", data: { isPrimary: true, hostname: "solo" } });
    await sqlite3(node.db("cli.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    await waitFor(() => lines().some((e) => e.type === "tx" && e.data.txID === hex(2)), 20_000, "two tx events");
    expect(txids(lines(), "cli.db")).toEqual([hex(1), hex(2)]);
    follow.proc.kill("SIGINT");
    expect(await withTimeout(follow.exit, 10_000, "litefs events to exit on SIGINT")).toBe(0);

    // Nothing listens on this port.
    const nowhere = await run(process.execPath, [CLI, "events", "-url", `http://127.0.0.1:${await freePort()}`], { timeoutMs: 20_000 });
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toMatch(/cannot reach the litefs node at http:\/\/127\.0\.0\.1:\d+/);
    // The wrong token: refused, named.
    const refused = await run(process.execPath, [CLI, "events", "-url", apiUrl(node)], { timeoutMs: 20_000 });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/GET \/events failed \(401\)/);

    // The node stops while followed.
    const orphan = started(process.execPath, [CLI, "events", "-config", node.configPath]);
    cleanups.push(async () => {
      orphan.proc.kill("SIGKILL");
      await orphan.exit;
    });
    await waitFor(() => orphan.out().includes('"init"'), 20_000, "the init event");
    await node.stop();
    expect(await withTimeout(orphan.exit, 20_000, "litefs events to exit when the node stops")).toBe(1);
    expect(orphan.err()).toMatch(/event stream of the litefs node at http:\/\/127\.0\.0\.1:\d+|ended the event stream/);
    // Before its connection closed, the node said it stepped down.
    const seen = orphan.out().split("\n").filter(Boolean).map((l) => JSON.parse(l) as StreamEvent);
    expect(seen.at(-1)).toEqual({ type: "primaryChange", data: { isPrimary: false } });
  });
});
