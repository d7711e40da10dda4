// Checks the bank total until a deadline: "long" keeps one connection open for the whole run,
// "new" opens a fresh connection per check. Reports every wrong total and every error.
import fs from "node:fs";
import Database from "better-sqlite3";

const [db, style, durationArg, expectedArg, stopFile] = process.argv.slice(2);
const expected = Number(expectedArg);
const deadline = Date.now() + Number(durationArg);
let checks = 0;
let maxTransfers = -1;
let increases = 0;
const bad = [];
const errors = [];
let conn = null;
// A short pause between checks leaves the two cores to the daemons; checks stay continuous.
const pause = new Int32Array(new SharedArrayBuffer(4));
const open = () => new Database(db, { readonly: true, fileMustExist: true, timeout: 10000 });
while (Date.now() < deadline && !(stopFile && fs.existsSync(stopFile))) {
  try {
    if (!conn || style === "new") {
      conn?.close();
      conn = open();
    }
    const row = conn.transaction(() => ({
      total: conn.prepare("SELECT sum(balance) AS s FROM accounts").get().s,
      transfers: conn.prepare("SELECT transfers AS t FROM counter").get().t,
    }))();
    checks++;
    if (row.total !== expected) bad.push(row.total);
    if (row.transfers > maxTransfers) {
      if (maxTransfers >= 0) increases++;
      maxTransfers = row.transfers;
    }
    Atomics.wait(pause, 0, 0, 2);
  } catch (err) {
    errors.push(String(err.message));
    if (errors.length > 20) break;
  }
}
conn?.close();
console.log(JSON.stringify({ checks, bad: bad.slice(0, 10), badCount: bad.length, errors: errors.slice(0, 10), maxTransfers, increases }));
