/**
 * LTX codec throughput: CRC-64, encode and decode (plain and LZ4), and the rolling checksum of
 * a 1 GiB database file (target: under 3 s on a 2-core machine).
 *
 *   npm run bench:ltx            (builds, then runs dist/bench/ltx.js)
 *   node dist/bench/ltx.js --quick
 *
 * MB/s is 10^6 bytes of logical (uncompressed) LTX content per second; each figure is the best
 * of several runs, after a warm-up, to show what the code can do rather than scheduler noise.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CHECKSUM_FLAG,
  Crc64,
  type LtxHeader,
  LtxDecoder,
  LtxEncoder,
  databaseChecksum,
  databaseChecksumFile,
  formatChecksum,
  pageChecksum,
} from "../src/ltx/index.js";

const quick = process.argv.includes("--quick");
const PAGE_SIZE = 4096;
const PAGES = quick ? 2048 : 16384; // 8 or 64 MiB of pages per run
const RUNS = quick ? 2 : 5;

/** Looks like table b-tree pages: a header, sorted-ish keys, repeated text, free space. */
function sqliteLikePage(pgno: number): Uint8Array {
  const p = new Uint8Array(PAGE_SIZE);
  p[0] = 0x0d;
  let x = pgno * 2654435761;
  for (let off = 100; off < PAGE_SIZE - 300; off += 40) {
    x = (x * 1103515245 + 12345) >>> 0;
    const row = `row ${pgno}:${off} value=${x % 100000} name=user${x % 977}`;
    for (let i = 0; i < row.length && off + i < PAGE_SIZE; i++) p[off + i] = row.charCodeAt(i);
  }
  return p;
}

function randomPage(seed: number): Uint8Array {
  const p = new Uint8Array(PAGE_SIZE);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < PAGE_SIZE; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    p[i] = x & 0xff;
  }
  return p;
}

function header(compress: boolean): LtxHeader {
  return {
    flags: compress ? 1 : 0,
    pageSize: PAGE_SIZE,
    commit: PAGES,
    minTxid: 2,
    maxTxid: 2,
    timestamp: Date.now(),
    preApplyChecksum: CHECKSUM_FLAG | 1n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: 0n,
  };
}

function best(fn: () => void): number {
  fn(); // warm-up
  let min = Infinity;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    fn();
    min = Math.min(min, performance.now() - t0);
  }
  return min / 1000;
}

function mbps(bytes: number, seconds: number): string {
  return `${(bytes / 1e6 / seconds).toFixed(0).padStart(6)} MB/s`;
}

function row(name: string, bytes: number, seconds: number, extra = ""): void {
  console.log(`${name.padEnd(44)} ${mbps(bytes, seconds)}${extra}`);
}

function benchCrc(): void {
  const buf = new Uint8Array(64 << 20);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 2654435761) >>> 24;
  const crc = new Crc64();
  row("crc64, one 64 MiB buffer", buf.length, best(() => crc.reset().update(buf)));
  row(
    "crc64, 4 KiB at a time",
    buf.length,
    best(() => {
      for (let off = 0; off < buf.length; off += PAGE_SIZE) crc.reset().update(buf, off, off + PAGE_SIZE);
    }),
  );
  row(
    "pageChecksum (bigint result per page)",
    buf.length,
    best(() => {
      for (let off = 0; off < buf.length; off += PAGE_SIZE) pageChecksum(1, buf.subarray(off, off + PAGE_SIZE));
    }),
  );
  row("databaseChecksum, 64 MiB in memory", buf.length, best(() => databaseChecksum(buf, PAGE_SIZE)));
}

function benchCodec(kind: string, pages: Uint8Array[]): void {
  const logical = 100 + pages.length * (4 + PAGE_SIZE) + 4 + 16;
  for (const compress of [false, true]) {
    let encoded: Uint8Array[] = [];
    let size = 0;
    const encodeTime = best(() => {
      encoded = [];
      const enc = new LtxEncoder(header(compress), (c) => encoded.push(c));
      for (let i = 0; i < pages.length; i++) enc.encodePage(i + 1, pages[i]);
      size = enc.finish(CHECKSUM_FLAG | 1n).size;
    });
    const ratio = compress ? `   (${((100 * size) / logical).toFixed(0)}% of plain size)` : "";
    row(`encode, ${kind}, ${compress ? "lz4" : "plain"}`, logical, encodeTime, ratio);

    // Decode from 64 KiB chunks, as a file or socket would deliver them.
    const file = Buffer.concat(encoded);
    const chunks: Uint8Array[] = [];
    for (let off = 0; off < file.length; off += 65536) chunks.push(file.subarray(off, off + 65536));
    const decodeTime = best(() => {
      const dec = new LtxDecoder();
      for (const c of chunks) dec.write(c);
      dec.end();
    });
    row(`decode + verify, ${kind}, ${compress ? "lz4" : "plain"}`, logical, decodeTime);
  }
}

async function benchDatabaseFile(): Promise<void> {
  const size = quick ? 128 << 20 : 1 << 30;
  const dir = mkdtempSync(join(tmpdir(), "litefs-bench-ltx-"));
  const path = join(dir, "database");
  try {
    // Real data, not a sparse file: 8 MiB of varied pages written repeatedly.
    const chunk = Buffer.alloc(8 << 20);
    for (let off = 0; off < chunk.length; off += PAGE_SIZE) chunk.set(sqliteLikePage(off / PAGE_SIZE + 1), off);
    const fh = await open(path, "w");
    for (let off = 0; off < size; off += chunk.length) await fh.write(chunk, 0, chunk.length, off);
    await fh.sync();
    await fh.close();

    const runs: number[] = [];
    let sum = 0n;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      sum = await databaseChecksumFile(path, PAGE_SIZE);
      runs.push((performance.now() - t0) / 1000);
    }
    const label = `rolling checksum, ${size >> 20} MiB file (page cache)`;
    const first = runs[0];
    const bestRun = Math.min(...runs);
    row(label, size, bestRun, `   ${bestRun.toFixed(2)} s best, ${first.toFixed(2)} s first run, ${formatChecksum(sum)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(`litefs-ts LTX bench: node ${process.version}, ${PAGE_SIZE}-byte pages, best of ${RUNS}${quick ? " (quick)" : ""}`);
  benchCrc();
  const structured = Array.from({ length: PAGES }, (_, i) => sqliteLikePage(i + 1));
  benchCodec("sqlite-like pages", structured);
  const random = Array.from({ length: PAGES }, (_, i) => randomPage(i + 1));
  benchCodec("random pages", random);
  await benchDatabaseFile();
}

await main();
