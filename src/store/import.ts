import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import { Worker } from "node:worker_threads";
import { HEADER_FLAG_COMPRESS_LZ4, lockPgno } from "../ltx/index.js";
import { DB_HEADER_SIZE, parseDatabaseHeader, SqliteFormatError } from "../sqlite/index.js";
import type { ReceivedLtx } from "./apply.js";
import type { Database } from "./database.js";
import { StoreError } from "./errors.js";
import { PageSumList } from "./page-checksums.js";
import type { ImportLtxJob, ImportLtxResult } from "./import-ltx-worker.js";
import { snapshotHeader } from "./snapshot.js";

/** What an import file holds, once checked. */
export interface ImportFile {
  pageSize: number;
  pageCount: number;
}

/**
 * Checks that `file` is a whole SQLite database: its header, a page size SQLite allows, a length
 * that is a whole number of pages, and the page count the header records when it is valid.
 * Throws STORE_BAD_IMPORT with the reason.
 */
export async function checkImportFile(file: string): Promise<ImportFile> {
  const bad = (why: string) => new StoreError("STORE_BAD_IMPORT", `not importable: ${why}`);
  const { size } = await fsp.stat(file);
  if (size === 0) throw bad("the file is empty");
  if (size < DB_HEADER_SIZE) throw bad(`the file is ${size} bytes, shorter than a SQLite header`);
  const fh = await fsp.open(file, "r");
  const header = Buffer.alloc(DB_HEADER_SIZE);
  try {
    await fh.read(header, 0, DB_HEADER_SIZE, 0);
  } finally {
    await fh.close();
  }
  let parsed;
  try {
    parsed = parseDatabaseHeader(header);
  } catch (err) {
    if (err instanceof SqliteFormatError) throw bad(`${err.message} (the file does not start with "SQLite format 3")`);
    throw err;
  }
  const { pageSize } = parsed;
  if (size % pageSize !== 0) throw bad(`${size} bytes is not a whole number of ${pageSize}-byte pages (a truncated copy?)`);
  const pageCount = size / pageSize;
  if (parsed.pageCountValid && parsed.pageCount !== pageCount) {
    throw bad(`the header says ${parsed.pageCount} pages but the file holds ${pageCount} (a truncated or partly written copy?)`);
  }
  return { pageSize, pageCount };
}

/**
 * Turns a checked import file into the LTX of one transaction that replaces the database: a
 * snapshot (TXIDs 1 to the next one, every page), so every node can apply it whatever it held.
 * Written to a temporary file in the database's ltx/ folder by a worker thread (see
 * import-ltx-worker.ts), reading the source a step at a time, never whole.
 */
export async function importLtx(db: Database, source: string, file: ImportFile, compress: boolean): Promise<ReceivedLtx> {
  const header = snapshotHeader(file.pageSize, file.pageCount, db.position.txid + 1);
  db.ltx.ensure();
  const job: ImportLtxJob = { source, target: db.ltx.tempPath("import"), header, compress, name: db.name };
  let result: ImportLtxResult;
  try {
    result = await runWorker(job);
  } catch (err) {
    fs.rmSync(job.target, { force: true });
    throw new StoreError("STORE_BAD_IMPORT", `not importable: ${(err as Error).message}`, { cause: err });
  }
  const checksums = new PageSumList();
  const lock = lockPgno(file.pageSize);
  for (let pgno = 1; pgno <= file.pageCount; pgno++) if (pgno !== lock) checksums.add(pgno, result.checksums[pgno]);
  const flags = compress ? header.flags | HEADER_FLAG_COMPRESS_LZ4 : header.flags;
  return {
    header: { ...header, flags },
    trailer: { postApplyChecksum: result.postApplyChecksum, fileChecksum: result.fileChecksum },
    checksums,
    tmpPath: job.target,
  };
}

/** Young generation of the encoding worker, in MB: small, so its garbage is collected early. */
const WORKER_YOUNG_GENERATION_MB = 4;

function runWorker(job: ImportLtxJob): Promise<ImportLtxResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./import-ltx-worker.js", import.meta.url), {
      workerData: job,
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
    let settled = false;
    worker.once("message", (result: ImportLtxResult) => {
      settled = true;
      resolve(result);
    });
    worker.once("error", (err) => {
      settled = true;
      reject(err);
    });
    worker.once("exit", (code) => {
      if (!settled) reject(new Error(`the LTX encoding worker exited with code ${code}`));
    });
  });
}
