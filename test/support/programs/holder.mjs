// Opens a write transaction that spills pages into the database file, reports "ready", waits
// for a line on stdin, then tries to commit and reports how that went.
import readline from "node:readline";
import Database from "better-sqlite3";

const [db] = process.argv.slice(2);
const conn = new Database(db, { timeout: 1000 });
conn.pragma("cache_size = 2");
conn.exec("BEGIN IMMEDIATE");
const insert = conn.prepare("INSERT INTO t VALUES (?, randomblob(3000))");
for (let i = 0; i < 200; i++) insert.run(10_000 + i);
console.log("ready");
const rl = readline.createInterface({ input: process.stdin });
rl.once("line", () => {
  try {
    conn.exec("COMMIT");
    console.log("committed");
  } catch (err) {
    console.log(`failed: ${err.message}`);
  }
  try {
    conn.close();
  } catch {}
  process.exit(0);
});
