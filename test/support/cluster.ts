import * as fsp from "node:fs/promises";
import { expect } from "vitest";
import { LitefsNode, freePort, waitFor, type NodeConfig } from "./node-process.js";
import { sqlite3 } from "./sqlite-clients.js";

/** A primary and replicas on loopback, each with its own data dir, mount and port (static lease). */
export class Cluster {
  constructor(
    readonly primary: LitefsNode,
    readonly replicas: LitefsNode[],
  ) {}

  get nodes(): LitefsNode[] {
    return [this.primary, ...this.replicas];
  }

  /** A primary configured with http.tls is reached at https. */
  static async start(label: string, replicaCount: number, opts: { primary?: NodeConfig; replica?: NodeConfig } = {}): Promise<Cluster> {
    const primaryPort = await freePort();
    const primaryUrl = `${opts.primary?.tls ? "https" : "http"}://127.0.0.1:${primaryPort}`;
    const primary = await LitefsNode.create(`${label}-p`, { candidate: true, httpPort: primaryPort, hostname: "primary", primaryUrl, ...opts.primary });
    const replicas: LitefsNode[] = [];
    for (let i = 0; i < replicaCount; i++) {
      replicas.push(
        await LitefsNode.create(`${label}-r${i}`, { candidate: false, httpPort: await freePort(), hostname: `replica${i}`, primaryUrl, ...opts.replica }),
      );
    }
    const cluster = new Cluster(primary, replicas);
    await primary.start();
    for (const r of replicas) await r.start();
    return cluster;
  }

  async cleanup(): Promise<void> {
    for (const n of this.nodes) await n.cleanup();
  }

  /** Waits until every replica reports the primary's position for `name` (or lacks it, if dropped). */
  async waitForConvergence(name: string, timeoutMs = 30_000, replicas = this.replicas): Promise<string> {
    let want: string | null = null;
    const wait = waitFor(
      async () => {
        want = await this.primary.pos(name).catch(() => null);
        for (const r of replicas) {
          const got = await r.pos(name).catch(() => null);
          if (got !== want) return false;
        }
        return true;
      },
      timeoutMs,
      `replicas to reach the primary's position of ${name}`,
    );
    await wait.catch(async (err: Error) => {
      // The logs say why (verification errors, reconnects): worth the noise on a failure.
      const tails = [this.primary, ...replicas].map((n) => `--- ${n.config.hostname} (${n.dir}):\n${n.logs.slice(-3000)}`);
      throw new Error(`${err.message}\n${tails.join("\n")}`);
    });
    return want ?? "";
  }

  /** Every node holds the same bytes for `name` (the primary's WAL folded into its file first). */
  async expectIdenticalBytes(name: string, replicas = this.replicas): Promise<void> {
    await sqlite3(this.primary.db(name), "PRAGMA wal_checkpoint(TRUNCATE);");
    const want = await fsp.readFile(this.primary.db(name));
    for (const r of replicas) {
      const got = await fsp.readFile(r.db(name));
      expect(got.length, `${r.config.hostname}: size of ${name}`).toBe(want.length);
      expect(Buffer.compare(got, want), `${r.config.hostname}: bytes of ${name}`).toBe(0);
    }
  }
}
