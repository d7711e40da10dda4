import type { Logger } from "pino";
import { request } from "undici";
import { applyReceivedLtx, LtxReceiver, type PageWriter } from "../store/apply.js";
import { readClusterId, writeClusterId } from "../store/cluster-id.js";
import type { Store } from "../store/store.js";
import { authHeaders } from "./auth.js";
import { FrameReader, FrameType } from "./frames.js";

export interface PrimaryLocation {
  hostname: string;
  advertiseUrl: string;
}

export interface ReplicaStreamOptions {
  store: Store;
  writer: PageWriter;
  log: Logger;
  hostname: string;
  token?: string;
  /** lease.databases: only these (empty = all). */
  databases: string[];
  /** lease.candidate: tells the primary it may hand its lease to this node. */
  candidate?: boolean;
  /** Where the primary is now (static config, or the lease); null when there is none. */
  discoverPrimary: () => Promise<PrimaryLocation | null>;
  reconnectDelayMs: number;
  /** No frame for this long (heartbeats come every second) means the primary is gone. */
  idleTimeoutMs?: number;
  /** Called with the lease ID when the primary hands its lease to this node. */
  onHandoff?: (leaseId: string) => void;
}

/**
 * The replica side of replication: connect to the primary, report our positions, then apply
 * what it streams, file by file. Every file is verified before it is applied and must follow the
 * current position; any error drops the connection, and we reconnect with backoff from wherever
 * our last good state is.
 */
export class ReplicaStream {
  private stopped = false;
  private abort: AbortController | null = null;
  private ready = false;
  private connected = false;
  private syncedAt = Date.now();
  private lastFrameAt = 0;
  private readyWaiters: Array<() => void> = [];
  private loop: Promise<void> | null = null;

  constructor(private readonly opts: ReplicaStreamOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    await this.loop;
    this.loop = null;
  }

  /** Resolves once this replica has caught up with the primary for the first time. */
  waitUntilReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** How far behind we may be: 0 while connected and caught up; else time since we were. */
  lagMs(): number {
    if (this.connected && this.ready && Date.now() - this.lastFrameAt < 3000) return 0;
    return Date.now() - this.syncedAt;
  }

  private async run(): Promise<void> {
    let delay = this.opts.reconnectDelayMs;
    while (!this.stopped) {
      try {
        const primary = await this.opts.discoverPrimary();
        if (primary) {
          await this.session(primary);
          delay = this.opts.reconnectDelayMs;
        }
      } catch (err) {
        if (!this.stopped) this.opts.log.warn({ err: (err as Error).message }, "replication stream ended with an error; reconnecting");
        delay = Math.min(delay * 2, 10 * this.opts.reconnectDelayMs, 15_000);
      } finally {
        this.connected = false;
        this.opts.store.setPrimaryHostname(null);
      }
      if (!this.stopped) await sleep(delay);
    }
  }

  private async session(primary: PrimaryLocation): Promise<void> {
    const { store, log } = this.opts;
    const positions: Record<string, string> = {};
    for (const db of store.allDatabases()) if (db.position.txid > 0) positions[db.name] = db.position.toString();
    const body = JSON.stringify({
      nodeId: store.nodeId.toString(16).padStart(16, "0"),
      hostname: this.opts.hostname,
      clusterId: readClusterId(store.dataDir) ?? "",
      candidate: this.opts.candidate ?? false,
      databases: this.opts.databases.length ? this.opts.databases : null,
      positions,
    });
    this.abort = new AbortController();
    const res = await request(new URL("/stream", primary.advertiseUrl), {
      method: "POST",
      body,
      headers: { "content-type": "application/json", ...authHeaders(this.opts.token) },
      signal: this.abort.signal,
      bodyTimeout: this.opts.idleTimeoutMs ?? 5000,
      headersTimeout: 10_000,
    });
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => "");
      throw new Error(`primary ${primary.advertiseUrl} answered ${res.statusCode}: ${text.trim().slice(0, 500)}`);
    }
    const clusterId = String(res.headers["litefs-cluster-id"] ?? "");
    const ours = readClusterId(store.dataDir);
    if (clusterId && ours && clusterId !== ours) {
      res.body.destroy();
      throw new Error(`primary ${primary.advertiseUrl} belongs to cluster ${clusterId}, this node to ${ours}: refusing to replicate`);
    }
    if (clusterId && !ours) writeClusterId(store.dataDir, clusterId);

    const hostname = String(res.headers["litefs-primary-hostname"] ?? primary.hostname);
    this.connected = true;
    store.setPrimaryHostname(hostname);
    log.info({ primary: hostname, url: primary.advertiseUrl }, "connected to primary");

    const reader = new FrameReader(res.body);
    try {
      for (;;) {
        const frame = await reader.next();
        this.lastFrameAt = Date.now();
        if (frame === null) throw new Error("primary closed the stream");
        switch (frame.type) {
          case FrameType.Ltx:
            await this.receive(frame.name, frame.size, reader);
            break;
          case FrameType.Ready:
            this.markSynced(true);
            log.info("caught up with the primary");
            break;
          case FrameType.Heartbeat:
            if (this.ready) this.markSynced(false);
            break;
          case FrameType.Handoff:
            this.opts.onHandoff?.(frame.leaseId);
            break;
          case FrameType.End:
            log.info({ reason: frame.reason }, "primary ended the stream");
            return;
        }
      }
    } finally {
      res.body.destroy();
    }
  }

  private markSynced(first: boolean): void {
    this.syncedAt = Date.now();
    if (first && !this.ready) {
      this.ready = true;
      for (const w of this.readyWaiters.splice(0)) w();
    }
  }

  private async receive(name: string, size: number, reader: FrameReader): Promise<void> {
    const { store } = this.opts;
    const db = store.databaseForReplication(name);
    const receiver = new LtxReceiver(db, `${name} from primary`);
    try {
      for await (const chunk of reader.readBody(size)) await receiver.write(chunk);
      const received = await receiver.finish();
      await applyReceivedLtx(db, received, this.opts.writer);
    } catch (err) {
      await receiver.abort();
      throw err;
    }
    if (this.ready) this.markSynced(false);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
