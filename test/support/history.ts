import { spawn, type ChildProcess } from "node:child_process";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { ROOT, makeTempDir, withTimeout, type LitefsNode } from "./node-process.js";
import { sqlite3 } from "./sqlite-clients.js";

/**
 * The history checker of the fault tests. A ledger (accounts holding a fixed total, and
 * `transfers`: one row per transfer, numbered 1, 2, 3... in commit order) is written by client
 * processes that print each transfer id the moment its COMMIT returned. After a fault, `check`
 * proves what a replicated database owes its clients: every node is intact, the money is all
 * there, each replica's history is a prefix of the primary's (no gap, no reorder, nothing twice)
 * and every acknowledged transfer survived, unless the scenario names an asynchronous window.
 */

export const ACCOUNTS = 20;
export const BALANCE = 1000;
export const TOTAL = ACCOUNTS * BALANCE;

const WRITER = path.join(ROOT, "test/support/programs/ledger-writer.mjs");

/** Creates the ledger on the primary (through its mount). */
export async function createLedger(primary: LitefsNode, db: string, journalMode: "delete" | "wal"): Promise<void> {
  const rows = Array.from({ length: ACCOUNTS }, (_, i) => `(${i + 1}, ${BALANCE})`).join(", ");
  await sqlite3(
    primary.db(db),
    `PRAGMA journal_mode=${journalMode};
     CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
     CREATE TABLE transfers (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, src INTEGER, dst INTEGER, amount INTEGER);
     INSERT INTO accounts VALUES ${rows};`,
  );
}

/** One client process: what it was told (acknowledged ids, in order) and the errors it saw. */
export class LedgerClient {
  readonly acked: string[] = [];
  /** When each acknowledgement arrived here (performance.now()), index for index with `acked`. */
  readonly ackedAt: number[] = [];
  readonly errors: string[] = [];
  /** When each error line arrived (performance.now()), index for index with `errors`. */
  readonly errorsAt: number[] = [];
  private readonly exited: Promise<void>;

  private constructor(
    private readonly proc: ChildProcess,
    private readonly stopFile: string,
  ) {
    let partial = "";
    proc.stdout!.on("data", (d: Buffer) => {
      const lines = (partial + d.toString()).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith("ack ")) {
          this.acked.push(line.slice(4));
          this.ackedAt.push(performance.now());
        } else if (line.startsWith("err ")) {
          this.errors.push(line.slice(4));
          this.errorsAt.push(performance.now());
        }
      }
    });
    proc.stderr!.on("data", (d: Buffer) => {
      this.errors.push(d.toString().trim());
      this.errorsAt.push(performance.now());
    });
    this.exited = new Promise((resolve) => proc.once("exit", () => resolve()));
  }

  /** Writes to the first path that accepts the transfer (a list follows the primary). */
  /** `pauseMs`: paces the load (a pause after each acknowledged transfer). */
  static async start(clientId: string, dbPaths: string[], opts: { durationMs?: number; dir: string; pauseMs?: number }): Promise<LedgerClient> {
    const stopFile = path.join(opts.dir, `stop-${clientId}`);
    await fsp.rm(stopFile, { force: true });
    const proc = spawn(process.execPath, [WRITER, dbPaths.join(","), "", clientId, String(opts.durationMs ?? 600_000), stopFile, String(ACCOUNTS), String(opts.pauseMs ?? 0)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    return new LedgerClient(proc, stopFile);
  }

  /** Asks the client to finish its transfer and exit; kills it (by PID) if it cannot. */
  async stop(): Promise<void> {
    await fsp.writeFile(this.stopFile, "");
    await withTimeout(this.exited, 20_000, "ledger client did not stop").catch(async () => {
      this.proc.kill("SIGKILL");
      await this.exited;
    });
  }
}

/** One node's view of the ledger. */
export interface NodeHistory {
  node: string;
  integrity: string;
  total: number;
  /** Transfer ids by seq (index 0 is seq 1). */
  ids: string[];
  /** Problems within this history alone: a gap or a repeated id. */
  problems: string[];
}

export async function readHistory(node: LitefsNode, db: string): Promise<NodeHistory> {
  const name = node.config.hostname ?? node.dir;
  const integrity = await sqlite3(node.db(db), "PRAGMA integrity_check;");
  const total = Number(await sqlite3(node.db(db), "SELECT sum(balance) FROM accounts;"));
  const out = await sqlite3(node.db(db), "SELECT seq || ' ' || id FROM transfers ORDER BY seq;");
  const rows = out ? out.split("\n").map((l) => l.split(" ")) : [];
  const problems: string[] = [];
  const seen = new Set<string>();
  rows.forEach(([seq, id], i) => {
    if (Number(seq) !== i + 1) problems.push(`gap: row ${i + 1} has seq ${seq}`);
    if (seen.has(id)) problems.push(`transfer ${id} applied twice`);
    seen.add(id);
  });
  return { node: name, integrity, total, ids: rows.map((r) => r[1]), problems: problems.slice(0, 10) };
}

export interface HistoryVerdict {
  acked: number;
  /** Acknowledged transfers missing from the surviving history. */
  lost: string[];
  /** Transfers committed whose acknowledgement never reached the client (cut off by the fault). */
  unacknowledged: number;
  /** Rows in the primary's history. */
  rows: number;
}

/**
 * Checks the histories against each other and against what clients were told. Throws with every
 * violation. `asyncWindow`: the scenario may lose acknowledged transfers (asynchronous
 * replication when the primary dies); they are then counted in `lost` instead of failing.
 */
export async function checkHistory(
  primary: LitefsNode,
  replicas: LitefsNode[],
  db: string,
  clients: LedgerClient[],
  opts: { asyncWindow?: boolean } = {},
): Promise<HistoryVerdict> {
  const p = await readHistory(primary, db);
  const rs = await Promise.all(replicas.map((r) => readHistory(r, db)));
  const violations: string[] = [];
  for (const h of [p, ...rs]) {
    if (h.integrity !== "ok") violations.push(`${h.node}: integrity_check: ${h.integrity.slice(0, 300)}`);
    if (h.total !== TOTAL) violations.push(`${h.node}: balances sum to ${h.total}, not ${TOTAL}`);
    for (const problem of h.problems) violations.push(`${h.node}: ${problem}`);
  }
  for (const r of rs) {
    const diverge = r.ids.findIndex((id, i) => p.ids[i] !== id);
    if (r.ids.length > p.ids.length) violations.push(`${r.node}: ${r.ids.length} transfers, more than the primary's ${p.ids.length}`);
    if (diverge >= 0) violations.push(`${r.node}: history differs from the primary's at seq ${diverge + 1} (${r.ids[diverge]} vs ${p.ids[diverge]})`);
  }
  const present = new Map(p.ids.map((id, i) => [id, i]));
  const lost: string[] = [];
  let acked = 0;
  for (const c of clients) {
    acked += c.acked.length;
    let last = -1;
    for (const id of c.acked) {
      const at = present.get(id);
      if (at === undefined) {
        lost.push(id);
        continue;
      }
      // One client's transfers commit in the order it was told they did.
      if (at < last) violations.push(`${id} is at seq ${at + 1}, before an earlier acknowledged transfer of the same client`);
      last = at;
    }
  }
  if (lost.length && !opts.asyncWindow) violations.push(`${lost.length} acknowledged transfers lost: ${lost.slice(0, 10).join(", ")}`);
  if (violations.length) throw new Error(`history check failed on ${db}:\n  ${violations.join("\n  ")}`);
  return { acked, lost, unacknowledged: p.ids.length - (acked - lost.length), rows: p.ids.length };
}

/** A folder for the clients' stop files. */
export function ledgerDir(): Promise<string> {
  return makeTempDir("ledger");
}
