/**
 * Encodes an import file into an LTX file, in a worker thread (started by store/import.ts). A
 * 1 GB file is 262,144 pages: encoding them allocates steadily, and on the daemon's own thread
 * that grows its young generation by tens of MB and holds the event loop that serves FUSE. Here
 * the young generation is capped (resourceLimits) and the FUSE thread runs on.
 */
import * as fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { CHECKSUM_FLAG, LtxEncoder, lockPgno, pageChecksum, type LtxHeader } from "../ltx/index.js";
import { BufferedWriter } from "./ltx-directory.js";

export interface ImportLtxJob {
  source: string;
  target: string;
  header: LtxHeader;
  compress: boolean;
  name: string;
}

export interface ImportLtxResult {
  /** Page checksums indexed by page number (0 where a page is not in the file: the lock page). */
  checksums: BigUint64Array;
  postApplyChecksum: bigint;
  fileChecksum: bigint;
}

/** Pages read per step. */
const PAGES_PER_READ = 256;

export async function encodeImportFile(job: ImportLtxJob): Promise<ImportLtxResult> {
  const { pageSize, commit: pageCount } = job.header;
  const src = fs.openSync(job.source, "r");
  const out = fs.openSync(job.target, "w", 0o644);
  try {
    const writer = new BufferedWriter(out);
    const enc = new LtxEncoder(job.header, (chunk) => writer.write(chunk), { compress: job.compress, name: job.name });
    const lock = lockPgno(pageSize);
    const checksums = new BigUint64Array(pageCount + 1);
    const buf = Buffer.alloc(pageSize * PAGES_PER_READ);
    let rolling = 0n;
    for (let first = 1; first <= pageCount; first += PAGES_PER_READ) {
      const count = Math.min(PAGES_PER_READ, pageCount - first + 1);
      if (fs.readSync(src, buf, 0, count * pageSize, (first - 1) * pageSize) !== count * pageSize) {
        throw new Error("the file changed while it was read");
      }
      // Native buffers (LZ4's) are freed by finalizers that run on the event loop: let it turn.
      await new Promise((resolve) => setImmediate(resolve));
      for (let i = 0; i < count; i++) {
        const pgno = first + i;
        if (pgno === lock) continue;
        const page = buf.subarray(i * pageSize, (i + 1) * pageSize);
        const sum = pageChecksum(pgno, page);
        checksums[pgno] = sum;
        rolling ^= sum;
        enc.encodePage(pgno, page);
      }
    }
    const postApplyChecksum = CHECKSUM_FLAG | rolling;
    const { fileChecksum } = enc.finish(postApplyChecksum);
    writer.flush();
    return { checksums, postApplyChecksum, fileChecksum };
  } finally {
    fs.closeSync(out);
    fs.closeSync(src);
  }
}

if (parentPort && workerData) {
  const port = parentPort;
  const result = await encodeImportFile(workerData as ImportLtxJob);
  port.postMessage(result, [result.checksums.buffer as ArrayBuffer]);
}
