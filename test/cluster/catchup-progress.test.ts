import { spawn } from "node:child_process";
import { afterEach, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { CLI, LitefsNode, forceUnmount, freePort, waitFor } from "../support/node-process.js";
import { sqlite3 } from "../support/sqlite-clients.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

it("a replica started in a terminal shows its first catch-up as a progress bar; in a pipe it shows none", async () => {
  const c = await Cluster.start("progress", 0);
  cleanups.push(() => c.cleanup());
  await sqlite3(c.primary.db("p.db"), "CREATE TABLE t (v); " + "INSERT INTO t VALUES (randomblob(100));".repeat(300));
  const replica = await LitefsNode.create("progress-r", { candidate: false, httpPort: await freePort(), hostname: "replica0", primaryUrl: c.primary.config.primaryUrl });
  cleanups.push(() => replica.cleanup());

  // script(1) gives the daemon a terminal; its own process group, so the whole group is stopped after.
  const proc = spawn("script", ["-qfec", `${process.execPath} ${CLI} mount -config ${replica.configPath}`, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"], detached: true });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d.toString()));
  proc.stderr!.on("data", (d) => (out += d.toString()));
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  cleanups.push(async () => {
    if (proc.exitCode === null) process.kill(-proc.pid!, "SIGTERM");
    await exited;
    await forceUnmount(replica.mnt);
  });
  await waitFor(() => out.includes("caught up with the primary"), 30_000, `the replica to catch up: ${out.slice(-2000)}`);
  expect(out).toMatch(/catching up with the primary \[.*\] 100% \| 301\/301 transactions/);

  // A replica whose output is a pipe (the test harness's): logs only, no bar.
  const piped = await LitefsNode.create("progress-r2", { candidate: false, httpPort: await freePort(), hostname: "replica1", primaryUrl: c.primary.config.primaryUrl });
  cleanups.push(() => piped.cleanup());
  await piped.start();
  await waitFor(() => piped.logs.includes("caught up with the primary"), 30_000, "the piped replica to catch up");
  expect(piped.logs).not.toContain("catching up with the primary [");
});
