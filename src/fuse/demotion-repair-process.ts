/**
 * Entry point of the short-lived process that repairs a node's databases after it stopped being
 * the primary (see demotion-repair.ts). Started by the daemon, which holds no file on its own
 * mount; this process never starts another. Input: one JSON argument; output: one JSON line.
 */
import * as path from "node:path";
import { foldWal, rollbackJournal, type RepairJob } from "./demotion-repair.js";

const { mnt, jobs, lockTimeoutMs } = JSON.parse(process.argv[2]) as { mnt: string; jobs: RepairJob[]; lockTimeoutMs: number };
const results: Array<{ db: string; kind: string; pages: number }> = [];
for (const job of jobs) {
  const dbPath = path.join(mnt, job.db);
  const pages = job.kind === "journal" ? rollbackJournal(dbPath, lockTimeoutMs) : foldWal(dbPath, job.committedEnd, lockTimeoutMs);
  results.push({ db: job.db, kind: job.kind, pages });
}
process.stdout.write(JSON.stringify(results) + "\n");
