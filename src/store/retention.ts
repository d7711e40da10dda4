import * as fsp from "node:fs/promises";
import type { Database } from "./database.js";

/**
 * Asked by retention for each database: LTX files whose max TXID is above the answer are kept
 * whatever their age (the backup has not shipped them yet); null sets no floor. Installed by
 * whoever must see every file before it goes (src/backup/, wired by the daemon): the core does
 * not know what it is for.
 */
export type RetentionFloor = (db: Database) => number | null;

/**
 * Deletes a database's LTX files older than `retentionMs`, never the newest one: it carries the
 * position that startup recovery checks the database against; nor any above `floor`.
 */
export async function enforceRetention(db: Database, retentionMs: number, now: number, floor: number | null = null): Promise<number> {
  const files = db.ltx.list();
  const old: typeof files = [];
  for (const f of files.slice(0, -1)) {
    if (floor !== null && f.maxTxid > floor) break;
    try {
      const st = await fsp.stat(f.path);
      if (now - st.mtimeMs > retentionMs) old.push(f);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  if (old.length) {
    db.ltx.remove(old);
    db.stats.ltxReaped += old.length;
    db.log.info({ removed: old.length, fromTxid: old[0].minTxid, toTxid: old[old.length - 1].maxTxid, txid: db.position.txid }, "retention removed old LTX files");
  }
  return old.length;
}
