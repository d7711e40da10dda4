import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { HEADER_SIZE, TRAILER_SIZE, decodeHeader, decodeTrailer, parseLtxFilename, type LtxHeader } from "../ltx/index.js";

export interface LocalLtx {
  minTxid: number;
  maxTxid: number;
  path: string;
}

/**
 * A database's local ltx/ folder, read asynchronously (the shipper runs on the thread that
 * serves FUSE; these are backing files, never the mount).
 */
export async function listLocalLtx(dir: string): Promise<LocalLtx[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: LocalLtx[] = [];
  for (const name of names) {
    let range: { minTxid: number; maxTxid: number } | null = null;
    try {
      range = parseLtxFilename(name);
    } catch {
      range = null;
    }
    if (range) out.push({ ...range, path: path.join(dir, name) });
  }
  return out.sort((a, b) => a.maxTxid - b.maxTxid || b.minTxid - a.minTxid);
}

/** The header, post-apply checksum and size of a local LTX file, from its first and last bytes. */
export async function readLocalEnds(file: string): Promise<{ header: LtxHeader; postApplyChecksum: bigint; size: number }> {
  const fh = await fsp.open(file, "r");
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(HEADER_SIZE);
    await fh.read(head, 0, HEADER_SIZE, 0);
    const tail = Buffer.alloc(TRAILER_SIZE);
    await fh.read(tail, 0, TRAILER_SIZE, Math.max(0, size - TRAILER_SIZE));
    return { header: decodeHeader(head, file), postApplyChecksum: decodeTrailer(tail).postApplyChecksum, size };
  } finally {
    await fh.close();
  }
}
