import { startConsulDouble, type ConsulDouble } from "./consul-double.js";
import { LitefsNode, freePort, type NodeConfig } from "./node-process.js";
import { waitForPrimary } from "./roles.js";

/** Cleanups a test file runs after each test (nodes, doubles, proxies), in reverse order. */
export type Cleanups = Array<() => Promise<void>>;

export async function consul(cleanups: Cleanups): Promise<ConsulDouble> {
  const double = await startConsulDouble();
  cleanups.push(() => double.close());
  return double;
}

/** A litefs node (not started) with a Consul lease on the double, its own port, data and mount. */
export async function consulNode(
  cleanups: Cleanups,
  double: ConsulDouble,
  name: string,
  opts: Pick<NodeConfig, "candidate" | "promote" | "httpPort" | "advertiseUrl" | "extraYaml" | "tls" | "token"> = {},
): Promise<LitefsNode> {
  const node = await LitefsNode.create(name, {
    hostname: name,
    httpPort: opts.httpPort ?? (await freePort()),
    consulUrl: double.url,
    candidate: opts.candidate ?? true,
    promote: opts.promote,
    advertiseUrl: opts.advertiseUrl,
    extraYaml: opts.extraYaml,
    tls: opts.tls,
    token: opts.token,
  });
  cleanups.push(() => node.cleanup());
  return node;
}

/** node-a becomes primary first; node-b, another candidate, then joins as its replica. */
export async function primaryAndCandidate(cleanups: Cleanups): Promise<{ double: ConsulDouble; a: LitefsNode; b: LitefsNode }> {
  const double = await consul(cleanups);
  const a = await consulNode(cleanups, double, "node-a");
  await a.start();
  await waitForPrimary([a]);
  const b = await consulNode(cleanups, double, "node-b");
  await b.start();
  return { double, a, b };
}
