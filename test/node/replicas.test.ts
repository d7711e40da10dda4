import { expect, test } from "vitest";
import { ConnectedReplicas } from "../../src/node/replicas.js";

const REPLICA = { nodeId: "00000000000000a1", hostname: "replica-1", candidate: true, url: null };

function replicasAt(clock: { now: number }) {
  return new ConnectedReplicas({ now: () => clock.now, disconnectedListingMs: 60_000 });
}

test("a connected replica is listed with the API URL its stream reported", () => {
  const replicas = replicasAt({ now: 1_000 });
  replicas.connect({ ...REPLICA, url: "http://10.0.0.2:20202" });
  expect(replicas.listing()).toEqual([{ ...REPLICA, url: "http://10.0.0.2:20202", connected: true, connectedAt: new Date(1_000).toISOString() }]);
});

test("a replica whose stream ended stays listed, disconnected, for a minute; handoff no longer sees it", () => {
  const clock = { now: 1_000 };
  const replicas = replicasAt(clock);
  const r = replicas.connect(REPLICA);
  clock.now = 5_000;
  replicas.disconnect(r);

  expect(replicas.listing()).toMatchObject([{ nodeId: REPLICA.nodeId, connected: false, disconnectedAt: new Date(5_000).toISOString(), url: null }]);
  expect(replicas.list()).toEqual([]);
  expect(replicas.find("replica-1")).toBeUndefined();
  expect(replicas.candidates()).toEqual([]);

  clock.now = 65_000;
  expect(replicas.listing()).toHaveLength(1);
  clock.now = 65_001;
  expect(replicas.listing()).toEqual([]);
});

test("a replica that reconnects is listed once, connected", () => {
  const clock = { now: 1_000 };
  const replicas = replicasAt(clock);
  replicas.disconnect(replicas.connect(REPLICA));
  clock.now = 2_000;
  const again = replicas.connect(REPLICA);
  expect(replicas.listing()).toMatchObject([{ nodeId: REPLICA.nodeId, connected: true, connectedAt: new Date(2_000).toISOString() }]);
  replicas.disconnect(again);
  replicas.disconnect(again);
  expect(replicas.listing()).toMatchObject([{ nodeId: REPLICA.nodeId, connected: false }]);
});

test("an old stream of a replica that already reconnected ends without marking it disconnected", () => {
  const replicas = replicasAt({ now: 1_000 });
  const first = replicas.connect(REPLICA);
  replicas.connect(REPLICA);
  replicas.disconnect(first);
  expect(replicas.listing()).toMatchObject([{ connected: true }]);
});

test("connected replicas come first, then the disconnected ones, most recent first", () => {
  const clock = { now: 1_000 };
  const replicas = replicasAt(clock);
  const a = replicas.connect({ ...REPLICA, nodeId: "00000000000000aa", hostname: "a" });
  const b = replicas.connect({ ...REPLICA, nodeId: "00000000000000bb", hostname: "b" });
  replicas.connect({ ...REPLICA, nodeId: "00000000000000cc", hostname: "c" });
  replicas.disconnect(a);
  clock.now = 2_000;
  replicas.disconnect(b);
  expect(replicas.listing().map((r) => `${r.hostname}:${r.connected}`)).toEqual(["c:true", "b:false", "a:false"]);
});

test("streams this node ends because it stops being primary are not listed as disconnected replicas", () => {
  const replicas = replicasAt({ now: 1_000 });
  const a = replicas.connect({ ...REPLICA, nodeId: "00000000000000aa", hostname: "a" });
  const b = replicas.connect({ ...REPLICA, nodeId: "00000000000000bb", hostname: "b" });
  replicas.disconnect(a);
  replicas.endAll("lease lost");
  replicas.disconnect(b);
  expect(replicas.listing()).toEqual([]);
});

test("a replica's lag runs from its connection until its stream has sent it everything, then from the oldest commit it is owed", () => {
  const replicas = replicasAt({ now: 1_000 });
  const r = replicas.connect(REPLICA);
  expect(r.lagMs(1_400)).toBe(400); // its first catch-up
  r.behindSince = null;
  expect(r.lagMs(5_000)).toBe(0);
  r.behindSince = 6_000;
  expect(r.lagMs(6_250)).toBe(250);
});
