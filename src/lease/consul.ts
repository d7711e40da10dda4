import { posix } from "node:path";
import { pino, type Logger } from "pino";
import { ConsulApi, parseConsulUrl } from "./consul-api.js";
import { LeaseError } from "./errors.js";
import type { HandoffHandler, Lease, Leaser, PrimaryInfo, SyncSet } from "./leaser.js";

export const DEFAULT_TTL_MS = 10_000;
export const DEFAULT_LOCK_DELAY_MS = 1_000;
/** Consul refuses session TTLs outside [session_ttl_min (10s by default), 24h]. */
export const CONSUL_MIN_TTL_MS = 10_000;
export const CONSUL_MAX_TTL_MS = 24 * 60 * 60 * 1000;
const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
const SESSION_NAME = "litefs";

export interface ConsulLeaserOptions {
  /** `lease.consul.url`: the password is the ACL token, the path a prefix for every key. */
  url: string;
  /** `lease.consul.key`: the lease key, unique per cluster. */
  key: string;
  /** This node's hostname, written into the lease when it is primary. */
  hostname: string;
  /** This node's API URL, written into the lease when it is primary. */
  advertiseUrl: string;
  /** This node's proxy URL (proxy enabled), written into the lease beside the API URL. */
  proxyUrl?: string;
  /** Session TTL, default 10s; Consul may take up to twice this to expire a session. */
  ttlMs?: number;
  /** After a session holding the key is invalidated, nobody may acquire it for this long. Default 1s. */
  lockDelayMs?: number;
  /** `lease.candidate`; a non-candidate refuses acquire with LEASE_NOT_CANDIDATE. Default true. */
  candidate?: boolean;
  /** Per-request timeout for calls to Consul. Default 5s. */
  requestTimeoutMs?: number;
  logger?: Logger;
  /** Lets tests use TTLs under Consul's 10s minimum against a double configured to accept them. */
  allowShortTtlForTests?: boolean;
}

/** Monotonic, in ms since the epoch: leases reason about elapsed time, never wall-clock jumps. */
function clock(): number {
  return performance.timeOrigin + performance.now();
}

/** What a ConsulLease needs from its leaser. */
interface LeaseContext {
  api: ConsulApi;
  key: string;
  ttlMs: number;
  requestTimeoutMs: number;
  logger: Logger;
  released(lease: ConsulLease): void;
  /** The key's value naming this node (see ConsulLeaser.value). */
  value(takenBack?: number): string;
}

/**
 * Leader election through a Consul session and a KV lock, as LiteFS does it: a session with a
 * TTL, lock-delay and behavior "delete" acquires `<prefix>/<key>` with this node's
 * `{"hostname","advertise-url"}` (and `"proxy-url"` when it runs a proxy); the cluster ID lives at `<prefix>/<key>/clusterid`.
 */
export class ConsulLeaser implements Leaser {
  readonly type = "consul" as const;
  readonly hostname: string;
  readonly advertiseUrl: string;
  private readonly proxyUrl: string | undefined;
  /** The full lease key, prefix included. */
  readonly key: string;
  readonly clusterIdKey: string;
  /** Synchronous replication's in-sync set (`<key>/sync`, as Patroni's `/sync`). */
  readonly syncKey: string;
  readonly ttlMs: number;
  readonly lockDelayMs: number;
  private readonly candidate: boolean;
  private readonly requestTimeoutMs: number;
  private readonly logger: Logger;
  private readonly api: ConsulApi;
  /** With a key prefix the session lives on a catalog node under it, as LiteFS registers. */
  private readonly nodeName: string | undefined;
  private nodeRegistered = false;
  private readonly open = new Set<ConsulLease>();
  private closed = false;

  constructor(options: ConsulLeaserOptions) {
    const endpoint = parseConsulUrl(options.url);
    if (!options.key) throw new LeaseError("LEASE_INVALID_OPTIONS", "consul lease: a key is required");
    if (!options.hostname) throw new LeaseError("LEASE_INVALID_OPTIONS", "consul lease: hostname of this node is required");
    if (!options.advertiseUrl) {
      throw new LeaseError("LEASE_INVALID_OPTIONS", "consul lease: advertise-url of this node is required");
    }
    const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    const minTtl = options.allowShortTtlForTests ? 1 : CONSUL_MIN_TTL_MS;
    if (!Number.isFinite(ttlMs) || ttlMs < minTtl || ttlMs > CONSUL_MAX_TTL_MS) {
      throw new LeaseError(
        "LEASE_INVALID_OPTIONS",
        `consul lease: ttl must be between 10s and 24h (Consul refuses other session TTLs), got ${ttlMs}ms`,
      );
    }
    const lockDelayMs = options.lockDelayMs ?? DEFAULT_LOCK_DELAY_MS;
    if (!Number.isFinite(lockDelayMs) || lockDelayMs < 0) {
      throw new LeaseError("LEASE_INVALID_OPTIONS", `consul lease: lock-delay must be >= 0, got ${lockDelayMs}ms`);
    }
    this.hostname = options.hostname;
    this.advertiseUrl = options.advertiseUrl;
    this.proxyUrl = options.proxyUrl;
    this.key = posix.join(endpoint.keyPrefix, options.key);
    this.clusterIdKey = posix.join(endpoint.keyPrefix, options.key, "clusterid");
    this.syncKey = posix.join(endpoint.keyPrefix, options.key, "sync");
    this.nodeName = endpoint.keyPrefix === "" ? undefined : posix.join(endpoint.keyPrefix, "litefs");
    this.ttlMs = ttlMs;
    this.lockDelayMs = lockDelayMs;
    this.candidate = options.candidate ?? true;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.logger = options.logger ?? pino({ level: "silent" });
    this.api = new ConsulApi(endpoint, this.requestTimeoutMs);
  }

  async acquire(signal?: AbortSignal): Promise<Lease> {
    this.assertCandidate();
    if (this.nodeName !== undefined && !this.nodeRegistered) {
      await this.api.registerNode(this.nodeName, { signal });
      this.nodeRegistered = true;
    }
    // Consul starts the TTL when it receives the create, after we sent it.
    const sentAt = clock();
    const sessionId = await this.api.createSession(
      {
        name: SESSION_NAME,
        node: this.nodeName,
        ttlMs: this.ttlMs,
        lockDelayMs: this.lockDelayMs,
        // If we die holding the key, Consul deletes it: no stale primary is left behind.
        behavior: "delete",
      },
      { signal },
    );
    try {
      if (!(await this.api.acquire(this.key, this.value(), sessionId, { signal }))) {
        throw new LeaseError(
          "LEASE_PRIMARY_EXISTS",
          `Consul key ${JSON.stringify(this.key)} is held by another node (or its lock-delay has not passed)`,
          { key: this.key },
        );
      }
    } catch (err) {
      // Consul would expire it after the TTL anyway; this just tidies up sooner.
      await this.api.destroySession(sessionId).catch((e: unknown) =>
        this.logger.debug({ err: e, session: sessionId }, "could not destroy unused consul session"),
      );
      throw err;
    }
    this.logger.info({ key: this.key, session: sessionId }, "acquired primary lease");
    return this.track(sessionId, sentAt);
  }

  /**
   * Takes over a lease handed to this node: `token` is the session ID and the key's modify index
   * when the old primary handed it over. The value is rewritten to name this node with a
   * check-and-set on that index, the same one the old primary uses to take the lease back when
   * we are too slow: exactly one of the two wins, so a handoff completes or is undone, never
   * neither (and never both).
   */
  async acquireExisting(token: string): Promise<Lease> {
    this.assertCandidate();
    const { session, index } = parseHandoffToken(token);
    const sentAt = clock();
    if (!(await this.api.renewSession(session))) {
      throw new LeaseError(
        "LEASE_EXPIRED",
        `handed-off Consul session ${session} no longer exists; acquire a new lease instead`,
        { key: this.key },
      );
    }
    // A plain write keeps the session's lock on the key; the index check makes it ours only if
    // the old primary has not taken it back meanwhile.
    if (!(await this.api.putCas(this.key, this.value(), index))) {
      throw new LeaseError(
        "LEASE_PRIMARY_EXISTS",
        `Consul key ${JSON.stringify(this.key)} changed since it was handed to this node (the old primary kept the lease)`,
        { key: this.key },
      );
    }
    const entry = await this.api.get(this.key);
    if (entry?.session !== session) {
      throw new LeaseError("LEASE_PRIMARY_EXISTS", `Consul key ${JSON.stringify(this.key)} is no longer held by handed-off session ${session}`, {
        key: this.key,
      });
    }
    this.logger.info({ key: this.key, session }, "took over handed-off primary lease");
    return this.track(session, sentAt);
  }

  async primaryInfo(): Promise<PrimaryInfo | null> {
    this.assertOpen();
    const entry = await this.api.get(this.key);
    // Release empties the value and behavior=delete removes the key: either means no primary.
    if (!entry || entry.value === "") return null;
    const info = decodePrimaryInfo(this.key, entry.value);
    // A value nobody holds a lock on is stale, not a primary.
    return entry.session === "" ? null : info;
  }

  async clusterId(): Promise<string | null> {
    this.assertOpen();
    const entry = await this.api.get(this.clusterIdKey);
    const id = entry?.value.trim() ?? "";
    return id === "" ? null : id;
  }

  async syncSet(): Promise<SyncSet | null> {
    this.assertOpen();
    const entry = await this.api.get(this.syncKey);
    if (!entry || entry.value.trim() === "") return null;
    try {
      const set = JSON.parse(entry.value) as SyncSet;
      if (typeof set.leader !== "string" || !Array.isArray(set.members)) throw new Error("no leader or members");
      return set;
    } catch (err) {
      throw new LeaseError("LEASE_BAD_VALUE", `Consul key ${JSON.stringify(this.syncKey)} holds ${JSON.stringify(entry.value.slice(0, 120))}, not a synchronous set: ${(err as Error).message}`, {
        key: this.syncKey,
      });
    }
  }

  async setSyncSet(set: SyncSet): Promise<void> {
    this.assertOpen();
    await this.api.put(this.syncKey, JSON.stringify(set));
  }

  async setClusterId(id: string): Promise<void> {
    this.assertOpen();
    if (id === "") throw new LeaseError("LEASE_INVALID_OPTIONS", "cluster ID must not be empty");
    // cas=0 writes only if the key does not exist, so two nodes racing cannot both win.
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.api.putCas(this.clusterIdKey, id, 0)) return;
      const current = await this.clusterId();
      if (current === id) return;
      if (current !== null) {
        throw new LeaseError(
          "LEASE_CLUSTER_ID_CONFLICT",
          `Consul key ${JSON.stringify(this.clusterIdKey)} already holds cluster ID ${current}; refusing ${id}`,
          { key: this.clusterIdKey },
        );
      }
      // Present but empty, or deleted since: try again.
    }
    throw new LeaseError("LEASE_CLUSTER_ID_CONFLICT", `could not set cluster ID at ${JSON.stringify(this.clusterIdKey)}`, {
      key: this.clusterIdKey,
    });
  }

  /** Closes open leases (releasing the key), then the client. Never throws: it is shutdown. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const results = await Promise.allSettled([...this.open].map((lease) => lease.close()));
    for (const r of results) {
      if (r.status === "rejected") this.logger.warn({ err: r.reason }, "could not release primary lease on close");
    }
    this.api.close();
  }

  private track(sessionId: string, renewedAt: number): ConsulLease {
    const lease = new ConsulLease(
      {
        api: this.api,
        key: this.key,
        ttlMs: this.ttlMs,
        requestTimeoutMs: this.requestTimeoutMs,
        logger: this.logger,
        released: (l) => this.open.delete(l),
        value: (takenBack) => this.value(takenBack),
      },
      sessionId,
      renewedAt,
    );
    this.open.add(lease);
    return lease;
  }

  /** The key's value naming this node; `takenBack` marks a primary that took its lease back from a handoff (so the write changes the key). */
  private value(takenBack?: number): string {
    return JSON.stringify({
      hostname: this.hostname,
      "advertise-url": this.advertiseUrl,
      ...(this.proxyUrl && { "proxy-url": this.proxyUrl }),
      ...(takenBack !== undefined && { "taken-back": takenBack }),
    });
  }

  private assertOpen(): void {
    if (this.closed) throw new LeaseError("LEASE_CLOSED", "consul leaser is closed");
  }

  private assertCandidate(): void {
    this.assertOpen();
    if (!this.candidate) {
      throw new LeaseError("LEASE_NOT_CANDIDATE", "this node is not a candidate (lease.candidate: false)", {
        key: this.key,
      });
    }
  }
}

/** Parses the lease value LiteFS writes: `{"hostname": "...", "advertise-url": "..."}`. */
/** How often a handing-off primary looks whether the target took the key over. */
const TAKEOVER_POLL_MS = 100;

function handoffToken(session: string, index: number): string {
  return `${session}@${index}`;
}

function parseHandoffToken(token: string): { session: string; index: number } {
  const at = token.lastIndexOf("@");
  const index = Number(token.slice(at + 1));
  if (at <= 0 || !Number.isSafeInteger(index) || index <= 0) throw new LeaseError("LEASE_BAD_VALUE", `not a Consul handoff token: ${JSON.stringify(token)}`);
  return { session: token.slice(0, at), index };
}

export function decodePrimaryInfo(key: string, value: string): PrimaryInfo {
  const bad = (why: string, cause?: unknown) =>
    new LeaseError(
      "LEASE_BAD_VALUE",
      `Consul key ${JSON.stringify(key)} holds ${JSON.stringify(value.slice(0, 120))}, ` +
        `not {"hostname": ..., "advertise-url": ...}: ${why}`,
      { key, cause },
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw bad("not JSON", err);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw bad("not a JSON object");
  const { hostname, "advertise-url": advertiseUrl, "proxy-url": proxyUrl } = parsed as Record<string, unknown>;
  if (typeof hostname !== "string" || hostname === "") throw bad('missing "hostname"');
  if (typeof advertiseUrl !== "string" || advertiseUrl === "") throw bad('missing "advertise-url"');
  // Optional: a LiteFS primary, or one without a proxy, publishes none.
  if (proxyUrl !== undefined && (typeof proxyUrl !== "string" || proxyUrl === "")) throw bad('"proxy-url" is not a URL');
  return { hostname, advertiseUrl, ...(proxyUrl !== undefined && { proxyUrl }) };
}

type LeaseState = "active" | "lost" | "handed-off" | "closed";

/**
 * A held Consul lease. It renews itself every TTL/2, retrying after failures, and declares
 * itself lost (aborting `signal`) a safety margin before Consul could expire the session, so the
 * node stops writing before any other node can acquire. Consul's TTL clock restarts when it
 * *receives* a renew, so the margin is counted from when we *sent* the last successful one.
 */
export class ConsulLease implements Lease {
  readonly id: string;
  readonly ttlMs: number;
  private lastRenewedAt: number;
  private state: LeaseState = "active";
  private readonly controller = new AbortController();
  private readonly marginMs: number;
  private readonly retryDelayMs: number;
  private renewTimer: NodeJS.Timeout | undefined;
  private lostTimer: NodeJS.Timeout | undefined;
  private readonly handoffHandlers = new Set<HandoffHandler>();
  private readonly lostHandlers = new Set<(err: LeaseError) => void>();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly ctx: LeaseContext,
    id: string,
    renewedAt: number,
  ) {
    this.id = id;
    this.ttlMs = ctx.ttlMs;
    this.lastRenewedAt = renewedAt;
    // Enough for a timer firing late and the node turning read-only; 1s for the default TTL.
    this.marginMs = Math.min(1_000, ctx.ttlMs / 10);
    this.retryDelayMs = Math.min(1_000, ctx.ttlMs / 10);
    this.armLostTimer();
    this.scheduleRenew(this.ttlMs / 2);
  }

  get renewedAt(): number {
    return this.lastRenewedAt;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** When this node stops trusting the lease (monotonic ms since the epoch). */
  private get lostAt(): number {
    return this.lastRenewedAt + this.ttlMs - this.marginMs;
  }

  held(): boolean {
    if (this.state !== "active") return false;
    if (clock() < this.lostAt) return true;
    // The lost timer is late (the process was paused): the lease is gone all the same.
    this.declareLost();
    return false;
  }

  async renew(): Promise<void> {
    this.assertActive();
    const sentAt = clock();
    let alive: boolean;
    try {
      alive = await this.ctx.api.renewSession(this.id, {
        signal: this.controller.signal,
        // An answer after we have given up on the lease would be no use.
        timeoutMs: Math.min(this.ctx.requestTimeoutMs, Math.max(1, this.lostAt - sentAt)),
      });
    } catch (err) {
      this.assertActive();
      throw err;
    }
    this.assertActive();
    if (!alive) {
      const err = new LeaseError(
        "LEASE_EXPIRED",
        `Consul session ${this.id} for key ${JSON.stringify(this.ctx.key)} no longer exists`,
        { key: this.ctx.key },
      );
      this.stop("lost", err);
      throw err;
    }
    if (sentAt > this.lastRenewedAt) {
      this.lastRenewedAt = sentAt;
      this.armLostTimer();
    }
  }

  async handoff(nodeId: string): Promise<void> {
    this.assertActive();
    if (this.handoffHandlers.size === 0) {
      throw new LeaseError("LEASE_HANDOFF_FAILED", `cannot hand off to node ${nodeId}: no handoff handler registered`, {
        key: this.ctx.key,
      });
    }
    // A fresh TTL gives the target the longest time to take over.
    await this.renew();
    const { api, key } = this.ctx;
    const before = await api.get(key, { signal: this.controller.signal });
    if (before?.session !== this.id) {
      throw new LeaseError("LEASE_HANDOFF_FAILED", `cannot hand off: Consul key ${JSON.stringify(key)} is no longer held by this node's session`, { key });
    }
    try {
      for (const handler of [...this.handoffHandlers]) await handler({ nodeId, leaseId: handoffToken(this.id, before.modifyIndex) });
    } catch (err) {
      throw new LeaseError(
        "LEASE_HANDOFF_FAILED",
        `handoff of ${JSON.stringify(this.ctx.key)} to node ${nodeId} failed, staying primary: ${(err as Error)?.message ?? err}`,
        { key: this.ctx.key, cause: err },
      );
    }
    if (!(await this.awaitTakeover(before.modifyIndex))) {
      throw new LeaseError(
        "LEASE_HANDOFF_FAILED",
        `node ${nodeId} did not take over the lease on ${JSON.stringify(key)} within ${this.takeoverWaitMs / 1000}s: this node took it back and stays primary`,
        { key },
      );
    }
    const handedOff = new LeaseError("LEASE_HANDED_OFF", `lease on ${JSON.stringify(this.ctx.key)} handed off to node ${nodeId}`, {
      key: this.ctx.key,
    });
    // Lost while the handlers ran: then it is lost, not handed off.
    if (!this.stop("handed-off", handedOff)) throw this.controller.signal.reason;
    this.ctx.released(this);
    this.ctx.logger.info({ key: this.ctx.key, session: this.id, nodeId }, "handed off primary lease");
  }

  /** How long a handoff waits for the target to take the key over before taking it back. */
  private get takeoverWaitMs(): number {
    return Math.min(5_000, this.ttlMs / 2);
  }

  /**
   * After the handoff was sent: true once the target rewrote the key (it holds the lease now);
   * false when it did not within takeoverWaitMs and this node took the key back with the same
   * check-and-set the target uses (so the target can no longer take it). Keeps renewing meanwhile.
   */
  private async awaitTakeover(index: number): Promise<boolean> {
    const { api, key } = this.ctx;
    const deadline = clock() + this.takeoverWaitMs;
    const changed = async (): Promise<boolean> => {
      const entry = await api.get(key, { signal: this.controller.signal });
      if (entry?.modifyIndex === index) return false;
      if (entry?.session !== this.id) throw this.controller.signal.reason ?? new LeaseError("LEASE_EXPIRED", `Consul key ${JSON.stringify(key)} is no longer held by session ${this.id}`, { key });
      return true;
    };
    while (clock() < deadline) {
      this.assertActive();
      if (await changed()) return true;
      await new Promise((r) => setTimeout(r, TAKEOVER_POLL_MS));
    }
    if (await api.putCas(key, this.ctx.value(index), index, { signal: this.controller.signal })) {
      this.ctx.logger.warn({ key, session: this.id }, "the handoff target did not take over the lease: took it back");
      return false;
    }
    // The key changed between our last look and the check-and-set: the target won.
    return changed();
  }

  onHandoff(cb: HandoffHandler): () => void {
    this.handoffHandlers.add(cb);
    return () => this.handoffHandlers.delete(cb);
  }

  onLost(cb: (err: LeaseError) => void): () => void {
    this.lostHandlers.add(cb);
    return () => this.lostHandlers.delete(cb);
  }

  /**
   * Releases the key (empty value: no primary) and then destroys the session, in that order:
   * destroying a session that still holds the key would start lock-delay and keep the next
   * primary waiting. A handed-off lease leaves both to its new owner. Rejects if Consul could
   * not be told; the session then expires by itself after the TTL.
   */
  close(): Promise<void> {
    this.closing ??= this.release();
    return this.closing;
  }

  private async release(): Promise<void> {
    const prior = this.state;
    this.stop("closed", new LeaseError("LEASE_CLOSED", `lease on ${JSON.stringify(this.ctx.key)} closed`, { key: this.ctx.key }));
    this.ctx.released(this);
    if (prior === "handed-off") return;
    const { api, key, logger } = this.ctx;
    try {
      if (!(await api.release(key, "", this.id))) {
        logger.info({ key, session: this.id }, "lease key was no longer held by this session");
      }
    } catch (err) {
      logger.warn({ err, key, session: this.id }, "could not release lease key");
    }
    await api.destroySession(this.id);
    logger.info({ key, session: this.id }, "released primary lease");
  }

  private scheduleRenew(delayMs: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renewTick(), Math.max(0, delayMs));
  }

  private async renewTick(): Promise<void> {
    if (this.state !== "active") return;
    try {
      await this.renew();
      this.scheduleRenew(this.lastRenewedAt + this.ttlMs / 2 - clock());
    } catch (err) {
      if (this.state !== "active") return;
      const left = this.lostAt - clock();
      this.ctx.logger.warn({ err, key: this.ctx.key, session: this.id, msLeft: Math.round(left) }, "lease renewal failed, retrying");
      if (left > 0) this.scheduleRenew(Math.min(this.retryDelayMs, left));
    }
  }

  private armLostTimer(): void {
    clearTimeout(this.lostTimer);
    this.lostTimer = setTimeout(() => this.declareLost(), Math.max(0, this.lostAt - clock()));
  }

  private declareLost(): void {
    const lateMs = Math.round(clock() - this.lostAt);
    this.stop(
      "lost",
      new LeaseError(
        "LEASE_EXPIRED",
        `lease on ${JSON.stringify(this.ctx.key)} not renewed within its ${this.ttlMs}ms TTL; ` +
          (lateMs > this.marginMs
            ? `noticed ${lateMs}ms late (was this process paused?): another node may hold the lease already`
            : "giving it up before Consul can let another node acquire"),
        { key: this.ctx.key },
      ),
    );
  }

  /** Leaves the active state once; false if it was already left. */
  private stop(state: Exclude<LeaseState, "active">, reason: LeaseError): boolean {
    if (this.state !== "active") return false;
    this.state = state;
    clearTimeout(this.renewTimer);
    clearTimeout(this.lostTimer);
    // Signal listeners (the node turning read-only) run first, synchronously.
    this.controller.abort(reason);
    if (state === "lost") {
      this.ctx.logger.warn({ key: this.ctx.key, session: this.id, err: reason }, "primary lease lost");
      for (const cb of [...this.lostHandlers]) {
        try {
          cb(reason);
        } catch (err) {
          this.ctx.logger.error({ err }, "lease onLost handler threw");
        }
      }
    }
    return true;
  }

  private assertActive(): void {
    if (this.state !== "active") throw this.controller.signal.reason;
  }
}
