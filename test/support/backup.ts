import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { expect } from "vitest";
import { decodeHeader, decodeTrailer, HEADER_SIZE, TRAILER_SIZE, parseLtxFilename, type LtxHeader } from "../../src/ltx/index.js";
import { CLI, waitFor, type LitefsNode } from "./node-process.js";
import { info } from "./roles.js";
import { run, sqlite3, type RunResult } from "./sqlite-clients.js";

/** What /info says of a database's backup on the primary (src/backup/ Shipper.status). */
export interface BackupStatus {
  position: string | null;
  txid: number;
  lagMs: number;
  error: string | null;
}

export async function backupStatus(node: LitefsNode, db: string): Promise<BackupStatus | null> {
  const i = (await info(node)) as unknown as { backup?: Record<string, BackupStatus> };
  return i.backup?.[db] ?? null;
}

/** `litefs <args>` to completion. */
export function litefs(args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], { timeoutMs: 120_000, env: env ?? process.env });
}

/** The rolling checksum of a database file, as `litefs ltx checksum` prints it. */
export async function fileChecksum(file: string): Promise<string> {
  const r = await litefs(["ltx", "checksum", file]);
  if (r.code !== 0) throw new Error(`ltx checksum ${file}: ${r.stderr}`);
  return r.stdout.trim();
}

export interface StoredObject {
  level: number;
  minTxid: number;
  maxTxid: number;
  path: string;
  header: LtxHeader;
  post: string;
}

/** Every object of a database in a `file` backup, with its header and post-apply checksum. */
export function fileBackupObjects(dir: string, db: string): Promise<StoredObject[]> {
  return backupObjectsIn(dir, db);
}

/** The objects of `db` under a backup root laid out on disk (`suffix`: what a store appends to each object's file name). */
export async function backupObjectsIn(dir: string, db: string, suffix = ""): Promise<StoredObject[]> {
  const out: StoredObject[] = [];
  const root = path.join(dir, db, "ltx");
  for (const level of await fsp.readdir(root).catch(() => [] as string[])) {
    for (const file of await fsp.readdir(path.join(root, level))) {
      if (!file.endsWith(suffix)) continue;
      const name = file.slice(0, file.length - suffix.length);
      const range = parseLtxFilename(name);
      if (!range) continue;
      const at = path.join(root, level, file);
      const bytes = await fsp.readFile(at);
      out.push({
        level: Number(level),
        ...range,
        path: at,
        header: decodeHeader(bytes.subarray(0, HEADER_SIZE)),
        post: decodeTrailer(bytes.subarray(bytes.length - TRAILER_SIZE)).postApplyChecksum.toString(16).padStart(16, "0"),
      });
    }
  }
  return out.sort((a, b) => a.level - b.level || a.minTxid - b.minTxid);
}

/**
 * Level 0 from `fromTxid` on is one chain: each file starts right after the one before it (no
 * gap, no overlap, so no duplicate) and applies to the checksum it left.
 */
export function expectUnbrokenChain(objects: StoredObject[], fromTxid: number, toTxid: number): void {
  const l0 = objects.filter((o) => o.level === 0 && o.maxTxid > fromTxid && o.minTxid <= toTxid);
  expect(l0.length, "level-0 files").toBeGreaterThan(0);
  expect(l0[0]!.minTxid, "first level-0 file after the start").toBe(fromTxid + 1);
  for (let i = 1; i < l0.length; i++) {
    const prev = l0[i - 1]!;
    const f = l0[i]!;
    expect(f.minTxid, `file after ${prev.maxTxid}`).toBe(prev.maxTxid + 1);
    expect(f.header.preApplyChecksum.toString(16).padStart(16, "0"), `pre-apply of TXID ${f.minTxid}`).toBe(prev.post);
  }
  expect(l0.at(-1)!.maxTxid, "last level-0 file").toBeGreaterThanOrEqual(toTxid);
}

/** Inserts rows one transaction at a time until stopped; records the position after each. */
export function writeLoad(node: LitefsNode, db: string): { positions: string[]; stop: () => Promise<void> } {
  const positions: string[] = [];
  let stopped = false;
  let id = 0;
  const loop = (async () => {
    while (!stopped) {
      await sqlite3(node.db(db), `INSERT INTO t VALUES (${++id}, randomblob(300 + ${id % 7} * 500));`).catch(() => undefined);
      const pos = await node.pos(db).catch(() => null);
      if (pos && pos !== positions.at(-1)) positions.push(pos);
    }
  })();
  return {
    positions,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

export async function waitForBackup(node: LitefsNode, db: string, timeoutMs = 30_000): Promise<string> {
  let want = "";
  await waitFor(
    async () => {
      want = await node.pos(db);
      return (await backupStatus(node, db))?.position === want;
    },
    timeoutMs,
    `the backup of ${db} to reach the node's position`,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message} (backup: ${JSON.stringify(await backupStatus(node, db).catch(() => null))}, node: ${want})\n${node.logs.slice(-3000)}`);
  });
  return want;
}

export function txidOf(pos: string): number {
  return Number.parseInt(pos.split("/")[0]!, 16);
}

export async function create(node: LitefsNode, db: string, mode = "wal"): Promise<void> {
  await sqlite3(node.db(db), `PRAGMA journal_mode=${mode}; CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);`);
}
