import { afterEach, expect, test } from "vitest";
import { consul, consulNode, type Cleanups } from "../support/consul-nodes.js";
import { freePort, waitFor } from "../support/node-process.js";
import { post, waitForPrimary } from "../support/roles.js";
import { fetchText, WebApp } from "../support/web-app.js";

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A Consul node whose proxy fronts its own web app. */
async function proxiedConsulNode(double: Awaited<ReturnType<typeof consul>>, name: string) {
  const proxyPort = await freePort();
  const node = await consulNode(cleanups, double, name);
  const app = new WebApp(name, node.db("app.db"));
  cleanups.push(() => app.stop());
  await app.start();
  node.config.extraYaml = ["proxy:", `  addr: "127.0.0.1:${proxyPort}"`, `  target: "127.0.0.1:${app.port}"`, "  db: app.db"].join("\n");
  await node.writeConfig();
  return { node, app, url: `http://127.0.0.1:${proxyPort}` };
}

async function write(url: string, note: string): Promise<{ node: string; id: number; cookie: string }> {
  const res = await fetchText(`${url}/rows`, { method: "POST", body: note });
  expect(res.status, res.body).toBe(201);
  const cookie = [res.headers["set-cookie"]].flat().find((c) => c?.startsWith("__txid="))!.split(";")[0];
  return { ...(JSON.parse(res.body) as { node: string; id: number }), cookie };
}

test("after a handoff, writes through the old primary's proxy reach the new primary (Consul lease)", async () => {
  const double = await consul(cleanups);
  const a = await proxiedConsulNode(double, "node-a");
  await a.node.start();
  await waitForPrimary([a.node]);
  const b = await proxiedConsulNode(double, "node-b");
  await b.node.start();
  for (const n of [a, b]) await waitFor(async () => (await fetchText(`${n.url}/litefs/health`).catch(() => null))?.status === 200, 30_000, "the proxies");

  // The lease publishes where the primary's proxy is.
  expect(JSON.parse(double.entry("litefs/test")!.value.toString())["proxy-url"]).toBe(a.url);
  expect((await write(b.url, "via b")).node).toBe("node-a");

  const handoff = await post(a.node, "/handoff?id=node-b");
  expect(handoff.status, handoff.body).toBe(200);
  await waitForPrimary([b.node]);
  await waitFor(() => JSON.parse(double.entry("litefs/test")?.value.toString() || "{}")["proxy-url"] === b.url, 10_000, "the lease to name node-b's proxy");

  // node-a is a replica now: its proxy forwards to node-b's (waiting until it knows node-b).
  const written = await write(a.url, "via a after the handoff");
  expect(written.node).toBe("node-b");
  const read = await fetchText(`${a.url}/rows/${written.id}`, { headers: { cookie: written.cookie } });
  expect(read.status, read.body).toBe(200);
  expect(JSON.parse(read.body)).toMatchObject({ id: written.id, node: "node-a" });
});
