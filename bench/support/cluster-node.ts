/**
 * One node of a benchmark cluster: a `litefs mount` process on loopback with its own data dir,
 * mount and HTTP port, static lease (the candidate is the primary, the others stream from its
 * advertise URL). A BenchDaemon (daemon.ts): it logs to a file, stops with SIGTERM, and always
 * detaches its mount, even on error. Only processes started here are ever killed, by PID.
 */
import * as net from "node:net";
import * as path from "node:path";

import { BenchDaemon } from "./daemon.js";

export interface ClusterNodeOptions {
  hostname: string;
  candidate: boolean;
  httpPort: number;
  /** The primary's advertise URL (the same on every node). */
  primaryUrl: string;
  /** data.retention; long by default so catch-up is served from LTX files, not a snapshot. */
  retention?: string;
  retentionMonitorInterval?: string;
  /** More top-level YAML appended to the config (e.g. a `proxy:` section), one line per entry. */
  extraYaml?: string[];
  /** More lines under `data:`. */
  dataYaml?: string[];
}

/** A BenchDaemon whose config makes it one node of a static-lease cluster. */
export class ClusterNode extends BenchDaemon {
  constructor(
    dir: string,
    readonly opts: ClusterNodeOptions,
  ) {
    // LITEFS_BENCH_CPU_PROF=<dir>: profile every daemon (node --cpu-prof), one folder per node.
    const prof = process.env.LITEFS_BENCH_CPU_PROF;
    super(dir, {
      label: opts.hostname,
      retention: opts.retention,
      retentionMonitorInterval: opts.retentionMonitorInterval,
      dataYaml: opts.dataYaml,
      cpuProfDir: prof ? path.join(prof, opts.hostname) : undefined,
      config: [
        "http:",
        `  addr: "127.0.0.1:${opts.httpPort}"`,
        "lease:",
        "  type: static",
        `  candidate: ${opts.candidate}`,
        `  hostname: ${opts.hostname}`,
        `  advertise-url: ${opts.primaryUrl}`,
        "  reconnect-delay: 200ms",
        ...(opts.extraYaml ?? []),
      ],
    });
  }
}

/** A TCP port nothing listens on right now (bound and released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Primary plus replicas, each in its own folder under `root`. */
export async function startCluster(root: string, replicaCount: number): Promise<{ primary: ClusterNode; replicas: ClusterNode[] }> {
  const port = await freePort();
  const primaryUrl = `http://127.0.0.1:${port}`;
  const primary = new ClusterNode(path.join(root, "primary"), { hostname: "primary", candidate: true, httpPort: port, primaryUrl });
  const replicas: ClusterNode[] = [];
  for (let i = 0; i < replicaCount; i++) {
    replicas.push(new ClusterNode(path.join(root, `replica${i}`), { hostname: `replica${i}`, candidate: false, httpPort: await freePort(), primaryUrl }));
  }
  await primary.start();
  for (const r of replicas) await r.start();
  return { primary, replicas };
}
