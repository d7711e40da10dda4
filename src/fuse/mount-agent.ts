import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { Database } from "../store/database.js";
import type { ApplyFile, PageWriter } from "../store/apply.js";
import type { ApplyRequest, ApplyResponse } from "./apply-protocol.js";

const AGENT_SCRIPT = fileURLToPath(new URL("./apply-agent-process.js", import.meta.url));

/**
 * The daemon's handle on the apply agent process (see apply-agent-process.ts): sends it one
 * request per batch of received LTX files (one database, in order) and waits for the answer
 * without blocking the event loop, which keeps serving the FUSE requests the agent's writes
 * produce. Restarted if it dies.
 */
export class ApplyAgent implements PageWriter {
  private child: ChildProcess | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (pages: number) => void; reject: (err: Error) => void }>();
  private closed = false;

  constructor(
    private readonly mnt: string,
    private readonly log: Logger,
    private readonly lockTimeoutMs = 30_000,
  ) {}

  /** Started before the mount holds anything, and from a process that holds no mount files. */
  start(): void {
    if (this.child || this.closed) return;
    const child = fork(AGENT_SCRIPT, [], { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "json" });
    child.on("message", (res: ApplyResponse) => {
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (res.ok) p.resolve(res.pages);
      else p.reject(new Error(res.error));
    });
    child.on("exit", (code, signal) => {
      this.child = null;
      for (const p of this.pending.values()) p.reject(new Error(`apply agent exited (code ${code}, signal ${signal})`));
      this.pending.clear();
      if (!this.closed) this.log.warn({ code, signal }, "apply agent exited; it restarts with the next apply");
    });
    this.child = child;
  }

  async apply(db: Database, files: readonly ApplyFile[], opts: { reopen?: boolean } = {}): Promise<void> {
    this.start();
    const child = this.child;
    if (!child) throw new Error("apply agent is closed");
    const id = this.nextId++;
    const req: ApplyRequest = {
      id,
      op: "apply",
      mnt: this.mnt,
      db: db.name,
      files: files.map((f) => ({ path: f.path, pages: f.pages, pageSize: f.pageSize })),
      reopen: opts.reopen ?? false,
      lockTimeoutMs: this.lockTimeoutMs,
    };
    await new Promise<number>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      child.send(req);
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
