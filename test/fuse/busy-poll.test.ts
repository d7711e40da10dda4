import { spawn } from "node:child_process";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LitefsNode, ROOT, freePort, waitFor } from "../support/node-process.js";
import { info } from "../support/roles.js";

/**
 * The event loop busy-polls the FUSE device after each request (fuse.busy-poll). An app whose
 * requests never stop coming must not keep it there: HTTP, timers and the thread pool's
 * completions still get their turn (vendor/litefs-fuse: MAX_TURN_NS). Seen without that bound
 * in the disk-full fault scenario: a primary's retention timer never ran while a client
 * committed, its small disk filled up with LTX files, and its replica could not get an answer.
 */

let node: LitefsNode;

beforeAll(async () => {
  // A busy-poll far longer than the gap between two commits of the writer below.
  node = await LitefsNode.create("busy-poll", {
    httpPort: await freePort(),
    busyPoll: "1ms",
    retention: "1s",
    retentionMonitorInterval: "200ms",
  });
  await node.start();
});

afterAll(async () => {
  await node?.cleanup();
});

describe("busy polling", () => {
  it("answers HTTP and runs its timers while apps commit without a pause", async () => {
    // Three writers, so that the requests keep coming even while one of them waits for a CPU.
    const writers = ["a", "b", "c"].map((name) => {
      const proc = spawn(process.execPath, [path.join(ROOT, "test/support/programs/writer.mjs"), node.db(`${name}.db`), "wal", "1", "1000000000", "5000", "16"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      const w = { proc, commits: 0, err: "" };
      proc.stdout!.on("data", (d: Buffer) => (w.commits += d.toString().split("\n").length - 1));
      proc.stderr!.on("data", (d: Buffer) => (w.err += d));
      return w;
    });
    const commits = () => writers.reduce((n, w) => n + w.commits, 0);
    const running = () => writers.every((w) => w.proc.exitCode === null);
    const errors = () => writers.map((w) => w.err).join("");
    try {
      await waitFor(() => !running() || writers.every((w) => w.commits >= 200), 30_000, "the writers to get going");
      expect(running(), `a writer stopped: ${errors()}`).toBe(true);
      const before = commits();
      // Starved, this would wait until the writers stop, which they do not by themselves.
      const answer = await info(node);
      expect(answer.hostname).toBeTruthy();
      expect(running(), `a writer stopped: ${errors()}`).toBe(true);
      // Retention runs on a timer: starved, it would not run until the writers stop.
      const retentionRuns = node.logs.split("retention removed old LTX files").length;
      await waitFor(() => node.logs.split("retention removed old LTX files").length > retentionRuns, 30_000, "retention to run");
      expect(running(), `a writer stopped: ${errors()}`).toBe(true);
      await waitFor(() => commits() > before + 100, 30_000, "more commits after the answer");
    } finally {
      for (const w of writers) w.proc.kill("SIGKILL");
    }
  });
});
