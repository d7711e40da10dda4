// A better-sqlite3 client in its own process: creates table `w`, runs N committed write
// transactions (insert, update, delete mixed) and one rolled-back one, prints what it committed.
import Database from "better-sqlite3";

const [db, journalMode, n, pageSize] = process.argv.slice(2);
const conn = new Database(db, { timeout: 10000 });
conn.pragma(`page_size = ${Number(pageSize)}`);
conn.pragma(`journal_mode = ${journalMode}`);
let committed = 0;
conn.exec("CREATE TABLE IF NOT EXISTS w (id INTEGER PRIMARY KEY, v INTEGER, pad TEXT)");
committed++;
for (let i = 0; i < Number(n); i++) {
  conn.transaction(() => {
    conn.prepare("INSERT INTO w (v, pad) VALUES (?, ?)").run(i, "x".repeat(100 + (i % 300)));
    if (i % 3 === 0) conn.prepare("UPDATE w SET v = v + 1 WHERE id = ?").run(Math.floor(i / 2) + 1);
    if (i % 7 === 6) conn.prepare("DELETE FROM w WHERE id = ?").run(i - 3);
  })();
  committed++;
}
try {
  conn.transaction(() => {
    conn.prepare("INSERT INTO w (v, pad) VALUES (?, ?)").run(-1, "rolled back");
    throw new Error("rollback");
  })();
} catch {}
const sum = conn.prepare("SELECT coalesce(sum(v), 0) AS s FROM w").get().s;
conn.close();
console.log(JSON.stringify({ committed, sum }));
