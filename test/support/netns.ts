import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/**
 * Network namespaces for the network fault tests: a lab is one Linux bridge in the test's own
 * (root) namespace, at 10.231.<subnet>.1/24, and one namespace per host, plugged into the bridge
 * by a veth pair (eth0 inside, 10.231.<subnet>.<10+i>). A daemon runs in its host's namespace
 * through `nsenter --net` only (not `ip netns exec`, which also unshares the mount namespace: a
 * FUSE mount made there would be invisible to the test). Cutting a host sets its veth down: its
 * packets go nowhere, in both directions, and open connections hang as they would on a real
 * partition (nothing resets them).
 *
 * Every name starts with `lfst-` followed by the creating process's PID (base 36), so leftovers
 * of a crashed run are recognised, and only those of dead processes are removed
 * (`removeLeftovers`; scripts/test-faults.sh removes all `lfst-` names before a run).
 */
export const NET_PREFIX = "lfst-";

let labs = 0;

export interface NetHost {
  /** The test's name for the host, e.g. "node-a". */
  name: string;
  /** The network namespace (ip netns), /run/netns/<netns>. */
  netns: string;
  /** Its address on the lab's bridge. */
  ip: string;
  /** The host side of its veth pair, in the root namespace (down = cut off). */
  link: string;
}

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync("ip", args);
  return stdout;
}

export class NetLab {
  readonly hosts: NetHost[] = [];
  private readonly extraAddresses: string[] = [];

  private constructor(
    readonly id: string,
    readonly subnet: number,
  ) {}

  get bridge(): string {
    return `${NET_PREFIX}${this.id}b`;
  }

  /** The test process's address on the bridge (the root namespace): Consul and proxies listen here. */
  get gateway(): string {
    return `10.231.${this.subnet}.1`;
  }

  static async create(): Promise<NetLab> {
    const id = `${process.pid.toString(36)}${(labs++ % 36).toString(36)}`;
    const used = await ip("-o", "-4", "addr", "show");
    let subnet = 0;
    for (let tries = 0; tries < 100 && subnet === 0; tries++) {
      const candidate = 1 + Math.floor(Math.random() * 240);
      if (!used.includes(`10.231.${candidate}.`)) subnet = candidate;
    }
    if (subnet === 0) throw new Error("no free 10.231.x.0/24 subnet for a network lab");
    const lab = new NetLab(id, subnet);
    await ip("link", "add", lab.bridge, "type", "bridge");
    await ip("addr", "add", `${lab.gateway}/24`, "dev", lab.bridge);
    await ip("link", "set", lab.bridge, "up");
    return lab;
  }

  /** A new namespace plugged into the bridge. */
  async addHost(name: string): Promise<NetHost> {
    const i = this.hosts.length;
    const host: NetHost = { name, netns: `${NET_PREFIX}${this.id}-${name}`, ip: `10.231.${this.subnet}.${10 + i}`, link: `${NET_PREFIX}${this.id}h${i}` };
    const peer = `${NET_PREFIX}${this.id}p${i}`;
    this.hosts.push(host);
    await ip("netns", "add", host.netns);
    await ip("link", "add", host.link, "type", "veth", "peer", "name", peer);
    await ip("link", "set", peer, "netns", host.netns);
    await ip("link", "set", host.link, "master", this.bridge);
    await ip("link", "set", host.link, "up");
    await ip("-n", host.netns, "link", "set", "lo", "up");
    await ip("-n", host.netns, "link", "set", peer, "name", "eth0");
    await ip("-n", host.netns, "addr", "add", `${host.ip}/24`, "dev", "eth0");
    await ip("-n", host.netns, "link", "set", "eth0", "up");
    return host;
  }

  /** One more address of the root namespace on the bridge (a service address proxies listen on). */
  async addAddress(last: number): Promise<string> {
    const address = `10.231.${this.subnet}.${last}`;
    await ip("addr", "add", `${address}/24`, "dev", this.bridge);
    this.extraAddresses.push(address);
    return address;
  }

  /** The host loses its link: nothing reaches it and nothing leaves it. */
  async cut(host: NetHost): Promise<void> {
    await ip("link", "set", host.link, "down");
  }

  async heal(host: NetHost): Promise<void> {
    await ip("link", "set", host.link, "up");
  }

  /** The command line that runs `argv` inside the host's network namespace (mount namespace kept). */
  command(host: NetHost, argv: string[]): { file: string; args: string[] } {
    return { file: "nsenter", args: [`--net=/run/netns/${host.netns}`, ...argv] };
  }

  /**
   * GET `url` from inside the host's namespace (reaches a cut-off host's own services on
   * 127.0.0.1). Status 0 and the error when the request failed.
   */
  async fetchFrom(host: NetHost, url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
    const script =
      "fetch(process.argv[1], { signal: AbortSignal.timeout(Number(process.argv[2])) })" +
      ".then(async (r) => process.stdout.write(r.status + '\\n' + (await r.text())))" +
      ".catch((e) => process.stdout.write('0\\n' + e.message))";
    const { file, args } = this.command(host, [process.execPath, "-e", script, url, String(timeoutMs)]);
    const out = await new Promise<string>((resolve, reject) => {
      const proc = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
      let text = "";
      proc.stdout.on("data", (d) => (text += d));
      proc.once("error", reject);
      proc.once("exit", () => resolve(text));
    });
    const nl = out.indexOf("\n");
    return { status: Number(out.slice(0, nl)) || 0, body: out.slice(nl + 1) };
  }

  /** Deletes the namespaces, veth pairs and the bridge. Processes inside must be stopped first. */
  async remove(): Promise<void> {
    for (const host of this.hosts) {
      await ip("netns", "del", host.netns).catch(() => undefined);
      await ip("link", "del", host.link).catch(() => undefined);
    }
    await ip("link", "del", this.bridge).catch(() => undefined);
  }

  /** Namespaces and links of labs whose creating process is gone (a crashed or killed run). */
  static async removeLeftovers(): Promise<string[]> {
    const removed: string[] = [];
    const dead = (name: string): boolean => {
      const m = /^lfst-([0-9a-z]+?)[0-9a-z](?:b|[hp]\d+|-.*)$/.exec(name);
      if (!m) return false;
      try {
        process.kill(parseInt(m[1], 36), 0);
        return false;
      } catch {
        return true;
      }
    };
    const namespaces = (await ip("netns", "list").catch(() => "")).split("\n").map((l) => l.split(" ")[0]);
    for (const ns of namespaces) {
      if (ns.startsWith(NET_PREFIX) && dead(ns) && (await ip("netns", "del", ns).then(() => true, () => false))) removed.push(ns);
    }
    const links = (await ip("-o", "link", "show").catch(() => "")).split("\n").map((l) => l.split(": ")[1]?.split("@")[0] ?? "");
    for (const link of links) {
      if (link.startsWith(NET_PREFIX) && dead(link) && (await ip("link", "del", link).then(() => true, () => false))) removed.push(link);
    }
    return removed;
  }
}
