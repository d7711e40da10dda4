import * as fsp from "node:fs/promises";
import { HEADER_FLAG_COMPRESS_LZ4, LtxEncoder, formatTxid, lockPgno, type LtxHeader } from "../ltx/index.js";
import { BackupError } from "./errors.js";
import { objectPath, type BackupFile } from "./layout.js";
import { ChainMismatch, PageFile } from "./page-file.js";
import type { BackupTarget } from "./target.js";

/**
 * Merges a run of consecutive objects (each starting where the one before it ended, none a
 * snapshot) into one LTX file at `tmpPath`: the last version of each page, the first file's
 * pre-apply checksum, the last one's commit, timestamp and post-apply checksum. A deletion (commit
 * 0) ends the run: pages from before it mean nothing after it. Returns the header written and the
 * files it covers (a prefix of `run`).
 */
export async function mergeRun(
  target: BackupTarget,
  run: readonly BackupFile[],
  tmpPath: string,
  opts: { compress: boolean; nodeId: bigint },
): Promise<{ header: LtxHeader; covered: BackupFile[]; size: number }> {
  const pages = await PageFile.create(`${tmpPath}.pages`);
  try {
    let first: LtxHeader | null = null;
    let last: LtxHeader | null = null;
    let post = 0n;
    const covered: BackupFile[] = [];
    for (const f of run) {
      const name = `${target.url}/${objectPath(f)}`;
      let done;
      try {
        done = await pages.apply(await target.get(f), first ? post : null, name);
      } catch (err) {
        if (err instanceof ChainMismatch) {
          if (covered.length === 0) throw new BackupError("BACKUP_DAMAGED", `${name}: does not continue the objects before it`);
          break; // another chain starts here: merge what fits
        }
        throw err;
      }
      first ??= done.header;
      last = done.header;
      post = done.trailer.postApplyChecksum;
      covered.push(f);
      if (done.header.commit === 0) break;
    }
    const header: LtxHeader = {
      flags: opts.compress ? HEADER_FLAG_COMPRESS_LZ4 : 0,
      pageSize: first!.pageSize,
      commit: last!.commit,
      minTxid: first!.minTxid,
      maxTxid: last!.maxTxid,
      timestamp: last!.timestamp,
      preApplyChecksum: first!.preApplyChecksum,
      walOffset: 0,
      walSize: 0,
      walSalt1: 0,
      walSalt2: 0,
      nodeId: opts.nodeId,
    };
    const lock = lockPgno(header.pageSize);
    const pgnos = [...pages.touched].filter((p) => p <= header.commit && p !== lock).sort((a, b) => a - b);
    const out = await fsp.open(tmpPath, "w", 0o644);
    try {
      let chunks: Uint8Array[] = [];
      const enc = new LtxEncoder(header, (c) => chunks.push(c), { name: tmpPath });
      const drain = async () => {
        if (chunks.length) await out.writev(chunks);
        chunks = [];
      };
      for (const pgno of pgnos) {
        enc.encodePage(pgno, await pages.readPage(pgno));
        if (chunks.length >= 16) await drain();
      }
      const result = enc.finish(post);
      await drain();
      await out.sync();
      return { header, covered, size: result.size };
    } finally {
      await out.close();
    }
  } catch (err) {
    await fsp.rm(tmpPath, { force: true });
    if (err instanceof BackupError) throw err;
    throw new BackupError("BACKUP_DAMAGED", `compaction of ${formatTxid(run[0]!.minTxid)}..${formatTxid(run.at(-1)!.maxTxid)} failed: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    await pages.close();
    await fsp.rm(`${tmpPath}.pages`, { force: true });
  }
}
