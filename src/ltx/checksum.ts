/**
 * Page and database checksums (LTX.md, "Checksums"). A database's checksum is the XOR of its
 * page checksums, so it can be kept up to date by XOR-ing a page's old checksum out and its new
 * one in. Inner loops keep 64-bit values as two 32-bit halves; BigInt only at the API edge.
 */
import { open } from "node:fs/promises";
import { lockPageNumber } from "../sqlite/db-header.js";
import { Crc64 } from "./crc64.js";
import { LtxError, hex16 } from "./errors.js";

/** Forced on in every stored checksum, so a valid checksum is never zero. */
export const CHECKSUM_FLAG = 1n << 63n;
const FLAG_HI = 0x80000000;

/** The page SQLite never writes (it holds the lock bytes; SQLite's file format owns it): never checksummed either. */
export const lockPgno = lockPageNumber;

export function formatChecksum(c: bigint): string {
  return hex16(c);
}

/** Parses 16 hex digits, as checksums are printed. */
export function parseChecksum(s: string): bigint {
  if (!/^[0-9a-fA-F]{16}$/.test(s)) {
    throw new LtxError("LTX_BAD_CHECKSUM", `bad checksum: expected 16 hex digits, found ${JSON.stringify(s)}`);
  }
  return BigInt(`0x${s}`);
}

/**
 * Leaves crc64(u32 pgno ‖ data[start..end)) in `crc` (its hi/lo halves), without the flag.
 * The allocation-free form of pageChecksum for loops over many pages.
 */
export function pageCrc(crc: Crc64, pgno: number, data: Uint8Array, start = 0, end = data.length): Crc64 {
  crc.hi = 0;
  crc.lo = 0;
  return crc.updateUint32BE(pgno).update(data, start, end);
}

const scratch = new Crc64();

/** bit63 | crc64(u32 pgno ‖ page). */
export function pageChecksum(pgno: number, page: Uint8Array): bigint {
  return CHECKSUM_FLAG | pageCrc(scratch, pgno, page).digest();
}

function assertPageSize(pageSize: number): void {
  // Argument sanity only (a zero page size would loop forever); header.ts owns the format rule.
  if (!Number.isInteger(pageSize) || pageSize <= 0) throw new RangeError(`bad page size ${pageSize}`);
}

function toBig(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/**
 * A database checksum maintained page by page: XOR a page in when it appears or changes to new
 * content, XOR its old content out. Both are the same operation, so the names only document
 * intent. The lock page is skipped, as it never counts.
 */
export class RollingChecksum {
  private hi = FLAG_HI;
  private lo = 0;
  private readonly lock: number;
  private readonly crc = new Crc64();

  /** `start` is a database checksum to continue from; the default is the empty database. */
  constructor(
    readonly pageSize: number,
    start: bigint = CHECKSUM_FLAG,
  ) {
    this.lock = lockPgno(pageSize);
    this.hi = Number((start >> 32n) & 0xffffffffn);
    this.lo = Number(start & 0xffffffffn);
  }

  /** XORs a page checksum (as pageChecksum returns it) in or out. */
  xor(checksum: bigint): this {
    this.hi ^= Number((checksum >> 32n) & 0xffffffffn);
    this.lo ^= Number(checksum & 0xffffffffn);
    return this;
  }

  addPage(pgno: number, data: Uint8Array): this {
    if (pgno === this.lock) return this;
    pageCrc(this.crc, pgno, data);
    this.hi ^= this.crc.hi;
    this.lo ^= this.crc.lo;
    return this;
  }

  removePage(pgno: number, data: Uint8Array): this {
    return this.addPage(pgno, data);
  }

  /** The database checksum, bit 63 set. */
  get value(): bigint {
    return toBig(this.hi | FLAG_HI, this.lo);
  }
}

/** XORs the page checksums of consecutive pages held in `buf[start..)` into acc (hi, lo). */
function xorPages(
  acc: { hi: number; lo: number },
  crc: Crc64,
  buf: Uint8Array,
  firstPgno: number,
  count: number,
  pageSize: number,
  lock: number,
): void {
  let hi = acc.hi;
  let lo = acc.lo;
  for (let i = 0; i < count; i++) {
    const pgno = firstPgno + i;
    if (pgno === lock) continue;
    pageCrc(crc, pgno, buf, i * pageSize, (i + 1) * pageSize);
    hi ^= crc.hi;
    lo ^= crc.lo;
  }
  acc.hi = hi;
  acc.lo = lo;
}

/**
 * Checksum of a database image in memory: pages 1..pageCount (default: every whole page in
 * `data`), skipping the lock page. An empty database gives CHECKSUM_FLAG.
 */
export function databaseChecksum(data: Uint8Array, pageSize: number, pageCount?: number): bigint {
  assertPageSize(pageSize);
  const count = pageCount ?? Math.floor(data.length / pageSize);
  if (count * pageSize > data.length) {
    throw new RangeError(`database image holds ${Math.floor(data.length / pageSize)} pages, asked for ${count}`);
  }
  const acc = { hi: FLAG_HI, lo: 0 };
  xorPages(acc, new Crc64(), data, 1, count, pageSize, lockPgno(pageSize));
  return toBig(acc.hi | FLAG_HI, acc.lo);
}

export interface DatabaseChecksumFileOptions {
  /** Pages to include (the commit); default: every whole page in the file. */
  pageCount?: number;
  /** Read size; rounded down to whole pages. Default 8 MiB. */
  chunkSize?: number;
}

/**
 * Checksum of a database file, read in large chunks with the next read in flight while the
 * current chunk is hashed, so disk and CPU overlap. For startup on multi-GiB databases.
 */
export async function databaseChecksumFile(
  path: string,
  pageSize: number,
  opts: DatabaseChecksumFileOptions = {},
): Promise<bigint> {
  assertPageSize(pageSize);
  const fh = await open(path, "r");
  try {
    const fileSize = (await fh.stat()).size;
    const available = Math.floor(fileSize / pageSize);
    const count = opts.pageCount ?? available;
    if (count > available) {
      throw new LtxError("LTX_TRUNCATED", `database has ${available} pages of ${pageSize} bytes, expected ${count}`, path);
    }
    const pagesPerChunk = Math.max(1, Math.floor((opts.chunkSize ?? 8 << 20) / pageSize));
    const buffers = [Buffer.allocUnsafe(pagesPerChunk * pageSize), Buffer.allocUnsafe(pagesPerChunk * pageSize)];
    const lock = lockPgno(pageSize);
    const acc = { hi: FLAG_HI, lo: 0 };
    const crc = new Crc64();

    const readChunk = async (buf: Buffer, firstPgno: number): Promise<number> => {
      const pages = Math.min(pagesPerChunk, count - firstPgno + 1);
      const want = pages * pageSize;
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, (firstPgno - 1) * pageSize + got);
        if (bytesRead === 0) {
          throw new LtxError("LTX_TRUNCATED", `database file shrank while being read (page ${firstPgno})`, path);
        }
        got += bytesRead;
      }
      return pages;
    };

    let pgno = 1;
    let which = 0;
    let pending = pgno <= count ? readChunk(buffers[0], pgno) : null;
    while (pending) {
      const pages = await pending;
      const buf = buffers[which];
      const next = pgno + pages;
      which ^= 1;
      pending = next <= count ? readChunk(buffers[which], next) : null;
      xorPages(acc, crc, buf, pgno, pages, pageSize, lock);
      pgno = next;
    }
    return toBig(acc.hi | FLAG_HI, acc.lo);
  } finally {
    await fh.close();
  }
}
