import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { request } from "undici";
import { Cluster } from "./cluster.js";
import { FaultProxy } from "./fault-proxy.js";
import { LitefsNode, ROOT, freePort, makeTempDir, waitFor, withTimeout, type NodeConfig } from "./node-process.js";

const WEB_APP = path.join(ROOT, "test/support/programs/web-app.mjs");

/** test/support/programs/web-app.mjs: a real app that reads and writes the mounted database. */
export class WebApp {
  private proc: ChildProcess | null = null;
  logs = "";
  /** Chosen by the app at its first start (no race for a port picked in advance); kept across restarts. */
  port = 0;

  constructor(
    readonly name: string,
    readonly dbPath: string,
    /** Run in this network namespace (test/support/netns.ts), beside its node's proxy. */
    readonly netns?: string,
  ) {}

  async start(): Promise<void> {
    this.logs = "";
    const argv = [process.execPath, WEB_APP, String(this.port), this.name, this.dbPath];
    if (this.netns) argv.unshift("nsenter", `--net=/run/netns/${this.netns}`);
    const proc = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    proc.stdout!.on("data", (d) => (this.logs += d.toString()));
    proc.stderr!.on("data", (d) => (this.logs += d.toString()));
    await waitFor(() => this.logs.includes("listening") || proc.exitCode !== null, 10_000, `web app ${this.name} to listen`);
    if (proc.exitCode !== null) throw new Error(`web app ${this.name} exited: ${this.logs}`);
    this.port = Number(/listening (\d+)/.exec(this.logs)![1]);
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGTERM");
      await withTimeout(exited, 10_000, `web app ${this.name} did not exit`);
    }
  }
}

/** A LiteFS node with its proxy in front of its own web app. */
export interface ProxiedNode {
  node: LitefsNode;
  app: WebApp;
  proxyPort: number;
  proxyUrl: string;
}

/**
 * A static-lease cluster on loopback where every node runs the proxy (proxy.db: app.db) in front
 * of its web app. The replicas reach the primary's API through a FaultProxy, so a test can cut
 * them off; their writes reach the primary's proxy directly.
 */
export class ProxyCluster {
  private constructor(
    readonly nodes: ProxiedNode[],
    readonly link: FaultProxy,
  ) {}

  get primary(): ProxiedNode {
    return this.nodes[0];
  }

  get replicas(): ProxiedNode[] {
    return this.nodes.slice(1);
  }

  static async start(
    label: string,
    replicaCount: number,
    opts: { proxyYaml?: string; databases?: string[]; replica?: NodeConfig } = {},
  ): Promise<ProxyCluster> {
    const primaryPort = await freePort();
    const link = await FaultProxy.start(primaryPort);
    const nodes: ProxiedNode[] = [];
    const make = async (suffix: string, config: NodeConfig): Promise<void> => {
      const proxyPort = await freePort();
      const node = new LitefsNode(await makeTempDir(`${label}-${suffix}`), config);
      // The app first: the node's proxy.target is the port it got.
      const app = new WebApp(config.hostname!, node.db("app.db"));
      nodes.push({ node, app, proxyPort, proxyUrl: `http://127.0.0.1:${proxyPort}` });
      await app.start();
      node.config.extraYaml = ["proxy:", `  addr: "127.0.0.1:${proxyPort}"`, `  target: "127.0.0.1:${app.port}"`, `  db: [${(opts.databases ?? ["app.db"]).join(", ")}]`, opts.proxyYaml ?? ""].join("\n");
      await node.writeConfig();
    };
    const proxied = new ProxyCluster(nodes, link);
    try {
      await make("p", { candidate: true, httpPort: primaryPort, hostname: "primary", primaryUrl: `http://127.0.0.1:${primaryPort}` });
      for (let i = 0; i < replicaCount; i++) {
        await make(`r${i}`, { candidate: false, httpPort: await freePort(), hostname: `replica${i}`, primaryUrl: link.url, ...opts.replica });
      }
      for (const n of nodes) await n.node.start();
      for (const n of nodes) await proxied.waitForProxy(n);
    } catch (err) {
      await proxied.cleanup();
      throw err;
    }
    return proxied;
  }

  get cluster(): Cluster {
    return new Cluster(this.nodes[0].node, this.nodes.slice(1).map((n) => n.node));
  }

  /** The proxy listens once its node is ready. */
  async waitForProxy(n: ProxiedNode): Promise<void> {
    let last = "";
    await waitFor(
      async () => {
        const res = await fetchText(`${n.proxyUrl}/litefs/health`).catch((err: Error) => ({ status: 0, body: err.message }));
        last = `${res.status} ${res.body}`;
        return res.status === 200;
      },
      30_000,
      `the proxy of ${n.node.config.hostname}`,
    ).catch((err: Error) => {
      throw new Error(`${err.message} (last answer: ${last})\n${n.node.logs.slice(-3000)}`);
    });
  }

  async cleanup(): Promise<void> {
    for (const n of this.nodes) {
      await n.app.stop().catch(() => undefined);
      await n.node.cleanup();
    }
    await this.link.close();
  }
}

export async function fetchText(url: string, init: Parameters<typeof request>[1] = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const res = await request(url, init);
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}
