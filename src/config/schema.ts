import * as path from "node:path";
import { z } from "zod";
import { CONSUL_MAX_TTL_MS, CONSUL_MIN_TTL_MS } from "../lease/consul.js";
import { formatDuration, parseDuration } from "./duration.js";
import { ConfigError } from "./errors.js";
import { describe, quoteHint, toProblems, type RawProblem } from "./problems.js";
import type { BackupConfig, Config } from "./types.js";

/**
 * The litefs.yml schema: LiteFS v0.5's keys and defaults (cmd/litefs/config.go), plus our
 * extensions (http.token, http.tls, proxy.advertise-url, proxy.fly-replay, a list in proxy.db). Keys stay as written in YAML until
 * toConfig(), so every problem's path reads like the file.
 */

export const DEFAULT_FUSE_DIR = "/litefs";
export const DEFAULT_DATA_DIR = "/var/lib/litefs";
export const DEFAULT_HTTP_ADDR = ":20202";

const S = 1000;
const M = 60 * S;

/** lease.demote-delay when unset, as in LiteFS. */
export const DEFAULT_DEMOTE_DELAY_MS = 10 * S;

// `key:` with nothing after it is YAML null; LiteFS (Go) treats that as "not set".
const unset = (v: unknown) => (v === null ? undefined : v);

// LiteFS decodes with yaml.v3, which accepts YAML 1.1 booleans in boolean fields.
const YAML11_BOOLS: Record<string, boolean> = Object.fromEntries([
  ...["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"].map((s) => [s, true]),
  ...["n", "N", "no", "No", "NO", "off", "Off", "OFF"].map((s) => [s, false]),
]);

function bool(def: boolean) {
  return z.preprocess((v) => {
    if (typeof v === "string" && Object.hasOwn(YAML11_BOOLS, v)) return YAML11_BOOLS[v];
    return unset(v);
  }, z.boolean().default(def));
}

/** A boolean whose absence means something of its own (a default that depends on other keys). */
function optionalBool() {
  return z.preprocess((v) => {
    if (typeof v === "string" && Object.hasOwn(YAML11_BOOLS, v)) return YAML11_BOOLS[v];
    return unset(v);
  }, z.boolean().optional());
}

/** An optional string; "" counts as unset, as it does in LiteFS. */
function str(s: z.ZodType<string, string> = z.string()) {
  return z.preprocess((v) => (v === "" ? undefined : unset(v)), s.optional());
}

function dir(def: string) {
  return z.preprocess(unset, z.string().default(def));
}

function list() {
  return z.preprocess(unset, z.array(z.string()).default([]));
}

function count(def: number) {
  return z.preprocess(unset, z.number().int().nonnegative().default(def));
}

/**
 * A Go duration string ("10s", "1m30s") as milliseconds. A bare 0 is accepted too.
 * `zeroMeansDefault` mirrors LiteFS, which ignores a zero Consul TTL or lock delay.
 */
function duration(defMs: number, opts: { zeroMeansDefault?: boolean; positive?: boolean } = {}) {
  return z
    .unknown()
    .optional()
    .transform((v, ctx): number => {
      if (v === undefined || v === null) return defMs;
      let ms: number;
      if (v === 0) {
        ms = 0;
      } else if (typeof v !== "string") {
        ctx.addIssue({
          code: "custom",
          message: `expected a duration such as "10s" or "1m30s", got ${describe(v)}`,
        });
        return z.NEVER;
      } else {
        try {
          ms = parseDuration(v);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          ctx.addIssue({ code: "custom", message: err.message });
          return z.NEVER;
        }
      }
      if (ms === 0 && opts.zeroMeansDefault) return defMs;
      if (ms < 0 || (ms === 0 && opts.positive)) {
        const want = opts.positive ? "greater than zero" : "zero or more";
        ctx.addIssue({ code: "custom", message: `must be ${want}, got ${describe(v)}` });
        return z.NEVER;
      }
      return ms;
    });
}

/** A nested mapping: absent or empty (`fuse:`) means all defaults. */
function section<T extends z.ZodType>(schema: T) {
  return z.preprocess(unset, schema.prefault({} as z.input<T>));
}

type Issue = (path: (string | number)[], message: string) => void;

/**
 * Adds a check across several keys of one mapping. It runs whenever the keys it reads (`uses`)
 * parsed, even if other keys did not, so that one run reports every problem in the file.
 */
function crossCheck<T extends z.ZodType>(schema: T, uses: string[], check: (v: z.output<T>, issue: Issue) => void): T {
  return schema.superRefine(
    (v, ctx) => check(v, (path, message) => ctx.addIssue({ code: "custom", path, message })),
    { when: (payload) => !payload.issues.some((i) => uses.includes(String(i.path?.[0]))) },
  );
}

/** Go's net.SplitHostPort shape with a numeric port: ":20202", "0.0.0.0:20202", "[::1]:20202". */
function isHostPort(s: string): boolean {
  const m = /^(?:\[[^[\]]*\]|[^:[\]]*):([0-9]{1,5})$/.exec(s);
  return m !== null && Number(m[1]) <= 65535;
}

const hostPort = z.string().refine(isHostPort, {
  error: (iss) =>
    `must be host:port with a numeric port, such as ":20202" or "127.0.0.1:20202", got ${describe(iss.input)}`,
});

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "";
  } catch {
    return false;
  }
}

function httpUrl() {
  return str(
    z.string().refine(isHttpUrl, {
      error: (iss) => `must be an http:// or https:// URL, got ${describe(iss.input)}`,
    }),
  );
}

// The token travels in an HTTP header.
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

const token = z
  .unknown()
  .optional()
  .transform((v, ctx): string | undefined => {
    if (v === undefined) return undefined;
    // Refuse rather than run without auth because a variable was unset.
    if (v === null || v === "") {
      ctx.addIssue({
        code: "custom",
        message:
          "is empty; remove the key to run without a token, or check that the environment variable it uses is set",
      });
      return z.NEVER;
    }
    if (typeof v !== "string") {
      ctx.addIssue({ code: "custom", message: `expected a string, got ${describe(v)}${quoteHint(v)}` });
      return z.NEVER;
    }
    if (!TOKEN_CHARS.test(v)) {
      ctx.addIssue({ code: "custom", message: "must be printable ASCII without spaces" });
      return z.NEVER;
    }
    return v;
  });

const execItem = z.strictObject({
  cmd: z.string().min(1),
  "if-candidate": bool(false),
});

// LiteFS accepts a single command string or a list of {cmd, if-candidate}.
const exec = z.preprocess((v) => {
  if (typeof v === "string") return v === "" ? [] : [{ cmd: v }];
  return unset(v);
}, z.array(execItem).default([]));

const dataSchema = z.strictObject({
  dir: dir(DEFAULT_DATA_DIR),
  compress: bool(true),
  retention: duration(10 * M),
  // Go's time.Ticker panics on a non-positive interval.
  "retention-monitor-interval": duration(1 * M, { positive: true }),
});

const fuseSchema = z.strictObject({
  dir: dir(DEFAULT_FUSE_DIR),
  "allow-other": bool(false),
  debug: bool(false),
  // The binding returns to the event loop's other work after 1 ms at most anyway (MAX_TURN_NS).
  "busy-poll": duration(0.05).refine((ms) => ms <= 1, { message: "must be at most 1ms (it is how long a CPU spins waiting for the next request)" }),
});

const tlsSchema = crossCheck(z.strictObject({ cert: str(), key: str(), ca: str() }), ["cert", "key", "ca"], (tls, issue) => {
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    const [missing, given] = tls.cert === undefined ? ["cert", "key"] : ["key", "cert"];
    issue([missing], `is required when http.tls.${given} is set (give both or neither)`);
  } else if (tls.ca !== undefined && tls.cert === undefined) {
    // Mutual TLS: the node serves with its certificate and presents it to its peers.
    issue(["ca"], "needs http.tls.cert and http.tls.key: with a CA the node serves TLS and presents its certificate to peers");
  }
});

const httpSchema = z.strictObject({
  addr: z.preprocess(unset, hostPort.default(DEFAULT_HTTP_ADDR)),
  "snapshot-timeout": duration(0),
  token,
  tls: section(tlsSchema),
});

const databaseName = z.string().refine((s) => s !== "" && !s.includes("/"), {
  error: (iss) => `must be a database name without "/", got ${describe(iss.input)}`,
});

// LiteFS takes one database; a list makes the proxy track several.
const proxyDatabases = z.preprocess(
  (v) => (typeof v === "string" ? (v === "" ? [] : [v]) : unset(v)),
  z.array(databaseName).default([]),
);

const proxySchema = crossCheck(
  z.strictObject({
    addr: str(hostPort),
    target: str(hostPort),
    db: proxyDatabases,
    "advertise-url": httpUrl(),
    debug: bool(false),
    passthrough: list(),
    "always-forward": list(),
    "max-lag": duration(10 * S),
    "primary-redirect-timeout": duration(5 * S),
    "read-timeout": duration(0),
    "read-header-timeout": duration(10 * S),
    "write-timeout": duration(0),
    "idle-timeout": duration(30 * S),
    "fly-replay": bool(false),
  }),
  ["addr", "target", "db"],
  (proxy, issue) => {
    if (proxy.target === undefined) return; // no target: the proxy is off, as in LiteFS
    if (proxy.addr === undefined) issue(["addr"], "is required when proxy.target is set");
    if (proxy.db.length === 0) {
      issue(["db"], "is required when proxy.target is set (the database, or list of databases, whose TXID the proxy tracks)");
    }
  },
);

const consulSchema = z.strictObject({
  url: httpUrl(),
  key: str(),
  ttl: duration(10 * S, { zeroMeansDefault: true }),
  "lock-delay": duration(1 * S, { zeroMeansDefault: true }),
});

let leaseSchema = z.strictObject({
  type: z.enum(["consul", "static"]),
  hostname: str(),
  "advertise-url": httpUrl(),
  candidate: bool(true),
  promote: bool(false),
  "reconnect-delay": duration(1 * S),
  "demote-delay": duration(DEFAULT_DEMOTE_DELAY_MS),
  databases: z.preprocess(unset, z.array(databaseName).default([])),
  consul: section(consulSchema),
});

leaseSchema = crossCheck(leaseSchema, ["candidate", "databases"], (lease, issue) => {
  if (lease.candidate && lease.databases.length > 0) {
    issue(["databases"], "cannot filter databases on a candidate node (set lease.candidate: false)");
  }
});

leaseSchema = crossCheck(leaseSchema, ["type", "candidate", "advertise-url"], (lease, issue) => {
  // A static replica finds the primary only through this URL.
  if (lease.type === "static" && !lease.candidate && lease["advertise-url"] === undefined) {
    issue(["advertise-url"], "is required on a static replica (lease.candidate: false): the primary's API URL");
  }
});

leaseSchema = crossCheck(leaseSchema, ["type", "consul"], (lease, issue) => {
  if (lease.type !== "consul") return;
  const consul = lease.consul;
  if (consul.url === undefined) issue(["consul", "url"], 'is required when lease.type is "consul"');
  if (consul.key === undefined) {
    issue(["consul", "key"], 'is required when lease.type is "consul" (unique per cluster, e.g. "litefs/myapp")');
  }
  if (consul.ttl < CONSUL_MIN_TTL_MS || consul.ttl > CONSUL_MAX_TTL_MS) {
    issue(["consul", "ttl"], `must be between 10s and 24h (Consul's limits), got ${formatDuration(consul.ttl)}`);
  }
});

/** LiteFS Cloud, LiteFS's only backup target, was shut down in 2024. */
export const LITEFS_CLOUD_GONE =
  "LiteFS Cloud was shut down in 2024 and can no longer be backed up to; use type: s3 (any S3-compatible storage) or type: file instead";

/** Litestream 0.5's compaction levels: files shipped each `interval` are merged every 30s, 5m and 1h. */
export const DEFAULT_BACKUP_LEVELS_MS = [30 * S, 5 * M, 60 * M];

const backupSchema = crossCheck(
  z.strictObject({
    type: z.preprocess(unset, z.enum(["", "s3", "file", "litefs-cloud"]).default("")),
    url: str(),
    /** LiteFS's key for type: file; `url: file:///dir` says the same. */
    path: str(),
    endpoint: httpUrl(),
    region: str(),
    "access-key-id": str(),
    "secret-access-key": str(),
    "force-path-style": optionalBool(),
    interval: duration(1 * S, { positive: true }),
    "snapshot-interval": duration(24 * 60 * M, { positive: true }),
    retention: duration(168 * 60 * M, { positive: true }),
    levels: z.preprocess(unset, z.array(duration(0, { positive: true })).optional()),
    "restore-if-empty": bool(false),
    // LiteFS Cloud's keys: read so that LiteFS files load, refused with its type below.
    cluster: str(),
    "auth-token": str(),
  }),
  ["type", "url", "path", "access-key-id", "secret-access-key", "levels"],
  (backup, issue) => {
    switch (backup.type) {
      case "":
        return;
      case "litefs-cloud":
        issue(["type"], LITEFS_CLOUD_GONE);
        return;
      case "file":
        if (backup.path === undefined && backup.url === undefined) {
          issue(["url"], 'is required when backup.type is "file" (file:///path/to/backups, or backup.path)');
        } else if (backup.url !== undefined && !backup.url.startsWith("file://")) {
          issue(["url"], `must be a file:// URL when backup.type is "file", got ${describe(backup.url)}`);
        }
        break;
      case "s3":
        if (backup.url === undefined) issue(["url"], 'is required when backup.type is "s3" (s3://bucket/prefix)');
        else if (!/^s3:\/\/[^/]+/.test(backup.url)) issue(["url"], `must be s3://bucket[/prefix], got ${describe(backup.url)}`);
        if ((backup["access-key-id"] === undefined) !== (backup["secret-access-key"] === undefined)) {
          const missing = backup["access-key-id"] === undefined ? "access-key-id" : "secret-access-key";
          issue([missing], "is required when the other AWS key is set (give both, or neither to use the AWS default credentials)");
        }
        break;
    }
    const levels = backup.levels;
    if (levels) {
      if (levels.length === 0 || levels.length > 8) issue(["levels"], "must list 1 to 8 compaction intervals, e.g. [30s, 5m, 1h]");
      for (let i = 1; i < levels.length; i++) {
        if (levels[i]! <= levels[i - 1]!) issue(["levels", i], "must be longer than the level before it");
      }
    }
  },
);

// Synchronous replication, a litefs-ts extension (LiteFS replicates asynchronously only).
const replicationSchema = z.strictObject({
  "sync-replicas": count(0),
  "sync-timeout": duration(5_000, { positive: true }),
  "sync-strict": bool(false),
  "sync-candidates-only": bool(false),
});

const logSchema = z.strictObject({
  format: z.preprocess(unset, z.enum(["text", "json"]).default("text")),
  timestamp: bool(false),
  debug: bool(false),
});

const tracingSchema = z.strictObject({
  enabled: bool(true),
  path: str(),
  "max-size": count(64),
  "max-count": count(8),
  compress: bool(true),
});

const rootSchema = z.preprocess(
  (v) => v ?? {}, // an empty file is all defaults
  z.strictObject({
    "exit-on-error": bool(true),
    "skip-sync": bool(false),
    "strict-verify": bool(false),
    exec,
    data: section(dataSchema),
    fuse: section(fuseSchema),
    http: section(httpSchema),
    proxy: section(proxySchema),
    lease: section(leaseSchema),
    backup: section(backupSchema),
    replication: section(replicationSchema),
    log: section(logSchema),
    tracing: section(tracingSchema),
  }),
);

type Parsed = z.output<typeof rootSchema>;

/**
 * Validates the YAML as loaded (plain JS values) and returns the Config, or every problem found.
 * Relative paths resolve against `cwd`; an unset lease.hostname becomes `hostname`.
 */
export function validateConfig(
  raw: unknown,
  opts: { cwd: string; hostname: string },
): { config: Config; problems: [] } | { config?: undefined; problems: RawProblem[] } {
  const result = rootSchema.safeParse(raw, { reportInput: true });
  const problems = result.success ? [] : result.error.issues.flatMap((iss) => toProblems(iss, knownKeys));

  // The two directories are checked against each other even when other sections are wrong,
  // so that one run reports everything.
  const fuseDir = dirIn(raw, "fuse", DEFAULT_FUSE_DIR);
  const dataDir = dirIn(raw, "data", DEFAULT_DATA_DIR);
  if (fuseDir !== undefined && dataDir !== undefined) problems.push(...checkDirs(fuseDir, dataDir, opts.cwd));

  if (!result.success || problems.length > 0) return { problems };
  return { config: toConfig(result.data, opts), problems: [] };
}

/** `<section>.dir` from the raw YAML, defaulted; undefined if it is not a string. */
function dirIn(raw: unknown, section: string, def: string): string | undefined {
  const sec = isPlainObject(raw) ? raw[section] : undefined;
  return dir(def).safeParse(isPlainObject(sec) ? sec.dir : undefined).data;
}

function checkDirs(fuseDir: string, dataDir: string, cwd: string): RawProblem[] {
  const problems: RawProblem[] = [];
  if (fuseDir === "") problems.push({ path: ["fuse", "dir"], message: "is required (the mount point)" });
  if (dataDir === "") problems.push({ path: ["data", "dir"], message: "is required (where LiteFS keeps its data)" });
  if (problems.length > 0) return problems;

  const fuse = path.resolve(cwd, fuseDir);
  const data = path.resolve(cwd, dataDir);
  if (fuse === data) {
    problems.push({ path: ["fuse", "dir"], message: `must differ from data.dir (both are ${fuse})` });
  } else if (data.startsWith(fuse + path.sep) || fuse === path.parse(fuse).root) {
    // The daemon would reach its own backing files through its own mount.
    problems.push({ path: ["data", "dir"], message: `must not be inside fuse.dir (${fuse})` });
  }
  return problems;
}

function toConfig(p: Parsed, opts: { cwd: string; hostname: string }): Config {
  const resolve = (f: string) => path.resolve(opts.cwd, f);
  const resolveOpt = (f: string | undefined) => (f === undefined ? undefined : resolve(f));
  const { cert, key, ca } = p.http.tls;
  return {
    exitOnError: p["exit-on-error"],
    skipSync: p["skip-sync"],
    strictVerify: p["strict-verify"],
    exec: p.exec.map((e) => ({ cmd: e.cmd, ifCandidate: e["if-candidate"] })),
    data: {
      dir: resolve(p.data.dir),
      compress: p.data.compress,
      retentionMs: p.data.retention,
      retentionMonitorIntervalMs: p.data["retention-monitor-interval"],
    },
    fuse: { dir: resolve(p.fuse.dir), allowOther: p.fuse["allow-other"], debug: p.fuse.debug, busyPollMs: p.fuse["busy-poll"] },
    http: {
      addr: p.http.addr,
      snapshotTimeoutMs: p.http["snapshot-timeout"],
      ...(p.http.token !== undefined && { token: p.http.token }),
      ...(cert !== undefined && key !== undefined && { tls: { cert: resolve(cert), key: resolve(key), ...(ca !== undefined && { ca: resolve(ca) }) } }),
    },
    proxy: {
      addr: p.proxy.addr,
      target: p.proxy.target,
      databases: p.proxy.db,
      advertiseUrl: p.proxy["advertise-url"],
      debug: p.proxy.debug,
      passthrough: p.proxy.passthrough,
      alwaysForward: p.proxy["always-forward"],
      maxLagMs: p.proxy["max-lag"],
      primaryRedirectTimeoutMs: p.proxy["primary-redirect-timeout"],
      readTimeoutMs: p.proxy["read-timeout"],
      readHeaderTimeoutMs: p.proxy["read-header-timeout"],
      writeTimeoutMs: p.proxy["write-timeout"],
      idleTimeoutMs: p.proxy["idle-timeout"],
      flyReplay: p.proxy["fly-replay"],
    },
    lease: {
      type: p.lease.type,
      hostname: p.lease.hostname ?? opts.hostname,
      advertiseUrl: p.lease["advertise-url"],
      candidate: p.lease.candidate,
      promote: p.lease.promote,
      reconnectDelayMs: p.lease["reconnect-delay"],
      demoteDelayMs: p.lease["demote-delay"],
      databases: p.lease.databases,
      consul: {
        url: p.lease.consul.url,
        key: p.lease.consul.key,
        ttlMs: p.lease.consul.ttl,
        lockDelayMs: p.lease.consul["lock-delay"],
      },
    },
    backup: toBackupConfig(p.backup, resolveOpt),
    replication: {
      syncReplicas: p.replication["sync-replicas"],
      syncTimeoutMs: p.replication["sync-timeout"],
      syncStrict: p.replication["sync-strict"],
      syncCandidatesOnly: p.replication["sync-candidates-only"],
    },
    log: { format: p.log.format, timestamp: p.log.timestamp, debug: p.log.debug },
    tracing: {
      enabled: p.tracing.enabled,
      path: resolveOpt(p.tracing.path),
      maxSize: p.tracing["max-size"],
      maxCount: p.tracing["max-count"],
      compress: p.tracing.compress,
    },
  };
}

function toBackupConfig(b: Parsed["backup"], resolveOpt: (f: string | undefined) => string | undefined): BackupConfig {
  const dir = b.type === "file" ? (b.url !== undefined ? fileUrlPath(b.url) : resolveOpt(b.path)) : undefined;
  return {
    type: b.type === "litefs-cloud" ? "" : b.type,
    url: b.type === "file" ? `file://${dir}` : b.url,
    ...(b.endpoint !== undefined && { endpoint: b.endpoint }),
    ...(b.region !== undefined && { region: b.region }),
    ...(b["access-key-id"] !== undefined && { accessKeyId: b["access-key-id"] }),
    ...(b["secret-access-key"] !== undefined && { secretAccessKey: b["secret-access-key"] }),
    // MinIO, s3rver and most self-hosted services only understand path-style URLs.
    forcePathStyle: b["force-path-style"] ?? b.endpoint !== undefined,
    intervalMs: b.interval,
    snapshotIntervalMs: b["snapshot-interval"],
    retentionMs: b.retention,
    levelsMs: b.levels ?? DEFAULT_BACKUP_LEVELS_MS,
    restoreIfEmpty: b["restore-if-empty"],
  };
}

function fileUrlPath(url: string): string {
  return decodeURIComponent(new URL(url).pathname);
}

/** The keys the schema allows in the mapping at `at`, found by walking the zod schema. */
function knownKeys(at: (string | number)[]): string[] {
  let s: z.core.$ZodType | undefined = rootSchema;
  for (const seg of [...at, undefined]) {
    // Unwrap the preprocess/default/optional layers around each level.
    for (let d = defOf(s); ; d = defOf(s)) {
      if (d.type === "pipe") s = d.out!;
      else if (d.type === "default" || d.type === "prefault" || d.type === "optional") s = d.innerType!;
      else break;
    }
    if (seg === undefined) break;
    const d = defOf(s);
    if (d.type === "object") s = d.shape![String(seg)];
    else if (d.type === "array") s = d.element;
    else return [];
    if (s === undefined) return [];
  }
  const d = defOf(s);
  return d.type === "object" ? Object.keys(d.shape!) : [];
}

// The parts of zod's schema definitions knownKeys() reads.
interface SchemaDef {
  type: string;
  out?: z.core.$ZodType;
  innerType?: z.core.$ZodType;
  shape?: Record<string, z.core.$ZodType>;
  element?: z.core.$ZodType;
}

function defOf(s: z.core.$ZodType): SchemaDef {
  return s._zod.def as unknown as SchemaDef;
}


function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
