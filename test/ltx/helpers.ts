/** Shared by the LTX tests: fixtures and a raw file builder that can break any rule. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { CHECKSUM_FLAG, Crc64, LtxError, type LtxErrorCode, type LtxHeader } from "../../src/ltx/index.js";

export const FIXTURES = fileURLToPath(new URL("../fixtures/ltx/", import.meta.url));

export function fixturePath(name: string): string {
  return FIXTURES + name;
}

export function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(fixturePath(name)));
}

/** Stated in ../shared/LTX.md. */
export const INCREMENTAL = {
  file: "incremental-000000000000000d.ltx",
  database: "incremental-000000000000000d.database",
  txid: 13,
  pgnos: [1, 7, 8],
  commit: 10,
  preApply: 0x9c74a15b4e4f246cn,
  postApply: 0xfe3831a381c602b9n,
  fileChecksum: 0x9496a29358326fb5n,
};

export const SNAPSHOT = {
  database: "snapshot.db",
  databaseChecksum: 0xde9809cf148608cen,
  uncompressed: { file: "snapshot-uncompressed.ltx", fileChecksum: 0xb790cfd550a34ad4n },
  lz4: { file: "snapshot-lz4.ltx", fileChecksum: 0xd0f31f6e482b87f1n },
  pages: 19,
};

export function header(over: Partial<LtxHeader> = {}): LtxHeader {
  return {
    flags: 0,
    pageSize: 512,
    commit: 4,
    minTxid: 5,
    maxTxid: 5,
    timestamp: 1_700_000_000_000,
    preApplyChecksum: CHECKSUM_FLAG | 0x1234n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: 0n,
    ...over,
  };
}

export function page(pageSize: number, seed: number): Uint8Array {
  const p = new Uint8Array(pageSize);
  for (let i = 0; i < pageSize; i++) p[i] = (seed * 31 + i * 7 + (i >> 5)) & 0xff;
  return p;
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
}

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
}

/**
 * Writes an uncompressed LTX file byte by byte, rules or no rules, with a correct file checksum
 * (unless told otherwise), so a test reaches exactly the check it targets.
 */
export function rawLtx(opts: {
  headerBytes: Uint8Array;
  frames: { pgno: number; data: Uint8Array }[];
  postApply: bigint;
  fileChecksum?: bigint;
}): Uint8Array {
  const parts: Uint8Array[] = [opts.headerBytes];
  for (const f of opts.frames) parts.push(u32(f.pgno), f.data);
  parts.push(u32(0), u64(opts.postApply));
  const body = Buffer.concat(parts);
  const sum = opts.fileChecksum ?? (CHECKSUM_FLAG | new Crc64().update(body).digest());
  return new Uint8Array(Buffer.concat([body, u64(sum)]));
}

/** A raw 100-byte header with fields set directly, bypassing validation. */
export function rawHeader(fields: {
  magic?: string;
  flags?: number;
  pageSize?: number;
  commit?: number;
  minTxid?: bigint;
  maxTxid?: bigint;
  preApply?: bigint;
  walOffset?: bigint;
  walSize?: bigint;
  walSalt1?: number;
}): Uint8Array {
  const b = new Uint8Array(100);
  const v = new DataView(b.buffer);
  b.set(Buffer.from(fields.magic ?? "LTX1", "latin1"), 0);
  v.setUint32(4, fields.flags ?? 0);
  v.setUint32(8, fields.pageSize ?? 512);
  v.setUint32(12, fields.commit ?? 4);
  v.setBigUint64(16, fields.minTxid ?? 5n);
  v.setBigUint64(24, fields.maxTxid ?? 5n);
  v.setBigUint64(40, fields.preApply ?? CHECKSUM_FLAG | 1n);
  v.setBigUint64(48, fields.walOffset ?? 0n);
  v.setBigUint64(56, fields.walSize ?? 0n);
  v.setUint32(64, fields.walSalt1 ?? 0);
  return b;
}

/** Runs fn and returns the LtxError it throws, failing the test if it throws anything else. */
export function ltxError(fn: () => unknown): LtxError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LtxError);
    return err as LtxError;
  }
  throw new Error("expected an LtxError, nothing was thrown");
}

export function expectCode(fn: () => unknown, code: LtxErrorCode): LtxError {
  const err = ltxError(fn);
  expect(err.code, err.message).toBe(code);
  return err;
}
