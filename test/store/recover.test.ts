import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { formatTxid, parseLtxFilename } from "../../src/ltx/index.js";
import type { DamagePolicy } from "../../src/store/recover.js";
import { Store } from "../../src/store/store.js";
import { tempDir } from "../sqlite/helpers.js";

/**
 * Startup recovery against database files left in the states a crash (or damage) leaves, built
 * directly in a data dir: replays only what the crash explains, reports damage with the file and
 * both checksums, and never leaves a damaged database served.
 */
const PAGE = 4096;
const DB = "t.db";
let dir: string;
let cleanup: () => void;
const stores: Store[] = [];
beforeEach(() => ({ dir, cleanup } = tempDir("litefs-recover-")));
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  cleanup();
});

function openStore(onDamage: DamagePolicy = "refuse"): { store: Store; logs: string[] } {
  const logs: string[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void logs.push(line) });
  const store = new Store({ dataDir: dir, compress: false, skipSync: true, retentionMs: 3_600_000, retentionMonitorIntervalMs: 3_600_000, logger, onDamage });
  stores.push(store);
  store.open();
  return { store, logs };
}

function closeStore(store: Store): void {
  store.close();
  stores.splice(stores.indexOf(store), 1);
}

const dbFile = () => path.join(dir, "dbs", DB, "database");
const ltxDir = () => path.join(dir, "dbs", DB, "ltx");
const messages = (logs: string[]) => logs.map((l) => JSON.parse(l) as { msg: string; level: number; files?: number });

function page1(): Buffer {
  const p = randomBytes(PAGE);
  p.write("SQLite format 3\0", 0, "latin1");
  p.writeUInt16BE(PAGE, 16);
  return p;
}

/**
 * A history of `txids` transactions on a 40-page database, committed as a primary would (each
 * writes page 1 and a few others); returns the database file after each TXID.
 */
function buildHistory(txids: number): Buffer[] {
  const { store } = openStore();
  const db = store.createDatabase(DB);
  const file = db.files.database;
  db.pageSize = PAGE;
  const states: Buffer[] = [Buffer.alloc(0)];
  for (let txid = 1; txid <= txids; txid++) {
    const pgnos = txid === 1 ? Array.from({ length: 40 }, (_, i) => i + 1) : [1, 2 + (txid % 39), 2 + ((txid * 7) % 39)];
    const unique = [...new Set(pgnos)].sort((a, b) => a - b);
    for (const pgno of unique) file.write(pgno === 1 ? page1() : randomBytes(PAGE), PAGE, (pgno - 1) * PAGE);
    db.commitTransaction({ commit: 40, pgnos: unique, readPage: (pgno) => file.readAt((pgno - 1) * PAGE, PAGE), durable: true });
    states.push(fs.readFileSync(dbFile()));
  }
  closeStore(store);
  return states;
}

/** Writes the pages the LTX files from `fromTxid` to `toTxid` hold into `image` (an apply cut short after them). */
function writePagesOf(image: Buffer, states: Buffer[], fromTxid: number, toTxid: number): void {
  for (let txid = fromTxid; txid <= toTxid; txid++) {
    const pgnos = [1, 2 + (txid % 39), 2 + ((txid * 7) % 39)];
    for (const pgno of pgnos) states[txid].copy(image, (pgno - 1) * PAGE, (pgno - 1) * PAGE, pgno * PAGE);
  }
}

function writeMarker(txid: number): void {
  fs.writeFileSync(path.join(dir, "dbs", DB, "applying"), `${formatTxid(txid)}\n`);
}

describe("startup recovery", () => {
  it("after an apply cut short, replays the interrupted batch's files and no older ones", () => {
    const states = buildHistory(300);
    // A batch of TXIDs 281..300 was being applied: some of its pages are in, others not.
    const image = Buffer.from(states[280]);
    writePagesOf(image, states, 290, 300);
    fs.writeFileSync(dbFile(), image);
    writeMarker(281);

    const { store, logs } = openStore();
    const db = store.database(DB)!;
    expect(db.position.txid).toBe(300);
    expect(Buffer.compare(fs.readFileSync(dbFile()), states[300])).toBe(0);
    const replays = messages(logs).filter((m) => m.msg.includes("replayed the trailing LTX files"));
    expect(replays.map((m) => m.files)).toEqual([20]);
    expect(fs.existsSync(path.join(dir, "dbs", DB, "applying"))).toBe(false);
    expect(store.damagedAtStartup.size).toBe(0);
  });

  it("a marker for a batch that was never installed changes nothing", () => {
    const states = buildHistory(30);
    writeMarker(31);
    const { store, logs } = openStore();
    expect(store.database(DB)!.position.txid).toBe(30);
    expect(Buffer.compare(fs.readFileSync(dbFile()), states[30])).toBe(0);
    expect(logs.join("")).not.toMatch(/replayed|damaged/);
  });

  it("a rollback-journal commit cut off after its LTX re-applies the last file only, and reports nothing", () => {
    const states = buildHistory(30);
    fs.writeFileSync(dbFile(), states[29]);
    const { store, logs } = openStore();
    expect(store.database(DB)!.position.txid).toBe(30);
    expect(Buffer.compare(fs.readFileSync(dbFile()), states[30])).toBe(0);
    expect(logs.join("")).not.toMatch(/replayed|damaged/);
  });

  it("files installed but never applied (no marker) replay from the position the file is at", () => {
    const states = buildHistory(200);
    fs.writeFileSync(dbFile(), states[150]);
    const { store, logs } = openStore();
    expect(store.database(DB)!.position.txid).toBe(200);
    expect(Buffer.compare(fs.readFileSync(dbFile()), states[200])).toBe(0);
    expect(messages(logs).filter((m) => m.msg.includes("replayed")).map((m) => m.files)).toEqual([50]);
    expect(store.damagedAtStartup.size).toBe(0);
  });

  it("a flipped byte in a page the last file rewrites is reported with both checksums, then repaired", () => {
    const states = buildHistory(30);
    const image = Buffer.from(states[30]);
    image[(2 + (30 % 39) - 1) * PAGE + 100] ^= 0xff;
    fs.writeFileSync(dbFile(), image);
    const { store, logs } = openStore();
    expect(store.database(DB)!.position.txid).toBe(30);
    expect(Buffer.compare(fs.readFileSync(dbFile()), states[30])).toBe(0);
    const text = logs.join("");
    expect(text).toContain(dbFile());
    expect(text).toMatch(/has checksum [0-9a-f]{16}, its position .* says [0-9a-f]{16}/);
    expect(store.damagedAtStartup.get(DB)).toBe(1);
  });

  describe("a flipped byte that no retained LTX file covers", () => {
    function damage(): Buffer[] {
      const states = buildHistory(30);
      // Retention left the newest files only; page 40 was last written by TXID 1.
      for (const name of fs.readdirSync(ltxDir())) if (parseLtxFilename(name)!.maxTxid < 25) fs.rmSync(path.join(ltxDir(), name));
      const image = Buffer.from(states[30]);
      image[39 * PAGE + 7] ^= 0xff;
      fs.writeFileSync(dbFile(), image);
      return states;
    }

    it("on a node that may be the primary, refuses to start with both checksums", () => {
      damage();
      expect(() => openStore("refuse")).toThrow(/last LTX .* says [0-9a-f]{16}, the database file has [0-9a-f]{16}.*refusing to start/);
    });

    it("on a replica, is reported, counted, set aside and not served until the primary sends it again", () => {
      const states = damage();
      const { store, logs } = openStore("resync");
      expect(store.database(DB)).toBeUndefined();
      const db = store.databaseForReplication(DB);
      expect(db.position.txid).toBe(0);
      expect(db.ltx.list()).toEqual([]);
      expect(fs.existsSync(dbFile())).toBe(false);
      const aside = path.join(dir, "dbs", DB, "database.damaged");
      expect(fs.readFileSync(aside).length).toBe(states[30].length);
      const errors = messages(logs).filter((m) => m.level >= 50);
      expect(errors).toHaveLength(1);
      expect(errors[0].msg).toContain(dbFile());
      expect(errors[0].msg).toMatch(/says [0-9a-f]{16}, the database file has [0-9a-f]{16}/);
      expect(store.damagedAtStartup.get(DB)).toBe(1);

      // Once set aside it stays so: the next start finds a database without history.
      closeStore(store);
      const again = openStore("resync");
      expect(again.store.database(DB)).toBeUndefined();
    });
  });
});
