import { CHECKSUM_FLAG } from "../ltx/index.js";

/**
 * The checksums of some pages, by page number: a Map, or a PageSumList. Read with forEach, the
 * one iteration both have that makes no object per entry.
 */
export interface PageSums {
  readonly size: number;
  forEach(fn: (sum: bigint, pgno: number) => void): void;
}

/**
 * Page checksums in the order they were added, in two typed arrays: 12 bytes a page, where a
 * Map holds an entry and a BigInt object per page (a 1 GB snapshot has 262,144 pages, and a
 * replica holds them until the snapshot is applied). Each page number once, as an LTX file
 * lists them (the decoder refuses a repeat): unlike a Map, a repeat would be read twice.
 */
export class PageSumList implements PageSums {
  private pgnos = new Uint32Array(256);
  private sums = new BigUint64Array(256);
  private length = 0;

  get size(): number {
    return this.length;
  }

  add(pgno: number, sum: bigint): void {
    if (this.length === this.pgnos.length) {
      const pgnos = new Uint32Array(this.length * 2);
      pgnos.set(this.pgnos);
      this.pgnos = pgnos;
      const sums = new BigUint64Array(this.length * 2);
      sums.set(this.sums);
      this.sums = sums;
    }
    this.pgnos[this.length] = pgno;
    this.sums[this.length++] = sum;
  }

  forEach(fn: (sum: bigint, pgno: number) => void): void {
    for (let i = 0; i < this.length; i++) fn(this.sums[i], this.pgnos[i]);
  }
}

/**
 * Per-page checksums of one database, so the rolling checksum can be maintained incrementally:
 * XOR a page's old checksum out and its new one in. Index 0 is page 1. A zero entry means the
 * page has no checksum (the lock page, or beyond the end of the database).
 */
export class PageChecksums {
  private sums = new BigUint64Array(1024);
  private rolling = 0n;
  private count = 0;

  /** Number of pages currently covered (the database size in pages). */
  get pageCount(): number {
    return this.count;
  }

  /** Database checksum as LTX stores it (bit 63 set; an empty database is the flag alone). */
  get checksum(): bigint {
    return CHECKSUM_FLAG | this.rolling;
  }

  get(pgno: number): bigint {
    return pgno <= this.count ? this.sums[pgno - 1] : 0n;
  }

  set(pgno: number, sum: bigint): void {
    this.grow(pgno);
    this.rolling ^= this.sums[pgno - 1] ^ sum;
    this.sums[pgno - 1] = sum;
    if (pgno > this.count) this.count = pgno;
  }

  /** Shrink or grow the database to `pageCount` pages; dropped pages leave the checksum. */
  resize(pageCount: number): void {
    for (let pgno = pageCount + 1; pgno <= this.count; pgno++) {
      this.rolling ^= this.sums[pgno - 1];
      this.sums[pgno - 1] = 0n;
    }
    if (pageCount > this.count) this.grow(pageCount);
    this.count = pageCount;
  }

  /** The checksum the database would have after `changes` and a resize to `pageCount`. */
  checksumAfter(changes: PageSums, pageCount: number): bigint {
    let rolling = this.rolling;
    for (let pgno = pageCount + 1; pgno <= this.count; pgno++) rolling ^= this.sums[pgno - 1];
    changes.forEach((sum, pgno) => {
      if (pgno <= pageCount) rolling ^= this.get(pgno) ^ sum;
    });
    return CHECKSUM_FLAG | rolling;
  }

  apply(changes: PageSums, pageCount: number): void {
    this.resize(pageCount);
    changes.forEach((sum, pgno) => {
      if (pgno <= pageCount) this.set(pgno, sum);
    });
  }

  /** The checksums of pages 1..pageCount, as stored (a view: copy it to keep it). */
  view(): BigUint64Array {
    return this.sums.subarray(0, this.count);
  }

  /** Replaces every checksum with `sums` (pages 1..sums.length), e.g. saved at a clean shutdown. */
  load(sums: BigUint64Array): void {
    this.clear();
    this.grow(sums.length);
    this.sums.set(sums);
    let rolling = 0n;
    for (let i = 0; i < sums.length; i++) rolling ^= sums[i];
    this.rolling = rolling;
    this.count = sums.length;
  }

  clear(): void {
    this.sums = new BigUint64Array(1024);
    this.rolling = 0n;
    this.count = 0;
  }

  private grow(pgno: number): void {
    if (pgno <= this.sums.length) return;
    // By half again, so a database growing page by page copies little; a jump (a snapshot, an
    // adoption) gets what it needs: doubling left a 1 GB database (262,145 pages) 4 MB, not 2.
    const size = Math.max(pgno, Math.ceil(this.sums.length * 1.5));
    const next = new BigUint64Array(size);
    next.set(this.sums);
    this.sums = next;
  }
}
