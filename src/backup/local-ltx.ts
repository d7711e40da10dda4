import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { parseLtxFilename } from "../ltx/index.js";

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

