// A migration, as `litefs run -with-halt-lock-on` runs it: creates table TABLE and inserts ROWS
// rows in BATCHES transactions (PAUSE_MS apart, printing "batch N" after each), then (optionally)
// waits HOLD_MS before exiting, so a test can start a second migration while this one still holds
// the lock. Prints "migrated TABLE" at the end.
import fs from "node:fs";
import Database from "better-sqlite3";

const [db, table, rowsArg, batchesArg, holdArg, pauseArg] = process.argv.slice(2);
const rows = Number(rowsArg);
const batches = Number(batchesArg ?? 1);
const conn = new Database(db, { timeout: 30_000 });
conn.exec(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, note TEXT, pad BLOB)`);
const insert = conn.prepare(`INSERT INTO ${table} (note, pad) VALUES (?, randomblob(100))`);
const perBatch = Math.ceil(rows / batches);
for (let done = 0; done < rows; ) {
  const n = Math.min(perBatch, rows - done);
  conn.transaction(() => {
    for (let i = 0; i < n; i++) insert.run(`row ${done + i}`);
  })();
  done += n;
  fs.writeSync(1, `batch ${done / perBatch}\n`);
  if (pauseArg && done < rows) await new Promise((r) => setTimeout(r, Number(pauseArg)));
}
conn.close();
fs.writeSync(1, `migrated ${table}\n`);
if (Number(holdArg) > 0) await new Promise((r) => setTimeout(r, Number(holdArg)));
