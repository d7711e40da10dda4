import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Position } from "../../src/ltx/index.js";
import { replayLtxDir } from "../support/ltx-replay.js";
import { LitefsNode, sleep, waitFor } from "../support/node-process.js";
import { sqlite3 } from "../support/sqlite-clients.js";

let node: LitefsNode;

beforeAll(async () => {
  node = await LitefsNode.create("durability");
  await node.start();
});

afterAll(async () => {
  await node?.cleanup();
});

/**
 * A child process that commits rows 1..count (WAL, synchronous=NORMAL, one transaction each),
 * prints "done" and keeps its connection open (no checkpoint, so no fsync from SQLite).
 */
function walNormalWriter(db: string, count: number): { child: ChildProcess; done: Promise<void> } {
  const program = `
    const Database = require("better-sqlite3");
    const conn = new Database(${JSON.stringify(db)});
    conn.pragma("journal_mode = WAL");
    conn.pragma("synchronous = NORMAL");
    conn.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, pad BLOB)");
    const insert = conn.prepare("INSERT INTO t (id, pad) VALUES (?, randomblob(300))");
    for (let id = 1; id <= ${count}; id++) insert.run(id);
    console.log("done");
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ["-e", program], { stdio: ["ignore", "pipe", "inherit"], cwd: process.cwd() });
  const done = new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d) => d.toString().includes("done") && resolve());
    child.once("exit", (code) => reject(new Error(`writer exited with ${code}`)));
  });
  return { child, done };
}

describe("LTX durability follows SQLite's own", () => {
  it("a torn trailing LTX file is discarded at startup and the database recovers to the last whole one", async () => {
    const name = "torn.db";
    const db = node.db(name);
    const writer = walNormalWriter(db, 20);
    await writer.done;
    // A power cut: the daemon dies and the newest LTX (never fsynced: SQLite had not fsynced
    // that commit either) is left half written. The WAL frames stay in the backing file.
    await node.kill9();
    writer.child.kill("SIGKILL");
    const files = await node.ltxFiles(name);
    const newest = path.join(node.ltxDir(name), files.at(-1)!);
    const size = (await fsp.stat(newest)).size;
    await fsp.truncate(newest, Math.floor(size / 2));
    const tornTxid = Number.parseInt(files.at(-1)!.slice(0, 16), 16);

    await node.start();
    expect(node.logs).toContain("discarded 1 trailing LTX file");
    expect(await node.ltxFiles(name)).toEqual(files.slice(0, -1));
    expect(Position.parse(await node.pos(name)).txid).toBe(tornTxid - 1);
    expect(await sqlite3(db, "PRAGMA integrity_check;")).toBe("ok");
    // Only the last commit is gone (as SQLite itself may lose it on a power cut in WAL/NORMAL).
    expect(await sqlite3(db, "SELECT count(*), max(id) FROM t;")).toBe("19|19");

    // The history goes on from the last whole file, and rebuilds the database exactly.
    await sqlite3(db, "INSERT INTO t (id, pad) VALUES (100, randomblob(10));");
    await sqlite3(db, "PRAGMA wal_checkpoint(TRUNCATE);");
    const pos = Position.parse(await node.pos(name));
    expect(pos.txid).toBe(tornTxid);
    const replay = await replayLtxDir(node.ltxDir(name));
    expect(replay.txid).toBe(pos.txid);
    expect(Buffer.compare(await fsp.readFile(db), replay.bytes)).toBe(0);
  });

  it("WAL/NORMAL commits are not fsynced on the commit path; SQLite's fsync, or the timer, makes them durable", async () => {
    const name = "fsync.db";
    const db = node.db(name);
    const conn = new Database(db);
    let tracer: ChildProcess | null = null;
    try {
      conn.pragma("journal_mode = WAL");
      conn.pragma("synchronous = NORMAL");
      conn.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
      conn.pragma("wal_checkpoint(PASSIVE)");
      await sleep(1500); // the timer has synced everything so far

      const daemon = node.proc!.pid!;
      const trace = path.join(node.dir, "strace.out");
      tracer = spawn("strace", ["-f", "-y", "-ttt", "-e", "trace=fsync,fdatasync,syncfs", "-o", trace, "-p", String(daemon)], { stdio: "ignore" });
      await waitFor(() => fs.existsSync(trace), 10_000, "strace to attach");
      await sleep(500);

      const insert = conn.prepare("INSERT INTO t (v) VALUES (?)");
      const ltxOf = async (from: number) => (await node.ltxFiles(name)).slice(from);
      const before = (await node.ltxFiles(name)).length;

      // Phase 1: five commits, then SQLite's checkpoint fsyncs the WAL.
      for (let i = 0; i < 5; i++) insert.run(`a${i}`);
      const phase1 = await ltxOf(before);
      expect(phase1).toHaveLength(5);
      const checkpointAt = Date.now() / 1000; // every phase-1 file is written by now
      conn.pragma("wal_checkpoint(FULL)");

      // Phase 2: three commits and no fsync from SQLite: the timer syncs them within its bound.
      // (The first commit after a full checkpoint restarts the WAL, and SQLite fsyncs its header.)
      insert.run("restart");
      const phase2Start = Date.now() / 1000;
      for (let i = 0; i < 3; i++) insert.run(`b${i}`);
      const phase2 = await ltxOf(before + 6);
      expect(phase2).toHaveLength(3);
      const phase2Committed = Date.now() / 1000;
      await sleep(2500);
      const phase2End = Date.now() / 1000;
      tracer.kill("SIGINT");
      await new Promise((resolve) => tracer!.once("exit", resolve));
      tracer = null;

      const calls = parseStrace(await fsp.readFile(trace, "utf8"));
      // (SQLite also fsyncs a restarted WAL's header, before the first commit of phase 1.)
      const walSync = calls.findIndex((c) => c.tid === daemon && c.path.endsWith(`/dbs/${name}/wal`) && c.startedAt >= checkpointAt);
      expect(walSync).toBeGreaterThan(-1);
      // Every LTX of phase 1 was fsynced, by one thread or another, before the WAL's fsync began.
      // (A syncfs of the data filesystem that began after they were written counts.)
      const syncfsBetween = (from: number, to: number) => calls.some((c) => c.syscall === "syncfs" && c.startedAt >= from && c.doneAt <= to);
      for (const f of phase1) {
        const fsynced = calls.some((c) => c.path.endsWith(f) && c.doneAt < calls[walSync].startedAt);
        expect(fsynced || syncfsBetween(checkpointAt, calls[walSync].startedAt)).toBe(true);
      }
      // The FUSE thread fsyncs an LTX only on SQLite's request: never between commits.
      const mainInPhase2 = calls.filter((c) => c.tid === daemon && c.startedAt >= phase2Start && c.startedAt <= phase2End);
      expect(mainInPhase2).toEqual([]);
      // ... and the timer (another thread) made phase 2's files durable without being asked.
      for (const f of phase2) {
        const fsynced = calls.some((c) => c.tid !== daemon && c.path.endsWith(f) && c.doneAt <= phase2End);
        expect(fsynced || syncfsBetween(phase2Committed, phase2End)).toBe(true);
      }
    } finally {
      tracer?.kill("SIGKILL");
      conn.close();
    }
  });
});

interface SyncCall {
  syscall: string;
  tid: number;
  path: string;
  startedAt: number;
  doneAt: number;
}

/** fsync and syncfs calls from `strace -f -y -ttt -o`, with their start and end times (unfinished/resumed pairs joined). */
function parseStrace(text: string): SyncCall[] {
  const calls: SyncCall[] = [];
  const open = new Map<number, SyncCall>();
  for (const line of text.split("\n")) {
    const start = /^(\d+)\s+([\d.]+)\s+(fsync|fdatasync|syncfs)\(\d+<([^>]*)>\)?\s*(<unfinished \.\.\.>)?/.exec(line);
    if (start) {
      const call = { syscall: start[3], tid: Number(start[1]), path: start[4], startedAt: Number(start[2]), doneAt: Number(start[2]) };
      calls.push(call);
      if (start[5]) {
        call.doneAt = Infinity;
        open.set(call.tid, call);
      }
      continue;
    }
    const resumed = /^(\d+)\s+([\d.]+)\s+<\.\.\. (?:fsync|fdatasync|syncfs) resumed>/.exec(line);
    if (resumed) {
      const call = open.get(Number(resumed[1]));
      if (call) call.doneAt = Number(resumed[2]);
      open.delete(Number(resumed[1]));
    }
  }
  return calls;
}
