// The ledger workload of the fault tests: moves money between accounts; each transfer also
// appends the next row of `transfers` (seq = previous + 1) in the same transaction. Prints one
// line per acknowledged transfer ("ack <id>") the moment COMMIT returned, so whatever killed
// this process or its node, the test knows what the client was told. Errors (node down, database
// read-only, disk full) are printed as "err <message>" and retried until the stop file appears
// or the duration ends; with several database paths (comma-separated: the same database on each
// node), a failed transfer moves on to the next path, so the client follows the primary.
// Usage: dbPaths journalMode clientId durationMs stopFile [accounts] [pauseMs]
// (pauseMs: a pause after each acknowledged transfer, to pace the load; default none)
import fs from "node:fs";
import Database from "better-sqlite3";

const [dbArg, journalMode, clientId, durationArg, stopFile, accountsArg, pauseArg] = process.argv.slice(2);
const pauseMs = Number(pauseArg ?? 0);
const dbs = dbArg.split(",");
let at = 0;
const accounts = Number(accountsArg ?? 20);
const deadline = Date.now() + Number(durationArg);
const pause = new Int32Array(new SharedArrayBuffer(4));
const nap = (ms) => Atomics.wait(pause, 0, 0, ms);
const out = (line) => fs.writeSync(1, line + "\n");

function open() {
  // fileMustExist: while a node is down its mount dir is bare; never create a file there.
  const conn = new Database(dbs[at], { timeout: 5000, fileMustExist: true });
  if (journalMode) conn.pragma(`journal_mode = ${journalMode}`);
  return conn;
}

let conn = null;
let n = 0;
let lastErr = "";
while (Date.now() < deadline && !fs.existsSync(stopFile)) {
  try {
    conn ??= open();
    // A new id for every attempt: a transfer whose COMMIT failed may still have committed (the
    // node died after making it durable, before answering), and retrying it would record it twice.
    const id = `${clientId}-${n++}`;
    const from = 1 + Math.floor(Math.random() * accounts);
    const to = 1 + Math.floor(Math.random() * accounts);
    const amount = 1 + Math.floor(Math.random() * 100);
    conn.transaction(() => {
      conn.prepare("UPDATE accounts SET balance = balance - ? WHERE id = ?").run(amount, from);
      conn.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?").run(amount, to);
      conn.prepare("INSERT INTO transfers (seq, id, src, dst, amount) SELECT coalesce(max(seq), 0) + 1, ?, ?, ?, ? FROM transfers").run(id, from, to, amount);
    }).immediate();
    out(`ack ${id}`);
    lastErr = "";
    if (pauseMs > 0) nap(pauseMs);
  } catch (err) {
    const msg = String(err.message).split("\n")[0];
    if (msg !== lastErr) out(`err ${msg}`);
    lastErr = msg;
    try {
      conn?.close();
    } catch {
      // the mount may be gone
    }
    conn = null;
    at = (at + 1) % dbs.length;
    nap(50);
  }
}
try {
  conn?.close();
} catch {
  // the mount may be gone
}
out("done");
