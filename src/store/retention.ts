import * as fsp from "node:fs/promises";
import type { Database } from "./database.js";

/**
 * Deletes a database's LTX files older than `retentionMs`, never the newest one: it carries the
 * position that startup recovery checks the database against.
 */
export async function enforceRetention(db: Database, retentionMs: number, now: number): Promise<number> {
  const files = db.ltx.list();
  const old: typeof files = [];
  for (const f of files.slice(0, -1)) {
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
