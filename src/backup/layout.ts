/**
 * Where backup objects live, the same for every target:
 *
 *   <root>/<db>/ltx/<level>/<min TXID>-<max TXID>.ltx
 *
 * Level 0 holds files as they were committed; levels 1..n hold level n-1's files merged into
 * larger TXID ranges (Litestream 0.5's layout); SNAPSHOT_LEVEL holds snapshots (TXID 1..max,
 * every page). Every object is an LTX file (LTX.md) that `litefs ltx verify` accepts. The names
 * and the level numbers are the whole index: nothing else is stored.
 */
import { formatLtxFilename, parseLtxFilename } from "../ltx/index.js";

export const SNAPSHOT_LEVEL = 9;

/** One object of a database's backup. */
export interface BackupFile {
  db: string;
  level: number;
  minTxid: number;
  maxTxid: number;
  /** Bytes stored (0 when the target does not say). */
  size: number;
}

export function objectPath(f: Pick<BackupFile, "db" | "level" | "minTxid" | "maxTxid">): string {
  return `${f.db}/ltx/${f.level}/${formatLtxFilename(f.minTxid, f.maxTxid)}`;
}

/** `<db>/ltx/<level>/<min>-<max>.ltx` → the file, or null for anything else. */
export function parseObjectPath(relative: string, size = 0): BackupFile | null {
  const m = /^([^/]+)\/ltx\/([0-9])\/([^/]+)$/.exec(relative);
  if (!m) return null;
  const range = safeParseName(m[3]!);
  if (!range) return null;
  return { db: m[1]!, level: Number(m[2]), ...range, size };
}

function safeParseName(name: string): { minTxid: number; maxTxid: number } | null {
  try {
    return parseLtxFilename(name);
  } catch {
    return null;
  }
}

/** Sorts by max TXID, then level (lower first), then min TXID. */
export function byTxid(a: BackupFile, b: BackupFile): number {
  return a.maxTxid - b.maxTxid || a.level - b.level || a.minTxid - b.minTxid;
}

export function describeFile(f: BackupFile): string {
  return objectPath(f);
}
