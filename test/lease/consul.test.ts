import { afterEach, describe, expect, it } from "vitest";
import { parseConsulUrl } from "../../src/lease/consul-api.js";
import { ConsulLeaser, type ConsulLeaserOptions } from "../../src/lease/consul.js";
import { LeaseError } from "../../src/lease/errors.js";
import type { HandoffRequest, Lease } from "../../src/lease/leaser.js";
import { startConsulDouble, type ConsulDouble, type ConsulDoubleOptions } from "../support/consul-double.js";

let double: ConsulDouble | undefined;
const leasers: ConsulLeaser[] = [];

afterEach(async () => {
  await double?.resume();
  await Promise.all(leasers.splice(0).map((l) => l.close()));
  await double?.close();
  double = undefined;
});

async function start(options: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  // Short TTLs keep the tests quick; Consul itself would refuse anything under 10s.
  double = await startConsulDouble({ sessionTtlMinMs: 100, ...options });
  return double;
}

function node(name: string, options: Partial<ConsulLeaserOptions> = {}): ConsulLeaser {
  const leaser = new ConsulLeaser({
    url: double!.url,
    key: "litefs",
    hostname: name,
    advertiseUrl: `http://${name}:20202`,
    ...options,
  });
  leasers.push(leaser);
  return leaser;
}

/** A node with a short TTL, allowed only because the double is configured to accept it. */
function fastNode(name: string, ttlMs: number, options: Partial<ConsulLeaserOptions> = {}): ConsulLeaser {
  return node(name, { ttlMs, allowShortTtlForTests: true, requestTimeoutMs: 1_000, ...options });
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(LeaseError);
    return (err as LeaseError).code;
  }
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function lostAtOnDoubleClock(lease: Lease): Promise<number> {
  return new Promise((resolve) => lease.onLost(() => resolve(double!.now())));
}

async function putRaw(key: string, value: string): Promise<void> {
  const res = await fetch(`${double!.url}/v1/kv/${key}`, { method: "PUT", body: value });
  expect(res.status).toBe(200);
}

describe("consul leaser: acquire", () => {
  it("holds the key with a delete-behavior session and this node's JSON value", async () => {
    await start();
    const lease = await node("node-a").acquire();
    const entry = double!.entry("litefs")!;
    expect(JSON.parse(entry.value.toString())).toEqual({ hostname: "node-a", "advertise-url": "http://node-a:20202" });
    expect(entry.session).toBe(lease.id);
    expect(double!.session(lease.id)).toMatchObject({
      name: "litefs",
      behavior: "delete",
      ttl: "10s",
      lockDelayMs: 1000,
      checks: [],
    });
    expect(lease.ttlMs).toBe(10_000);
    expect(await node("node-b").primaryInfo()).toEqual({ hostname: "node-a", advertiseUrl: "http://node-a:20202" });
  });

  it("publishes the node's proxy URL beside its API URL, and readers learn it", async () => {
    await start();
    await node("node-a", { proxyUrl: "http://node-a:8080" }).acquire();
    expect(JSON.parse(double!.entry("litefs")!.value.toString())).toEqual({
      hostname: "node-a",
      "advertise-url": "http://node-a:20202",
      "proxy-url": "http://node-a:8080",
    });
    expect(await node("node-b").primaryInfo()).toEqual({ hostname: "node-a", advertiseUrl: "http://node-a:20202", proxyUrl: "http://node-a:8080" });
  });

  it("refuses a second node while the lease is held, and leaves no session of its own behind", async () => {
    await start();
    const lease = await node("node-a").acquire();
    expect(await codeOf(node("node-b").acquire())).toBe("LEASE_PRIMARY_EXISTS");
    expect(double!.sessionIds()).toEqual([lease.id]);
  });

  it("refuses to acquire on a non-candidate", async () => {
    await start();
    const leaser = node("node-a", { candidate: false });
    expect(await codeOf(leaser.acquire())).toBe("LEASE_NOT_CANDIDATE");
    expect(await codeOf(leaser.acquireExisting("x"))).toBe("LEASE_NOT_CANDIDATE");
    expect(double!.sessionIds()).toEqual([]);
  });

  it("reports no primary when the key is missing, empty, or not locked by anyone", async () => {
    await start();
    const reader = node("node-b");
    expect(await reader.primaryInfo()).toBeNull();
    await putRaw("litefs", "");
    expect(await reader.primaryInfo()).toBeNull();
    await putRaw("litefs", JSON.stringify({ hostname: "ghost", "advertise-url": "http://ghost:20202" }));
    expect(await reader.primaryInfo()).toBeNull();
  });

  it("names the key when its value is not the primary's JSON", async () => {
    await start();
    const reader = node("node-b");
    await putRaw("litefs", "not json");
    const err = await reader.primaryInfo().catch((e: LeaseError) => e);
    expect(err).toBeInstanceOf(LeaseError);
    expect((err as LeaseError).code).toBe("LEASE_BAD_VALUE");
    expect((err as LeaseError).key).toBe("litefs");
    expect((err as LeaseError).message).toContain('"litefs"');
    await putRaw("litefs", JSON.stringify({ hostname: "node-a" }));
    await expect(reader.primaryInfo()).rejects.toThrow(/"advertise-url"/);
    await putRaw("litefs", "[1,2]");
    expect(await codeOf(reader.primaryInfo())).toBe("LEASE_BAD_VALUE");
    await putRaw("litefs", JSON.stringify({ hostname: "node-a", "advertise-url": "http://node-a:20202", "proxy-url": 8080 }));
    await expect(reader.primaryInfo()).rejects.toThrow(/"proxy-url" is not a URL/);
  });

  it("gives up an acquire when its signal aborts", async () => {
    await start();
    await double!.pause("hang");
    const ac = new AbortController();
    const pending = node("node-a").acquire(ac.signal);
    setTimeout(() => ac.abort(new Error("shutting down")), 50);
    await expect(pending).rejects.toThrow("shutting down");
  });
});

describe("consul leaser: keeping and losing the lease", () => {
  it("renewals keep the lease well past its TTL", async () => {
    await start();
    const lease = await fastNode("node-a", 1_500).acquire();
    const firstRenewedAt = lease.renewedAt;
    const until = Date.now() + 4_500; // three TTLs
    await waitFor(() => Date.now() > until || lease.signal.aborted, "three TTLs");
    expect(lease.signal.aborted).toBe(false);
    expect(lease.renewedAt).toBeGreaterThan(firstRenewedAt);
    expect(double!.session(lease.id)).toBeDefined();
    expect(double!.entry("litefs")!.session).toBe(lease.id);
  });

  it("rides out a Consul outage shorter than the TTL", async () => {
    await start();
    const lease = await fastNode("node-a", 3_000).acquire();
    const lost: LeaseError[] = [];
    lease.onLost((e) => lost.push(e));
    await double!.pause("refuse");
    // Past the first renewal (at 1.5s), well before the lease would be given up (2.7s).
    await new Promise((r) => setTimeout(r, 1_800));
    await double!.resume();
    const before = lease.renewedAt;
    await waitFor(() => lease.renewedAt > before || lease.signal.aborted, "a renewal after the outage");
    expect(lost).toEqual([]);
    expect(lease.signal.aborted).toBe(false);
  });

  it.each(["hang", "refuse"] as const)(
    "declares the lease lost before Consul expires the session (Consul %s)",
    async (mode) => {
      await start();
      // Lock-delay 0: the session's expiry is the very moment another node could acquire.
      const lease = await fastNode("node-a", 3_000, { lockDelayMs: 0 }).acquire();
      const lostAt = lostAtOnDoubleClock(lease);
      await double!.pause(mode);
      const expired = await double!.waitForEvent((e) => e.type === "session-invalidated" && e.session === lease.id);
      expect(await lostAt).toBeLessThan(expired.at);
      expect((lease.signal.reason as LeaseError).code).toBe("LEASE_EXPIRED");
    },
  );

  it("frees the key of an expired holder only after lock-delay", async () => {
    await start();
    const a = await fastNode("node-a", 1_000, { lockDelayMs: 2_000 }).acquire();
    const aLost = lostAtOnDoubleClock(a);
    await double!.pause("hang"); // node-a's renewals never arrive
    const expired = await double!.waitForEvent((e) => e.type === "session-invalidated" && e.session === a.id);
    expect(expired).toMatchObject({ reason: "ttl", keys: ["litefs"] });
    await double!.resume();
    expect(await aLost).toBeLessThan(expired.at);

    const b = fastNode("node-b", 1_000, { lockDelayMs: 2_000 });
    expect(await b.primaryInfo()).toBeNull(); // behavior delete removed the key
    let lease: Lease | undefined;
    while (!lease) {
      try {
        lease = await b.acquire();
      } catch (err) {
        expect((err as LeaseError).code).toBe("LEASE_PRIMARY_EXISTS");
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const attempts = double!.events.filter((e) => e.type === "acquire" && e.key === "litefs" && e.at > expired.at);
    const until = expired.at + 2_000;
    expect(attempts.length).toBeGreaterThan(1);
    for (const attempt of attempts) {
      if (attempt.type !== "acquire") continue;
      if (attempt.at < until) expect(attempt).toMatchObject({ acquired: false, refusal: "lock-delay" });
    }
    expect(attempts.at(-1)).toMatchObject({ acquired: true, session: lease.id });
    expect(attempts.at(-1)!.at).toBeGreaterThanOrEqual(until);
  });

  it("loses the lease at its next renewal once Consul no longer knows the session", async () => {
    await start();
    const lease = await fastNode("node-a", 1_000).acquire();
    const lost = new Promise<LeaseError>((resolve) => lease.onLost(resolve));
    await fetch(`${double!.url}/v1/session/destroy/${lease.id}`, { method: "PUT" });
    expect((await lost).code).toBe("LEASE_EXPIRED");
    expect(lease.signal.aborted).toBe(true);
    expect(await codeOf(lease.renew())).toBe("LEASE_EXPIRED");
  });

  it("a process paused past its TTL finds the lease gone by the clock, before the timer that would say so runs", async () => {
    await start();
    const lease = await fastNode("node-a", 1_000).acquire();
    expect(lease.held()).toBe(true);
    // Blocks the event loop as SIGSTOP would: no timer runs meanwhile, the monotonic clock does.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_100);
    expect(lease.signal.aborted).toBe(false);
    // What the node asks on every FUSE write after it resumes.
    expect(lease.held()).toBe(false);
    expect(lease.signal.aborted).toBe(true);
    expect((lease.signal.reason as LeaseError).code).toBe("LEASE_EXPIRED");
    expect((lease.signal.reason as LeaseError).message).toMatch(/late \(was this process paused\?\)/);
  });

  it("release on close lets another node acquire at once, despite a long lock-delay", async () => {
    await start();
    const a = node("node-a", { lockDelayMs: 60_000 });
    const lease = await a.acquire();
    const lost: LeaseError[] = [];
    lease.onLost((e) => lost.push(e));
    await lease.close();
    expect((lease.signal.reason as LeaseError).code).toBe("LEASE_CLOSED");
    expect(lost).toEqual([]);
    expect(double!.session(lease.id)).toBeUndefined();
    expect(await a.primaryInfo()).toBeNull();
    const b = await node("node-b").acquire();
    expect(JSON.parse(double!.entry("litefs")!.value.toString()).hostname).toBe("node-b");
    expect(double!.entry("litefs")!.session).toBe(b.id);
  });

  it("closing the leaser releases its open lease", async () => {
    await start();
    const a = node("node-a");
    const lease = await a.acquire();
    await a.close();
    expect(lease.signal.aborted).toBe(true);
    expect(double!.sessionIds()).toEqual([]);
    expect(await codeOf(a.acquire())).toBe("LEASE_CLOSED");
    await node("node-b").acquire();
  });

  it("fails with LEASE_CONSUL_UNREACHABLE when Consul refuses or never answers", async () => {
    await start();
    await double!.pause("refuse");
    expect(await codeOf(fastNode("node-a", 1_000).acquire())).toBe("LEASE_CONSUL_UNREACHABLE");
    await double!.resume();
    await double!.pause("hang");
    expect(await codeOf(fastNode("node-b", 1_000, { requestTimeoutMs: 200 }).primaryInfo())).toBe(
      "LEASE_CONSUL_UNREACHABLE",
    );
  });
});

describe("consul leaser: handoff", () => {
  it("hands the lease to another node, which takes over the same session without waiting", async () => {
    await start();
    const a = fastNode("node-a", 1_500, { lockDelayMs: 60_000 });
    const b = fastNode("node-b", 1_500, { lockDelayMs: 60_000 });
    const leaseA = await a.acquire();
    const delivered: HandoffRequest[] = [];
    let leaseB: Lease | null = null;
    // The target takes over as soon as the handoff reaches it; the old holder waits for that.
    leaseA.onHandoff((req) => {
      delivered.push(req);
      void b.acquireExisting(req.leaseId).then((l) => (leaseB = l));
    });
    await leaseA.handoff("node-b-id");
    expect(delivered).toEqual([{ nodeId: "node-b-id", leaseId: expect.stringMatching(new RegExp(`^${leaseA.id}@\\d+$`)) }]);
    expect((leaseA.signal.reason as LeaseError).code).toBe("LEASE_HANDED_OFF");
    await waitFor(() => leaseB !== null, "node-b's lease");
    expect(leaseB!.id).toBe(leaseA.id);
    expect(await a.primaryInfo()).toEqual({ hostname: "node-b", advertiseUrl: "http://node-b:20202" });

    // The old holder closing must not release what now belongs to node-b.
    await leaseA.close();
    expect(double!.entry("litefs")!.session).toBe(leaseB!.id);
    // node-b keeps it alive on its own.
    const until = Date.now() + 3_000;
    await waitFor(() => Date.now() > until || leaseB!.signal.aborted, "two TTLs");
    expect(leaseB!.signal.aborted).toBe(false);
    expect(double!.session(leaseB!.id)).toBeDefined();

    await leaseB!.close();
    expect(await a.primaryInfo()).toBeNull();
  });

  it("a handoff the target never acts on is undone: the old holder takes the lease back, and the target can no longer take it", async () => {
    await start();
    const a = fastNode("node-a", 1_500, { lockDelayMs: 60_000 });
    const b = fastNode("node-b", 1_500, { lockDelayMs: 60_000 });
    const leaseA = await a.acquire();
    const delivered: HandoffRequest[] = [];
    // Sent, but lost on the way (the stream was cut after the frame left).
    leaseA.onHandoff((req) => {
      delivered.push(req);
    });
    expect(await codeOf(leaseA.handoff("node-b-id"))).toBe("LEASE_HANDOFF_FAILED");
    expect(leaseA.signal.aborted).toBe(false);
    expect(await a.primaryInfo()).toEqual({ hostname: "node-a", advertiseUrl: "http://node-a:20202" });
    // The handoff arriving late changes nothing: the old holder kept the lease.
    expect(await codeOf(b.acquireExisting(delivered[0].leaseId))).toBe("LEASE_PRIMARY_EXISTS");
    expect(await a.primaryInfo()).toEqual({ hostname: "node-a", advertiseUrl: "http://node-a:20202" });
    // And it can hand off again, properly this time.
    leaseA.onHandoff((req) => void b.acquireExisting(req.leaseId));
    await leaseA.handoff("node-b-id");
    expect(await a.primaryInfo()).toEqual({ hostname: "node-b", advertiseUrl: "http://node-b:20202" });
  });

  it("stays primary when no handler can deliver the lease", async () => {
    await start();
    const lease = await node("node-a").acquire();
    expect(await codeOf(lease.handoff("node-b-id"))).toBe("LEASE_HANDOFF_FAILED");
    lease.onHandoff(() => {
      throw new Error("node-b-id is not connected");
    });
    const err = await lease.handoff("node-b-id").catch((e: LeaseError) => e);
    expect((err as LeaseError).code).toBe("LEASE_HANDOFF_FAILED");
    expect((err as LeaseError).message).toContain("not connected");
    expect(lease.signal.aborted).toBe(false);
    await lease.close();
    await node("node-c").acquire(); // a normal release: no lock-delay, no TTL wait
  });

  it("refuses to take over a session that no longer exists", async () => {
    await start();
    const lease = await node("node-a").acquire();
    await fetch(`${double!.url}/v1/session/destroy/${lease.id}`, { method: "PUT" });
    expect(await codeOf(node("node-b").acquireExisting(`${lease.id}@1`))).toBe("LEASE_EXPIRED");
    expect(await codeOf(node("node-b").acquireExisting(lease.id))).toBe("LEASE_BAD_VALUE");
  });
});

describe("consul leaser: cluster ID", () => {
  it("stores it at <key>/clusterid; the first writer wins", async () => {
    await start();
    const a = node("node-a");
    const b = node("node-b");
    expect(await a.clusterId()).toBeNull();
    const results = await Promise.allSettled([a.setClusterId("LFSC000000000000000A"), b.setClusterId("LFSC000000000000000B")]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const rejected = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect((rejected.reason as LeaseError).code).toBe("LEASE_CLUSTER_ID_CONFLICT");
    const winner = await a.clusterId();
    expect(await b.clusterId()).toBe(winner);
    expect(double!.entry("litefs/clusterid")!.value.toString()).toBe(winner);
    await b.setClusterId(winner!); // the same ID again is fine
  });
});

describe("consul leaser: URL and options", () => {
  it("reads the ACL token from the URL password and a key prefix from its path", async () => {
    await start({ token: "s3cret" });
    const url = `http://:s3cret@127.0.0.1:${double!.address.port}/apps/db/`;
    const a = node("node-a", { url });
    const lease = await a.acquire();
    expect(double!.entry("apps/db/litefs")!.session).toBe(lease.id);
    // LiteFS puts sessions on a catalog node under the prefix.
    expect(double!.session(lease.id)!.node).toBe("apps/db/litefs");
    await a.setClusterId("LFSC000000000000000A");
    expect(double!.entry("apps/db/litefs/clusterid")).toBeDefined();
    expect(await node("node-b", { url }).primaryInfo()).toMatchObject({ hostname: "node-a" });

    const port = double!.address.port;
    expect(await codeOf(node("node-c", { url: `http://:wrong@127.0.0.1:${port}/apps/db` }).primaryInfo())).toBe(
      "LEASE_CONSUL_DENIED",
    );
    expect(await codeOf(node("node-d", { url: `http://127.0.0.1:${port}` }).primaryInfo())).toBe("LEASE_CONSUL_DENIED");
  });

  it("parses lease.consul.url as LiteFS does", () => {
    expect(parseConsulUrl("http://:tok%2Fen@consul.internal:8500/prefix")).toEqual({
      secure: false,
      host: "consul.internal",
      port: 8500,
      token: "tok/en",
      keyPrefix: "prefix",
    });
    expect(parseConsulUrl("https://:t@consul-iad.fly-shared.net/my-app-123/")).toMatchObject({
      port: 443,
      token: "t",
      keyPrefix: "my-app-123/",
    });
    // Only the password is the token.
    expect(parseConsulUrl("http://user@[::1]:8500").token).toBeUndefined();
    expect(parseConsulUrl("http://user@[::1]:8500").host).toBe("::1");
    expect(() => parseConsulUrl("consul:8500")).toThrow(LeaseError);
    expect(() => parseConsulUrl("not a url")).toThrow(/lease\.consul\.url/);
    expect(() => parseConsulUrl("http://h:8500/%zz")).toThrow(/malformed path/);
  });

  it("refuses a TTL Consul would refuse, unless a test asks for it explicitly", async () => {
    await start();
    expect(() => node("node-a", { ttlMs: 5_000 })).toThrow(/between 10s and 24h/);
    expect(() => node("node-a", { ttlMs: 25 * 60 * 60 * 1000 })).toThrow(LeaseError);
    expect(() => node("node-a", { ttlMs: 5_000, allowShortTtlForTests: true })).not.toThrow();
    expect(() => node("node-a", { hostname: "" })).toThrow(/hostname/);
    expect(() => node("node-a", { key: "" })).toThrow(/key/);
  });
});
