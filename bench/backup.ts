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
import S3rver from "s3rver";
import { request } from "undici";
import { parseBenchArgs } from "./support/args.js";
import { buildDatabase } from "./support/big-database.js";
import { freePort } from "./support/cluster-node.js";
import { BenchDaemon, CLI, sleep } from "./support/daemon.js";
import { isMain, type BenchRow } from "./support/report.js";

export interface BackupArgs {
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

export function parseBackupArgs(argv: string[]): BackupArgs {
  return parseBenchArgs<BackupArgs>(argv, {
    defaults: { mb: 1024, keep: false },
    quick: { mb: 64 },
    numbers: { "--mb": "mb" },
  });
}

export interface BackupBenchResult {
  bytes: number;
  /** Copying the database file to another file on the same disk and fsyncing it: the baseline. */
  copyMBs: number;
  targets: Array<{ name: string; backupMBs: number; restoreMBs: number }>;
}

/** Plain copy + fsync of a file, in MB/s: what the disk does without litefs. */
async function copyMBs(source: string, dest: string): Promise<number> {
  const t0 = performance.now();
  await fsp.copyFile(source, dest);
  const fh = await fsp.open(dest, "r+");
  await fh.sync();
  await fh.close();
  const s = (performance.now() - t0) / 1000;
  const bytes = (await fsp.stat(dest)).size;
  await fsp.rm(dest);
  return bytes / 2 ** 20 / s;
}

/** Builds a database of `args.mb` MB, backs it up and restores it, to a directory and to s3rver. */
export async function runBackupBench(args: BackupArgs): Promise<BackupBenchResult> {
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
    const copy = await copyMBs(source, path.join(root, "copy.db"));
    return { bytes: results[0][1].bytes, copyMBs: copy, targets: results.map(([name, r]) => ({ name, backupMBs: r.backupMBs, restoreMBs: r.restoreMBs })) };
  } finally {
    await s3.close();
    if (!args.keep) await fsp.rm(root, { recursive: true, force: true });
    else process.stdout.write(`kept ${root}\n`);
  }
}

/** The rows of `npm run bench`: backup and restore times against a plain copy of the file (cp + fsync). */
export function backupRows(r: BackupBenchResult): BenchRow[] {
  const mb = r.bytes / 2 ** 20;
  const base = `${(mb / r.copyMBs).toFixed(2)} s (${r.copyMBs.toFixed(0)} MB/s)`;
  return r.targets.flatMap((t) =>
    (["backup", "restore"] as const).map((op) => {
      const mbs = op === "backup" ? t.backupMBs : t.restoreMBs;
      return {
        group: "backup",
        key: `backup.${op}.${t.name.split(" ")[0]}`,
        what: `${op === "backup" ? "first full backup" : "restore (verified)"}, ${t.name} (baseline: cp + fsync)`,
        n: `${mb.toFixed(0)} MB`,
        baseline: base,
        litefs: `${(mb / mbs).toFixed(2)} s (${mbs.toFixed(0)} MB/s)`,
        ratio: r.copyMBs / mbs,
        values: { bytes: r.bytes, copyMBs: r.copyMBs, MBs: mbs },
      };
    }),
  );
}

function report(r: BackupBenchResult): void {
  process.stdout.write(`\ndatabase: ${(r.bytes / 2 ** 20).toFixed(0)} MB; plain copy + fsync ${r.copyMBs.toFixed(1)} MB/s\n`);
  process.stdout.write(`${"target".padEnd(14)}${"backup MB/s".padStart(12)}${"restore MB/s".padStart(14)}\n`);
  for (const t of r.targets) process.stdout.write(`${t.name.padEnd(14)}${t.backupMBs.toFixed(1).padStart(12)}${t.restoreMBs.toFixed(1).padStart(14)}\n`);
}

if (isMain(import.meta.url)) {
  runBackupBench(parseBackupArgs(process.argv.slice(2)))
    .then(report)
    .catch((err: unknown) => {
      process.stderr.write(`bench:backup: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    });
}
