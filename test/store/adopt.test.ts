import Database from "better-sqlite3";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HEADER_FLAG_COMPRESS_LZ4, databaseChecksum, decodeLtx } from "../../src/ltx/index.js";
import { BackingFile } from "../../src/store/backing-file.js";
import { Store } from "../../src/store/store.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "litefs-adopt-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A SQLite file of about `mb` MB (several of the page reader's 4 MB chunks) in the data dir. */
function placeDatabase(name: string, mb: number): string {
  const source = path.join(dir, "source.db");
  const db = new Database(source);
  db.exec("CREATE TABLE t (v BLOB)");
  const insert = db.prepare("INSERT INTO t VALUES (randomblob(3000))");
  db.transaction(() => {
    for (let i = 0; i < mb * 300; i++) insert.run();
  })();
  db.close();
  const target = path.join(dir, "data", "dbs", name, "database");
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.copyFileSync(source, target);
  return target;
}

describe("a database file copied into data.dir is adopted at the first start", () => {
  it("as a TXID 1 snapshot holding every page of the file, written uncompressed even with data.compress", () => {
    const file = placeDatabase("big.db", 10);
    const bytes = fs.readFileSync(file);
    const store = new Store({
      dataDir: path.join(dir, "data"),
      compress: true,
      skipSync: false,
      retentionMs: 3_600_000,
      retentionMonitorIntervalMs: 3_600_000,
      logger: pino({ level: "silent" }),
    });
    store.open();
    try {
      const db = store.database("big.db")!;
      expect(db.position.txid).toBe(1);
      const [ltx] = db.ltx.list();
      const decoded = decodeLtx(fs.readFileSync(ltx!.path));
      expect(decoded.header.flags & HEADER_FLAG_COMPRESS_LZ4).toBe(0);
      expect(decoded.header.commit * 4096).toBe(bytes.length);
      expect(decoded.pages.length).toBe(decoded.header.commit);
      for (const page of decoded.pages) {
        expect(Buffer.compare(Buffer.from(page.data), bytes.subarray((page.pgno - 1) * 4096, page.pgno * 4096))).toBe(0);
      }
      expect(decoded.trailer.postApplyChecksum).toBe(db.position.postApplyChecksum);
      expect(db.checksums.checksum).toBe(db.position.postApplyChecksum);
      // Computed here from the bytes, not taken from the store's own page checksums.
      expect(db.position.postApplyChecksum).toBe(databaseChecksum(bytes, 4096));
    } finally {
      store.close();
    }
  });
});

describe("BackingFile.pageReader", () => {
  const pageSize = 512;

  /** Reads `order` through `read` and compares each page with readAt's (a file of 40 pages and a bit). */
  function expectPagesAsReadAt(backing: BackingFile, read: (pgno: number) => Uint8Array, order: number[]): void {
    for (const pgno of order) {
      expect(Buffer.compare(Buffer.from(read(pgno)), backing.readAt((pgno - 1) * pageSize, pageSize)), `page ${pgno}`).toBe(0);
    }
    expect(read(45).every((b) => b === 0)).toBe(true); // past the end
  }

  function withFile(test: (backing: BackingFile) => void): void {
    const file = path.join(dir, "pages");
    const data = Buffer.alloc(pageSize * 40 + 100);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13 + (i >> 9)) & 0xff;
    fs.writeFileSync(file, data);
    const backing = new BackingFile(file);
    try {
      test(backing);
    } finally {
      backing.close();
    }
  }

  it("gives each page as readAt does, across window boundaries, after a jump back, and zeros past the end", () => {
    withFile((backing) => {
      // 3.5 pages of read-ahead: 3 whole pages are used; and a reader with its own buffers.
      for (const read of [backing.pageReader(pageSize, Buffer.alloc(3 * pageSize + pageSize / 2)), backing.pageReader(pageSize)]) {
        expectPagesAsReadAt(backing, read, [1, 2, 3, 4, 5, 9, 10, 11, 12, 2, 7]);
      }
      expect(() => backing.pageReader(pageSize, Buffer.alloc(pageSize - 1))).toThrow(/cannot hold a 512-byte page/);
    });
  });

  it("gives each page as readAt does: runs that grow past its window, jumps, a second pass, a page cut short by the end", () => {
    withFile((backing) => {
      const run = Array.from({ length: 30 }, (_, i) => i + 3); // 3..32: windows of 1, 2, 4, 4, ...
      expectPagesAsReadAt(backing, backing.pageReader(pageSize, Buffer.alloc(4 * pageSize)), [...run, 35, 36, 1, ...run, 41, 42, 43, 7]);
    });
  });
});
