import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, test } from "vitest";
import {
  CHECKSUM_FLAG,
  LtxError,
  RollingChecksum,
  crc64,
  databaseChecksum,
  databaseChecksumFile,
  formatChecksum,
  lockPgno,
  pageChecksum,
  parseChecksum,
} from "../../src/ltx/index.js";
import { INCREMENTAL, SNAPSHOT, expectCode, fixture, fixturePath, page } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "litefs-ltx-checksum-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("page checksum", () => {
  test("is bit 63 | crc64(u32 big-endian pgno ‖ page)", () => {
    const p = page(4096, 3);
    const framed = Buffer.concat([Buffer.from([0, 0, 1, 2]), p]);
    expect(pageChecksum(0x102, p)).toBe(CHECKSUM_FLAG | crc64(framed));
  });

  test("depends on the page number, not only the content", () => {
    const p = page(512, 1);
    expect(pageChecksum(1, p)).not.toBe(pageChecksum(2, p));
  });
});

describe("lock page", () => {
  test("is the page holding byte 0x40000000", () => {
    expect(lockPgno(4096)).toBe(262145);
    expect(lockPgno(512)).toBe(2097153);
    expect(lockPgno(65536)).toBe(16385);
  });
});

describe("database checksum", () => {
  test("reproduces the fixtures' stated checksums", () => {
    expect(databaseChecksum(fixture(INCREMENTAL.database), 4096)).toBe(INCREMENTAL.postApply);
    expect(databaseChecksum(fixture(SNAPSHOT.database), 4096)).toBe(SNAPSHOT.databaseChecksum);
  });

  test("of an empty database is the flag alone", () => {
    expect(databaseChecksum(new Uint8Array(0), 4096)).toBe(CHECKSUM_FLAG);
  });

  test("covers only the first pageCount pages when asked", () => {
    const db = fixture(SNAPSHOT.database);
    const expected = new RollingChecksum(4096);
    for (let pgno = 1; pgno <= 5; pgno++) expected.addPage(pgno, db.subarray((pgno - 1) * 4096, pgno * 4096));
    expect(databaseChecksum(db, 4096, 5)).toBe(expected.value);
  });

  test("streamed from a file equals the in-memory result, whatever the chunk size", async () => {
    expect(await databaseChecksumFile(fixturePath(SNAPSHOT.database), 4096)).toBe(SNAPSHOT.databaseChecksum);
    expect(await databaseChecksumFile(fixturePath(INCREMENTAL.database), 4096)).toBe(INCREMENTAL.postApply);
    for (const chunkSize of [1, 4096, 3 * 4096, 5 * 4096 + 17]) {
      expect(await databaseChecksumFile(fixturePath(SNAPSHOT.database), 4096, { chunkSize })).toBe(
        SNAPSHOT.databaseChecksum,
      );
    }
  });

  test("of a file ignores a trailing partial page and honours pageCount", async () => {
    const db = fixture(SNAPSHOT.database);
    const path = join(tmp, "partial.db");
    writeFileSync(path, Buffer.concat([db, Buffer.alloc(100, 7)]));
    expect(await databaseChecksumFile(path, 4096)).toBe(SNAPSHOT.databaseChecksum);
    expect(await databaseChecksumFile(path, 4096, { pageCount: 5 })).toBe(databaseChecksum(db, 4096, 5));
  });

  test("of a file shorter than pageCount is refused as truncated", async () => {
    await expect(databaseChecksumFile(fixturePath(SNAPSHOT.database), 4096, { pageCount: 20 })).rejects.toMatchObject({
      code: "LTX_TRUNCATED",
    });
  });

  test("skips the lock page even when it holds data (1 GiB sparse file, 64 KiB pages)", async () => {
    const pageSize = 65536;
    const lock = lockPgno(pageSize);
    const path = join(tmp, "big.db");
    const fh = await open(path, "w");
    const marked = [1, lock - 1, lock, lock + 1];
    for (const pgno of marked) await fh.write(page(pageSize, pgno), 0, pageSize, (pgno - 1) * pageSize);
    await fh.close();

    // Expected: every page but the lock page; zero pages' checksums still count (they differ by pgno).
    const expected = new RollingChecksum(pageSize);
    const zero = new Uint8Array(pageSize);
    for (let pgno = 1; pgno <= lock + 1; pgno++) {
      if (pgno === lock) continue;
      expected.xor(pageChecksum(pgno, marked.includes(pgno) ? page(pageSize, pgno) : zero));
    }
    const got = await databaseChecksumFile(path, pageSize);
    rmSync(path);
    expect(formatChecksum(got)).toBe(formatChecksum(expected.value));
  });
});

describe("RollingChecksum", () => {
  test("XOR-ing a page out undoes XOR-ing it in", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.nat(255))), (pages) => {
        const r = new RollingChecksum(512, SNAPSHOT.databaseChecksum);
        for (const [pgno, seed] of pages) r.addPage(pgno, page(512, seed));
        for (const [pgno, seed] of pages) r.removePage(pgno, page(512, seed));
        expect(r.value).toBe(SNAPSHOT.databaseChecksum);
      }),
    );
  });

  test("built page by page equals the database checksum of the fixture", () => {
    const db = fixture(INCREMENTAL.database);
    const r = new RollingChecksum(4096);
    for (let pgno = 1; pgno <= 10; pgno++) r.addPage(pgno, db.subarray((pgno - 1) * 4096, pgno * 4096));
    expect(r.value).toBe(INCREMENTAL.postApply);
  });

  test("never counts the lock page", () => {
    const r = new RollingChecksum(4096);
    r.addPage(lockPgno(4096), page(4096, 1));
    expect(r.value).toBe(CHECKSUM_FLAG);
  });
});

describe("checksum text", () => {
  test("is 16 lowercase hex digits both ways", () => {
    expect(formatChecksum(0x9c74a15b4e4f246cn)).toBe("9c74a15b4e4f246c");
    expect(formatChecksum(1n)).toBe("0000000000000001");
    expect(parseChecksum("9c74a15b4e4f246c")).toBe(0x9c74a15b4e4f246cn);
  });

  test("refuses anything but 16 hex digits", () => {
    for (const s of ["", "123", "9c74a15b4e4f246c0", "9c74a15b4e4f246g", " 9c74a15b4e4f246"]) {
      expect(expectCode(() => parseChecksum(s), "LTX_BAD_CHECKSUM")).toBeInstanceOf(LtxError);
    }
  });
});
