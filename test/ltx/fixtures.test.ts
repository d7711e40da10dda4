import { Readable } from "node:stream";
import { describe, expect, test } from "vitest";
import {
  CHECKSUM_FLAG,
  LtxDecoder,
  LtxError,
  type LtxEvent,
  crc64,
  databaseChecksum,
  decodeLtx,
  decodeLtxFile,
  decodeLtxStream,
  encodeLtx,
  verifyLtx,
} from "../../src/ltx/index.js";
import { INCREMENTAL, SNAPSHOT, fixture, fixturePath } from "./helpers.js";

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Decodes `buf`; returns the error thrown, or null if it decoded. */
function decodeError(buf: Uint8Array): unknown {
  try {
    decodeLtx(buf, "fixture.ltx");
  } catch (err) {
    return err;
  }
  return null;
}

describe("LiteFS-written incremental fixture", () => {
  const buf = fixture(INCREMENTAL.file);

  test("decodes with its stated header, pages and checksums", () => {
    const d = decodeLtx(buf, INCREMENTAL.file);
    expect(d.header.minTxid).toBe(INCREMENTAL.txid);
    expect(d.header.maxTxid).toBe(INCREMENTAL.txid);
    expect(d.header.commit).toBe(INCREMENTAL.commit);
    expect(d.header.preApplyChecksum).toBe(INCREMENTAL.preApply);
    expect(d.pages.map((p) => p.pgno)).toEqual(INCREMENTAL.pgnos);
    expect(d.trailer.postApplyChecksum).toBe(INCREMENTAL.postApply);
    expect(d.trailer.fileChecksum).toBe(INCREMENTAL.fileChecksum);
  });

  test("its pages are the database's pages after applying it", () => {
    const db = fixture(INCREMENTAL.database);
    for (const p of decodeLtx(buf).pages) {
      expect(sameBytes(p.data, db.subarray((p.pgno - 1) * 4096, p.pgno * 4096))).toBe(true);
    }
  });

  test("re-encoding its decoded content gives the same bytes", () => {
    const d = decodeLtx(buf);
    expect(sameBytes(encodeLtx(d.header, d.pages, d.trailer.postApplyChecksum), buf)).toBe(true);
  });

  test("compressed, it round-trips; its file checksum is the CRC of its logical bytes", () => {
    const d = decodeLtx(buf);
    const lz4 = encodeLtx(d.header, d.pages, d.trailer.postApplyChecksum, { compress: true });
    const back = decodeLtx(lz4);
    expect(back.header.flags).toBe(1);
    expect(back.pages.map((p) => p.pgno)).toEqual(INCREMENTAL.pgnos);
    expect(back.pages.every((p, i) => sameBytes(p.data, d.pages[i].data))).toBe(true);
    // The logical bytes are the uncompressed encoding with flag bit 0 set in the header: the
    // header is hashed as written, so the flag is the only difference from the plain file.
    const logical = Uint8Array.from(buf);
    logical[7] |= 1;
    expect(back.trailer.fileChecksum).toBe(CHECKSUM_FLAG | crc64(logical.subarray(0, logical.length - 8)));
    expect(back.trailer.fileChecksum).not.toBe(INCREMENTAL.fileChecksum);
  });
});

describe("reference-tool snapshot fixtures", () => {
  const db = fixture(SNAPSHOT.database);

  for (const [kind, spec] of [
    ["uncompressed", SNAPSHOT.uncompressed],
    ["lz4", SNAPSHOT.lz4],
  ] as const) {
    test(`${kind}: decodes to the database's pages with the stated checksums`, () => {
      const d = decodeLtx(fixture(spec.file), spec.file);
      expect(d.header.flags).toBe(kind === "lz4" ? 1 : 0);
      expect(d.header.minTxid).toBe(1);
      expect(d.header.preApplyChecksum).toBe(0n);
      expect(d.header.commit).toBe(SNAPSHOT.pages);
      expect(d.pages.map((p) => p.pgno)).toEqual(Array.from({ length: SNAPSHOT.pages }, (_, i) => i + 1));
      for (const p of d.pages) expect(sameBytes(p.data, db.subarray((p.pgno - 1) * 4096, p.pgno * 4096))).toBe(true);
      expect(d.trailer.fileChecksum).toBe(spec.fileChecksum);
      expect(d.trailer.postApplyChecksum).toBe(SNAPSHOT.databaseChecksum);
      expect(databaseChecksum(db, 4096)).toBe(SNAPSHOT.databaseChecksum);
    });

    test(`${kind}: page checksums handed out equal the database's page checksums`, () => {
      let x = 0n;
      for (const p of decodeLtx(fixture(spec.file)).pages) x ^= p.checksum;
      expect(CHECKSUM_FLAG | x).toBe(SNAPSHOT.databaseChecksum);
    });
  }

  test("uncompressed: re-encoding gives the same bytes", () => {
    const buf = fixture(SNAPSHOT.uncompressed.file);
    const d = decodeLtx(buf);
    expect(sameBytes(encodeLtx(d.header, d.pages, d.trailer.postApplyChecksum), buf)).toBe(true);
  });

  test("lz4: re-encoding with a different LZ4 compressor keeps the stated file checksum", () => {
    const buf = fixture(SNAPSHOT.lz4.file);
    const d = decodeLtx(buf);
    const again = encodeLtx(d.header, d.pages, d.trailer.postApplyChecksum);
    expect(sameBytes(again, buf)).toBe(false); // lz4_flex, not pierrec/lz4
    const back = decodeLtx(again);
    expect(back.trailer.fileChecksum).toBe(SNAPSHOT.lz4.fileChecksum);
    expect(back.pages.every((p, i) => sameBytes(p.data, d.pages[i].data))).toBe(true);
  });

  test("lz4: decompressed to plain layout, it is the uncompressed snapshot but for flags and timestamp", () => {
    const d = decodeLtx(fixture(SNAPSHOT.lz4.file));
    const plain = encodeLtx(d.header, d.pages, d.trailer.postApplyChecksum, { compress: false });
    const other = fixture(SNAPSHOT.uncompressed.file);
    expect(plain.length).toBe(100 + SNAPSHOT.pages * 4100 + 4 + 16);
    expect(plain.length).toBe(other.length);
    const differing = [];
    for (let i = 0; i < plain.length - 8; i++) if (plain[i] !== other[i]) differing.push(i);
    // Only the timestamp (bytes 32..39) differs: the two files were written 3 ms apart.
    expect(differing.every((i) => i >= 32 && i < 40)).toBe(true);
  });
});

describe("feeding", () => {
  test("any piece size gives the same result, including one byte at a time", () => {
    for (const name of [INCREMENTAL.file, SNAPSHOT.lz4.file]) {
      const buf = fixture(name);
      for (const step of [1, 3, 100, 4099, 65536]) {
        const dec = new LtxDecoder({ name });
        const pgnos: number[] = [];
        for (let i = 0; i < buf.length; i += step) {
          for (const ev of dec.write(buf.subarray(i, i + step))) if (ev.type === "page") pgnos.push(ev.pgno);
        }
        const s = dec.end();
        expect(s.size).toBe(buf.length);
        expect(s.pageCount).toBe(pgnos.length);
        expect(pgnos[0]).toBe(1);
      }
    }
  });

  test("the stream helper yields header, pages, then the trailer once verified", async () => {
    const buf = fixture(SNAPSHOT.lz4.file);
    const pieces = Array.from({ length: Math.ceil(buf.length / 1000) }, (_, i) => buf.subarray(i * 1000, (i + 1) * 1000));
    const kinds: string[] = [];
    for await (const ev of decodeLtxStream(Readable.from(pieces))) kinds.push(ev.type);
    expect(kinds).toEqual(["header", ...Array(SNAPSHOT.pages).fill("page"), "trailer"]);
  });

  test("the file helper reports a damaged file by path, after the pages before the damage", async () => {
    const events: LtxEvent[] = [];
    await expect(async () => {
      for await (const ev of decodeLtxFile(fixturePath(INCREMENTAL.database))) events.push(ev);
    }).rejects.toMatchObject({ code: "LTX_BAD_MAGIC", file: fixturePath(INCREMENTAL.database) });
    expect(events).toEqual([]);
  });

  test("verifyLtx checks bytes or a path and summarises", async () => {
    const s = await verifyLtx(fixturePath(INCREMENTAL.file));
    expect(s.pageCount).toBe(3);
    expect(s.trailer.fileChecksum).toBe(INCREMENTAL.fileChecksum);
    expect((await verifyLtx(fixture(SNAPSHOT.lz4.file))).pageCount).toBe(SNAPSHOT.pages);
  });
});

describe("damage", () => {
  test("every single-byte change anywhere in the incremental fixture is detected", () => {
    const good = fixture(INCREMENTAL.file);
    const missed: string[] = [];
    for (let at = 0; at < good.length; at++) {
      for (const flip of [0x01, 0x80, 0xff]) {
        const bad = Uint8Array.from(good);
        bad[at] ^= flip;
        const err = decodeError(bad);
        if (!(err instanceof LtxError)) missed.push(`offset ${at} ^${flip}: ${String(err)}`);
      }
    }
    expect(missed).toEqual([]);
  });

  test("single-byte changes in the LZ4 snapshot are detected or change nothing it means", () => {
    // LZ4 encodings are not unique: e.g. a match offset inside a run of equal bytes can change
    // without changing the output. Without LZ4 block checksums (LiteFS writes none) such a
    // change is invisible, and harmless: the file still decodes to exactly the same content.
    const good = fixture(SNAPSHOT.lz4.file);
    const reference = decodeLtx(good);
    const missed: string[] = [];
    let harmless = 0;
    // Every byte of the headers and the last 300 bytes (end of the frame, trailer), every 3rd between.
    for (let at = 0; at < good.length; at += at < 300 || at > good.length - 300 ? 1 : 3) {
      const bad = Uint8Array.from(good);
      bad[at] ^= 0x5a;
      const err = decodeError(bad);
      if (err instanceof LtxError) continue;
      const d = decodeLtx(bad);
      const same = d.pages.every((p, i) => sameBytes(p.data, reference.pages[i].data));
      if (same && d.trailer.fileChecksum === reference.trailer.fileChecksum) harmless++;
      else missed.push(`offset ${at}: ${String(err)}`);
    }
    expect(missed).toEqual([]);
    expect(harmless).toBeLessThan(10);
  });

  test("single-byte changes across the uncompressed snapshot are detected (every 7th byte)", () => {
    const good = fixture(SNAPSHOT.uncompressed.file);
    const missed: string[] = [];
    for (let at = 0; at < good.length; at += at < 200 || at > good.length - 200 ? 1 : 7) {
      const bad = Uint8Array.from(good);
      bad[at] ^= 0x10;
      if (!(decodeError(bad) instanceof LtxError)) missed.push(`offset ${at}`);
    }
    expect(missed).toEqual([]);
  });

  test("a changed page byte is reported as a file checksum mismatch naming both values", () => {
    const bad = fixture(INCREMENTAL.file);
    bad[500] ^= 1;
    const err = decodeError(bad) as LtxError;
    expect(err.code).toBe("LTX_FILE_CHECKSUM_MISMATCH");
    expect(err.message).toContain("fixture.ltx");
    expect(err.message).toContain("9496a29358326fb5");
  });

  for (const name of [INCREMENTAL.file, SNAPSHOT.lz4.file]) {
    test(`${name}: truncation at every length is reported as truncation`, () => {
      const good = fixture(name);
      const wrong: string[] = [];
      for (let len = 0; len < good.length; len++) {
        const err = decodeError(good.subarray(0, len));
        if (!(err instanceof LtxError) || err.code !== "LTX_TRUNCATED") wrong.push(`length ${len}: ${String(err)}`);
      }
      expect(wrong).toEqual([]);
    });
  }

  test("a truncation message says where the file ends", () => {
    const good = fixture(INCREMENTAL.file);
    const err = decodeError(good.subarray(0, 5000)) as LtxError;
    expect(err.message).toBe("fixture.ltx: truncated: file ends at byte 5000, inside page 7 (796 of 4096 bytes)");
  });

  test("bytes after the trailer are reported as trailing bytes", () => {
    for (const name of [INCREMENTAL.file, SNAPSHOT.lz4.file]) {
      const good = fixture(name);
      const err = decodeError(new Uint8Array([...good, 0])) as LtxError;
      expect(err.code).toBe("LTX_TRAILING_BYTES");
      expect(err.message).toContain(`end at byte ${good.length}`);
    }
  });

  test("events completed before damage in the same chunk are kept when asked for", () => {
    const bad = fixture(INCREMENTAL.file);
    bad[100 + 4100 + 4100 + 4 + 10] ^= 1; // inside page 8, the last
    const events: LtxEvent[] = [];
    const dec = new LtxDecoder();
    expect(() => dec.write(bad, events)).toThrow(expect.objectContaining({ code: "LTX_FILE_CHECKSUM_MISMATCH" }));
    expect(events.map((e) => (e.type === "page" ? e.pgno : e.type))).toEqual(["header", 1, 7, 8]);
  });

  test("a decoder that failed refuses further input", () => {
    const dec = new LtxDecoder();
    expect(() => dec.write(new Uint8Array(100))).toThrow(LtxError);
    expect(() => dec.write(new Uint8Array(1))).toThrow(expect.objectContaining({ code: "LTX_CLOSED" }));
  });
});
