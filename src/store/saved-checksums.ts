import * as fs from "node:fs";
import * as path from "node:path";
import { CHECKSUM_FLAG, Crc64, type Position } from "../ltx/index.js";
import type { Database } from "./database.js";

/**
 * Page checksums saved at a clean shutdown, so that the next start need not read every page of a
 * large database again to compute them. They are trusted only for the database file exactly as
 * that shutdown left it: same device, inode, size, mtime and ctime (ctime cannot be set back by
 * anyone), no journal or WAL beside it, the position of the last LTX file, and a rolling checksum
 * that adds up to it. The file is consumed by the start that reads it (removed, and the removal
 * made durable, before recovery changes anything), so it can never describe a later state; any
 * doubt means the checksums are computed from the file, as without it.
 *
 * What this gives up: a start that trusts the saved checksums does not notice pages that rotted
 * on disk while the node was down (a full recomputation would refuse to start). Small databases
 * are cheaper to read again than to save, and are not saved.
 */
const FILE_NAME = "page-checksums";
const MAGIC = Buffer.from("LFSPCK01", "latin1");
/** magic, dev, ino, size, mtime ns, ctime ns, txid, checksum (8 bytes each), page size, page count (4 each). */
const HEADER_SIZE = 8 * 8 + 4 + 4;
const CRC_SIZE = 8;
/** Databases below this size are read again at start (a few ms) rather than saved (a few fsyncs). */
export const MIN_SAVED_CHECKSUMS_BYTES = 32 << 20;

export function savedChecksumsPath(db: Database): string {
  return path.join(db.dir, FILE_NAME);
}

/**
 * At a clean shutdown: saves the database's page checksums with the identity of its file, when
 * the file holds exactly its position (no journal, no WAL) and is large enough to be worth it.
 * The database file is fsynced first: what the saved stat describes is on disk. Returns whether
 * it saved them.
 */
export function saveChecksums(db: Database, minBytes = MIN_SAVED_CHECKSUMS_BYTES): boolean {
  const pageCount = db.checksums.pageCount;
  const pageSize = db.pageSize;
  if (db.skipSync || !db.exists || db.position.txid === 0 || pageSize === 0 || pageCount * pageSize < minBytes) return false;
  if (db.files.journal.exists() || db.files.wal.exists()) return false;
  const file = db.files.database.path;
  const fd = fs.openSync(file, "r");
  let st: fs.BigIntStats;
  try {
    fs.fsyncSync(fd);
    st = fs.fstatSync(fd, { bigint: true });
  } finally {
    fs.closeSync(fd);
  }
  if (st.size !== BigInt(pageCount) * BigInt(pageSize) || (CHECKSUM_FLAG | xorAll(db.checksums.view())) !== db.position.postApplyChecksum) return false;

  const buf = Buffer.alloc(HEADER_SIZE + pageCount * 8 + CRC_SIZE);
  MAGIC.copy(buf, 0);
  const fields = [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs, BigInt(db.position.txid), db.position.postApplyChecksum];
  fields.forEach((v, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, v), 8 + i * 8));
  buf.writeUInt32LE(pageSize, 64);
  buf.writeUInt32LE(pageCount, 68);
  const sums = db.checksums.view();
  for (let i = 0; i < pageCount; i++) buf.writeBigUInt64LE(sums[i], HEADER_SIZE + i * 8);
  buf.writeBigUInt64LE(new Crc64().update(buf, 0, buf.length - CRC_SIZE).digest(), buf.length - CRC_SIZE);

  const target = savedChecksumsPath(db);
  const tmp = `${target}.tmp`;
  fs.writeFileSync(tmp, buf);
  const tfd = fs.openSync(tmp, "r");
  try {
    fs.fsyncSync(tfd);
  } finally {
    fs.closeSync(tfd);
  }
  fs.renameSync(tmp, target);
  syncDir(db.dir);
  return true;
}

/**
 * At start, before recovery touches anything: the checksums a clean shutdown saved, if they
 * still describe the database file and `position` (the last LTX file's); null otherwise. The
 * saved file is removed either way (durably), so no later start can trust it.
 */
export function takeSavedChecksums(db: Database, position: Position | null): BigUint64Array | null {
  const target = savedChecksumsPath(db);
  fs.rmSync(`${target}.tmp`, { force: true });
  let buf: Buffer;
  try {
    buf = fs.readFileSync(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  fs.rmSync(target, { force: true });
  syncDir(db.dir);
  const why = rejectReason(db, buf, position);
  if (why) {
    db.log.info({ reason: why }, "page checksums saved at shutdown not used; computing them from the database file");
    return null;
  }
  const pageCount = buf.readUInt32LE(68);
  const sums = new BigUint64Array(pageCount);
  for (let i = 0; i < pageCount; i++) sums[i] = buf.readBigUInt64LE(HEADER_SIZE + i * 8);
  return sums;
}

function rejectReason(db: Database, buf: Buffer, position: Position | null): string | null {
  if (buf.length < HEADER_SIZE + CRC_SIZE || !buf.subarray(0, 8).equals(MAGIC)) return "not a page checksums file";
  const pageCount = buf.readUInt32LE(68);
  const pageSize = buf.readUInt32LE(64);
  if (buf.length !== HEADER_SIZE + pageCount * 8 + CRC_SIZE) return "wrong length";
  if (new Crc64().update(buf, 0, buf.length - CRC_SIZE).digest() !== buf.readBigUInt64LE(buf.length - CRC_SIZE)) return "file checksum mismatch";
  if (!position) return "no LTX file";
  if (db.files.journal.exists() || db.files.wal.exists()) return "a journal or WAL exists";
  const f = (i: number) => buf.readBigUInt64LE(8 + i * 8);
  if (f(5) !== BigInt(position.txid) || f(6) !== position.postApplyChecksum) return "saved at another position";
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(db.files.database.path, { bigint: true });
  } catch {
    return "no database file";
  }
  const now = [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].map((v) => BigInt.asUintN(64, v));
  if (now.some((v, i) => v !== f(i))) return "the database file changed since the shutdown";
  if (st.size !== BigInt(pageCount) * BigInt(pageSize)) return "size is not the saved page count";
  let rolling = 0n;
  for (let i = 0; i < pageCount; i++) rolling ^= buf.readBigUInt64LE(HEADER_SIZE + i * 8);
  if ((CHECKSUM_FLAG | rolling) !== position.postApplyChecksum) return "checksums do not add up to the position";
  return null;
}

function xorAll(sums: BigUint64Array): bigint {
  let x = 0n;
  for (let i = 0; i < sums.length; i++) x ^= sums[i];
  return x;
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
