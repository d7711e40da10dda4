/**
 * The few Consul HTTP calls the Consul leaser makes, through the `consul` npm client, with its
 * errors turned into LeaseErrors. Nothing else in the project talks to Consul.
 */
import { EventEmitter } from "node:events";
import Consul from "consul";
import { LeaseError } from "./errors.js";

/** Where Consul is and how to talk to it, read from `lease.consul.url` the way LiteFS reads it. */
export interface ConsulEndpoint {
  secure: boolean;
  host: string;
  port: number;
  /** The URL's password (`http://:token@host:8500`); undefined when there is none. */
  token: string | undefined;
  /** The URL's path without its leading slash; prepended to every key. "" for none. */
  keyPrefix: string;
}

export function parseConsulUrl(url: string): ConsulEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw new LeaseError("LEASE_INVALID_OPTIONS", `lease.consul.url is not a URL: ${JSON.stringify(url)}`, {
      cause: err,
    });
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new LeaseError("LEASE_INVALID_OPTIONS", `lease.consul.url must be http or https, not ${u.protocol}`);
  }
  const secure = u.protocol === "https:";
  const decode = (part: string, what: string) => {
    try {
      return decodeURIComponent(part);
    } catch (err) {
      throw new LeaseError("LEASE_INVALID_OPTIONS", `lease.consul.url has a malformed ${what}`, { cause: err });
    }
  };
  return {
    secure,
    // URL keeps the brackets of an IPv6 literal; http.request wants them gone.
    host: u.hostname.replace(/^\[(.*)\]$/, "$1"),
    // Like Go's HTTP client: no port means the scheme's port, not Consul's 8500.
    port: u.port ? Number(u.port) : secure ? 443 : 80,
    token: u.password ? decode(u.password, "password") : undefined,
    keyPrefix: decode(u.pathname, "path").replace(/^\//, ""),
  };
}

export interface KvEntry {
  /** The value as UTF-8; "" for an empty value. */
  value: string;
  /** The session holding the key's lock, "" if none. */
  session: string;
  modifyIndex: number;
}

export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface SessionSpec {
  name: string;
  node: string | undefined;
  ttlMs: number;
  lockDelayMs: number;
  behavior: "release" | "delete";
}

/** The parts of papi's errors we read. */
interface ClientError {
  isResponse?: boolean;
  isAbort?: boolean;
  statusCode?: number;
  message?: string;
  response?: { body?: unknown };
}

export class ConsulApi {
  private readonly client: Consul;
  private readonly where: string;

  constructor(
    endpoint: ConsulEndpoint,
    private readonly defaultTimeoutMs: number,
  ) {
    this.client = new Consul({
      host: endpoint.host,
      port: endpoint.port,
      secure: endpoint.secure,
      defaults: endpoint.token === undefined ? {} : { token: endpoint.token },
    });
    this.where = `${endpoint.secure ? "https" : "http"}://${endpoint.host}:${endpoint.port}`;
  }

  async registerNode(node: string, opts: CallOptions = {}): Promise<void> {
    await this.call(`register node ${node}`, undefined, opts, (o) =>
      this.client.catalog.register({ node, address: "localhost", ...o } as never),
    );
  }

  async createSession(spec: SessionSpec, opts: CallOptions = {}): Promise<string> {
    const result = await this.call("create session", undefined, opts, (o) =>
      this.client.session.create({
        name: spec.name,
        ...(spec.node === undefined ? {} : { node: spec.node }),
        ttl: goDuration(spec.ttlMs),
        lockdelay: goDuration(spec.lockDelayMs),
        behavior: spec.behavior,
        // No checks: the session lives by its TTL alone (Consul would add serfHealth otherwise).
        checks: [],
        ...o,
      } as never),
    );
    const id = (result as { ID?: unknown } | undefined)?.ID;
    if (typeof id !== "string" || id === "") {
      throw new LeaseError("LEASE_CONSUL_ERROR", `Consul at ${this.where} answered session create without an ID`);
    }
    return id;
  }

  /** False when Consul no longer knows the session. */
  async renewSession(id: string, opts: CallOptions = {}): Promise<boolean> {
    try {
      const result = await this.call(`renew session ${id}`, undefined, opts, (o) =>
        this.client.session.renew({ id, ...o } as never),
      );
      return Array.isArray(result) && result.length > 0;
    } catch (err) {
      if (err instanceof LeaseError && err.code === "LEASE_CONSUL_ERROR" && (err.cause as ClientError)?.statusCode === 404) {
        return false;
      }
      throw err;
    }
  }

  async destroySession(id: string, opts: CallOptions = {}): Promise<void> {
    await this.call(`destroy session ${id}`, undefined, opts, (o) => this.client.session.destroy({ id, ...o } as never));
  }

  async get(key: string, opts: CallOptions = {}): Promise<KvEntry | undefined> {
    const item = (await this.call(`read`, key, opts, (o) => this.client.kv.get({ key, ...o } as never))) as
      | { Value?: string | null; Session?: string; ModifyIndex?: number }
      | undefined;
    if (!item) return undefined;
    return { value: item.Value ?? "", session: item.Session ?? "", modifyIndex: item.ModifyIndex ?? 0 };
  }

  /** PUT ?acquire: true if `session` now holds the key (and the value was written). */
  async acquire(key: string, value: string, session: string, opts: CallOptions = {}): Promise<boolean> {
    return (await this.call("acquire", key, opts, (o) =>
      this.client.kv.set({ key, value, acquire: session, ...o } as never),
    )) === true;
  }

  /** PUT ?release: true if `session` held the key; the value becomes `value`. */
  async release(key: string, value: string, session: string, opts: CallOptions = {}): Promise<boolean> {
    return (await this.call("release", key, opts, (o) =>
      this.client.kv.set({ key, value, release: session, ...o } as never),
    )) === true;
  }

  /** A plain PUT (keeps whoever holds the key's lock). */
  async put(key: string, value: string, opts: CallOptions = {}): Promise<void> {
    await this.call("write", key, opts, (o) => this.client.kv.set({ key, value, ...o } as never));
  }

  /** PUT ?cas: with `index` 0, writes only if the key does not exist. */
  async putCas(key: string, value: string, index: number, opts: CallOptions = {}): Promise<boolean> {
    return (await this.call("write", key, opts, (o) => this.client.kv.set({ key, value, cas: index, ...o } as never))) === true;
  }

  close(): void {
    this.client.destroy();
  }

  private async call<T>(
    what: string,
    key: string | undefined,
    opts: CallOptions,
    run: (o: { timeout: number; ctx?: EventEmitter }) => Promise<T>,
  ): Promise<T> {
    const { signal } = opts;
    signal?.throwIfAborted();
    // papi cancels a request when its ctx emits "cancel".
    const ctx = signal ? new EventEmitter() : undefined;
    const onAbort = () => ctx?.emit("cancel");
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await run({ timeout: Math.max(1, Math.round(opts.timeoutMs ?? this.defaultTimeoutMs)), ...(ctx ? { ctx } : {}) });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw this.toLeaseError(err as ClientError, what, key);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  private toLeaseError(err: ClientError, what: string, key: string | undefined): LeaseError {
    const subject = key === undefined ? what : `${what} ${JSON.stringify(key)}`;
    if (err.isResponse) {
      const status = err.statusCode ?? 0;
      const body = bodyText(err.response?.body) || err.message || "";
      if (status === 403) {
        return new LeaseError(
          "LEASE_CONSUL_DENIED",
          `Consul at ${this.where} refused to ${subject}: 403 ${body}; check the ACL token (the password in lease.consul.url)`,
          { key, cause: err },
        );
      }
      return new LeaseError("LEASE_CONSUL_ERROR", `Consul at ${this.where} failed to ${subject}: ${status} ${body}`, {
        key,
        cause: err,
      });
    }
    return new LeaseError(
      "LEASE_CONSUL_UNREACHABLE",
      `Consul at ${this.where} is unreachable (${subject}): ${err.message ?? String(err)}`,
      { key, cause: err },
    );
  }
}

function bodyText(body: unknown): string {
  if (typeof body === "string") return body.trim();
  if (Buffer.isBuffer(body)) return body.toString("utf8").trim();
  return "";
}

/** A Go duration string Consul parses: "10s", or "1500ms" when not whole seconds. */
function goDuration(ms: number): string {
  return Number.isInteger(ms / 1000) ? `${ms / 1000}s` : `${Math.round(ms)}ms`;
}
