import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { decodeLtx, lockPgno } from "../../src/ltx/index.js";

/**
 * Applies every LTX file of a database, in order, onto an empty file and returns the bytes;
 * also checks that each file starts where the previous one ended (TXID and checksum).
 */
export async function replayLtxDir(dir: string): Promise<{ bytes: Buffer; txid: number; checksum: bigint; files: number }> {
  const names = (await fsp.readdir(dir)).filter((n) => n.endsWith(".ltx")).sort();
  let bytes = Buffer.alloc(0);
  let txid = 0;
  let checksum = 0n;
  for (const name of names) {
    const ltx = decodeLtx(await fsp.readFile(path.join(dir, name)), name);
    const h = ltx.header;
    if (h.minTxid !== 1 || txid !== 0) {
      if (h.minTxid !== txid + 1) throw new Error(`${name}: expected TXID ${txid + 1}, found ${h.minTxid}`);
      if (h.minTxid !== 1 && h.preApplyChecksum !== checksum) {
        throw new Error(`${name}: pre-apply checksum ${h.preApplyChecksum.toString(16)} != previous post-apply ${checksum.toString(16)}`);
      }
    }
    const size = h.commit * h.pageSize;
    const next = Buffer.alloc(size);
    bytes.copy(next, 0, 0, Math.min(bytes.length, size));
    for (const p of ltx.pages) Buffer.from(p.data).copy(next, (p.pgno - 1) * h.pageSize);
    const lock = lockPgno(h.pageSize);
    if (lock <= h.commit) next.fill(0, (lock - 1) * h.pageSize, lock * h.pageSize);
    bytes = next;
    txid = h.maxTxid;
    checksum = ltx.trailer.postApplyChecksum;
  }
  return { bytes, txid, checksum, files: names.length };
}
