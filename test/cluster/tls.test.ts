import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import * as fsp from "node:fs/promises";
import * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { Agent, request } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { NodeInfo } from "../../src/node/node.js";
import { Cluster } from "../support/cluster.js";
import { consul, consulNode } from "../support/consul-nodes.js";
import { CLI, LitefsNode, makeTempDir, waitFor, withTimeout } from "../support/node-process.js";
import { run, sqlite3 } from "../support/sqlite-clients.js";
import { TestCa, type CertFiles } from "../support/tls-certs.js";

/**
 * The cluster API over mutual TLS (http.tls with a CA made here by openssl): nodes replicate and
 * call each other presenting their certificates, the CLI does with its node's config, and anyone
 * else is refused during the handshake. The bearer token still applies on top.
 */

const TOKEN = "tls-t0ken";
const DB = "tls.db";

let dir: string;
let ca: TestCa;
/** Signs certificates no node trusts. */
let stranger: TestCa;
let cluster: Cluster;
/** A client with a certificate the cluster's CA signed; one without any; one the stranger signed. */
let client: Agent;
let noCert: Agent;
let strangerClient: Agent;

function url(node: LitefsNode, p = ""): string {
  return `https://127.0.0.1:${node.config.httpPort}${p}`;
}

function agent(caFile: Buffer, cert?: { cert: Buffer; key: Buffer }): Agent {
  return new Agent({ connect: { ca: caFile, ...cert } });
}

async function readCert(files: CertFiles): Promise<{ cert: Buffer; key: Buffer }> {
  return { cert: await fsp.readFile(files.cert), key: await fsp.readFile(files.key) };
}

async function get(node: LitefsNode, p: string, opts: { dispatcher?: Agent; token?: string | null } = {}): Promise<{ status: number; body: string }> {
  const token = opts.token === undefined ? TOKEN : opts.token;
  const res = await request(url(node, p), { dispatcher: opts.dispatcher ?? client, headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.statusCode, body: await res.body.text() };
}

async function info(node: LitefsNode): Promise<NodeInfo> {
  const res = await get(node, "/info");
  if (res.status !== 200) throw new Error(`/info on ${node.config.hostname}: ${res.status} ${res.body}`);
  return JSON.parse(res.body) as NodeInfo;
}

/** The certificate a node serves now, seen by a new connection. */
async function servedFingerprint(node: LitefsNode): Promise<string> {
  const [caFile, cert] = await Promise.all([fsp.readFile(ca.cert), readCert({ cert: path.join(dir, "client.pem"), key: path.join(dir, "client.key") })]);
  const socket = tls.connect({ host: "127.0.0.1", port: node.config.httpPort!, ca: caFile, ...cert });
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject)),
      5_000,
      `a TLS connection to ${node.config.hostname}`,
    );
    return socket.getPeerCertificate().fingerprint256;
  } finally {
    socket.destroy();
  }
}

async function fingerprintOf(certFile: string): Promise<string> {
  return new X509Certificate(await fsp.readFile(certFile)).fingerprint256;
}

/** Waits for `text` in the node's log (the node logs asynchronously); the log tail on failure. */
async function waitForLog(node: LitefsNode, text: string, from = 0): Promise<void> {
  await waitFor(() => node.logs.indexOf(text, from) >= 0, 10_000, `"${text}" in ${node.config.hostname}'s log`).catch((err: Error) => {
    throw new Error(`${err.message}\n${node.logs.slice(-3000)}`);
  });
}

/** A commit on the primary reaches every replica's mount, read back by sqlite3. */
async function expectReplicates(v: string): Promise<void> {
  await sqlite3(cluster.primary.db(DB), `INSERT INTO t (v) VALUES ('${v}');`);
  await cluster.waitForConvergence(DB);
  for (const r of cluster.replicas) expect(await sqlite3(r.db(DB), `SELECT count(*) FROM t WHERE v = '${v}';`), r.config.hostname).toBe("1");
}

function litefs(node: LitefsNode, verb: string, ...args: string[]) {
  return run(process.execPath, [CLI, verb, "-config", node.configPath, ...args]);
}

beforeAll(async () => {
  dir = await makeTempDir("tls-pki");
  ca = await TestCa.create(dir);
  stranger = await TestCa.create(dir, "stranger-ca");
  const caFile = await fsp.readFile(ca.cert);
  client = agent(caFile, await readCert(await ca.issue("client")));
  noCert = agent(caFile);
  strangerClient = agent(caFile, await readCert(await stranger.issue("stranger")));
  const node = async (name: string) => ({ token: TOKEN, tls: { ...(await ca.issue(name)), ca: ca.cert } });
  cluster = await Cluster.start("tls", 2, { primary: await node("primary"), replica: await node("replica") });
  await sqlite3(cluster.primary.db(DB), "CREATE TABLE t (v TEXT);");
  await cluster.waitForConvergence(DB);
});

afterAll(async () => {
  await cluster?.cleanup();
  await Promise.all([client, noCert, strangerClient].map((a) => a?.close()));
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

describe("three nodes with http.tls and a CA", () => {
  it("replicate, the replicas streaming over https with their certificates", async () => {
    await expectReplicates("over tls");
    const primary = await info(cluster.primary);
    expect(primary.isPrimary).toBe(true);
    // Each replica told the primary its own https API URL.
    expect(primary.replicas.map((r) => [r.hostname, r.connected, r.url?.startsWith("https://127.0.0.1:")]).sort()).toEqual([
      ["replica0", true, true],
      ["replica1", true, true],
    ]);
    for (const r of cluster.replicas) expect((await info(r)).primaryUrl).toBe(url(cluster.primary));
  });

  it("refuse a client without a certificate during the handshake, and log it", async () => {
    const from = cluster.primary.logs.length;
    await expect(get(cluster.primary, "/info", { dispatcher: noCert })).rejects.toThrow();
    await waitForLog(cluster.primary, "TLS client without a certificate refused", from);
    expect((await info(cluster.primary)).isPrimary).toBe(true);
  });

  it("refuse a certificate another CA signed", async () => {
    const from = cluster.primary.logs.length;
    await expect(get(cluster.primary, "/info", { dispatcher: strangerClient })).rejects.toThrow();
    await waitForLog(cluster.primary, "TLS client certificate refused (UNABLE_TO_VERIFY_LEAF_SIGNATURE, verified against http.tls.ca)", from);
    expect((await info(cluster.primary)).isPrimary).toBe(true);
  });

  it("close a plain HTTP request to the TLS port, log one line, and keep serving and replicating", async () => {
    const from = cluster.primary.logs.length;
    await expect(request(`http://127.0.0.1:${cluster.primary.config.httpPort}/info`, { headers: { authorization: `Bearer ${TOKEN}` } })).rejects.toThrow(
      /other side closed|socket|ECONNRESET/i,
    );
    await waitForLog(cluster.primary, "plain HTTP request on the TLS port refused", from);
    expect(cluster.primary.logs.slice(from).split("\n").filter((l) => l.includes("plain HTTP request"))).toHaveLength(1);
    await expectReplicates("after plain http");
  });

  it("still require the bearer token from a client with a valid certificate", async () => {
    expect((await get(cluster.primary, "/info", { token: null })).status).toBe(401);
    expect((await get(cluster.replicas[0]!, "/info", { token: "wrong" })).status).toBe(401);
    expect((await get(cluster.primary, "/info")).status).toBe(200);
  });

  it("serve the CLI verbs run with a node's config: status, export, import", async () => {
    const status = await litefs(cluster.replicas[0]!, "status");
    expect(status.code, status.stdout + status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^health:\s+healthy$/m);
    expect(status.stdout).toMatch(/^primary\s+primary\s+\S+\s+https:\/\/127\.0\.0\.1:\d+$/m);
    expect(status.stdout).toMatch(/^replica1\s+replica\s+\S+\s+https:\/\/127\.0\.0\.1:\d+$/m);

    const exported = path.join(dir, "exported.db");
    const exp = await litefs(cluster.replicas[1]!, "export", "-name", DB, exported);
    expect(exp.code, exp.stderr).toBe(0);
    expect(await sqlite3(exported, "SELECT count(*) FROM t WHERE v = 'over tls';")).toBe("1");

    const source = path.join(dir, "import.db");
    await sqlite3(source, "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('imported over tls');");
    const imp = await litefs(cluster.primary, "import", "-name", "imported.db", source);
    expect(imp.code, imp.stderr).toBe(0);
    await cluster.waitForConvergence("imported.db");
    for (const r of cluster.replicas) expect(await sqlite3(r.db("imported.db"), "SELECT v FROM t;")).toBe("imported over tls");
  });

  it("reload the certificate on SIGHUP; keep the one in use when the new files are unusable", async () => {
    const primary = cluster.primary;
    const { cert, key } = primary.config.tls!;
    const before = await servedFingerprint(primary);
    expect(before).toBe(await fingerprintOf(cert));

    await ca.issue("primary"); // new key and certificate over the files the config names
    const renewed = await fingerprintOf(cert);
    expect(renewed).not.toBe(before);
    let from = primary.logs.length;
    primary.proc!.kill("SIGHUP");
    await waitForLog(primary, "TLS certificate reloaded", from);
    expect(await servedFingerprint(primary)).toBe(renewed);

    from = primary.logs.length;
    await fsp.writeFile(key, "not a key\n");
    primary.proc!.kill("SIGHUP");
    await waitForLog(primary, "TLS reload failed", from);
    expect(primary.logs.slice(from)).toContain("http.tls.key");
    expect(await servedFingerprint(primary)).toBe(renewed);
    // The replicas' streams, opened before, and new requests all carry on.
    await expectReplicates("after reloads");
    expect(primary.proc!.exitCode).toBeNull();
  });

  it("stop promptly while a client is stalled before its handshake", async () => {
    const replica = cluster.replicas[1]!;
    const socket = net.connect(replica.config.httpPort!, "127.0.0.1");
    socket.on("error", () => undefined);
    await once(socket, "connect");
    try {
      const started = Date.now();
      // Node's handshake timeout is 120 s: a shutdown waiting on this connection would take that long.
      expect(await replica.stop()).toEqual({ code: 0, signal: null });
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      socket.destroy();
    }
  });
});

describe("http.tls with a Consul lease", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
  });

  it("litefs promote: the candidate asks the primary to hand over, both over mutual TLS", async () => {
    const double = await consul(cleanups);
    const a = await consulNode(cleanups, double, "node-a", { token: TOKEN, tls: { ...(await ca.issue("node-a")), ca: ca.cert } });
    await a.start();
    await waitFor(async () => (await info(a).catch(() => null))?.isPrimary === true, 30_000, "node-a to be primary");
    const b = await consulNode(cleanups, double, "node-b", { token: TOKEN, tls: { ...(await ca.issue("node-b")), ca: ca.cert } });
    await b.start();
    await sqlite3(a.db(DB), "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('a');");
    await new Cluster(a, [b]).waitForConvergence(DB);

    const promote = await litefs(b, "promote");
    expect(promote.code, promote.stderr + b.logs.slice(-2000)).toBe(0);
    expect(promote.stdout).toMatch(/now the primary/);
    expect((await info(b)).isPrimary).toBe(true);
    await waitFor(async () => (await info(a)).primary === "node-b", 15_000, "node-a to follow node-b");
  });
});

describe("unusable TLS files at startup", () => {
  it("stop the node with one line naming the key and the file, not a stack trace", async () => {
    const node = await LitefsNode.create("tls-bad", {
      httpPort: 0,
      tls: { cert: path.join(dir, "missing.pem"), key: path.join(dir, "client.key"), ca: ca.cert },
    });
    try {
      await node.start([], { waitForMount: false });
      const exit = await withTimeout(node.exit!, 30_000, "litefs to exit");
      expect(exit.code, node.logs).toBe(1);
      expect(node.logs).toContain(`http.tls.cert: cannot read ${path.join(dir, "missing.pem")}: ENOENT: no such file or directory`);
      expect(node.logs).not.toMatch(/^\s+at /m);
    } finally {
      await node.cleanup();
    }
  });
});
