/**
 * Runs one workload in a worker thread, so that the driver's main thread stays free to handle
 * Ctrl-C (stop the daemon, detach the mount) while SQLite is busy. The workloads themselves are
 * synchronous (better-sqlite3); timing happens inside the worker.
 */
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";

import { takeSnapshot, type Probe, type Snapshot } from "./daemon.js";
import { WORKLOADS, type WorkloadParams, type WorkloadResult } from "./workloads.js";

export interface RunRequest {
  key: string;
  dir: string;
  params: WorkloadParams;
  /** Set for the mount run: snapshot LTX count, TXID and log size around the measured section. */
  probe?: Probe;
}

export interface RunReply {
  result: WorkloadResult;
  before?: Snapshot;
  after?: Snapshot;
}

/** The worker currently running, if any (terminated on Ctrl-C). */
let current: Worker | null = null;

export function runWorkload(req: RunRequest): Promise<RunReply> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: req });
    current = worker;
    let reply: RunReply | null = null;
    worker.once("message", (m: RunReply) => (reply = m));
    worker.once("error", reject);
    worker.once("exit", (code) => {
      current = null;
      if (reply) resolve(reply);
      else reject(new Error(`workload ${req.key} stopped (worker exit code ${code})`));
    });
  });
}

export async function terminateWorkload(): Promise<void> {
  await current?.terminate();
}

function serve(req: RunRequest): RunReply {
  const workload = WORKLOADS.find((w) => w.key === req.key);
  if (!workload) throw new Error(`no workload ${req.key}`);
  const probe = req.probe;
  let before: Snapshot | undefined;
  const result = workload.run(req.dir, req.params, probe ? { beforeMeasure: () => (before = takeSnapshot(probe, workload.db)) } : {});
  return { result, before, after: probe ? takeSnapshot(probe, workload.db) : undefined };
}

if (!isMainThread && parentPort) parentPort.postMessage(serve(workerData as RunRequest));
