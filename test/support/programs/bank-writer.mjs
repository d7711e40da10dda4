// Moves money between accounts in N transactions; the total never changes. Counts transfers.
import Database from "better-sqlite3";

const [db, journalMode, n, accountsArg] = process.argv.slice(2);
const accounts = Number(accountsArg ?? 50);
const conn = new Database(db, { timeout: 10000 });
conn.pragma(`journal_mode = ${journalMode}`);
conn.exec("CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)");
conn.exec("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, transfers INTEGER NOT NULL)");
if (conn.prepare("SELECT count(*) AS c FROM accounts").get().c === 0) {
  conn.transaction(() => {
    for (let i = 1; i <= accounts; i++) conn.prepare("INSERT INTO accounts VALUES (?, 1000)").run(i);
    conn.prepare("INSERT INTO counter VALUES (1, 0)").run();
  })();
}
const move = conn.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
const bump = conn.prepare("UPDATE counter SET transfers = transfers + 1 WHERE id = 1");
const transfer = conn.transaction((from, to, amount) => {
  move.run(-amount, from);
  move.run(amount, to);
  bump.run();
});
for (let i = 0; i < Number(n); i++) {
  const from = 1 + Math.floor(Math.random() * accounts);
  const to = 1 + Math.floor(Math.random() * accounts);
  transfer(from, to, 1 + Math.floor(Math.random() * 100));
}
conn.close();
console.log(JSON.stringify({ done: Number(n) }));
