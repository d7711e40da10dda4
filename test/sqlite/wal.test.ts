import Database from "better-sqlite3";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  SqliteFormatError,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  WAL_MAGIC_BE,
  WAL_MAGIC_LE,
  WAL_VERSION,
  isWalHeaderValid,
  parseWalFrameHeader,
  parseWalHeader,
  scanWal,
  walChecksum,
  walFrameOffset,
  walStopError,
  type WalScan,
  type WalTransaction,
} from "../../src/sqlite/index.js";
import { putPage, readFile, readerOf, snapshotFile, tempDir } from "./helpers.js";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/wal");

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

function scan(wal: Buffer, fromOffset?: number, checksum?: readonly [number, number]): WalScan {
  return scanWal(readerOf(wal), wal.length, fromOffset, checksum);
}

/** The database after applying each transaction's last page versions and its commit size. */
function applyTransactions(dbBefore: Buffer, wal: Buffer, txns: WalTransaction[], pageSize: number): Buffer {
  let image: Buffer = Buffer.from(dbBefore);
  for (const txn of txns) {
    for (const [pgno, offset] of txn.pages) {
      const page = wal.subarray(offset + WAL_FRAME_HEADER_SIZE, offset + WAL_FRAME_HEADER_SIZE + pageSize);
      image = putPage(image, pgno, page);
    }
    const size = txn.commitSize * pageSize;
    image = image.length >= size ? image.subarray(0, size) : Buffer.concat([image, Buffer.alloc(size - image.length)]);
  }
  return image;
}

interface RealWal {
  before: Buffer;
  wal: Buffer;
  after: Buffer;
  transactions: number;
  pageSize: number;
}

/**
 * A WAL written by SQLite (better-sqlite3) with a known number of transactions: small ones, one
 * that spills pages mid-transaction and rewrites them, one that grows the file and a VACUUM that
 * shrinks it. `before` is the database file before the first frame, `after` the file once the WAL
 * is checkpointed.
 */
function makeRealWal(pageSize = 4096): RealWal {
  const file = path.join(dir, "real.db");
  const db = new Database(file);
  db.pragma(`page_size = ${pageSize}`);
  db.pragma("journal_mode = WAL");
  db.pragma("wal_autocheckpoint = 0");
  db.exec("create table seed(x)");
  db.pragma("wal_checkpoint(TRUNCATE)");
  const before = snapshotFile(file);

  let transactions = 0;
  db.exec("create table t(id integer primary key, v blob)");
  transactions++;
  const insert = db.prepare("insert into t(v) values (randomblob(?))");
  for (let i = 0; i < 20; i++) {
    insert.run(300);
    transactions++;
  }
  db.pragma("cache_size = 3");
  db.transaction(() => {
    for (let i = 0; i < 200; i++) insert.run(700);
    db.exec("update t set v = randomblob(650) where id % 2 = 0");
  })();
  transactions++;
  db.exec("delete from t where id > 50");
  transactions++;
  db.exec("vacuum");
  transactions++;
  db.exec("insert into t(v) values (x'00')");
  transactions++;

  const wal = snapshotFile(`${file}-wal`);
  db.pragma("wal_checkpoint(TRUNCATE)");
  const after = snapshotFile(file);
  db.close();
  return { before, wal, after, transactions, pageSize };
}

/**
 * A WAL written by the sqlite3 CLI with powersafe overwrite off and synchronous=FULL, so each
 * commit frame is repeated up to the next sector boundary. A better-sqlite3 connection holds the
 * database open so that the CLI's close does not checkpoint and delete the WAL.
 */
function makePaddedWal(pageSize: number, inserts: number): RealWal & { holder: Database.Database } {
  const file = path.join(dir, "padded.db");
  const holder = new Database(file);
  holder.pragma(`page_size = ${pageSize}`);
  holder.pragma("journal_mode = WAL");
  holder.exec("create table t(x)");
  holder.pragma("wal_checkpoint(TRUNCATE)");
  const before = snapshotFile(file);
  const sql = Array.from({ length: inserts }, () => "insert into t values (randomblob(100));").join("");
  const run = spawnSync("/usr/bin/sqlite3", [`file:${file}?psow=0`, `PRAGMA synchronous=FULL; ${sql}`], {
    timeout: 30_000,
  });
  expect(run.status, String(run.stderr)).toBe(0);
  const wal = snapshotFile(`${file}-wal`);
  holder.pragma("wal_checkpoint(TRUNCATE)");
  const after = snapshotFile(file);
  return { before, wal, after, transactions: inserts, pageSize, holder };
}

/** Rewrites a little-endian-checksum WAL (up to `end`) with big-endian checksums. */
function toBigEndianChecksums(wal: Buffer, end: number, pageSize: number): Buffer {
  const out = Buffer.from(wal.subarray(0, end));
  out.writeUInt32BE(WAL_MAGIC_BE, 0);
  let [s1, s2] = walChecksum(out.subarray(0, 24), 0, 0, true);
  out.writeUInt32BE(s1, 24);
  out.writeUInt32BE(s2, 28);
  for (let off = WAL_HEADER_SIZE; off < end; off += WAL_FRAME_HEADER_SIZE + pageSize) {
    [s1, s2] = walChecksum(out.subarray(off, off + 8), s1, s2, true);
    [s1, s2] = walChecksum(out.subarray(off + 24, off + 24 + pageSize), s1, s2, true);
    out.writeUInt32BE(s1, off + 16);
    out.writeUInt32BE(s2, off + 20);
  }
  return out;
}

describe("WAL fixtures", () => {
  it("ok.wal: two committed transactions, read to the end of the file", () => {
    const wal = readFile(path.join(fixtures, "ok.wal"));
    const result = scan(wal);
    expect(result.header).toMatchObject({
      magic: WAL_MAGIC_LE,
      bigEndian: false,
      version: WAL_VERSION,
      pageSize: 4096,
      salt1: 0x4875a40b,
      salt2: 0xa38de4f5,
    });
    expect(result.transactions).toHaveLength(2);
    expect(result.transactions[0]).toMatchObject({
      offset: 32,
      size: 2 * 4120,
      firstFrame: 1,
      frameCount: 2,
      paddingFrames: 0,
      commitSize: 2,
    });
    expect([...result.transactions[0].pages]).toEqual([
      [1, 32],
      [2, 4152],
    ]);
    expect(result.transactions[1]).toMatchObject({ offset: 8272, size: 4120, firstFrame: 3, commitSize: 2 });
    expect([...result.transactions[1].pages]).toEqual([[2, 8272]]);
    expect(result.stop).toEqual({ reason: "end-of-file", offset: wal.length });
    expect(result.end).toBe(wal.length);
    expect(result.uncommittedFrames).toBe(0);
    // The running checksum at the end is the one stored in the last frame.
    expect(result.checksum).toEqual(parseWalFrameHeader(wal.subarray(8272)).checksum);
    expect(walStopError(result)).toBeNull();
  });

  it("salt-mismatch.wal: stops at the frame whose salts differ and commits nothing", () => {
    const wal = readFile(path.join(fixtures, "salt-mismatch.wal"));
    const result = scan(wal);
    expect(result.transactions).toEqual([]);
    expect(result.stop).toEqual({ reason: "salt-mismatch", offset: 4152 });
    expect(result.end).toBe(32);
    expect(result.uncommittedFrames).toBe(1);
    expect(walStopError(result)?.code).toBe("WAL_SALT_MISMATCH");
  });

  it("frame-checksum-mismatch.wal: stops at the frame whose checksum fails", () => {
    const wal = readFile(path.join(fixtures, "frame-checksum-mismatch.wal"));
    const result = scan(wal);
    expect(result.transactions).toEqual([]);
    expect(result.stop).toEqual({ reason: "checksum-mismatch", offset: 4152 });
    expect(walStopError(result)?.code).toBe("WAL_CHECKSUM_MISMATCH");
  });
});

describe("walChecksum", () => {
  it("reproduces the header checksum and the first frame's stored checksum", () => {
    const wal = readFile(path.join(fixtures, "ok.wal"));
    const header = walChecksum(wal.subarray(0, 24), 0, 0, false);
    expect(header).toEqual([wal.readUInt32BE(24), wal.readUInt32BE(28)]);
    let c = walChecksum(wal.subarray(32, 40), header[0], header[1], false);
    c = walChecksum(wal.subarray(56, 56 + 4096), c[0], c[1], false);
    expect(c).toEqual([wal.readUInt32BE(48), wal.readUInt32BE(52)]);
  });

  it("big-endian mode reads each word byte-swapped", () => {
    const data = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff));
    const swapped = Buffer.from(data).swap32();
    expect(walChecksum(data, 5, 7, true)).toEqual(walChecksum(swapped, 5, 7, false));
    expect(walChecksum(data, 5, 7, true)).not.toEqual(walChecksum(data, 5, 7, false));
  });

  it("wraps at 32 bits", () => {
    const data = Buffer.alloc(8, 0xff);
    const [s1, s2] = walChecksum(data, 0xffffffff, 0xffffffff, false);
    expect(s1).toBe((0xffffffff + 0xffffffff + 0xffffffff) % 2 ** 32);
    expect(s2).toBe((0xffffffff + 0xffffffff + s1) % 2 ** 32);
  });
});

describe("scanWal on WAL files written by SQLite", () => {
  it("finds every transaction, and their last page versions rebuild the checkpointed database", () => {
    const real = makeRealWal();
    const result = scan(real.wal);
    expect(result.transactions).toHaveLength(real.transactions);
    expect(result.stop.reason).toBe("end-of-file");
    expect(result.uncommittedFrames).toBe(0);
    // The spilling transaction wrote some pages more than once; only the last version counts.
    const frames = result.transactions.reduce((n, t) => n + t.frameCount, 0);
    const pages = result.transactions.reduce((n, t) => n + t.pages.size, 0);
    expect(frames).toBeGreaterThanOrEqual(pages);
    expect(applyTransactions(real.before, real.wal, result.transactions, real.pageSize).equals(real.after)).toBe(true);
  });

  it("works for other page sizes", () => {
    const real = makeRealWal(1024);
    const result = scan(real.wal);
    expect(result.header.pageSize).toBe(1024);
    expect(result.transactions).toHaveLength(real.transactions);
    expect(applyTransactions(real.before, real.wal, result.transactions, 1024).equals(real.after)).toBe(true);
  });

  it("continues from where a committed transaction ended, with or without the running checksum", () => {
    const real = makeRealWal();
    const full = scan(real.wal);
    const k = 5;
    const from = full.transactions[k].offset;
    const withChecksum = scan(real.wal, from, full.transactions[k - 1].checksum);
    const withoutChecksum = scan(real.wal, from);
    for (const part of [withChecksum, withoutChecksum]) {
      expect(part.transactions).toEqual(full.transactions.slice(k));
      expect(part.end).toBe(full.end);
      expect(part.checksum).toEqual(full.checksum);
    }
    // A wrong running checksum fails the very first frame.
    const wrong = scan(real.wal, from, [1, 2]);
    expect(wrong.transactions).toEqual([]);
    expect(wrong.stop).toEqual({ reason: "checksum-mismatch", offset: from });
  });

  it("a WAL cut inside a frame or inside a transaction commits only what is complete", () => {
    const real = makeRealWal();
    const full = scan(real.wal);
    const big = full.transactions.reduce((a, b) => (b.frameCount > a.frameCount ? b : a));
    const frameSize = 4096 + WAL_FRAME_HEADER_SIZE;

    const midFrame = scan(real.wal.subarray(0, big.offset + frameSize + 100));
    expect(midFrame.stop).toEqual({ reason: "short-frame", offset: big.offset + frameSize });
    expect(midFrame.end).toBe(big.offset);
    expect(midFrame.uncommittedFrames).toBe(1);
    expect(midFrame.transactions.at(-1)!.offset + midFrame.transactions.at(-1)!.size).toBe(big.offset);

    const atBoundary = scan(real.wal.subarray(0, big.offset + 2 * frameSize));
    expect(atBoundary.stop.reason).toBe("end-of-file");
    expect(atBoundary.end).toBe(big.offset);
    expect(atBoundary.uncommittedFrames).toBe(2);
  });

  it("stops at leftover frames of an earlier WAL after SQLite restarts it", () => {
    const file = path.join(dir, "restart.db");
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.pragma("wal_autocheckpoint = 0");
    db.exec("create table t(v)");
    for (let i = 0; i < 10; i++) db.exec("insert into t values (randomblob(3000))");
    db.pragma("wal_checkpoint(PASSIVE)"); // everything copied back, the WAL is kept
    db.exec("insert into t values (1)"); // restarts the WAL at frame 1 with new salts
    const wal = snapshotFile(`${file}-wal`);
    db.close();
    const result = scan(wal);
    expect(result.transactions).toHaveLength(1);
    expect(result.stop).toEqual({ reason: "salt-mismatch", offset: result.end });
  });

  it("verifies big-endian checksums the way SQLite does", () => {
    const real = makeRealWal();
    const le = scan(real.wal);
    const be = toBigEndianChecksums(real.wal, le.end, real.pageSize);
    const result = scan(be);
    expect(result.header.bigEndian).toBe(true);
    expect(result.transactions.map((t) => [t.offset, t.size, [...t.pages]])).toEqual(
      le.transactions.map((t) => [t.offset, t.size, [...t.pages]]),
    );
    // SQLite on this little-endian machine accepts the converted WAL and checkpoints it.
    const file = path.join(dir, "be.db");
    writeFileSync(file, real.before);
    writeFileSync(`${file}-wal`, be);
    const db = new Database(file);
    db.pragma("wal_checkpoint(TRUNCATE)");
    db.close();
    expect(readFile(file).equals(real.after)).toBe(true);
  });
});

describe("sector padding (psow=0, synchronous=FULL)", () => {
  it("repeats of a commit frame belong to its transaction", () => {
    const padded = makePaddedWal(4096, 3);
    try {
      const result = scan(padded.wal);
      expect(result.transactions).toHaveLength(3);
      for (const txn of result.transactions) {
        expect(txn.paddingFrames).toBeGreaterThan(0);
        expect(txn.frameCount).toBe(txn.pages.size + txn.paddingFrames);
        expect(txn.offset + txn.size).toBeGreaterThanOrEqual(Math.ceil(txn.offset / 4096) * 4096);
      }
      // Transactions tile the WAL: each begins where the previous one's padding ended.
      for (let i = 1; i < result.transactions.length; i++) {
        const prev = result.transactions[i - 1];
        expect(result.transactions[i].offset).toBe(prev.offset + prev.size);
      }
      expect(result.end).toBe(padded.wal.length);
      expect(applyTransactions(padded.before, padded.wal, result.transactions, 4096).equals(padded.after)).toBe(true);
    } finally {
      padded.holder.close();
    }
  });

  it("with small pages one commit is followed by several padding frames", () => {
    const padded = makePaddedWal(512, 2);
    try {
      const result = scan(padded.wal);
      expect(result.transactions).toHaveLength(2);
      expect(Math.max(...result.transactions.map((t) => t.paddingFrames))).toBeGreaterThan(1);
      expect(applyTransactions(padded.before, padded.wal, result.transactions, 512).equals(padded.after)).toBe(true);
    } finally {
      padded.holder.close();
    }
  });

  it("continuing right after a commit frame counts its padding as leading, not as a new transaction", () => {
    const padded = makePaddedWal(4096, 2);
    try {
      const full = scan(padded.wal);
      const first = full.transactions[0];
      const commitEnd = walFrameOffset(first.firstFrame + first.frameCount - first.paddingFrames, 4096);
      const cont = scan(padded.wal, commitEnd);
      expect(first.paddingFrames).toBeGreaterThan(0);
      expect(cont.leadingPaddingFrames).toBe(first.paddingFrames);
      expect(cont.transactions).toEqual(full.transactions.slice(1));
    } finally {
      padded.holder.close();
    }
  });
});

describe("WAL header and arguments", () => {
  it("rejects a damaged header with WAL_BAD_HEADER", () => {
    const wal = readFile(path.join(fixtures, "ok.wal"));
    expect(isWalHeaderValid(wal)).toBe(true);
    expect(parseWalHeader(wal).checkpointSeq).toBe(0);
    for (const [offset, value] of [
      [0, 0x377f0684], // magic
      [4, 3007001], // version
      [8, 1000], // page size
      [16, 1], // salt, caught by the header checksum
    ]) {
      const bad = Buffer.from(wal);
      bad.writeUInt32BE(value, offset);
      expect(isWalHeaderValid(bad)).toBe(false);
      expect(() => scan(bad)).toThrow(expect.objectContaining({ code: "WAL_BAD_HEADER" }));
    }
    expect(() => scan(wal.subarray(0, 20))).toThrow(SqliteFormatError);
  });

  it("refuses to start between frames", () => {
    const wal = readFile(path.join(fixtures, "ok.wal"));
    expect(() => scan(wal, 100)).toThrow(expect.objectContaining({ code: "WAL_BAD_OFFSET" }));
    expect(() => scan(wal, wal.length + 4120)).toThrow(expect.objectContaining({ code: "WAL_BAD_OFFSET" }));
    expect(scan(wal, wal.length).stop).toEqual({ reason: "end-of-file", offset: wal.length });
  });

  it("a frame for page 0 is invalid", () => {
    const wal = Buffer.from(readFile(path.join(fixtures, "ok.wal")));
    wal.writeUInt32BE(0, 8272);
    expect(scan(wal).stop).toEqual({ reason: "bad-page-number", offset: 8272 });
    expect(walStopError(scan(wal))?.code).toBe("WAL_BAD_PAGE_NUMBER");
  });
});
