import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { PageChecksums, PageSumList } from "../../src/store/page-checksums.js";

const sum = (n: number): bigint => (1n << 63n) | BigInt(n) * 0x9e3779b97f4a7c15n % (1n << 62n);

describe("PageSumList", () => {
  test("keeps every page in the order added, past its first growth", () => {
    const list = new PageSumList();
    for (let pgno = 1; pgno <= 1000; pgno++) list.add(pgno * 3, sum(pgno));
    expect(list.size).toBe(1000);
    const seen: [number, bigint][] = [];
    list.forEach((s, pgno) => seen.push([pgno, s]));
    expect(seen).toEqual(Array.from({ length: 1000 }, (_, i) => [(i + 1) * 3, sum(i + 1)]));
  });

  test("PageChecksums reads it as it reads the same pages in a Map", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 700 }), { maxLength: 400 }),
        fc.uniqueArray(fc.integer({ min: 1, max: 700 }), { maxLength: 400 }),
        fc.integer({ min: 0, max: 700 }),
        (base, changed, pageCount) => {
          const map = new Map<number, bigint>();
          const list = new PageSumList();
          for (const pgno of changed) {
            map.set(pgno, sum(pgno + 7));
            list.add(pgno, sum(pgno + 7));
          }
          const a = new PageChecksums();
          const b = new PageChecksums();
          for (const pgno of base) {
            a.set(pgno, sum(pgno));
            b.set(pgno, sum(pgno));
          }
          expect(b.checksumAfter(list, pageCount)).toBe(a.checksumAfter(map, pageCount));
          a.apply(map, pageCount);
          b.apply(list, pageCount);
          expect(b.checksum).toBe(a.checksum);
          expect(b.view()).toEqual(a.view());
          expect(b.checksumAfter(list, pageCount)).toBe(b.checksum);
        },
      ),
      { numRuns: 200 },
    );
  });
});
