import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, expect, test } from "vitest";
import { Cluster } from "../support/cluster.js";
import { CLI, makeTempDir } from "../support/node-process.js";
import { sqlite3 } from "../support/sqlite-clients.js";

let c: Cluster | null = null;
let dir = "";
afterAll(async () => {
  await c?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function rssMb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
  } catch {
    return 0; // exited
  }
}

test("a 1 GB import streams: the daemon and the CLI stay under 150 MB", async () => {
  c = await Cluster.start("ie-large", 1);
  dir = await makeTempDir("ie-large-files");
  const file = path.join(dir, "big.db");
  // 1,000 rows of 1 MB of random bytes: about 1 GB, incompressible.
  await sqlite3(file, "CREATE TABLE t (b BLOB); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) INSERT INTO t SELECT randomblob(1000000) FROM c;", { timeoutMs: 600_000 });
  expect(fs.statSync(file).size).toBeGreaterThan(1_000_000_000);

  const idle = rssMb(c.primary.proc!.pid!);
  const cli = spawn(process.execPath, [CLI, "import", "-config", c.primary.configPath, "-name", "big.db", file], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  cli.stdout.on("data", (d) => (out += d.toString()));
  cli.stderr.on("data", (d) => (out += d.toString()));
  const peak = { daemon: 0, cli: 0 };
  const sampler = setInterval(() => {
    peak.daemon = Math.max(peak.daemon, rssMb(c!.primary.proc!.pid!));
    peak.cli = Math.max(peak.cli, rssMb(cli.pid!));
  }, 100);
  const code = await new Promise<number | null>((resolve) => cli.once("exit", resolve));
  clearInterval(sampler);
  console.log(`1 GB import: peak RSS daemon ${peak.daemon.toFixed(0)} MB (idle before: ${idle.toFixed(0)} MB), CLI ${peak.cli.toFixed(0)} MB`);
  expect(code, out).toBe(0);
  expect(peak.daemon).toBeLessThan(150);
  expect(peak.cli).toBeLessThan(150);
  await c.waitForConvergence("big.db", 600_000);
  expect(await sqlite3(c.replicas[0].db("big.db"), "SELECT count(*) FROM t")).toBe("1000");
}, 1_200_000);
