import Database from "better-sqlite3";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { saveChecksums, savedChecksumsPath } from "../../src/store/saved-checksums.js";
import { Store } from "../../src/store/store.js";

let dir: string;
let logs: string[];

function openStore(): Store {
  const stream = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const store = new Store({
    dataDir: path.join(dir, "data"),
    compress: false,
    skipSync: false,
    retentionMs: 3_600_000,
    retentionMonitorIntervalMs: 3_600_000,
    logger: pino({ level: "info" }, stream),
  });
  store.open();
  return store;
}

const used = () => logs.some((l) => l.includes("page checksums taken from the clean shutdown"));
const rejected = (why: string) => logs.some((l) => l.includes("page checksums saved at shutdown not used") && l.includes(why));

/** A database file with some pages, placed in the data dir: the first open adopts it (TXID 1). */
function placeDatabase(name: string): string {
  const file = path.join(dir, "source.db");
  const db = new Database(file);
  db.exec("CREATE TABLE t (v BLOB)");
  const insert = db.prepare("INSERT INTO t VALUES (randomblob(3000))");
  for (let i = 0; i < 50; i++) insert.run();
  db.close();
  const target = path.join(dir, "data", "dbs", name, "database");
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.copyFileSync(file, target);
  return target;
}

/** Opens, saves the checksums as a clean shutdown would (no size threshold), closes; returns the position. */
function shutDownCleanly(name: string): string {
  const store = openStore();
  const db = store.database(name)!;
  expect(saveChecksums(db, 0)).toBe(true);
  const pos = db.position.toString();
  store.close();
  return pos;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "litefs-saved-checksums-"));
  logs = [];
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("page checksums saved at a clean shutdown", () => {
  it("are used by the next start when the database file is as the shutdown left it, and only once", () => {
    placeDatabase("a.db");
    const pos = shutDownCleanly("a.db");
    const db = "a.db";

    logs = [];
    const store = openStore();
    expect(used()).toBe(true);
    expect(store.database(db)!.position.toString()).toBe(pos);
    const loaded = Array.from(store.database(db)!.checksums.view());
    expect(fs.existsSync(savedChecksumsPath(store.database(db)!))).toBe(false);
    store.close();

    // Consumed: the start after that computes them again, and finds the same.
    logs = [];
    const again = openStore();
    expect(used()).toBe(false);
    expect(again.database(db)!.position.toString()).toBe(pos);
    expect(Array.from(again.database(db)!.checksums.view())).toEqual(loaded);
    again.close();
  });

  it("are not trusted once the file changed, even with its size and mtime put back", () => {
    const file = placeDatabase("b.db");
    const pos = shutDownCleanly("b.db");
    const before = fs.statSync(file);
    const original = fs.readFileSync(file);
    const bytes = Buffer.from(original);
    bytes[2 * 4096 + 100] ^= 0x55;
    fs.writeFileSync(file, bytes);
    fs.utimesSync(file, before.atime, before.mtime);

    logs = [];
    // Recovery computes them from the file; the last LTX file (the adoption's snapshot, every
    // page) puts the changed page back, and the position checks out.
    const store = openStore();
    expect(rejected("the database file changed since the shutdown")).toBe(true);
    expect(used()).toBe(false);
    expect(store.database("b.db")!.position.toString()).toBe(pos);
    store.close();
    expect(fs.readFileSync(file).equals(original)).toBe(true);
  });

  it("are not trusted beside a WAL", () => {
    placeDatabase("c.db");
    const pos = shutDownCleanly("c.db");
    fs.writeFileSync(path.join(dir, "data", "dbs", "c.db", "wal"), "");

    logs = [];
    const store = openStore();
    expect(rejected("a journal or WAL exists")).toBe(true);
    expect(used()).toBe(false);
    expect(store.database("c.db")!.position.toString()).toBe(pos);
    store.close();
  });

  it("are not trusted when they were saved at another position", () => {
    placeDatabase("d.db");
    shutDownCleanly("d.db");
    const saved = path.join(dir, "data", "dbs", "d.db", "page-checksums");
    const bytes = fs.readFileSync(saved);
    // The position's TXID field, with the file's own CRC left as it was: refused on either count.
    bytes.writeBigUInt64LE(7n, 8 + 5 * 8);
    fs.writeFileSync(saved, bytes);

    logs = [];
    const store = openStore();
    expect(rejected("file checksum mismatch")).toBe(true);
    expect(used()).toBe(false);
    store.close();
  });
});
