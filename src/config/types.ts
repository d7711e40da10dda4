/**
 * The validated contents of litefs.yml, in camelCase. Durations are milliseconds (`...Ms`);
 * paths (`fuse.dir`, `data.dir`, TLS files, ...) are absolute, resolved against the working
 * directory like LiteFS does. Strings that may be unset are optional rather than "".
 */
export interface Config {
  exitOnError: boolean;
  skipSync: boolean;
  strictVerify: boolean;
  /** Commands run after the node is primary or synced; the last one is the app. */
  exec: ExecCommand[];
  data: DataConfig;
  fuse: FuseConfig;
  http: HttpConfig;
  proxy: ProxyConfig;
  lease: LeaseConfig;
  backup: BackupConfig;
  replication: ReplicationConfig;
  log: LogConfig;
  tracing: TracingConfig;
}

export interface ExecCommand {
  cmd: string;
  /** Run only when this node is a lease candidate (e.g. migrations). */
  ifCandidate: boolean;
}

/** Synchronous replication (litefs-ts extension; DESIGN.md section 10). */
export interface ReplicationConfig {
  /** Commits wait until this many replicas hold their LTX durably; 0: asynchronous, as LiteFS. */
  syncReplicas: number;
  /** Then the primary degrades to asynchronous until replicas catch up (unless syncStrict). */
  syncTimeoutMs: number;
  /** Never degrade: commits wait until enough replicas acknowledge. */
  syncStrict: boolean;
  /** Count only replicas that are lease candidates (the nodes that can become primary). */
  syncCandidatesOnly: boolean;
}

export interface DataConfig {
  dir: string;
  compress: boolean;
  retentionMs: number;
  retentionMonitorIntervalMs: number;
}

export interface FuseConfig {
  dir: string;
  allowOther: boolean;
  debug: boolean;
  /** How long the thread serving FUSE keeps polling for the next request before it sleeps (0: never). */
  busyPollMs: number;
}

export interface HttpConfig {
  /** host:port the cluster API listens on; host may be empty (all interfaces). */
  addr: string;
  /** Time allowed to send one snapshot on a stream; 0 = no limit. */
  snapshotTimeoutMs: number;
  /** Extension: shared bearer token required on every cluster endpoint. */
  token?: string;
  /** Extension: serve the API over TLS (and expect peers to). */
  tls?: TlsConfig;
}

/** http.tls: PEM files, read at startup and again on SIGHUP. */
export interface TlsConfig {
  cert: string;
  key: string;
  /** Mutual TLS: peers must present a certificate this CA signed; outgoing calls verify against it and present `cert`. */
  ca?: string;
}

export interface ProxyConfig {
  /** Unset target = proxy disabled. When set, addr is set and databases is not empty. */
  addr?: string;
  target?: string;
  /** proxy.db: the databases whose TXIDs the `__txid` cookie carries (LiteFS: exactly one). */
  databases: string[];
  /** Extension: the URL other nodes reach this node's proxy at; unset = derived from the advertise URL. */
  advertiseUrl?: string;
  debug: boolean;
  passthrough: string[];
  alwaysForward: string[];
  maxLagMs: number;
  primaryRedirectTimeoutMs: number;
  readTimeoutMs: number;
  readHeaderTimeoutMs: number;
  writeTimeoutMs: number;
  idleTimeoutMs: number;
  /** Extension: on Fly.io, answer writes on a replica with `fly-replay` (as LiteFS) instead of forwarding them. */
  flyReplay: boolean;
}

export type LeaseType = "consul" | "static";

export interface LeaseConfig {
  type: LeaseType;
  hostname: string;
  /** Unset on a consul node: use http://<hostname>:<API port>, as LiteFS does. */
  advertiseUrl?: string;
  candidate: boolean;
  promote: boolean;
  reconnectDelayMs: number;
  demoteDelayMs: number;
  /** Databases a non-candidate replica receives; empty = all. */
  databases: string[];
  consul: ConsulConfig;
}

export interface ConsulConfig {
  /** Set whenever lease.type is "consul". */
  url?: string;
  key?: string;
  ttlMs: number;
  lockDelayMs: number;
}

export type BackupType = "" | "s3" | "file";

/**
 * backup: continuous backups of every database (src/backup/, docs/backup.md). `type: ""` = off.
 * `url` is s3://bucket/prefix, or file:///dir (backup.path resolved) for type file.
 */
export interface BackupConfig {
  type: BackupType;
  url?: string;
  /** S3-compatible services (MinIO, R2, ...): their endpoint URL. */
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
  /** How often new LTX files are shipped. */
  intervalMs: number;
  snapshotIntervalMs: number;
  /** How far back point-in-time restore reaches. */
  retentionMs: number;
  /** Compaction intervals of levels 1, 2, ... (level 0: files as committed). */
  levelsMs: number[];
  restoreIfEmpty: boolean;
}

export interface LogConfig {
  format: "text" | "json";
  timestamp: boolean;
  debug: boolean;
}

/** Accepted for compatibility with LiteFS config files; not implemented yet. */
export interface TracingConfig {
  enabled: boolean;
  path?: string;
  /** Megabytes per file before rolling. */
  maxSize: number;
  maxCount: number;
  compress: boolean;
}
