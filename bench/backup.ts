/**
 * Backup benchmark (issue 14): throughput of the first full backup of a large database and of a
 * point-in-time restore of it, in MB/s, to a real S3-compatible server (s3rver on loopback) and
 * to a directory (`backup.type: file`).
 *
 *   npm run bench:backup                  (builds, then runs dist/bench/backup.js; 1 GB)
 *   node dist/bench/backup.js --mb 256    (a smaller database)
 *   node dist/bench/backup.js --quick     (64 MB, a smoke test)
 *
 * For each target: a database of `--mb` MB (random 4 KiB rows) is built outside the mount with
 * better-sqlite3 and imported into a `litefs mount` primary whose backup points at the target;
 * backup = from the import's return until /info reports the backup at the node's position
 * (snapshot written from the live database, uploaded in parts); restore = `litefs restore` of
 * that position into a new file (download, verify every object, final checksum), as a process.
 * Only processes started here are stopped, by PID; mounts and temp dirs are removed at the end.
 */
import { spawn } from "node:child_process";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import S3rver from "s3rver";
import { request } from "undici";
import { parseBenchArgs } from "./support/args.js";
import { freePort } from "./support/cluster-node.js";
import { BenchDaemon, CLI, sleep } from "./support/daemon.js";

interface Args {
  mb: number;
  keep: boolean;
}

const DB = "bench.db";

function run(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out }));
  });
}

function buildDatabase(file: string, mb: number): void {
  const db = new Database(file);
  db.pragma("journal_mode = DELETE");
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)");
  const insert = db.prepare("INSERT INTO t (b) VALUES (randomblob(4000))");
  const rows = Math.ceil((mb * 1024 * 1024) / 4096);
  const batch = db.transaction((n: number) => {
    for (let i = 0; i < n; i++) insert.run();
  });
  for (let done = 0; done < rows; done += 10_000) batch(Math.min(10_000, rows - done));
  db.close();
}

async function backupPosition(port: number): Promise<string | null> {
  const res = await request(`http://127.0.0.1:${port}/info`);
  const info = (await res.body.json()) as { backup?: Record<string, { position: string | null }> };
  return info.backup?.[DB]?.position ?? null;
}

async function measure(root: string, label: string, source: string, backupYaml: string[]): Promise<{ backupMBs: number; restoreMBs: number; bytes: number }> {
  const port = await freePort();
  const daemon = new BenchDaemon(path.join(root, label), {
    label,
    config: ["http:", `  addr: "127.0.0.1:${port}"`, "lease:", "  type: static", "  candidate: true", `  advertise-url: http://127.0.0.1:${port}`, ...backupYaml],
  });
  await daemon.start();
  try {
    const imported = await run(["import", "-name", DB, "-url", `http://127.0.0.1:${port}`, source]);
    if (imported.code !== 0) throw new Error(`import failed: ${imported.out}`);
    const t0 = performance.now();
    const pos = await daemon.pos(DB);
    for (;;) {
      if ((await backupPosition(port)) === pos) break;
      await sleep(50);
    }
    const backupS = (performance.now() - t0) / 1000;
    const out = path.join(root, `${label}-restored.db`);
    const t1 = performance.now();
    const restored = await run(["restore", "-name", DB, "-config", daemon.configPath, "-o", out]);
    const restoreS = (performance.now() - t1) / 1000;
    if (restored.code !== 0) throw new Error(`restore failed: ${restored.out}`);
    if (!restored.out.includes(pos ?? "?")) throw new Error(`restore reached another position than ${pos}: ${restored.out}`);
    const bytes = (await fsp.stat(out)).size;
    await fsp.rm(out);
    return { backupMBs: bytes / 2 ** 20 / backupS, restoreMBs: bytes / 2 ** 20 / restoreS, bytes };
  } finally {
    await daemon.stop();
  }
}

async function main(): Promise<void> {
  const args = parseBenchArgs<Args>(process.argv.slice(2), {
    defaults: { mb: 1024, keep: false },
    quick: { mb: 64 },
    numbers: { "--mb": "mb" },
  });
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), "litefs-bench-backup-"));
  const s3Port = await freePort();
  const s3 = new S3rver({ port: s3Port, address: "127.0.0.1", directory: path.join(root, "s3"), silent: true, configureBuckets: [{ name: "backups", configs: [] }] });
  await s3.run();
  try {
    const source = path.join(root, "source.db");
    process.stdout.write(`building a ${args.mb} MB database...\n`);
    buildDatabase(source, args.mb);
    const common = ["  interval: 200ms", "  snapshot-interval: 24h"];
    const results = [
      ["file", await measure(root, "file", source, ["backup:", "  type: file", `  url: file://${path.join(root, "backups")}`, ...common])],
      [
        "s3 (s3rver)",
        await measure(root, "s3", source, [
          "backup:",
          "  type: s3",
          "  url: s3://backups/bench",
          `  endpoint: http://127.0.0.1:${s3Port}`,
          "  access-key-id: S3RVER",
          "  secret-access-key: S3RVER",
          ...common,
        ]),
      ],
    ] as const;
    process.stdout.write(`\ndatabase: ${(results[0][1].bytes / 2 ** 20).toFixed(0)} MB\n`);
    process.stdout.write(`${"target".padEnd(14)}${"backup MB/s".padStart(12)}${"restore MB/s".padStart(14)}\n`);
    for (const [name, r] of results) process.stdout.write(`${name.padEnd(14)}${r.backupMBs.toFixed(1).padStart(12)}${r.restoreMBs.toFixed(1).padStart(14)}\n`);
  } finally {
    await s3.close();
    if (!args.keep) await fsp.rm(root, { recursive: true, force: true });
    else process.stdout.write(`kept ${root}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:backup: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
