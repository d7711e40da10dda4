import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import {
  LtxError,
  Position,
  databaseChecksumFile,
  decodeHeader,
  decodeTrailer,
  formatChecksum,
  formatTxid,
  HEADER_SIZE,
  TRAILER_SIZE,
  type LtxHeader,
} from "../ltx/index.js";
import { BackupError } from "./errors.js";
import { SNAPSHOT_LEVEL, byTxid, objectPath, type BackupFile } from "./layout.js";
import { ChainMismatch, PageFile } from "./page-file.js";
import type { BackupTarget, ObjectRef } from "./target.js";

export interface RestoreOptions {
  /** Restore the state right after this TXID. */
  txid?: number;
  /** Restore the state at this time (ms since the epoch): after the last transaction committed at or before it. */
  timestamp?: number;
  /** Where the database goes; written beside it under a temporary name and renamed over it. */
  output: string;
  /** Replace an existing output file (restore-if-empty writes into a fresh data dir). */
  overwrite?: boolean;
  /** Called with each object once it is applied (progress, tests). */
  onFile?: (f: BackupFile) => void;
}

export interface RestoreResult {
  position: Position;
  pageSize: number;
  /** The objects applied, in order: a snapshot, then files that reach the position. */
  files: BackupFile[];
  /** Header timestamp of the last object applied (the time of the state restored). */
  timestamp: number;
  bytes: number;
}

/**
 * Rebuilds one database from a backup at the newest state, a TXID or a time (DESIGN.md section
 * 11): picks the newest snapshot at or before the TXID wanted, then at each step the object
 * that reaches furthest without passing it (compacted levels first), so few objects are read.
 * Every object is verified as it is decoded (LTX checksums), each must apply to the position the
 * one before it left (pre-apply checksum), and the rebuilt file's checksum must equal the last
 * object's post-apply checksum. Any failure names the object and leaves no output.
 */
export async function restoreDatabase(target: BackupTarget, db: string, opts: RestoreOptions): Promise<RestoreResult> {
  const files = await target.list(db);
  if (files.length === 0) {
    const others = await target.databases().catch(() => []);
    throw new BackupError(
      "BACKUP_NOT_FOUND",
      `${target.url} holds no backup of database ${JSON.stringify(db)}${others.length ? ` (it holds: ${others.join(", ")})` : " (it is empty)"}`,
    );
  }
  const want = await wantedTxid(target, db, files, opts);
  const snapshot = files
    .filter((f) => f.minTxid === 1 && f.maxTxid <= want)
    .sort((a, b) => b.maxTxid - a.maxTxid || b.level - a.level)[0];
  if (!snapshot) {
    const oldest = files.filter((f) => f.minTxid === 1).sort(byTxid)[0];
    throw new BackupError(
      "BACKUP_MISSING",
      `${target.url}: no snapshot of ${db} at or before TXID ${formatTxid(want)}` +
        (oldest ? ` (the oldest is ${objectPath(oldest)}: retention has removed what came before)` : " (the snapshot objects are missing)"),
    );
  }

  const output = path.resolve(opts.output);
  if (!opts.overwrite && fs.existsSync(output)) {
    throw new BackupError("BACKUP_OUTPUT", `${output} already exists: restore writes a new file (remove it, or pick another with -o)`);
  }
  const tmp = path.join(path.dirname(output), `.${path.basename(output)}.litefs-restore-${process.pid}`);
  let pages: PageFile;
  try {
    pages = await PageFile.create(tmp);
  } catch (err) {
    throw new BackupError("BACKUP_OUTPUT", `cannot write ${tmp}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const applied: BackupFile[] = [];
    let { trailer, header } = await applyObject(target, pages, snapshot, null);
    applied.push(snapshot);
    opts.onFile?.(snapshot);
    let pos = new Position(snapshot.maxTxid, trailer.postApplyChecksum);
    while (pos.txid < want) {
      const next = files
        .filter((f) => f.minTxid === pos.txid + 1 && f.maxTxid <= want)
        .sort((a, b) => b.maxTxid - a.maxTxid || b.level - a.level);
      if (next.length === 0) {
        throw new BackupError(
          "BACKUP_MISSING",
          `${target.url}: the backup of ${db} has a gap: no object starts at TXID ${formatTxid(pos.txid + 1)} ` +
            `(restoring TXID ${formatTxid(want)} from ${objectPath(snapshot)}; reached ${pos.toString()})`,
        );
      }
      let done: Awaited<ReturnType<typeof applyObject>> | null = null;
      for (const f of next) {
        try {
          done = await applyObject(target, pages, f, pos.postApplyChecksum);
          applied.push(f);
          opts.onFile?.(f);
          break;
        } catch (err) {
          if (!(err instanceof ChainMismatch)) throw err;
        }
      }
      if (!done) {
        throw new BackupError(
          "BACKUP_DAMAGED",
          `${target.url}: no object that starts at TXID ${formatTxid(pos.txid + 1)} applies to position ${pos.toString()} ` +
            `(pre-apply checksum differs in ${next.map(objectPath).join(", ")}): the chain is broken`,
        );
      }
      ({ trailer, header } = done);
      pos = new Position(header.maxTxid, trailer.postApplyChecksum);
    }
    if (header.commit === 0) {
      throw new BackupError("BACKUP_NOT_FOUND", `${db} was deleted at TXID ${formatTxid(pos.txid)}: there is no database to restore at that point`);
    }
    await pages.finish();
    const sum = await databaseChecksumFile(tmp, pages.pageSize);
    if (sum !== pos.postApplyChecksum) {
      throw new BackupError(
        "BACKUP_DAMAGED",
        `${target.url}: restored ${db} checksums to ${formatChecksum(sum)} but ${objectPath(applied.at(-1)!)} says ${formatChecksum(pos.postApplyChecksum)}: ` +
          `the objects do not add up to the database they describe`,
      );
    }
    await pages.close();
    try {
      await fsp.rename(tmp, output);
      const dir = await fsp.open(path.dirname(output), "r");
      await dir.sync().finally(() => dir.close());
    } catch (err) {
      throw new BackupError("BACKUP_OUTPUT", `cannot move the restored database to ${output}: ${(err as Error).message}`, { cause: err });
    }
    return { position: pos, pageSize: pages.pageSize, files: applied, timestamp: header.timestamp, bytes: pages.commit * pages.pageSize };
  } finally {
    await pages.close();
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
}

async function applyObject(target: BackupTarget, pages: PageFile, f: BackupFile, expectPre: bigint | null) {
  const name = `${target.url}/${objectPath(f)}`;
  const stream = await target.get(f);
  try {
    const done = await pages.apply(stream, expectPre, name);
    if (done.header.minTxid !== f.minTxid || done.header.maxTxid !== f.maxTxid) {
      throw new BackupError(
        "BACKUP_DAMAGED",
        `${name}: holds TXIDs ${formatTxid(done.header.minTxid)}-${formatTxid(done.header.maxTxid)}, not what its name says`,
      );
    }
    return done;
  } catch (err) {
    if (err instanceof ChainMismatch || err instanceof BackupError) throw err;
    if (err instanceof LtxError) throw new BackupError("BACKUP_DAMAGED", `damaged object: ${err.message}`, { cause: err });
    throw new BackupError("BACKUP_TARGET_UNREACHABLE", `${name}: download failed: ${(err as Error).message}`, { cause: err });
  }
}

/** The TXID the options ask for: given, the last one at or before a time, or the newest. */
async function wantedTxid(target: BackupTarget, db: string, files: BackupFile[], opts: RestoreOptions): Promise<number> {
  const newest = Math.max(...files.map((f) => f.maxTxid));
  if (opts.txid !== undefined) {
    if (opts.txid > newest) {
      throw new BackupError("BACKUP_NOT_FOUND", `${target.url}: the backup of ${db} reaches TXID ${formatTxid(newest)}, not ${formatTxid(opts.txid)}`);
    }
    return opts.txid;
  }
  if (opts.timestamp === undefined) return newest;
  return txidAt(target, db, files, opts.timestamp);
}

/**
 * The last TXID committed at or before `ts`. Header timestamps grow with TXIDs, so a binary
 * search over level 0 (every transaction in the retention window) reads few headers; snapshots
 * count too (older transactions whose level-0 files retention removed).
 */
export async function txidAt(target: BackupTarget, db: string, files: BackupFile[], ts: number): Promise<number> {
  let best = 0;
  const l0 = files.filter((f) => f.level === 0).sort(byTxid);
  let lo = 0;
  let hi = l0.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((await readHeader(target, l0[mid]!)).timestamp <= ts) {
      best = Math.max(best, l0[mid]!.maxTxid);
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  const snapshots = files.filter((f) => f.level === SNAPSHOT_LEVEL || (f.minTxid === 1 && f.level !== 0)).sort(byTxid);
  for (let i = snapshots.length - 1; i >= 0 && snapshots[i]!.maxTxid > best; i--) {
    if ((await readHeader(target, snapshots[i]!)).timestamp <= ts) {
      best = snapshots[i]!.maxTxid;
      break;
    }
  }
  if (best === 0) {
    throw new BackupError("BACKUP_NOT_FOUND", `${target.url}: the backup of ${db} holds nothing committed at or before ${new Date(ts).toISOString()}`);
  }
  return best;
}

export async function readHeader(target: BackupTarget, ref: ObjectRef): Promise<LtxHeader> {
  const bytes = await target.readRange(ref, 0, HEADER_SIZE);
  try {
    return decodeHeader(bytes, `${target.url}/${objectPath(ref)}`);
  } catch (err) {
    throw new BackupError("BACKUP_DAMAGED", `damaged object: ${(err as Error).message}`, { cause: err });
  }
}

export async function readPostApply(target: BackupTarget, ref: ObjectRef): Promise<bigint> {
  const bytes = await target.readRange(ref, -TRAILER_SIZE, TRAILER_SIZE);
  if (bytes.length !== TRAILER_SIZE) throw new BackupError("BACKUP_DAMAGED", `damaged object: ${target.url}/${objectPath(ref)} is too short for an LTX trailer`);
  return decodeTrailer(bytes).postApplyChecksum;
}
