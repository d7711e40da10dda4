// Inserts rows with increasing ids, one transaction each, and prints each id after its commit
// returned (synchronously, so a printed id was really acknowledged). Stops at the first error.
// Arguments: db journal-mode first-id [count] [busy-timeout-ms] [pad-bytes (default: 200-6200, varying)].
import fs from "node:fs";
import Database from "better-sqlite3";

const [db, journalMode, startArg, countArg, busyArg, padArg] = process.argv.slice(2);
let id = Number(startArg);
const end = id + Number(countArg ?? 1e9);
try {
  const conn = new Database(db, { timeout: Number(busyArg ?? 5000) });
  conn.pragma(`journal_mode = ${journalMode}`);
  conn.exec("CREATE TABLE IF NOT EXISTS acked (id INTEGER PRIMARY KEY, pad BLOB)");
  const insert = conn.prepare("INSERT INTO acked (id, pad) VALUES (?, randomblob(?))");
  for (; id < end; id++) {
    insert.run(id, padArg === undefined ? 200 + (id % 5) * 1500 : Number(padArg));
    fs.writeSync(1, `${id}\n`);
  }
  conn.close();
} catch (err) {
  fs.writeSync(2, `writer stopped at ${id}: ${err.message}\n`);
  process.exit(3);
}
