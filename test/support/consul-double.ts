/**
 * A Consul HTTP API double: a real HTTP server on 127.0.0.1 that implements the parts of Consul
 * LiteFS relies on, with the semantics Consul documents and its source shows:
 *
 * - sessions: `PUT /v1/session/create` (TTL, LockDelay, Behavior, Name, Node, Checks),
 *   `PUT /v1/session/renew/:id`, `PUT /v1/session/destroy/:id`, `GET /v1/session/info/:id`,
 *   `GET /v1/session/list`; TTL expiry; invalidation releases or deletes held keys and starts
 *   each key's lock-delay (explicit destroy included, `?release` excluded).
 * - KV: `GET /v1/kv/<key>` (`?raw`, `?recurse`, `?keys`), `PUT` (`?acquire`, `?release`,
 *   `?cas`, `?flags`), `DELETE` (`?cas`, `?recurse`); blocking queries (`?index` and `?wait`)
 *   and `X-Consul-Index` on reads.
 * - `PUT /v1/catalog/register` (a node for sessions to live on), `GET /v1/status/leader`.
 * - ACLs: with `token` set, every request needs it in `X-Consul-Token`, `Authorization: Bearer`
 *   or `?token=`; none gives 403 "Permission denied", a wrong one 403 "ACL not found".
 *
 * Where real Consul is loose the double is exact, so tests can reason about time: a session
 * expires at exactly TTL × `ttlMultiplier` (Consul: anywhere up to 2 × TTL), blocking queries
 * wait exactly `wait` (Consul adds up to wait/16 of jitter), and lock-delay counts from the
 * instant the double invalidates the session (at its expiry, or when `advance` jumps past it). Errors Consul reports from its RPC layer (invalid TTL, invalid
 * session, ...) come back as 500 with a text body, as Consul answers them.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface ConsulDoubleOptions {
  /** ACL token every request must carry; undefined leaves ACLs off (Consul's default). */
  token?: string;
  /** Sessions expire at exactly TTL × this after the last renew. Default 1; Consul uses up to 2. */
  ttlMultiplier?: number;
  /** Consul's `session_ttl_min` (default 10s). Tests lower it to use short TTLs. */
  sessionTtlMinMs?: number;
  /** Name of the double's own node, which has the `serfHealth` check. Default "consul-double". */
  nodeName?: string;
  /** Address to listen on (default 127.0.0.1; a network lab's bridge address for nodes in namespaces). */
  host?: string;
}

/** "refuse": connections are refused (ECONNREFUSED) and open ones reset. "hang": never answered. */
export type PauseMode = "refuse" | "hang";

export interface DoubleSession {
  id: string;
  name: string;
  node: string;
  lockDelayMs: number;
  behavior: "release" | "delete";
  /** As the client sent it, e.g. "10s"; "" for no TTL. */
  ttl: string;
  ttlMs: number;
  checks: string[];
  createIndex: number;
  modifyIndex: number;
  /** On the double's clock; undefined without a TTL. */
  expiresAt: number | undefined;
}

export interface DoubleKvEntry {
  key: string;
  value: Buffer;
  flags: number;
  createIndex: number;
  modifyIndex: number;
  lockIndex: number;
  /** The session holding the lock, "" if none. */
  session: string;
}

export type DoubleEvent =
  | {
      type: "session-invalidated";
      at: number;
      session: string;
      reason: "ttl" | "destroy";
      /** Keys the session held, which it released or deleted. */
      keys: string[];
    }
  | {
      type: "acquire";
      at: number;
      key: string;
      session: string;
      acquired: boolean;
      /** Why it was refused. */
      refusal?: "held" | "lock-delay" | "invalid-session";
    };

const SESSION_TTL_MAX_MS = 24 * 60 * 60 * 1000;
const DEFAULT_LOCK_DELAY_MS = 15_000;
const DEFAULT_WAIT_MS = 5 * 60 * 1000;
const MAX_WAIT_MS = 10 * 60 * 1000;
const KV_MAX_VALUE_SIZE = 512 * 1024;
const SERF_CHECK = "serfHealth";

export async function startConsulDouble(options: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  const double = new ConsulDouble(options);
  await double.listen();
  return double;
}

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Waiter {
  matches(key: string): boolean;
  wake(): void;
}

export class ConsulDouble {
  readonly nodeName: string;
  private readonly host: string;
  /** Everything that happened worth asserting on, in order. */
  readonly events: DoubleEvent[] = [];
  private readonly token: string | undefined;
  private readonly ttlMultiplier: number;
  private readonly sessionTtlMinMs: number;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly held = new Set<ServerResponse>();
  private readonly waiters = new Set<Waiter>();
  private readonly sessions = new Map<string, DoubleSession>();
  private readonly kv = new Map<string, DoubleKvEntry>();
  private readonly tombstones = new Map<string, number>();
  private readonly lockDelays = new Map<string, number>();
  private readonly nodes = new Map<string, Set<string>>();
  /** Every request is answered this much later (a slow or distant Consul); 0 by default. */
  latencyMs = 0;
  private raftIndex = 0;
  private kvTableIndex = 0;
  private offsetMs = 0;
  private expiryTimer: NodeJS.Timeout | undefined;
  private paused: PauseMode | undefined;
  private closed = false;
  private port = 0;

  constructor(options: ConsulDoubleOptions = {}) {
    this.token = options.token;
    this.ttlMultiplier = options.ttlMultiplier ?? 1;
    this.sessionTtlMinMs = options.sessionTtlMinMs ?? 10_000;
    this.nodeName = options.nodeName ?? "consul-double";
    this.host = options.host ?? "127.0.0.1";
    this.nodes.set(this.nodeName, new Set([SERF_CHECK]));
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  /** Base URL, e.g. http://127.0.0.1:34567 (no trailing slash). */
  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  get address(): { host: string; port: number } {
    return { host: this.host, port: this.port };
  }

  /** The double's clock, in ms since the epoch (monotonic, plus whatever `advance` added). */
  now(): number {
    return performance.timeOrigin + performance.now() + this.offsetMs;
  }

  /** Moves the double's clock forward: sessions whose TTL is now spent expire at once. */
  advance(ms: number): void {
    this.offsetMs += ms;
    this.expireSessions();
    this.scheduleExpiry();
  }

  /** @internal use startConsulDouble() */
  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.port, this.host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const addr = this.server.address();
    if (addr && typeof addr === "object") this.port = addr.port;
  }

  /** Simulates Consul becoming unreachable. Sessions keep expiring meanwhile, as on the servers. */
  async pause(mode: PauseMode = "refuse"): Promise<void> {
    if (this.paused) throw new Error("consul double already paused");
    this.paused = mode;
    if (mode === "refuse") {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const socket of this.sockets) socket.destroy();
      await closed;
    }
  }

  /** Reachable again. Requests that hung while paused are dropped (their connections reset). */
  async resume(): Promise<void> {
    const mode = this.paused;
    if (!mode) return;
    this.paused = undefined;
    for (const res of this.held) res.socket?.destroy();
    this.held.clear();
    if (mode === "refuse") await this.listen();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.expiryTimer);
    for (const waiter of this.waiters) waiter.wake();
    for (const socket of this.sockets) socket.destroy();
    if (this.server.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // --- inspection for tests --------------------------------------------------------------

  session(id: string): DoubleSession | undefined {
    this.expireSessions();
    const s = this.sessions.get(id);
    return s && { ...s, checks: [...s.checks] };
  }

  sessionIds(): string[] {
    this.expireSessions();
    return [...this.sessions.keys()];
  }

  entry(key: string): DoubleKvEntry | undefined {
    this.expireSessions();
    const e = this.kv.get(key);
    return e && { ...e, value: Buffer.from(e.value) };
  }

  /** When the key's lock-delay ends (double clock), if one was ever set. */
  lockDelayUntil(key: string): number | undefined {
    return this.lockDelays.get(key);
  }

  /** Resolves with the first event matching `pred` (past or future); rejects after `timeoutMs`. */
  async waitForEvent(pred: (e: DoubleEvent) => boolean, timeoutMs = 30_000): Promise<DoubleEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.expireSessions();
      const found = this.events.find(pred);
      if (found) return found;
      if (Date.now() > deadline) throw new Error("consul double: timed out waiting for event");
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  // --- HTTP ------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.paused === "hang") {
      // Consul never sees it: not processed, never answered.
      this.held.add(res);
      return;
    }
    try {
      const body = await readBody(req);
      if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
      const url = new URL(req.url ?? "/", "http://consul");
      this.expireSessions();
      this.checkAcl(req, url);
      await this.route(req.method ?? "GET", url, body, res);
    } catch (err) {
      if (err instanceof HttpProblem) this.send(res, err.status, err.message, "text/plain; charset=utf-8");
      else this.send(res, 500, String(err), "text/plain; charset=utf-8");
    }
  }

  private checkAcl(req: IncomingMessage, url: URL): void {
    if (this.token === undefined) return;
    const auth = req.headers.authorization;
    const bearer = auth?.startsWith("Bearer ") ? auth.slice("Bearer ".length) : undefined;
    const header = req.headers["x-consul-token"];
    const given = (typeof header === "string" ? header : undefined) ?? bearer ?? url.searchParams.get("token") ?? "";
    if (given === "") throw new HttpProblem(403, "Permission denied");
    if (given !== this.token) throw new HttpProblem(403, "ACL not found");
  }

  private async route(method: string, url: URL, body: Buffer, res: ServerResponse): Promise<void> {
    const path = url.pathname;
    const allow = (...methods: string[]) => {
      if (!methods.includes(method)) throw new HttpProblem(405, `method ${method} not allowed`);
    };
    if (path.startsWith("/v1/kv/")) {
      allow("GET", "PUT", "DELETE");
      const key = decodeURIComponent(path.slice("/v1/kv/".length));
      if (method === "GET") return this.kvGet(key, url, res);
      if (method === "PUT") return this.kvPut(key, url, body, res);
      return this.kvDelete(key, url, res);
    }
    if (path === "/v1/session/create") {
      allow("PUT");
      return this.json(res, { ID: this.sessionCreate(body) });
    }
    if (path.startsWith("/v1/session/renew/")) {
      allow("PUT");
      const id = requireSessionId(path, "/v1/session/renew/");
      const s = this.sessions.get(id);
      if (!s) throw new HttpProblem(404, `Session id '${id}' not found`);
      s.expiresAt = this.expiryFor(s.ttlMs, this.now());
      this.scheduleExpiry();
      return this.json(res, [sessionJson(s)], this.raftIndex);
    }
    if (path.startsWith("/v1/session/destroy/")) {
      allow("PUT");
      const id = requireSessionId(path, "/v1/session/destroy/");
      const s = this.sessions.get(id);
      if (s) this.invalidate(s, "destroy", this.now());
      return this.json(res, true);
    }
    if (path.startsWith("/v1/session/info/")) {
      allow("GET");
      const id = requireSessionId(path, "/v1/session/info/");
      const s = this.sessions.get(id);
      return this.json(res, s ? [sessionJson(s)] : [], Math.max(this.raftIndex, 1));
    }
    if (path === "/v1/session/list") {
      allow("GET");
      return this.json(res, [...this.sessions.values()].map(sessionJson), Math.max(this.raftIndex, 1));
    }
    if (path === "/v1/catalog/register") {
      allow("PUT");
      const reg = parseJsonBody(body);
      const node = field(reg, "Node");
      if (typeof node !== "string" || node === "") throw new HttpProblem(400, "Must provide node");
      if (!this.nodes.has(node)) this.nodes.set(node, new Set());
      this.raftIndex++;
      return this.json(res, true);
    }
    if (path === "/v1/status/leader") {
      allow("GET");
      return this.json(res, "127.0.0.1:8300");
    }
    throw new HttpProblem(404, "404 page not found");
  }

  // --- sessions --------------------------------------------------------------------------

  private sessionCreate(body: Buffer): string {
    const req = body.length > 0 ? parseJsonBody(body) : {};
    let lockDelayMs = DEFAULT_LOCK_DELAY_MS;
    const rawDelay = field(req, "LockDelay");
    if (rawDelay !== undefined) {
      // Consul reads a number as nanoseconds and a string as a duration; either below
      // 1000ns is taken to mean seconds.
      let ns: number;
      if (typeof rawDelay === "number") ns = rawDelay;
      else if (typeof rawDelay === "string") {
        const parsed = parseGoDurationNs(rawDelay);
        if (parsed === undefined) throw new HttpProblem(400, `Request decode failed: time: invalid duration "${rawDelay}"`);
        ns = parsed;
      } else throw new HttpProblem(400, "Request decode failed: LockDelay");
      if (ns < 1000) ns *= 1e9;
      lockDelayMs = ns / 1e6;
    }
    const behavior = (field(req, "Behavior") as string | undefined) ?? "";
    if (behavior !== "" && behavior !== "release" && behavior !== "delete") {
      throw new HttpProblem(500, `Invalid Behavior setting '${behavior}'`);
    }
    const ttl = (field(req, "TTL") as string | undefined) ?? "";
    let ttlMs = 0;
    if (ttl !== "") {
      const ns = parseGoDurationNs(ttl);
      if (ns === undefined) throw new HttpProblem(500, `Session TTL '${ttl}' invalid: time: invalid duration "${ttl}"`);
      ttlMs = ns / 1e6;
      if (ttlMs !== 0 && (ttlMs < this.sessionTtlMinMs || ttlMs > SESSION_TTL_MAX_MS)) {
        throw new HttpProblem(
          500,
          `Invalid Session TTL '${Math.round(ns)}', must be between [${formatGoDuration(this.sessionTtlMinMs)}=${formatGoDuration(SESSION_TTL_MAX_MS)}]`,
        );
      }
    }
    const node = (field(req, "Node") as string | undefined) || this.nodeName;
    const nodeChecks = this.nodes.get(node);
    if (!nodeChecks) throw new HttpProblem(500, "Missing node registration");
    // Without an explicit Checks/NodeChecks list Consul ties the session to serfHealth.
    const explicit = field(req, "NodeChecks") ?? field(req, "Checks");
    const checks = Array.isArray(explicit) ? explicit.map(String) : [SERF_CHECK];
    for (const check of checks) {
      if (!nodeChecks.has(check)) throw new HttpProblem(500, `Missing check '${check}' registration`);
    }
    const id = randomUUID();
    const index = ++this.raftIndex;
    this.sessions.set(id, {
      id,
      name: (field(req, "Name") as string | undefined) ?? "",
      node,
      lockDelayMs,
      behavior: behavior === "delete" ? "delete" : "release",
      ttl,
      ttlMs,
      checks,
      createIndex: index,
      modifyIndex: index,
      expiresAt: this.expiryFor(ttlMs, this.now()),
    });
    this.scheduleExpiry();
    return id;
  }

  private expiryFor(ttlMs: number, from: number): number | undefined {
    return ttlMs > 0 ? from + ttlMs * this.ttlMultiplier : undefined;
  }

  /**
   * Sessions whose TTL is spent are invalidated now: Consul notices an expired TTL on its own
   * timer (up to twice the TTL late), and the lock-delay runs from that moment, not from the
   * session's last renewal. After `advance` jumps past an expiry, "now" is when it is noticed.
   */
  private expireSessions(): void {
    const now = this.now();
    for (const s of [...this.sessions.values()]) {
      if (s.expiresAt !== undefined && s.expiresAt <= now) this.invalidate(s, "ttl", now);
    }
  }

  private scheduleExpiry(): void {
    clearTimeout(this.expiryTimer);
    if (this.closed) return;
    let soonest = Infinity;
    for (const s of this.sessions.values()) {
      if (s.expiresAt !== undefined && s.expiresAt < soonest) soonest = s.expiresAt;
    }
    if (soonest === Infinity) return;
    const delay = Math.min(Math.max(0, soonest - this.now()), 2 ** 31 - 1);
    this.expiryTimer = setTimeout(() => {
      this.expireSessions();
      this.scheduleExpiry();
    }, delay);
  }

  /** A session ends (TTL or destroy): its locks are released or deleted and lock-delay starts. */
  private invalidate(s: DoubleSession, reason: "ttl" | "destroy", at: number): void {
    const index = ++this.raftIndex;
    const keys: string[] = [];
    for (const e of this.kv.values()) {
      if (e.session !== s.id) continue;
      keys.push(e.key);
      if (s.lockDelayMs > 0) this.lockDelays.set(e.key, at + s.lockDelayMs);
      if (s.behavior === "delete") {
        this.kv.delete(e.key);
        this.tombstones.set(e.key, index);
      } else {
        e.session = "";
        e.modifyIndex = index;
      }
      this.kvTableIndex = index;
      this.notify(e.key);
    }
    this.sessions.delete(s.id);
    this.events.push({ type: "session-invalidated", at, session: s.id, reason, keys });
  }

  // --- KV --------------------------------------------------------------------------------

  private async kvGet(key: string, url: URL, res: ServerResponse): Promise<void> {
    const q = url.searchParams;
    const recurse = q.has("recurse");
    const keysOnly = q.has("keys");
    if (!recurse && !keysOnly && key === "") throw new HttpProblem(400, "Missing key name");
    const minIndex = parseIndex(q.get("index"));
    const waitMs = parseWait(q.get("wait"));
    const prefixed = recurse || keysOnly;
    const matches = prefixed ? (k: string) => k.startsWith(key) : (k: string) => k === key;

    const read = () => {
      const entries = [...this.kv.values()].filter((e) => matches(e.key)).sort((a, b) => (a.key < b.key ? -1 : 1));
      let index: number;
      if (!prefixed) {
        index = entries[0]?.modifyIndex ?? this.kvTableIndex;
      } else if (key === "") {
        index = this.kvTableIndex;
      } else {
        index = 0;
        for (const e of entries) index = Math.max(index, e.modifyIndex);
        for (const [k, i] of this.tombstones) if (k.startsWith(key)) index = Math.max(index, i);
        if (index === 0) index = this.kvTableIndex;
      }
      return { entries, index: Math.max(index, 1) };
    };

    let result = read();
    if (minIndex > 0 && result.index <= minIndex) {
      const deadline = Date.now() + waitMs;
      while (result.index <= minIndex && Date.now() < deadline && !this.closed) {
        await this.waitForChange(matches, deadline - Date.now(), res);
        if (res.destroyed) return;
        this.expireSessions();
        result = read();
      }
    }

    const headers = { "X-Consul-Index": String(result.index), "X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0" };
    if (keysOnly) {
      const sep = q.get("separator") ?? "";
      const listed = new Set<string>();
      for (const e of result.entries) {
        const rest = e.key.slice(key.length);
        const cut = sep === "" ? -1 : rest.indexOf(sep);
        listed.add(cut === -1 ? e.key : e.key.slice(0, key.length + cut + sep.length));
      }
      if (listed.size === 0 && key !== "") return this.send(res, 404, "", "text/plain", headers);
      return this.send(res, 200, JSON.stringify([...listed]), "application/json", headers);
    }
    if (result.entries.length === 0) return this.send(res, 404, "", "text/plain", headers);
    if (q.has("raw") && !recurse) {
      return this.send(res, 200, result.entries[0].value, "text/plain", {
        ...headers,
        "X-Content-Type-Options": "nosniff",
      });
    }
    const body = result.entries.map(kvJson);
    return this.send(res, 200, JSON.stringify(recurse ? body : [body[0]]), "application/json", headers);
  }

  private kvPut(key: string, url: URL, body: Buffer, res: ServerResponse): void {
    const q = url.searchParams;
    if (key === "") throw new HttpProblem(400, "Missing key name");
    conflictingFlags(q, "cas", "acquire", "release");
    const flags = q.has("flags") ? parseUint(q.get("flags"), "flags") : 0;
    if (body.length > KV_MAX_VALUE_SIZE) {
      throw new HttpProblem(413, `Request body(${body.length} bytes) too large, max size: ${KV_MAX_VALUE_SIZE} bytes.`);
    }
    const existing = this.kv.get(key);

    if (q.has("acquire")) {
      const sid = q.get("acquire") ?? "";
      const now = this.now();
      const delayUntil = this.lockDelays.get(key);
      // Consul checks lock-delay before the session, and answers false, not an error.
      if (delayUntil !== undefined && delayUntil > now) {
        this.events.push({ type: "acquire", at: now, key, session: sid, acquired: false, refusal: "lock-delay" });
        return this.json(res, false);
      }
      if (sid === "") throw new HttpProblem(500, "missing session");
      if (!this.sessions.has(sid)) {
        this.events.push({ type: "acquire", at: now, key, session: sid, acquired: false, refusal: "invalid-session" });
        throw new HttpProblem(500, `invalid session "${sid}"`);
      }
      if (existing && existing.session !== "" && existing.session !== sid) {
        this.events.push({ type: "acquire", at: now, key, session: sid, acquired: false, refusal: "held" });
        return this.json(res, false);
      }
      const lockIndex = !existing ? 1 : existing.session === sid ? existing.lockIndex : existing.lockIndex + 1;
      this.write(key, body, flags, sid, lockIndex);
      this.events.push({ type: "acquire", at: now, key, session: sid, acquired: true });
      return this.json(res, true);
    }

    if (q.has("release")) {
      const sid = q.get("release") ?? "";
      if (sid === "") throw new HttpProblem(500, "missing session");
      if (!existing || existing.session !== sid) return this.json(res, false);
      this.write(key, body, flags, "", existing.lockIndex);
      return this.json(res, true);
    }

    if (q.has("cas")) {
      const cas = parseUint(q.get("cas"), "cas");
      if (cas === 0 && existing) return this.json(res, false);
      if (cas !== 0 && (!existing || existing.modifyIndex !== cas)) return this.json(res, false);
    }
    // A plain write keeps whoever holds the lock; LockIndex is not carried over (as Consul).
    this.write(key, body, flags, existing?.session ?? "", 0);
    return this.json(res, true);
  }

  private write(key: string, value: Buffer, flags: number, session: string, lockIndex: number): void {
    const existing = this.kv.get(key);
    if (
      existing &&
      existing.value.equals(value) &&
      existing.flags === flags &&
      existing.session === session &&
      existing.lockIndex === lockIndex
    ) {
      return; // Consul skips writes that change nothing: the ModifyIndex stays.
    }
    const index = ++this.raftIndex;
    this.kv.set(key, {
      key,
      value: Buffer.from(value),
      flags,
      createIndex: existing?.createIndex ?? index,
      modifyIndex: index,
      lockIndex,
      session,
    });
    this.tombstones.delete(key);
    this.kvTableIndex = index;
    this.notify(key);
  }

  private kvDelete(key: string, url: URL, res: ServerResponse): void {
    const q = url.searchParams;
    conflictingFlags(q, "recurse", "cas");
    if (!q.has("recurse") && key === "") throw new HttpProblem(400, "Missing key name");
    if (q.has("cas")) {
      const cas = parseUint(q.get("cas"), "cas");
      const existing = this.kv.get(key);
      if (!existing) return this.json(res, true); // as Consul: nothing to delete counts as done
      if (existing.modifyIndex !== cas) return this.json(res, false);
    }
    const doomed = q.has("recurse") ? [...this.kv.keys()].filter((k) => k.startsWith(key)) : [key];
    const present = doomed.filter((k) => this.kv.has(k));
    if (present.length > 0) {
      const index = ++this.raftIndex;
      for (const k of present) {
        this.kv.delete(k);
        this.tombstones.set(k, index);
        this.notify(k);
      }
      this.kvTableIndex = index;
    }
    return this.json(res, true);
  }

  private notify(key: string): void {
    for (const waiter of [...this.waiters]) if (waiter.matches(key)) waiter.wake();
  }

  private waitForChange(matches: (key: string) => boolean, ms: number, res: ServerResponse): Promise<void> {
    return new Promise((resolve) => {
      const waiter: Waiter = {
        matches,
        wake: () => {
          clearTimeout(timer);
          res.off("close", waiter.wake);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, Math.max(0, ms));
      res.on("close", waiter.wake);
      this.waiters.add(waiter);
    });
  }

  // --- responses -------------------------------------------------------------------------

  private json(res: ServerResponse, value: unknown, index?: number): void {
    const headers: Record<string, string> = {};
    if (index !== undefined) {
      headers["X-Consul-Index"] = String(index);
      headers["X-Consul-KnownLeader"] = "true";
      headers["X-Consul-LastContact"] = "0";
    }
    this.send(res, 200, JSON.stringify(value), "application/json", headers);
  }

  private send(
    res: ServerResponse,
    status: number,
    body: string | Buffer,
    contentType: string,
    headers: Record<string, string> = {},
  ): void {
    if (this.paused === "hang") {
      // The answer is lost in the partition.
      this.held.add(res);
      return;
    }
    if (res.destroyed || res.headersSent) return;
    const buf = typeof body === "string" ? Buffer.from(body) : body;
    res.writeHead(status, { "Content-Type": contentType, "Content-Length": String(buf.length), ...headers });
    res.end(buf);
  }
}

// --- helpers -------------------------------------------------------------------------------

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function parseJsonBody(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new HttpProblem(400, `Request decode failed: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new HttpProblem(400, "Request decode failed: expected a JSON object");
  }
  return value as Record<string, unknown>;
}

/** Consul decodes request bodies with case-insensitive field names. */
function field(obj: Record<string, unknown>, name: string): unknown {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

function requireSessionId(path: string, prefix: string): string {
  const id = decodeURIComponent(path.slice(prefix.length));
  if (id === "") throw new HttpProblem(400, "Missing session");
  return id;
}

function conflictingFlags(q: URLSearchParams, ...flags: string[]): void {
  if (flags.filter((f) => q.has(f)).length > 1) {
    throw new HttpProblem(400, `Conflicting flags: ${q.toString()}`);
  }
}

function parseUint(text: string | null, name: string): number {
  if (text === null || !/^\d+$/.test(text)) {
    throw new HttpProblem(500, `strconv.ParseUint: parsing "${text ?? ""}": invalid syntax (${name})`);
  }
  return Number(text);
}

function parseIndex(text: string | null): number {
  if (text === null || text === "") return 0;
  if (!/^\d+$/.test(text)) throw new HttpProblem(400, "Invalid index");
  return Number(text);
}

function parseWait(text: string | null): number {
  if (text === null || text === "") return DEFAULT_WAIT_MS;
  const ns = parseGoDurationNs(text);
  if (ns === undefined) throw new HttpProblem(400, "Invalid wait time");
  return Math.min(ns / 1e6, MAX_WAIT_MS);
}

const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, "µs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Go's time.ParseDuration, in nanoseconds; undefined when Go would refuse it. */
export function parseGoDurationNs(text: string): number | undefined {
  if (text === "0") return 0;
  const m = /^([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|ms|s|m|h))+)$/.exec(text);
  if (!m) return undefined;
  let total = 0;
  for (const part of m[2].matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(part[1]) * UNIT_NS[part[2]];
  }
  return m[1] === "-" ? -total : total;
}

/** Go's Duration.String for whole milliseconds, for messages: 10s, 1m30s, 24h0m0s, 500ms. */
function formatGoDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

function sessionJson(s: DoubleSession): Record<string, unknown> {
  return {
    ID: s.id,
    Name: s.name,
    Node: s.node,
    LockDelay: Math.round(s.lockDelayMs * 1e6),
    Behavior: s.behavior,
    TTL: s.ttl,
    NodeChecks: s.checks,
    ServiceChecks: null,
    CreateIndex: s.createIndex,
    ModifyIndex: s.modifyIndex,
  };
}

function kvJson(e: DoubleKvEntry): Record<string, unknown> {
  const out: Record<string, unknown> = {
    LockIndex: e.lockIndex,
    Key: e.key,
    Flags: e.flags,
    // Go marshals an empty value as null.
    Value: e.value.length === 0 ? null : e.value.toString("base64"),
    CreateIndex: e.createIndex,
    ModifyIndex: e.modifyIndex,
  };
  if (e.session !== "") out.Session = e.session;
  return out;
}
