import { once } from "node:events";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import type { ServerResponse } from "node:http";
import type { Logger } from "pino";
import { HEADER_SIZE, LtxError, Position, TRAILER_SIZE, decodeHeader, decodeLtx, decodeTrailer, type LtxHeader } from "../ltx/index.js";
import type { ConnectedReplica } from "../node/replicas.js";
import type { Database } from "../store/database.js";
import { readLtxEnds, type LtxFileInfo } from "../store/ltx-directory.js";
import type { Store } from "../store/store.js";
import { encodeEndFrame, encodeHandoffFrame, encodeHeartbeatFrame, encodeLtxFrameHeader, encodeReadyFrame, StreamError } from "./frames.js";
import { noteChecksumMismatch, type ReplicationObserver } from "./stream-observer.js";
import type { StreamRequest } from "./stream-request.js";

export interface StreamServerOptions {
  store: Store;
  log: Logger;
  compress: boolean;
  heartbeatMs: number;
  observer?: ReplicationObserver;
}

/**
 * Serves one replica's stream (DESIGN.md section 6). For every database it brings the replica
 * from the position it reported to the primary's: the LTX files that follow it when they exist
 * and their pre-apply checksum matches, otherwise a snapshot of the live database (retention
 * gap, replica ahead, checksums diverged). Then READY, then every new commit as it happens, and
 * a heartbeat whenever nothing else was sent for a while. Ends when the replica goes away or
 * `signal` aborts (this node stops being the primary). A handoff to this replica
 * (`control.pendingHandoff`) is sent once every commit has been.
 */
export async function serveStream(
  req: StreamRequest,
  res: ServerResponse,
  opts: StreamServerOptions,
  signal: AbortSignal,
  control: ConnectedReplica,
): Promise<void> {
  const { store, log } = opts;
  const wanted = req.databases ? new Set(req.databases) : null;
  const sent = new Map<string, Position>(req.positions);
  const dirty = new Set<string>();
  let wake: (() => void) | null = null;
  const poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  control.poke = poke;

  const include = (name: string) => wanted === null || wanted.has(name);
  for (const db of store.allDatabases()) if (include(db.name)) dirty.add(db.name);
  const unsubscribe = store.onCommit((ev) => {
    if (!include(ev.db.name)) return;
    dirty.add(ev.db.name);
    control.behindSince ??= Date.now();
    poke();
  });
  let closed = false;
  // Ends work done only for this replica (a snapshot being built) once it has gone away.
  const gone = new AbortController();
  const onClose = () => {
    closed = true;
    gone.abort(`the stream to ${req.hostname} closed`);
    poke();
  };
  res.on("close", onClose);
  signal.addEventListener("abort", onClose);

  const write = async (chunk: Uint8Array) => {
    if (closed) throw new StreamError("STREAM_CLOSED", "stream closed");
    if (!res.write(chunk)) await drainedOrClosed(res);
  };

  /** The database being sent when the stream failed, for the log line. */
  let current: string | undefined;
  try {
    let ready = false;
    while (!closed) {
      const sending = dirty.size > 0;
      if (sending) {
        const names = [...dirty];
        dirty.clear();
        for (const name of names) {
          const db = store.allDatabases().find((d) => d.name === name);
          current = name;
          if (db && !closed) await catchUp(db, sent, write, opts, req, gone.signal);
          current = undefined;
        }
      }
      // After the first pass, even when there was nothing to send (a primary without databases).
      if (!ready && !closed) {
        await write(encodeReadyFrame());
        ready = true;
      }
      if (sending) continue;
      control.behindSince = null; // every commit so far has been written to the stream
      const handoff = control.pendingHandoff;
      if (handoff) {
        // Every commit has been sent (nothing is dirty): the replica is caught up.
        control.pendingHandoff = null;
        await write(encodeHandoffFrame(handoff.leaseId));
        handoff.resolve();
        continue;
      }
      const idle = await Promise.race([
        new Promise<boolean>((resolve) => (wake = () => resolve(false))),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), opts.heartbeatMs).unref()),
      ]);
      wake = null;
      if (idle && !closed) await write(encodeHeartbeatFrame(Date.now()));
    }
    if (signal.aborted && !res.writableEnded) res.write(encodeEndFrame(String(signal.reason ?? "primary is stepping down")));
  } catch (err) {
    if (!closed) log.warn({ err, replica: req.hostname, db: current, txid: current === undefined ? undefined : sent.get(current)?.txid }, "replication stream failed");
  } finally {
    control.pendingHandoff?.reject(new StreamError("STREAM_CLOSED", `stream to ${req.hostname} closed before the handoff was sent`));
    control.pendingHandoff = null;
    unsubscribe();
    signal.removeEventListener("abort", onClose);
    res.off("close", onClose);
    if (!res.writableEnded) res.end();
  }
}

/** Sends what one database's replica is missing, until it matches the primary's position. */
async function catchUp(
  db: Database,
  sent: Map<string, Position>,
  write: (chunk: Uint8Array) => Promise<void>,
  opts: StreamServerOptions,
  req: StreamRequest,
  gone: AbortSignal,
): Promise<void> {
  let have = sent.get(db.name) ?? Position.ZERO;
  // A database the replica never had and that is gone now: nothing to send.
  if (have.txid === 0 && !db.exists) {
    sent.set(db.name, db.position);
    return;
  }
  for (let guard = 0; guard < 1_000_000; guard++) {
    const cur = db.position;
    if (have.equals(cur)) break;
    if (have.txid < cur.txid) {
      const next = await nextFile(db, have, opts);
      if (next) {
        if (next.bytes) await write(Buffer.concat([encodeLtxFrameHeader(db.name, next.bytes.length), next.bytes]));
        else await sendFile(db.name, next.file.path, write);
        have = next.after;
        continue;
      }
    }
    if (!db.exists) {
      // Dropped on the primary: the deletion file applies to any earlier position.
      const last = db.ltx.latest();
      if (last) await sendFile(db.name, last.path, write);
      have = cur;
      continue;
    }
    opts.log.info({ db: db.name, txid: cur.txid, replica: req.hostname, from: have.toString(), to: cur.toString() }, "sending snapshot");
    if (have.txid > 0) await logDiscarded(db, have, req, opts.log);
    // An import leaves a snapshot LTX: sent as it is, rather than built again.
    const stored = await storedSnapshot(db, have);
    if (stored) {
      await sendFile(db.name, stored.path, write);
      opts.observer?.snapshotSent(db.name);
      have = stored.after;
      continue;
    }
    // Built off the FUSE thread while commits go on; it holds exactly the position it started at.
    const started = Date.now();
    let snapshot;
    try {
      snapshot = await withHeartbeats(opts.store.writeSnapshot(db, "snapshot", opts.compress, gone), write, opts.heartbeatMs);
    } catch (err) {
      if (gone.aborted) opts.log.info({ db: db.name, replica: req.hostname, ms: Date.now() - started }, "snapshot abandoned: the replica went away");
      throw noteChecksumMismatch(err, db.name, opts.observer);
    }
    opts.log.info({ db: db.name, txid: snapshot.position.txid, replica: req.hostname, bytes: snapshot.size, ms: Date.now() - started }, "snapshot written; sending it");
    try {
      await sendFile(db.name, snapshot.path, write);
      opts.observer?.snapshotSent(db.name);
      have = snapshot.position;
    } finally {
      await fsp.rm(snapshot.path, { force: true });
    }
  }
  sent.set(db.name, have);
}

/**
 * A replica whose position is not on this primary's history loses what only it had: find the
 * last position both share (from the replica's recent history) and name the TXIDs discarded.
 */
async function logDiscarded(db: Database, have: Position, req: StreamRequest, log: Logger): Promise<void> {
  const files = new Map(db.ltx.list().map((f) => [f.maxTxid, f]));
  const history = req.history.get(db.name) ?? [];
  let common: Position | null = null;
  for (const pos of [...history].reverse()) {
    const file = files.get(pos.txid);
    if (!file) continue;
    const post = await readLtxEnds(file.path).then((r) => r.postApplyChecksum).catch(() => null);
    if (post === pos.postApplyChecksum) {
      common = pos;
      break;
    }
  }
  if (common && common.equals(have)) return; // only behind (retention gap), nothing discarded
  if (!common && !files.has(have.txid) && have.txid < db.position.txid) {
    // Behind the history kept here (retention, or an import replaced it): nothing to compare with.
    log.info(
      { db: db.name, replica: req.hostname, txid: have.txid },
      `replica ${req.hostname} is at TXID ${have.txid} of ${db.name}, older than the LTX files this primary keeps, so it cannot be compared: the snapshot replaces it`,
    );
    return;
  }
  if (common) {
    log.warn(
      { db: db.name, replica: req.hostname, from: common.txid + 1, to: have.txid },
      `replica ${req.hostname} diverged after TXID ${common.txid}: its TXIDs ${common.txid + 1}..${have.txid} of ${db.name} are discarded`,
    );
  } else {
    log.warn(
      { db: db.name, replica: req.hostname, to: have.txid },
      `replica ${req.hostname} is at ${have.toString()} of ${db.name}, which this primary never had: its transactions up to TXID ${have.txid} that are not in the snapshot are discarded`,
    );
  }
}

/** Files up to this size are read whole, synchronously (the backing filesystem, never the mount), and sent in one write. */
const READ_WHOLE_BYTES = 256 * 1024;

/**
 * The stored file that continues from `have`, with the position after it (and its bytes, when
 * it is small: a catch-up of many small files is otherwise a dozen thread-pool round trips per
 * file); null if there is none.
 */
async function nextFile(db: Database, have: Position, opts: StreamServerOptions): Promise<{ file: LtxFileInfo; after: Position; bytes: Buffer | null } | null> {
  // Most files hold one transaction: try that name before listing the folder, whose listing
  // per file sent made a long catch-up quadratic in the number of files.
  const single = db.ltx.pathOf(have.txid + 1, have.txid + 1);
  const file = fs.existsSync(single)
    ? { minTxid: have.txid + 1, maxTxid: have.txid + 1, path: single }
    : db.ltx.list().find((f) => f.minTxid === have.txid + 1);
  if (!file) return null;
  try {
    const bytes = fs.statSync(file.path).size <= READ_WHOLE_BYTES ? fs.readFileSync(file.path) : null;
    // A stored file damaged on disk would be refused by every replica, forever: send a snapshot instead.
    if (bytes && !fileChecksumHolds(bytes, file.path, db.name, opts)) return null;
    const { header, post } = bytes ? headerAndPost(bytes, file.path) : await readLtxEnds(file.path).then((r) => ({ header: r.header, post: r.postApplyChecksum }));
    const fits = have.txid === 0 ? header.minTxid === 1 : header.preApplyChecksum === have.postApplyChecksum;
    return fits ? { file, after: new Position(header.maxTxid, post), bytes } : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null; // removed by retention meanwhile
    throw err;
  }
}

/**
 * The stored file decodes and its checksums hold; when not, the damage is logged (the decoder's
 * message carries both checksums) and counted. Decoding is what every replica does on receipt.
 */
function fileChecksumHolds(bytes: Buffer, path: string, db: string, opts: StreamServerOptions): boolean {
  try {
    decodeLtx(bytes, path);
    return true;
  } catch (err) {
    if (!(err instanceof LtxError)) throw err;
    opts.observer?.checksumMismatch(db);
    opts.log.error({ db, file: path, code: err.code }, `stored LTX file ${path} is damaged (${err.message}); sending a snapshot instead`);
    return false;
  }
}

/** The newest stored snapshot (TXIDs 1..N, pre-apply checksum 0) that would move `have` forward. */
async function storedSnapshot(db: Database, have: Position): Promise<{ path: string; after: Position } | null> {
  const file = db.ltx
    .list()
    .filter((f) => f.minTxid === 1 && f.maxTxid > have.txid)
    .pop();
  if (!file) return null;
  try {
    const { header, postApplyChecksum: post } = await readLtxEnds(file.path);
    return header.preApplyChecksum === 0n ? { path: file.path, after: new Position(header.maxTxid, post) } : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null; // removed by retention meanwhile
    throw err;
  }
}


function headerAndPost(bytes: Buffer, path: string): { header: LtxHeader; post: bigint } {
  if (bytes.length < HEADER_SIZE + TRAILER_SIZE) throw new StreamError("STREAM_BAD_FILE", `${path} is too short for an LTX file (${bytes.length} bytes)`);
  return { header: decodeHeader(bytes.subarray(0, HEADER_SIZE), path), post: decodeTrailer(bytes.subarray(bytes.length - TRAILER_SIZE)).postApplyChecksum };
}

/**
 * Awaits `work` (a snapshot being built: seconds for a large database) while writing a heartbeat
 * every `heartbeatMs`, so the replica does not take the silence for a dead primary. The last
 * heartbeat's write is done before this returns: nothing interleaves with the file sent next.
 * (A replica already past READY counts a heartbeat as "in sync": its .lag reads low meanwhile.)
 */
async function withHeartbeats<T>(work: Promise<T>, write: (chunk: Uint8Array) => Promise<void>, heartbeatMs: number): Promise<T> {
  let last: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    // A closed stream fails the next write of the file itself.
    last = last.then(() => write(encodeHeartbeatFrame(Date.now()))).catch(() => undefined);
  }, heartbeatMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    await last;
  }
}

/**
 * Until `res` drains or closes, with both listeners removed after: racing two `once()` calls
 * left the loser attached, one per slow write, for the stream's whole life.
 */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

async function sendFile(name: string, path: string, write: (chunk: Uint8Array) => Promise<void>): Promise<void> {
  const fh = await fsp.open(path, "r");
  try {
    const size = (await fh.stat()).size;
    await write(encodeLtxFrameHeader(name, size));
    const stream = fh.createReadStream({ highWaterMark: 256 * 1024, autoClose: false });
    let sentBytes = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      sentBytes += chunk.length;
      await write(chunk);
    }
    if (sentBytes !== size) throw new StreamError("STREAM_BAD_FILE", `${path} changed size while being sent`);
  } finally {
    await fh.close();
  }
}
