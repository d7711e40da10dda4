import fc from "fast-check";
import { describe, expect, test } from "vitest";
import {
  CHECKSUM_FLAG,
  LtxDecoder,
  LtxEncoder,
  LtxError,
  type LtxHeader,
  RollingChecksum,
  checkPostApplyChecksum,
  decodeLtx,
  encodeHeader,
  encodeLtx,
  lockPgno,
  pageChecksum,
} from "../../src/ltx/index.js";
import { Lz4FrameWriter } from "../../src/ltx/lz4-frame.js";
import { expectCode, header, page, rawHeader, rawLtx } from "./helpers.js";

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function snapshotHeader(pageSize: number, commit: number, over: Partial<LtxHeader> = {}): LtxHeader {
  return header({ pageSize, commit, minTxid: 1, maxTxid: 1, preApplyChecksum: 0n, ...over });
}

function checksumOf(pageSize: number, pages: { pgno: number; data: Uint8Array }[]): bigint {
  const r = new RollingChecksum(pageSize);
  for (const p of pages) r.addPage(p.pgno, p.data);
  return r.value;
}

describe("round trip (property)", () => {
  const pageSizes = fc.constantFrom(512, 1024, 2048, 4096, 8192, 16384, 32768, 65536);

  /** Random incremental files: strictly increasing page numbers up to commit, random content. */
  const incremental = pageSizes.chain((pageSize) =>
    fc
      .uniqueArray(fc.integer({ min: 1, max: 5000 }), { maxLength: pageSize >= 16384 ? 6 : 24 })
      .chain((pgnos) => {
        const sorted = [...pgnos].sort((a, b) => a - b);
        const commitMin = sorted.length ? sorted[sorted.length - 1] : 0;
        return fc.record({
          pageSize: fc.constant(pageSize),
          commit: fc.integer({ min: commitMin, max: commitMin + 10 }),
          minTxid: fc.integer({ min: 2, max: Number.MAX_SAFE_INTEGER - 10 }),
          span: fc.nat(5),
          pages: fc.tuple(
            ...sorted.map((pgno) =>
              fc.record({
                pgno: fc.constant(pgno),
                // Mix compressible and random pages so LZ4 stores some blocks as they are.
                data: fc.oneof(
                  fc.nat(255).map((seed) => page(pageSize, seed)),
                  fc.uint8Array({ minLength: pageSize, maxLength: pageSize }),
                ),
              }),
            ),
          ),
          compress: fc.boolean(),
          chunk: fc.integer({ min: 1, max: 100_000 }),
        });
      }),
  );

  test("incremental files: pages, header and trailer survive encode and decode, in any chunking", () => {
    fc.assert(
      fc.property(incremental, ({ pageSize, commit, minTxid, span, pages, compress, chunk }) => {
        const h = header({ pageSize, commit, minTxid, maxTxid: minTxid + span });
        const post = commit === 0 ? CHECKSUM_FLAG : CHECKSUM_FLAG | 0xabcdefn; // deletions: empty checksum
        const buf = encodeLtx(h, pages, post, { compress });

        const dec = new LtxDecoder();
        const got: { pgno: number; data: Uint8Array; checksum: bigint }[] = [];
        for (let i = 0; i < buf.length; i += chunk) {
          for (const ev of dec.write(buf.subarray(i, i + chunk))) {
            if (ev.type === "page") got.push(ev);
            if (ev.type === "header") expect(ev.header).toEqual({ ...h, flags: compress ? 1 : 0 });
          }
        }
        const s = dec.end();
        expect(s.trailer.postApplyChecksum).toBe(post);
        expect(got.map((p) => p.pgno)).toEqual(pages.map((p) => p.pgno));
        got.forEach((p, i) => {
          expect(sameBytes(p.data, pages[i].data)).toBe(true);
          expect(p.checksum).toBe(pageChecksum(p.pgno, pages[i].data));
        });
        if (!compress) expect(buf.length).toBe(100 + pages.length * (4 + pageSize) + 4 + 16);
      }),
      { numRuns: 60 },
    );
  });

  test("sharedPageBuffer: the same page numbers and checksums, in any chunking, from one page buffer", () => {
    fc.assert(
      fc.property(incremental, ({ pageSize, commit, minTxid, pages, compress, chunk }) => {
        const h = header({ pageSize, commit, minTxid, maxTxid: minTxid });
        const buf = encodeLtx(h, pages, commit === 0 ? CHECKSUM_FLAG : CHECKSUM_FLAG | 0xabcdefn, { compress });
        const dec = new LtxDecoder({ sharedPageBuffer: true });
        const got: { pgno: number; checksum: bigint }[] = [];
        const buffers = new Set<Uint8Array>();
        for (let i = 0; i < buf.length; i += chunk) {
          for (const ev of dec.write(buf.subarray(i, i + chunk))) {
            if (ev.type !== "page") continue;
            got.push({ pgno: ev.pgno, checksum: ev.checksum });
            buffers.add(ev.data);
          }
        }
        dec.end();
        expect(got).toEqual(pages.map((p) => ({ pgno: p.pgno, checksum: pageChecksum(p.pgno, p.data) })));
        expect(buffers.size).toBeLessThanOrEqual(1);
      }),
      { numRuns: 40 },
    );
  });

  test("compressed and plain encodings differ only in layout: same pages, checksums over the same logical bytes", () => {
    fc.assert(
      fc.property(incremental, ({ pageSize, commit, minTxid, pages }) => {
        const h = header({ pageSize, commit, minTxid, maxTxid: minTxid });
        const plain = encodeLtx(h, pages, CHECKSUM_FLAG, { compress: false });
        const lz4 = encodeLtx(h, pages, CHECKSUM_FLAG, { compress: true });
        // Plain bytes with the compression flag set are exactly what the compressed file hashes.
        const logical = Uint8Array.from(plain);
        logical[7] |= 1;
        const relabelled = rawLtx({
          headerBytes: logical.subarray(0, 100),
          frames: pages,
          postApply: CHECKSUM_FLAG,
        });
        expect(decodeLtx(lz4).trailer.fileChecksum).toBe(
          new DataView(relabelled.buffer).getBigUint64(relabelled.length - 8),
        );
      }),
      { numRuns: 30 },
    );
  });

  test("snapshots of random databases verify their post-apply checksum", () => {
    fc.assert(
      fc.property(pageSizes, fc.integer({ min: 0, max: 12 }), fc.boolean(), fc.nat(), (pageSize, commit, compress, seed) => {
        const pages = Array.from({ length: commit }, (_, i) => ({ pgno: i + 1, data: page(pageSize, seed + i) }));
        const post = checksumOf(pageSize, pages);
        const d = decodeLtx(encodeLtx(snapshotHeader(pageSize, commit), pages, post, { compress }));
        expect(d.pages.length).toBe(commit);
        expect(d.trailer.postApplyChecksum).toBe(post);
      }),
      { numRuns: 40 },
    );
  });
});

describe("encoder", () => {
  const h = header({ pageSize: 512, commit: 10 });
  const open = (hh: LtxHeader = h) => new LtxEncoder(hh, () => {});

  test("returns each page's checksum", () => {
    const enc = open();
    expect(enc.encodePage(3, page(512, 1))).toBe(pageChecksum(3, page(512, 1)));
  });

  test("refuses page numbers that do not increase", () => {
    const enc = open();
    enc.encodePage(3, page(512, 1));
    expect(expectCode(() => enc.encodePage(3, page(512, 1)), "LTX_PAGE_ORDER").message).toContain("page 3 follows page 3");
    expectCode(() => enc.encodePage(2, page(512, 1)), "LTX_PAGE_ORDER");
    enc.encodePage(4, page(512, 1)); // still usable after a refused page
  });

  test("refuses a page beyond the commit", () => {
    expectCode(() => open().encodePage(11, page(512, 1)), "LTX_PGNO_OVER_COMMIT");
  });

  test("refuses the lock page", () => {
    const big = header({ pageSize: 65536, commit: 20000 });
    expectCode(() => open(big).encodePage(lockPgno(65536), page(65536, 1)), "LTX_LOCK_PAGE");
  });

  test("refuses pages of the wrong size or with impossible numbers", () => {
    expectCode(() => open().encodePage(1, page(1024, 1)), "LTX_BAD_PAGE");
    expectCode(() => open().encodePage(0, page(512, 1)), "LTX_BAD_PAGE");
    expectCode(() => open().encodePage(1.5, page(512, 1)), "LTX_BAD_PAGE");
  });

  test("snapshots must hold pages 1..commit in order", () => {
    const s = snapshotHeader(512, 3);
    expectCode(() => open(s).encodePage(2, page(512, 1)), "LTX_SNAPSHOT_RULE");
    const enc = open(s);
    enc.encodePage(1, page(512, 1));
    expectCode(() => enc.encodePage(3, page(512, 3)), "LTX_SNAPSHOT_RULE");
    enc.encodePage(2, page(512, 2));
    expectCode(() => enc.finish(CHECKSUM_FLAG), "LTX_SNAPSHOT_RULE");
  });

  test("a snapshot skips the lock page and carries on after it", () => {
    const pageSize = 65536;
    const lock = lockPgno(pageSize);
    const enc = open(snapshotHeader(pageSize, lock + 1));
    const data = new Uint8Array(pageSize);
    const r = new RollingChecksum(pageSize);
    for (let pgno = 1; pgno <= lock + 1; pgno++) {
      if (pgno === lock) continue;
      r.xor(enc.encodePage(pgno, data));
    }
    expect(enc.finish(r.value).postApplyChecksum).toBe(r.value);
  });

  test("a snapshot's post-apply checksum must be its pages' checksum", () => {
    const pages = [1, 2].map((pgno) => ({ pgno, data: page(512, pgno) }));
    const err = expectCode(
      () => encodeLtx(snapshotHeader(512, 2), pages, CHECKSUM_FLAG | 1n),
      "LTX_POST_APPLY_CHECKSUM_MISMATCH",
    );
    expect(err.message).toContain("8000000000000001");
    expect(err.message).toContain(checksumOf(512, pages).toString(16));
  });

  test("a deletion (commit 0) has no pages and the empty-database checksum", () => {
    const del = header({ commit: 0 });
    const buf = encodeLtx(del, [], CHECKSUM_FLAG);
    expect(decodeLtx(buf).pages).toEqual([]);
    expectCode(() => encodeLtx(del, [], CHECKSUM_FLAG | 2n), "LTX_POST_APPLY_CHECKSUM_MISMATCH");
    expectCode(() => encodeLtx(del, [{ pgno: 1, data: page(512, 1) }], CHECKSUM_FLAG), "LTX_PGNO_OVER_COMMIT");
  });

  test("a post-apply checksum without bit 63 is refused", () => {
    expectCode(() => encodeLtx(h, [], 5n), "LTX_BAD_CHECKSUM");
  });

  test("an invalid header is refused before anything is written", () => {
    const chunks: Uint8Array[] = [];
    expectCode(() => new LtxEncoder(header({ flags: 4 }), (c) => chunks.push(c)), "LTX_UNKNOWN_FLAGS");
    expect(chunks).toEqual([]);
  });

  test("the compress option overrides the header flag", () => {
    expect(decodeLtx(encodeLtx(header({ flags: 1 }), [], CHECKSUM_FLAG, { compress: false })).header.flags).toBe(0);
    expect(decodeLtx(encodeLtx(header({ flags: 0 }), [], CHECKSUM_FLAG, { compress: true })).header.flags).toBe(1);
  });

  test("never holds more than 64 KiB: output reaches the sink as pages arrive", () => {
    for (const compress of [false, true]) {
      let emitted = 0;
      let chunks = 0;
      const enc = new LtxEncoder(
        header({ pageSize: 4096, commit: 1000 }),
        (c) => {
          emitted += c.length;
          chunks++;
        },
        { compress },
      );
      for (let pgno = 1; pgno <= 200; pgno++) {
        enc.encodePage(pgno, page(4096, pgno));
        const logical = 100 + pgno * 4100;
        // Plain: everything but the last partial 64 KiB is out. Compressed: one chunk per full
        // 64 KiB LZ4 block, whatever its compressed size, after the headers' chunk.
        const blocks = Math.floor((logical - 100) / 65536);
        if (compress) expect(chunks).toBe(blocks === 0 ? 0 : blocks + 1);
        else expect(logical - emitted).toBeLessThan(64 << 10);
      }
      const { size } = enc.finish(CHECKSUM_FLAG | 1n);
      expect(size).toBe(emitted);
    }
  });

  test("chunks handed to the sink are never modified afterwards", () => {
    for (const compress of [false, true]) {
      const chunks: Uint8Array[] = [];
      const copies: Uint8Array[] = [];
      const enc = new LtxEncoder(header({ pageSize: 4096, commit: 100 }), (c) => {
        chunks.push(c);
        copies.push(Uint8Array.from(c));
      }, { compress });
      for (let pgno = 1; pgno <= 60; pgno++) enc.encodePage(pgno, page(4096, pgno));
      enc.finish(CHECKSUM_FLAG | 1n);
      chunks.forEach((c, i) => expect(sameBytes(c, copies[i])).toBe(true));
    }
  });

  test("a sink that throws breaks the encoder for good", () => {
    let fail = false;
    const enc = new LtxEncoder(header({ pageSize: 65536, commit: 10 }), () => {
      if (fail) throw new Error("disk full");
    });
    fail = true;
    expect(() => enc.encodePage(1, page(65536, 1))).toThrow("disk full");
    expectCode(() => enc.encodePage(2, page(65536, 2)), "LTX_CLOSED");
    expectCode(() => enc.finish(CHECKSUM_FLAG), "LTX_CLOSED");
  });

  test("a finished encoder refuses more pages", () => {
    const enc = open();
    enc.finish(CHECKSUM_FLAG);
    expectCode(() => enc.encodePage(1, page(512, 1)), "LTX_CLOSED");
  });
});

describe("decoder rules on hand-made files", () => {
  const p = (pgno: number) => ({ pgno, data: page(512, pgno) });
  const decode = (buf: Uint8Array) => decodeLtx(buf, "bad.ltx");

  test("a well-formed hand-made file decodes (the builder itself is right)", () => {
    expect(decode(rawLtx({ headerBytes: rawHeader({}), frames: [p(1), p(3)], postApply: CHECKSUM_FLAG })).pages.length).toBe(2);
  });

  test("page numbers out of order", () => {
    const err = expectCode(
      () => decode(rawLtx({ headerBytes: rawHeader({}), frames: [p(3), p(2)], postApply: CHECKSUM_FLAG })),
      "LTX_PAGE_ORDER",
    );
    expect(err.message).toBe("bad.ltx: page numbers must increase: page 2 follows page 3");
  });

  test("page beyond the commit", () => {
    const err = expectCode(
      () => decode(rawLtx({ headerBytes: rawHeader({ commit: 4 }), frames: [p(5)], postApply: CHECKSUM_FLAG })),
      "LTX_PGNO_OVER_COMMIT",
    );
    expect(err.message).toContain("page 5");
    expect(err.message).toContain("4 pages");
  });

  test("lock page present", () => {
    const lock = lockPgno(65536);
    const headerBytes = rawHeader({ pageSize: 65536, commit: lock + 5 });
    const frames = [{ pgno: lock, data: new Uint8Array(65536) }];
    expectCode(() => decode(rawLtx({ headerBytes, frames, postApply: CHECKSUM_FLAG })), "LTX_LOCK_PAGE");
  });

  test("snapshot with a gap, or stopping short of its commit", () => {
    const headerBytes = rawHeader({ minTxid: 1n, maxTxid: 1n, preApply: 0n, commit: 3 });
    expectCode(() => decode(rawLtx({ headerBytes, frames: [p(1), p(3)], postApply: CHECKSUM_FLAG })), "LTX_SNAPSHOT_RULE");
    const err = expectCode(
      () => decode(rawLtx({ headerBytes, frames: [p(1), p(2)], postApply: CHECKSUM_FLAG })),
      "LTX_SNAPSHOT_RULE",
    );
    expect(err.message).toContain("ends after page 2");
  });

  test("snapshot whose post-apply checksum is not its pages' checksum", () => {
    const headerBytes = rawHeader({ minTxid: 1n, maxTxid: 1n, preApply: 0n, commit: 2 });
    const frames = [p(1), p(2)];
    expect(decode(rawLtx({ headerBytes, frames, postApply: checksumOf(512, frames) })).pages.length).toBe(2);
    expectCode(
      () => decode(rawLtx({ headerBytes, frames, postApply: checksumOf(512, frames) ^ 1n })),
      "LTX_POST_APPLY_CHECKSUM_MISMATCH",
    );
  });

  test("deletion whose post-apply checksum is not the empty database's", () => {
    const headerBytes = rawHeader({ commit: 0 });
    expectCode(() => decode(rawLtx({ headerBytes, frames: [], postApply: CHECKSUM_FLAG | 7n })), "LTX_POST_APPLY_CHECKSUM_MISMATCH");
  });

  test("post-apply checksum without bit 63", () => {
    expectCode(() => decode(rawLtx({ headerBytes: rawHeader({}), frames: [], postApply: 1n })), "LTX_BAD_CHECKSUM");
  });

  test("file checksum that does not match", () => {
    const err = expectCode(
      () => decode(rawLtx({ headerBytes: rawHeader({}), frames: [p(1)], postApply: CHECKSUM_FLAG, fileChecksum: CHECKSUM_FLAG | 42n })),
      "LTX_FILE_CHECKSUM_MISMATCH",
    );
    expect(err.message).toContain("trailer says 800000000000002a");
  });

  test("header rule violations surface with their codes", () => {
    const cases: [Parameters<typeof rawHeader>[0], string][] = [
      [{ magic: "XXXX" }, "LTX_BAD_MAGIC"],
      [{ flags: 0x10 }, "LTX_UNKNOWN_FLAGS"],
      [{ pageSize: 3000 }, "LTX_BAD_PAGE_SIZE"],
      [{ minTxid: 0n }, "LTX_BAD_TXID"],
      [{ minTxid: 9n, maxTxid: 8n }, "LTX_TXID_ORDER"],
      [{ minTxid: 1n, maxTxid: 1n, preApply: CHECKSUM_FLAG | 3n }, "LTX_SNAPSHOT_RULE"],
      [{ walSalt1: 5 }, "LTX_BAD_HEADER"],
    ];
    for (const [fields, code] of cases) {
      const err = ltxErr(() => decode(rawLtx({ headerBytes: rawHeader(fields), frames: [], postApply: CHECKSUM_FLAG })));
      expect(err.code, JSON.stringify(fields, (_, v) => (typeof v === "bigint" ? String(v) : v))).toBe(code);
      expect(err.message.startsWith("bad.ltx: ")).toBe(true);
    }
  });

  test("the compression flag on an uncompressed page block is an LZ4 error", () => {
    const headerBytes = rawHeader({ flags: 1 });
    expectCode(() => decode(rawLtx({ headerBytes, frames: [p(1)], postApply: CHECKSUM_FLAG })), "LTX_BAD_LZ4");
  });

  /** A compressed LTX file whose LZ4 frame holds exactly `block` (trailer zeroed: the error comes first). */
  const framed = (block: Uint8Array) => {
    const chunks: Uint8Array[] = [];
    const w = new Lz4FrameWriter((c) => chunks.push(c));
    w.write(block);
    w.end();
    return Buffer.concat([encodeHeader(header({ flags: 1 })), ...chunks, Buffer.alloc(16)]);
  };
  const frame1 = Buffer.concat([Buffer.from([0, 0, 0, 1]), p(1).data]);

  test("data inside the LZ4 frame after the page block terminator is refused", () => {
    const file = framed(Buffer.concat([frame1, Buffer.alloc(4), Buffer.from("junk")]));
    expect(expectCode(() => decode(file), "LTX_BAD_LZ4").message).toContain("after the page block terminator");
  });

  test("an LZ4 frame that ends before the page block terminator is refused", () => {
    const file = framed(frame1);
    expect(expectCode(() => decode(file), "LTX_BAD_LZ4").message).toContain("before the page block terminator");
  });
});

describe("post-apply check for the store", () => {
  test("passes on a match and names both values on a mismatch", () => {
    const t = { postApplyChecksum: CHECKSUM_FLAG | 5n, fileChecksum: CHECKSUM_FLAG };
    checkPostApplyChecksum(t, CHECKSUM_FLAG | 5n, "x.ltx");
    const err = expectCode(() => checkPostApplyChecksum(t, CHECKSUM_FLAG | 6n, "x.ltx"), "LTX_POST_APPLY_CHECKSUM_MISMATCH");
    expect(err.message).toBe(
      "x.ltx: post-apply checksum mismatch: trailer says 8000000000000005, database gives 8000000000000006",
    );
  });
});

function ltxErr(fn: () => unknown): LtxError {
  try {
    fn();
  } catch (err) {
    if (err instanceof LtxError) return err;
    throw err;
  }
  throw new Error("nothing thrown");
}
