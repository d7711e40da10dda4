import { fork, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { ApplyFile } from "../store/apply.js";
import type { Database } from "../store/database.js";
import type { MountWriter, RepairJob, RepairResult } from "../store/mount-writer.js";
import { MountAgentError } from "./errors.js";
import type { MountAgentRequest, MountAgentResponse } from "./mount-agent-protocol.js";

const AGENT_SCRIPT = fileURLToPath(new URL("./mount-agent-process.js", import.meta.url));

type RequestBody = MountAgentRequest extends infer R ? (R extends MountAgentRequest ? Omit<R, "id" | "lockTimeoutMs"> : never) : never;

/**
 * The daemon's handle on its mount agent: the one child process that writes through the node's
 * own mount (applying replicated pages, repairing after a demotion), so the kernel's caches stay
 * right for every reader (DESIGN.md section 4) while this process keeps serving the FUSE
 * requests those writes produce. Started before the mount holds anything; restarted if it dies.
 *
 * The FUSE adapter lets only this child write a replica's databases: it recognises the child by
 * the process ID the kernel reports for each request (`owns`), which no other process can claim.
 */
export class MountAgent implements MountWriter {
  private child: ChildProcess | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (result: number) => void; reject: (err: Error) => void }>();
  private closed = false;

  constructor(
    private readonly mnt: string,
    private readonly log: Logger,
    private readonly lockTimeoutMs = 30_000,
  ) {}

  /** Started before the mount holds anything, and from a process that holds no mount files. */
  start(): void {
    if (this.child || this.closed) return;
    const child = fork(AGENT_SCRIPT, [this.mnt], { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "json" });
    child.on("message", (res: MountAgentResponse) => {
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (res.ok) p.resolve(res.result);
      else p.reject(new MountAgentError(res.code, res.message));
    });
    child.on("exit", (code, signal) => {
      if (this.child === child) this.child = null;
      for (const p of this.pending.values()) p.reject(new MountAgentError("AGENT_EXITED", `mount agent exited (code ${code}, signal ${signal})`));
      this.pending.clear();
      if (!this.closed) this.log.warn({ code, signal }, "mount agent exited; it restarts with the next request");
    });
    // Whatever else the child reports (it could not be started, a message could not be sent) is
    // logged: 'exit' or the request's own callback settles the requests.
    child.on("error", (err) => this.log.warn({ err }, "mount agent error"));
    this.child = child;
  }

  /**
   * Is `pid` the agent? The kernel reports the calling thread: the agent's main thread has the
   * agent's PID; any other thread is looked up in /proc (procfs, never the mount).
   */
  owns(pid: number): boolean {
    const agent = this.child?.pid;
    if (agent === undefined || pid <= 0) return false;
    if (pid === agent) return true;
    try {
      return /^Tgid:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] === String(agent);
    } catch {
      return false;
    }
  }

  async apply(db: Database, files: readonly ApplyFile[], opts: { reopen?: boolean; resetWal?: boolean } = {}): Promise<void> {
    await this.request({
      op: "apply",
      db: db.name,
      files: files.map((f) => ({ path: f.path, pages: f.pages, pageSize: f.pageSize })),
      reopen: opts.reopen ?? false,
      resetWal: opts.resetWal ?? false,
    });
  }

  async holdWrites(db: string): Promise<void> {
    await this.request({ op: "hold-writes", db });
  }

  async releaseWrites(db: string): Promise<void> {
    await this.request({ op: "release-writes", db });
  }

  async repair(jobs: readonly RepairJob[]): Promise<RepairResult[]> {
    const results: RepairResult[] = [];
    for (const job of jobs) {
      const pages = await this.request(job.kind === "fold-wal" ? { op: "fold-wal", db: job.db, committedEnd: job.committedEnd } : { op: "rollback-journal", db: job.db });
      results.push({ db: job.db, kind: job.kind, pages });
    }
    return results;
  }

  private request(body: RequestBody): Promise<number> {
    this.start();
    const child = this.child;
    if (!child) return Promise.reject(new MountAgentError("AGENT_EXITED", "the mount agent is closed"));
    const req = { ...body, id: this.nextId++, lockTimeoutMs: this.lockTimeoutMs } as MountAgentRequest;
    return new Promise<number>((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject });
      // With a callback a closed channel (the agent killed, its exit not yet seen) is an answer,
      // not an 'error' event that would bring the daemon down.
      child.send(req, (err) => {
        if (!err || !this.pending.delete(req.id)) return;
        reject(new MountAgentError("AGENT_EXITED", `mount agent unreachable: ${err.message}`));
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.disconnect();
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}
