import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Logger } from "pino";
import { formatLtxFilename } from "../ltx/index.js";
import { BackupError } from "./errors.js";
import { restoreDatabase } from "./restore.js";
import type { BackupTarget } from "./target.js";

/** data.dir/dbs: where the Store keeps its databases (store.ts). */
const DBS_DIR = "dbs";

/** True when data.dir holds no database at all (a new or wiped node). */
export function dataDirIsEmpty(dataDir: string): boolean {
  try {
    return fs.readdirSync(path.join(dataDir, DBS_DIR)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw err;
  }
}

/**
 * backup.restore-if-empty: before the Store opens, rebuilds every database the backup holds into
 * data.dir in the Store's layout: `dbs/<name>/database`, plus the last object applied copied into
 * `dbs/<name>/ltx/` so that startup recovery checks the file against it and the position (TXID,
 * checksum) continues the backup's chain, which the shipper then extends with no snapshot.
 * A database whose last transaction deleted it stays absent. Returns the names restored.
 */
export async function restoreIfEmpty(dataDir: string, target: BackupTarget, log: Logger): Promise<string[]> {
  await target.check();
  const restored: string[] = [];
  for (const name of await target.databases()) {
    const dir = path.join(dataDir, DBS_DIR, name);
    const ltxDir = path.join(dir, "ltx");
    await fsp.mkdir(ltxDir, { recursive: true });
    try {
      const result = await restoreDatabase(target, name, { output: path.join(dir, "database"), overwrite: true });
      const last = result.files.at(-1)!;
      const dest = path.join(ltxDir, formatLtxFilename(last.minTxid, last.maxTxid));
      await pipeline(await target.get(last), fs.createWriteStream(`${dest}.tmp`));
      const fh = await fsp.open(`${dest}.tmp`, "r");
      await fh.sync().finally(() => fh.close());
      await fsp.rename(`${dest}.tmp`, dest);
      restored.push(name);
      log.info({ db: name, position: result.position.toString(), bytes: result.bytes, objects: result.files.length }, "restore-if-empty: database restored from the backup");
    } catch (err) {
      await fsp.rm(dir, { recursive: true, force: true });
      if (err instanceof BackupError && err.code === "BACKUP_NOT_FOUND") {
        log.info({ db: name, reason: err.message }, "restore-if-empty: nothing to restore for this database");
        continue;
      }
      throw err;
    }
  }
  return restored;
}
