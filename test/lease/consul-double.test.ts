import { afterEach, describe, expect, it } from "vitest";
import { startConsulDouble, type ConsulDouble, type ConsulDoubleOptions } from "../support/consul-double.js";

let double: ConsulDouble | undefined;

afterEach(async () => {
  await double?.close();
  double = undefined;
});

async function start(options: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  double = await startConsulDouble(options);
  return double;
}

interface Answer {
  status: number;
  text: string;
  headers: Headers;
  json(): any;
}

async function call(
  method: string,
  path: string,
  body?: string | object,
  init: { headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Answer> {
  const res = await fetch(`${double!.url}${path}`, {
    method,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    headers: init.headers,
    signal: init.signal,
  });
  const text = await res.text();
  return { status: res.status, text, headers: res.headers, json: () => JSON.parse(text) };
}

async function createSession(body: object = {}): Promise<string> {
  const res = await call("PUT", "/v1/session/create", body);
  expect(res.status, res.text).toBe(200);
  return res.json().ID as string;
}

async function put(key: string, value: string, query = ""): Promise<boolean> {
  const res = await call("PUT", `/v1/kv/${key}${query}`, value);
  expect(res.status, res.text).toBe(200);
  return res.json() as boolean;
}

async function getEntry(key: string): Promise<any> {
  const res = await call("GET", `/v1/kv/${key}`);
  if (res.status === 404) return undefined;
  expect(res.status, res.text).toBe(200);
  return res.json()[0];
}

describe("consul double: sessions", () => {
  it("creates a session with Consul's defaults and reports it through info", async () => {
    await start();
    const id = await createSession({ Name: "litefs" });
    const info = await call("GET", `/v1/session/info/${id}`);
    expect(info.status).toBe(200);
    const [s] = info.json();
    expect(s).toMatchObject({ ID: id, Name: "litefs", Behavior: "release", TTL: "", Node: "consul-double" });
    expect(s.LockDelay).toBe(15_000_000_000); // 15s, in nanoseconds
    expect(Number(info.headers.get("x-consul-index"))).toBeGreaterThan(0);
  });

  it("reads LockDelay as a duration string, nanoseconds, or small numbers as seconds", async () => {
    await start();
    const delays = [];
    for (const LockDelay of ["1s", "250ms", 2_000_000_000, 3]) {
      const id = await createSession({ LockDelay });
      delays.push(double!.session(id)!.lockDelayMs);
    }
    expect(delays).toEqual([1000, 250, 2000, 3000]);
  });

  it("refuses TTLs outside 10s..24h with a 500, as Consul's RPC layer answers", async () => {
    await start();
    for (const TTL of ["9s", "86401s", "soon"]) {
      const res = await call("PUT", "/v1/session/create", { TTL });
      expect(res.status, TTL).toBe(500);
      expect(res.text).toMatch(/Session TTL/);
    }
    expect((await call("PUT", "/v1/session/create", { TTL: "9s" })).text).toBe(
      "Invalid Session TTL '9000000000', must be between [10s=24h0m0s]",
    );
    expect((await call("PUT", "/v1/session/create", { TTL: "10s" })).status).toBe(200);
    expect((await call("PUT", "/v1/session/create", { TTL: "86400s" })).status).toBe(200);
  });

  it("refuses a bad Behavior and an undecodable body", async () => {
    await start();
    expect((await call("PUT", "/v1/session/create", { Behavior: "explode" })).text).toBe(
      "Invalid Behavior setting 'explode'",
    );
    const bad = await call("PUT", "/v1/session/create", "{not json");
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/^Request decode failed/);
  });

  it("answers renew of an unknown session with 404 and destroy with true", async () => {
    await start();
    const renew = await call("PUT", "/v1/session/renew/nope");
    expect(renew.status).toBe(404);
    expect(renew.text).toBe("Session id 'nope' not found");
    const id = await createSession();
    expect((await call("PUT", `/v1/session/renew/${id}`)).json()[0].ID).toBe(id);
    expect((await call("PUT", `/v1/session/destroy/${id}`)).json()).toBe(true);
    expect((await call("GET", `/v1/session/info/${id}`)).json()).toEqual([]);
    expect((await call("PUT", `/v1/session/renew/${id}`)).status).toBe(404);
  });

  it("expires a session exactly at its TTL, and a renew restarts the TTL", async () => {
    await start();
    const id = await createSession({ TTL: "10s" });
    double!.advance(6_000);
    expect((await call("PUT", `/v1/session/renew/${id}`)).status).toBe(200);
    double!.advance(9_900);
    expect(double!.session(id)).toBeDefined(); // 15.9s after create, 9.9s after renew
    double!.advance(200);
    expect(double!.session(id)).toBeUndefined();
    expect(double!.events).toContainEqual(expect.objectContaining({ type: "session-invalidated", session: id, reason: "ttl" }));
  });

  it("expires sessions by its own timer, without being asked", async () => {
    await start({ sessionTtlMinMs: 100 });
    // Before the request: the double creates the session at some moment after this one (taken
    // after the answer, under load the answer came later than the 10 ms slack this test had).
    const before = double!.now();
    const id = await createSession({ TTL: "150ms" });
    const ev = await double!.waitForEvent((e) => e.type === "session-invalidated" && e.session === id);
    expect(ev.at).toBeGreaterThanOrEqual(before + 150);
    expect((await call("GET", `/v1/session/info/${id}`)).json()).toEqual([]);
  });

  it("with ttlMultiplier 2 keeps a session up to twice its TTL, like Consul may", async () => {
    await start({ ttlMultiplier: 2 });
    const id = await createSession({ TTL: "10s" });
    double!.advance(19_000);
    expect(double!.session(id)).toBeDefined();
    double!.advance(1_100);
    expect(double!.session(id)).toBeUndefined();
  });

  it("puts sessions on a node: registered nodes need explicit (empty) checks", async () => {
    await start();
    expect((await call("PUT", "/v1/session/create", { Node: "app/litefs" })).text).toBe("Missing node registration");
    expect((await call("PUT", "/v1/catalog/register", { Node: "app/litefs", Address: "localhost" })).status).toBe(200);
    expect((await call("PUT", "/v1/session/create", { Node: "app/litefs" })).text).toBe(
      "Missing check 'serfHealth' registration",
    );
    const id = await createSession({ Node: "app/litefs", Checks: [] });
    expect(double!.session(id)!.node).toBe("app/litefs");
  });
});

describe("consul double: KV", () => {
  it("returns entries with base64 values and indexes, 404 when missing, raw with ?raw", async () => {
    await start();
    expect((await call("GET", "/v1/kv/app/config")).status).toBe(404);
    expect(await put("app/config", "hello", "?flags=42")).toBe(true);
    const res = await call("GET", "/v1/kv/app/config");
    const [e] = res.json();
    expect(e).toMatchObject({ Key: "app/config", Value: Buffer.from("hello").toString("base64"), Flags: 42, LockIndex: 0 });
    expect(e.Session).toBeUndefined();
    expect(e.CreateIndex).toBe(e.ModifyIndex);
    expect(res.headers.get("x-consul-index")).toBe(String(e.ModifyIndex));
    const raw = await call("GET", "/v1/kv/app/config?raw");
    expect(raw.text).toBe("hello");
    expect(raw.headers.get("content-type")).toBe("text/plain");

    await put("app/config", "again");
    const [e2] = (await call("GET", "/v1/kv/app/config")).json();
    expect(e2.CreateIndex).toBe(e.CreateIndex);
    expect(e2.ModifyIndex).toBeGreaterThan(e.ModifyIndex);
  });

  it("reports an empty value as null and lists a prefix with ?recurse and ?keys", async () => {
    await start();
    await put("p/a", "");
    await put("p/b/c", "x");
    await put("q", "y");
    expect((await getEntry("p/a")).Value).toBeNull();
    expect((await call("GET", "/v1/kv/p/?recurse")).json().map((e: any) => e.Key)).toEqual(["p/a", "p/b/c"]);
    expect((await call("GET", "/v1/kv/p/?keys&separator=/")).json()).toEqual(["p/a", "p/b/"]);
  });

  it("acquire: one session holds the lock; the holder may re-acquire; release hands it back", async () => {
    await start();
    const s1 = await createSession();
    const s2 = await createSession();
    expect(await put("lock", "one", `?acquire=${s1}`)).toBe(true);
    expect(await getEntry("lock")).toMatchObject({ Session: s1, LockIndex: 1 });
    expect(await put("lock", "two", `?acquire=${s2}`)).toBe(false);
    expect(await put("lock", "one again", `?acquire=${s1}`)).toBe(true);
    expect(await getEntry("lock")).toMatchObject({ Session: s1, LockIndex: 1 });
    expect(await put("lock", "", `?release=${s2}`)).toBe(false);
    expect(await put("lock", "", `?release=${s1}`)).toBe(true);
    const released = await getEntry("lock");
    expect(released.Session).toBeUndefined();
    expect(released.Value).toBeNull(); // release writes the body, here empty
    expect(await put("lock", "two", `?acquire=${s2}`)).toBe(true);
    expect(await getEntry("lock")).toMatchObject({ Session: s2, LockIndex: 2 });
  });

  it("acquire with an unknown session is an error, not false", async () => {
    await start();
    const res = await call("PUT", "/v1/kv/lock?acquire=ghost", "x");
    expect(res.status).toBe(500);
    expect(res.text).toBe('invalid session "ghost"');
  });

  it("a plain write keeps the lock holder; conflicting flags are refused", async () => {
    await start();
    const s1 = await createSession();
    await put("lock", "v", `?acquire=${s1}`);
    expect(await put("lock", "overwritten")).toBe(true);
    expect((await getEntry("lock")).Session).toBe(s1);
    expect((await call("PUT", `/v1/kv/lock?cas=0&acquire=${s1}`, "x")).status).toBe(400);
  });

  it("lock-delay: after the holder is invalidated nobody acquires until the delay passes", async () => {
    await start();
    const s1 = await createSession({ LockDelay: "5s" });
    const s2 = await createSession();
    await put("lock", "v", `?acquire=${s1}`);
    await call("PUT", `/v1/session/destroy/${s1}`);
    expect((await getEntry("lock")).Session).toBeUndefined(); // behavior release
    expect(await put("lock", "w", `?acquire=${s2}`)).toBe(false);
    expect(double!.events.at(-1)).toMatchObject({ type: "acquire", acquired: false, refusal: "lock-delay" });
    double!.advance(5_000);
    expect(await put("lock", "w", `?acquire=${s2}`)).toBe(true);
  });

  it("no lock-delay when the holder released the key before its session ended", async () => {
    await start();
    const s1 = await createSession({ LockDelay: "5s" });
    const s2 = await createSession();
    await put("lock", "v", `?acquire=${s1}`);
    await put("lock", "", `?release=${s1}`);
    await call("PUT", `/v1/session/destroy/${s1}`);
    expect(await put("lock", "w", `?acquire=${s2}`)).toBe(true);
  });

  it("behavior delete removes held keys when the session expires, lock-delay still applies", async () => {
    await start();
    const s1 = await createSession({ TTL: "10s", Behavior: "delete", LockDelay: "1s" });
    const s2 = await createSession();
    await put("lock", "v", `?acquire=${s1}`);
    await put("other", "kept");
    double!.advance(10_000);
    expect(await getEntry("lock")).toBeUndefined();
    expect(await getEntry("other")).toBeDefined();
    expect(double!.lockDelayUntil("lock")).toBeDefined();
    expect(await put("lock", "w", `?acquire=${s2}`)).toBe(false);
    double!.advance(1_000);
    expect(await put("lock", "w", `?acquire=${s2}`)).toBe(true);
  });

  it("cas: 0 writes only a missing key, otherwise the ModifyIndex must match", async () => {
    await start();
    expect(await put("k", "first", "?cas=0")).toBe(true);
    expect(await put("k", "second", "?cas=0")).toBe(false);
    const { ModifyIndex } = await getEntry("k");
    expect(await put("k", "third", `?cas=${ModifyIndex + 100}`)).toBe(false);
    expect(await put("k", "third", `?cas=${ModifyIndex}`)).toBe(true);
    expect(Buffer.from((await getEntry("k")).Value, "base64").toString()).toBe("third");
  });

  it("delete: cas must match (a missing key counts as deleted), recurse removes a prefix", async () => {
    await start();
    await put("d/1", "a");
    await put("d/2", "b");
    await put("e", "c");
    const { ModifyIndex } = await getEntry("d/1");
    expect((await call("DELETE", `/v1/kv/d/1?cas=${ModifyIndex + 1}`)).json()).toBe(false);
    expect((await call("DELETE", `/v1/kv/d/1?cas=${ModifyIndex}`)).json()).toBe(true);
    expect((await call("DELETE", "/v1/kv/d/1?cas=5")).json()).toBe(true);
    expect((await call("DELETE", "/v1/kv/d/?recurse")).json()).toBe(true);
    expect(await getEntry("d/2")).toBeUndefined();
    expect(await getEntry("e")).toBeDefined();
  });
});

describe("consul double: blocking queries", () => {
  it("holds a query at the current index until the key changes", async () => {
    await start();
    await put("watched", "v1");
    const first = await call("GET", "/v1/kv/watched");
    const index = Number(first.headers.get("x-consul-index"));
    let answered = false;
    const pending = call("GET", `/v1/kv/watched?index=${index}&wait=30s`).then((r) => {
      answered = true;
      return r;
    });
    await put("unrelated", "x");
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false);
    await put("watched", "v2");
    const res = await pending;
    expect(Number(res.headers.get("x-consul-index"))).toBeGreaterThan(index);
    expect(Buffer.from(res.json()[0].Value, "base64").toString()).toBe("v2");
  });

  it("answers an unchanged key when the wait elapses, with the same index", async () => {
    await start();
    await put("watched", "v1");
    const index = Number((await call("GET", "/v1/kv/watched")).headers.get("x-consul-index"));
    const started = Date.now();
    const res = await call("GET", `/v1/kv/watched?index=${index}&wait=200ms`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(res.status).toBe(200);
    expect(Number(res.headers.get("x-consul-index"))).toBe(index);
  });

  it("wakes when the key is deleted by a session expiring, answering 404 with a higher index", async () => {
    await start({ sessionTtlMinMs: 100 });
    const s = await createSession({ TTL: "300ms", Behavior: "delete" });
    await put("lock", "v", `?acquire=${s}`);
    const index = Number((await call("GET", "/v1/kv/lock")).headers.get("x-consul-index"));
    const res = await call("GET", `/v1/kv/lock?index=${index}&wait=30s`);
    expect(res.status).toBe(404);
    expect(Number(res.headers.get("x-consul-index"))).toBeGreaterThan(index);
  });

  it("refuses a malformed index or wait", async () => {
    await start();
    expect((await call("GET", "/v1/kv/k?index=abc")).text).toBe("Invalid index");
    expect((await call("GET", "/v1/kv/k?index=1&wait=5")).text).toBe("Invalid wait time");
  });
});

describe("consul double: ACL token", () => {
  it("requires the token in X-Consul-Token, Authorization: Bearer or ?token=", async () => {
    await start({ token: "s3cret" });
    const none = await call("GET", "/v1/kv/k");
    expect([none.status, none.text]).toEqual([403, "Permission denied"]);
    const wrong = await call("GET", "/v1/kv/k", undefined, { headers: { "X-Consul-Token": "nope" } });
    expect([wrong.status, wrong.text]).toEqual([403, "ACL not found"]);
    expect((await call("GET", "/v1/kv/k", undefined, { headers: { "X-Consul-Token": "s3cret" } })).status).toBe(404);
    expect((await call("GET", "/v1/kv/k", undefined, { headers: { Authorization: "Bearer s3cret" } })).status).toBe(404);
    expect((await call("GET", "/v1/kv/k?token=s3cret")).status).toBe(404);
  });
});

describe("consul double: unreachable", () => {
  it("refuse: connections fail while paused, sessions keep expiring, and resume restores it", async () => {
    await start();
    const id = await createSession({ TTL: "10s" });
    await double!.pause("refuse");
    await expect(call("GET", "/v1/status/leader")).rejects.toThrow();
    double!.advance(10_000);
    await double!.resume();
    expect((await call("GET", "/v1/status/leader")).status).toBe(200);
    expect((await call("PUT", `/v1/session/renew/${id}`)).status).toBe(404);
  });

  it("hang: requests are neither answered nor processed while paused", async () => {
    await start();
    await double!.pause("hang");
    await expect(call("PUT", "/v1/kv/k", "v", { signal: AbortSignal.timeout(300) })).rejects.toThrow();
    expect(double!.entry("k")).toBeUndefined();
    await double!.resume();
    expect(await put("k", "v")).toBe(true);
    expect(double!.entry("k")!.value.toString()).toBe("v");
  });
});
