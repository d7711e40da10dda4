import type { Logger } from "pino";
import { request } from "undici";
import type { PrimaryInfo } from "../lease/index.js";
import type { ReplicaSession, ReplicaSessionOptions } from "../node/seams.js";
import { isSnapshot } from "../ltx/index.js";
import { applyReceivedBatch, ReceiveBatch, type PageWriter } from "../store/apply.js";
import { readClusterId, writeClusterId } from "../store/cluster-id.js";
import type { Store } from "../store/store.js";
import { authHeaders } from "./auth.js";
import { FrameReader, FrameType, StreamError, type Frame } from "./frames.js";
import type { PeerConnections } from "./tls.js";
import { noteChecksumMismatch, type ReplicationObserver } from "./stream-observer.js";

export interface ReplicaStreamOptions extends ReplicaSessionOptions {
  store: Store;
  writer: PageWriter;
  log: Logger;
  hostname: string;
  token?: string;
  /** https to the primary: the CA to verify it against and the certificate to present (http.tls.ca). */
  connections?: PeerConnections;
  /** lease.databases: only these (empty = all). */
  databases: string[];
  /** lease.candidate: tells the primary it may hand its lease to this node. */
  candidate?: boolean;
  /** This node's own cluster API, told to the primary so `litefs status` can reach it (daemon/leaser.ts nodeUrls). */
  apiUrl?: string;
  reconnectDelayMs: number;
  /** No frame for this long (heartbeats come every second) means the primary is gone. */
  idleTimeoutMs?: number;
  observer?: ReplicationObserver;
  /**
   * The first catch-up's progress, in transactions (`total` as the primary counted them when the
   * stream opened), then once more with `finished` when the replica has caught up (a progress bar).
   */
  onCatchUp?: (done: number, total: number, finished: boolean) => void;
}

/**
 * The replica side of replication: connect to the primary, report our positions, then apply
 * what it streams. Every file is verified before it is applied and must follow the position the
 * one before it leaves; any error drops the connection, and we reconnect with backoff from
 * wherever our last good state is.
 *
 * Files that arrive back to back (more of the stream is already here when one is complete: a
 * replica catching up) are received into one batch and applied together (store/apply.ts:
 * one sync, one mount-agent request under one hold of SQLite's locks). A file with nothing
 * behind it is applied at once, so a replica that keeps up never waits to fill a batch.
 */
export class ReplicaStream implements ReplicaSession {
  private stopped = false;
  private abort: AbortController | null = null;
  private ready = false;
  private connected = false;
  /** Synchronous replication: acknowledges durable files to the primary of this session (POST /ack); null when it did not ask. */
  private acks: ((db: string, txid: number) => void) | null = null;
  /** The first catch-up: transactions to go (from the primary) and applied so far; null once caught up. */
  private catchUp: { total: number; done: number } | null = null;
  private syncedAt = Date.now();
  private lastFrameAt = 0;
  /** Ends the backoff sleep between connection attempts. */
  private wake: (() => void) | null = null;
  private readyWaiters: Array<() => void> = [];
  private loop: Promise<void> | null = null;
  /** The database (and its TXID) whose files failed, for the log line of the error that ended the session. */
  private failedAt: { db: string; txid: number } | null = null;

  constructor(private readonly opts: ReplicaStreamOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
    await this.loop;
    this.loop = null;
  }

  resync(): void {
    this.abort?.abort(new StreamError("STREAM_CLOSED", "reconnecting so the primary compares positions again"));
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
      let attempted = false;
      try {
        const primary = await this.opts.discoverPrimary();
        if (primary) {
          attempted = true;
          await this.session(primary);
          delay = this.opts.reconnectDelayMs;
        }
      } catch (err) {
        const at = this.failedAt;
        if (!this.stopped) {
          this.opts.log.warn({ err: (err as Error).message, code: (err as StreamError).code, ...at }, "replication stream ended with an error; reconnecting");
        }
        delay = Math.min(delay * 2, 10 * this.opts.reconnectDelayMs, 15_000);
      } finally {
        this.failedAt = null;
        this.connected = false;
        this.opts.onPrimary(null);
      }
      if (attempted && !this.stopped) this.opts.observer?.reconnecting();
      // The backoff ends early on stop(): a candidate leaving its replica term goes to acquire the lease now.
      if (!this.stopped) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
      }
    }
  }

  private async session(primary: PrimaryInfo): Promise<void> {
    const { store, log } = this.opts;
    const positions: Record<string, string> = {};
    for (const db of store.allDatabases()) if (db.position.txid > 0) positions[db.name] = db.position.toString();
    const body = JSON.stringify({
      nodeId: store.nodeId.toString(16).padStart(16, "0"),
      hostname: this.opts.hostname,
      clusterId: readClusterId(store.dataDir) ?? "",
      candidate: this.opts.candidate ?? false,
      ...(this.opts.apiUrl !== undefined && { apiUrl: this.opts.apiUrl }),
      databases: this.opts.databases.length ? this.opts.databases : null,
      positions,
      history: Object.fromEntries(store.allDatabases().map((db) => [db.name, db.recentHistory().map((p) => p.toString())])),
    });
    this.abort = new AbortController();
    const res = await unlessAborted(request(new URL("/stream", primary.advertiseUrl), {
      method: "POST",
      body,
      headers: { "content-type": "application/json", ...authHeaders(this.opts.token) },
      signal: this.abort.signal,
      dispatcher: this.opts.connections?.dispatcher,
      bodyTimeout: this.opts.idleTimeoutMs ?? 5000,
      headersTimeout: 10_000,
    }), this.abort.signal);
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => "");
      throw new StreamError("STREAM_REFUSED", `primary ${primary.advertiseUrl} answered ${res.statusCode}: ${text.trim().slice(0, 500)}`);
    }
    const clusterId = String(res.headers["litefs-cluster-id"] ?? "");
    const ours = readClusterId(store.dataDir);
    if (clusterId && ours && clusterId !== ours) {
      res.body.destroy();
      throw new StreamError("STREAM_CLUSTER_MISMATCH", `primary ${primary.advertiseUrl} belongs to cluster ${clusterId}, this node to ${ours}: refusing to replicate`);
    }
    if (clusterId && !ours) writeClusterId(store.dataDir, clusterId);

    const hostname = String(res.headers["litefs-primary-hostname"] ?? primary.hostname);
    this.connected = true;
    this.acks = res.headers["litefs-sync-acks"] === "1" ? this.acknowledger(primary.advertiseUrl) : null;
    const behind = Number(res.headers["litefs-catch-up-txids"]);
    if (!this.ready && this.opts.onCatchUp && Number.isSafeInteger(behind) && behind > 0) this.catchUp = { total: behind, done: 0 };
    const proxyUrl = headerValue(res.headers["litefs-primary-proxy-url"]) ?? primary.proxyUrl;
    this.opts.onPrimary({ hostname, advertiseUrl: primary.advertiseUrl, ...(proxyUrl !== undefined && { proxyUrl }) });
    log.info({ primary: hostname, url: primary.advertiseUrl }, "connected to primary");

    const reader = new FrameReader(res.body);
    try {
      let next: Frame | null = null;
      for (;;) {
        const frame = next ?? (await reader.next());
        next = null;
        this.lastFrameAt = Date.now();
        if (frame === null) throw new StreamError("STREAM_CLOSED", "primary closed the stream");
        switch (frame.type) {
          case FrameType.Ltx: {
            const after = await this.receiveBatch(frame, reader);
            if (after.ended) throw new StreamError("STREAM_CLOSED", "primary closed the stream");
            next = after.next;
            break;
          }
          case FrameType.Ready:
            if (this.catchUp) this.opts.onCatchUp?.(this.catchUp.total, this.catchUp.total, true);
            this.catchUp = null;
            this.markSynced(true);
            log.info("caught up with the primary");
            break;
          case FrameType.Heartbeat:
            if (this.ready) this.markSynced(false);
            break;
          case FrameType.Handoff:
            this.opts.onHandoff(frame.leaseId);
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

  /**
   * Sends acknowledgements one at a time, newest TXID per database only: one that fails is
   * dropped (the primary waits for the next, or degrades after sync-timeout).
   */
  private acknowledger(primaryUrl: string): (db: string, txid: number) => void {
    const nodeId = this.opts.store.nodeId.toString(16).padStart(16, "0");
    const pending = new Map<string, number>();
    let sending = false;
    const send = async (): Promise<void> => {
      sending = true;
      try {
        for (let next = pending.entries().next(); !next.done; next = pending.entries().next()) {
          const [db, txid] = next.value;
          pending.delete(db);
          const query = new URLSearchParams({ node: nodeId, db, txid: String(txid) });
          try {
            const res = await request(new URL(`/ack?${query}`, primaryUrl), {
              method: "POST",
              headers: authHeaders(this.opts.token),
              dispatcher: this.opts.connections?.dispatcher,
              headersTimeout: 10_000,
              bodyTimeout: 10_000,
            });
            await res.body.dump();
            if (res.statusCode !== 200) this.opts.log.warn({ db, txid, status: res.statusCode }, "the primary refused an acknowledgement");
          } catch (err) {
            this.opts.log.warn({ db, txid, err: (err as Error).message }, "acknowledging to the primary failed");
          }
        }
      } finally {
        sending = false;
      }
    };
    return (db, txid) => {
      if (txid <= (pending.get(db) ?? 0)) return;
      pending.set(db, txid);
      if (!sending) void send();
    };
  }

  private markSynced(first: boolean): void {
    this.syncedAt = Date.now();
    if (first && !this.ready) {
      this.ready = true;
      for (const w of this.readyWaiters.splice(0)) w();
    }
  }

  /**
   * Receives the file of `first` and, while more of the stream is already buffered, the LTX
   * files of the same database that follow it, then applies them together. Returns the frame
   * read after the batch that did not belong to it (null if none was read), or `ended` when the
   * stream ended cleanly right after the batch. Files completed before an error in a later one
   * are still applied, then the error is thrown.
   */
  private async receiveBatch(first: Extract<Frame, { type: typeof FrameType.Ltx }>, reader: FrameReader): Promise<{ next: Frame | null; ended: boolean }> {
    const db = this.opts.store.databaseForReplication(first.name);
    const batch = new ReceiveBatch(db);
    let next: Frame | null = null;
    let ended = false;
    let failure: unknown = null;
    try {
      let frame = first;
      for (;;) {
        await this.receiveFile(batch, frame, reader);
        if (batch.full || !(await reader.hasBuffered())) break;
        const after = await reader.next();
        this.lastFrameAt = Date.now();
        if (after === null) {
          ended = true;
          break;
        }
        if (after.type !== FrameType.Ltx || after.name !== first.name) {
          next = after;
          break;
        }
        frame = after;
      }
    } catch (err) {
      failure = noteChecksumMismatch(err, db.name, this.opts.observer);
    }
    const count = batch.files.length;
    if (count > 0) {
      const started = Date.now();
      const before = db.position.txid;
      try {
        await applyReceivedBatch(db, batch.files, this.opts.writer, { onInstalled: this.acks ? (txid) => this.acks!(db.name, txid) : undefined });
      } catch (err) {
        batch.discard();
        this.failedAt = { db: db.name, txid: db.position.txid };
        throw noteChecksumMismatch(err, db.name, this.opts.observer);
      }
      if (count > 1) {
        const from = batch.files[0].header.minTxid;
        this.opts.log.debug({ db: db.name, from, to: db.position.txid, ms: Date.now() - started }, `applied ${count} received LTX files in one batch`);
      }
      for (const { header } of batch.files) {
        if (!isSnapshot(header)) continue;
        this.opts.observer?.snapshotReceived(db.name);
        this.opts.log.info({ db: db.name, txid: header.maxTxid, pages: header.commit }, "snapshot received from the primary and applied");
      }
      if (this.ready) this.markSynced(false);
      if (this.catchUp) {
        const moved = db.position.txid >= before ? db.position.txid - before : db.position.txid;
        this.catchUp.done = Math.min(this.catchUp.total, this.catchUp.done + moved);
        this.opts.onCatchUp?.(this.catchUp.done, this.catchUp.total, false);
      }
    }
    if (failure) {
      this.failedAt = { db: db.name, txid: db.position.txid };
      throw failure;
    }
    return { next, ended };
  }

  private async receiveFile(batch: ReceiveBatch, frame: { name: string; size: number }, reader: FrameReader): Promise<void> {
    const receiver = batch.receiver(`${frame.name} from primary`);
    try {
      for await (const chunk of reader.readBody(frame.size)) receiver.write(chunk);
      const received = receiver.finish();
      // null: a transaction this node made under the HALT lock, streamed back by the primary.
      if (received) batch.add(received);
    } catch (err) {
      receiver.abort();
      throw err;
    }
  }
}

/**
 * undici rejects an aborted request only once it has a connection: one still connecting (to a
 * primary behind a partition, whose SYNs go nowhere) kept `stop()` waiting for the 10 s connect
 * timeout, and a candidate from taking the lease (network fault suite). Settles at the abort;
 * an answer that arrives later is thrown away.
 */
function unlessAborted<T extends { body: { destroy(): unknown } }>(pending: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new StreamError("STREAM_CLOSED", "replication stream stopped"));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    pending.then(
      (res) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) res.body.destroy();
        else resolve(res);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err as Error);
      },
    );
  });
}

function headerValue(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === "" ? undefined : s;
}
