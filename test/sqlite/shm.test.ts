import Database from "better-sqlite3";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  READ_MARK_NOT_USED,
  SHM_EXCLUSIVE_LOCK_BYTES,
  SHM_HEADER2_OFFSET,
  SHM_HEADER_SIZE,
  SHM_INDEX_HEADER_SIZE,
  SHM_IS_INIT_OFFSET,
  WAL_HEADER_SIZE,
  WAL_INDEX_VERSION,
  buildInvalidatedWalIndex,
  encodeWalIndexHeader,
  parseWalIndex,
  scanWal,
} from "../../src/sqlite/index.js";
import { readFile, readerOf, snapshotFile, tempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

/** Overwrites the start of a file from another process (see snapshotFile for why). */
function overwriteFrom(file: string, offset: number, data: Uint8Array): void {
  const run = spawnSync("/bin/dd", [`of=${file}`, "bs=1", `seek=${offset}`, "conv=notrunc", "status=none"], {
    input: data,
  });
  expect(run.status, String(run.stderr)).toBe(0);
}

describe("wal-index header", () => {
  it("reads the header SQLite maintains, in agreement with the WAL", () => {
    const file = path.join(dir, "a.db");
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.pragma("wal_autocheckpoint = 0");
    db.exec("create table t(v)");
    for (let i = 0; i < 5; i++) db.exec("insert into t values (randomblob(5000))");
    const shm = snapshotFile(`${file}-shm`);
    const wal = snapshotFile(`${file}-wal`);

    const scan = scanWal(readerOf(wal), wal.length);
    const state = parseWalIndex(shm);
    expect(state).toMatchObject({ valid: true, copiesMatch: true, checksumValid: true });
    expect(state.header).toMatchObject({
      version: WAL_INDEX_VERSION,
      isInit: true,
      bigEndianChecksum: false,
      pageSize: 4096,
      mxFrame: (scan.end - WAL_HEADER_SIZE) / (4096 + 24),
      pageCount: scan.transactions.at(-1)!.commitSize,
      salt1: scan.header.salt1,
      salt2: scan.header.salt2,
      frameChecksum: scan.checksum,
    });
    expect(state.checkpoint.backfill).toBe(0);

    db.pragma("wal_checkpoint(PASSIVE)");
    const after = parseWalIndex(snapshotFile(`${file}-shm`));
    expect(after.checkpoint.backfill).toBe(state.header.mxFrame);
    db.close();
  });

  it("encodes a header byte for byte as SQLite does, checksum included", () => {
    const file = path.join(dir, "a.db");
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.exec("create table t(v); insert into t values (1)");
    const shm = snapshotFile(`${file}-shm`);
    db.close();
    const { header } = parseWalIndex(shm);
    expect(Buffer.from(encodeWalIndexHeader(header)).equals(shm.subarray(0, SHM_HEADER_SIZE))).toBe(true);
    expect(Buffer.from(encodeWalIndexHeader({ ...header, change: header.change + 1 })).equals(shm.subarray(0, 48))).toBe(
      false,
    );
  });

  it("judges torn and uninitialised headers the way a reader would", () => {
    const file = path.join(dir, "a.db");
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.exec("create table t(v); insert into t values (1)");
    const shm = snapshotFile(`${file}-shm`);
    db.close();

    const torn = Buffer.from(shm);
    torn[SHM_HEADER2_OFFSET + 8] ^= 1; // copy 2 written, copy 1 not yet
    expect(parseWalIndex(torn)).toMatchObject({ copiesMatch: false, checksumValid: true, valid: false });
    const uninit = Buffer.from(shm);
    uninit[SHM_IS_INIT_OFFSET] = 0;
    uninit[SHM_HEADER2_OFFSET + SHM_IS_INIT_OFFSET] = 0;
    expect(parseWalIndex(uninit)).toMatchObject({ copiesMatch: true, valid: false });
    const scribbled = Buffer.from(shm);
    scribbled[20] ^= 1;
    scribbled[SHM_HEADER2_OFFSET + 20] ^= 1;
    expect(parseWalIndex(scribbled)).toMatchObject({ copiesMatch: true, checksumValid: false, valid: false });
    expect(() => parseWalIndex(shm.subarray(0, 100))).toThrow(expect.objectContaining({ code: "SHM_SHORT_HEADER" }));
  });

  it("names the lock bytes a replica apply must hold: WRITE, CKPT, RECOVER, READ0..4", () => {
    expect(SHM_EXCLUSIVE_LOCK_BYTES).toEqual([120, 121, 122, 123, 124, 125, 126, 127]);
  });
});

/**
 * A WAL-mode database with two connected readers that have read (and cached) row 1. `apply`
 * replaces the database file's pages behind SQLite's back, as a replica applying an LTX does,
 * then lets `fixShm` rewrite the -shm.
 */
function replicaScenario() {
  const file = path.join(dir, "replica.db");
  const setup = new Database(file);
  setup.pragma("journal_mode = WAL");
  setup.exec("create table t(id integer primary key, v text)");
  for (let i = 1; i <= 50; i++) setup.prepare("insert into t values (?, ?)").run(i, `old-${i}`.padEnd(200, "."));
  setup.pragma("wal_checkpoint(TRUNCATE)");
  setup.close(); // the WAL is checkpointed and removed; everything is in the database file

  const readers = [new Database(file), new Database(file)];
  const read = (r: Database.Database): string =>
    (r.prepare("select v from t where id = 1").get() as { v: string }).v.replace(/\.+$/, "");
  for (const r of readers) expect(read(r)).toBe("old-1");

  let version = 0;
  const apply = (fixShm: (previous: Buffer, pageCount: number) => Uint8Array | null): string => {
    version++;
    const value = `new-${version}`;
    // Build the next database image in a separate file, as the primary would have it.
    const next = path.join(dir, `next-${version}.db`);
    spawnSync("/bin/cp", [file, next]);
    const primary = new Database(next);
    primary.pragma("journal_mode = DELETE");
    primary.prepare("update t set v = ? where id = 1").run(value.padEnd(200, "."));
    primary.close();
    const image = readFile(next);
    // Write it into the replica's database file without opening that file in this process.
    overwriteFrom(file, 0, image);
    const shm = snapshotFile(`${file}-shm`);
    const header = fixShm(shm, image.length / 4096);
    if (header) overwriteFrom(`${file}-shm`, 0, header);
    return value;
  };
  return { file, readers, read, apply, close: () => readers.forEach((r) => r.close()) };
}

describe("buildInvalidatedWalIndex", () => {
  it("makes every connected reader drop its cached pages after pages are applied", () => {
    const s = replicaScenario();
    try {
      for (let round = 0; round < 3; round++) {
        const value = s.apply((previous, pageCount) =>
          buildInvalidatedWalIndex(previous, {
            pageSize: 4096,
            pageCount,
            salt1: 0,
            salt2: 0,
            bigEndianChecksum: false,
            frameChecksum: [0, 0],
          }),
        );
        for (const r of s.readers) expect(s.read(r)).toBe(value);
      }
      const state = parseWalIndex(snapshotFile(`${s.file}-shm`));
      expect(state.valid).toBe(true);
      expect(state.header.mxFrame).toBe(0);
      expect(state.checkpoint.readMarks).toEqual([0, ...Array(4).fill(READ_MARK_NOT_USED)]);
    } finally {
      s.close();
    }
  });

  it("bumps the change counter past the previous header's", () => {
    const prev = new Uint8Array(SHM_INDEX_HEADER_SIZE);
    prev.set(
      encodeWalIndexHeader({
        change: 41,
        bigEndianChecksum: false,
        pageSize: 65536,
        mxFrame: 9,
        pageCount: 3,
        frameChecksum: [1, 2],
        salt1: 3,
        salt2: 4,
      }),
    );
    const next = parseWalIndex(
      buildInvalidatedWalIndex(prev, {
        pageSize: 65536,
        pageCount: 7,
        salt1: 3,
        salt2: 4,
        bigEndianChecksum: false,
        frameChecksum: [1, 2],
      }),
    );
    expect(next.valid).toBe(true);
    expect(next.header).toMatchObject({ change: 42, mxFrame: 0, pageCount: 7, pageSize: 65536 });
    expect(parseWalIndex(buildInvalidatedWalIndex(null, { ...next.header })).header.change).toBe(0);
  });

  it("without a header change, a connected reader keeps serving the pages it cached", () => {
    const s = replicaScenario();
    try {
      s.apply(() => null);
      expect(s.read(s.readers[0])).toBe("old-1");
    } finally {
      s.close();
    }
  });

  it("a header that merely forces recovery is not enough: the other reader stays stale", () => {
    // Why buildInvalidatedWalIndex writes a valid, changed header: recovery rebuilds the header
    // with iChange 0, so a reader whose saved copy equals the rebuilt one sees no change.
    const breakHeader = (previous: Buffer): Uint8Array => {
      const out = Buffer.from(previous.subarray(0, SHM_INDEX_HEADER_SIZE));
      out[SHM_IS_INIT_OFFSET] = 0;
      out[SHM_HEADER2_OFFSET + SHM_IS_INIT_OFFSET] = 0;
      return out;
    };
    const s = replicaScenario();
    try {
      // The readers opened a fresh -shm, so their saved header is already a recovered one.
      const value = s.apply(breakHeader);
      expect(s.read(s.readers[0])).toBe(value); // noticed the broken header and ran recovery
      expect(s.read(s.readers[1])).toBe("old-1"); // rebuilt header equals its saved copy: stale
    } finally {
      s.close();
    }
  });
});
