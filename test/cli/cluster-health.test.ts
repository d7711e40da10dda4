import { describe, expect, test } from "vitest";
import { assessCluster, type ClusterProbe, type ProbedNode } from "../../src/cli/cluster-health.js";
import type { NodeInfo } from "../../src/node/node.js";
import type { ReplicaListing } from "../../src/node/replicas.js";

const MAX_LAG = 10_000;
const P_URL = "http://10.0.0.1:20202";

function info(hostname: string, nodeId: string, over: Partial<NodeInfo> = {}): NodeInfo {
  const primary = over.isPrimary ?? false;
  return {
    hostname,
    nodeId,
    clusterId: "LFSC0000000000000001",
    role: primary ? "primary" : "replica",
    isPrimary: primary,
    primary: primary ? null : "p",
    primaryUrl: P_URL,
    lagMs: 0,
    leaseType: "static",
    replicas: [],
    databases: { "app.db": { position: "0000000000000005/00000000000000aa", exists: true } },
    ...over,
  };
}

function listing(hostname: string, nodeId: string, over: Partial<ReplicaListing> = {}): ReplicaListing {
  return { hostname, nodeId, candidate: false, url: `http://${hostname}:20202`, connected: true, connectedAt: "2024-01-01T00:00:00.000Z", ...over };
}

function node(i: NodeInfo | null, over: Partial<ProbedNode> = {}): ProbedNode {
  return { url: i ? `http://${i.hostname}:20202` : "http://gone:20202", info: i, error: i ? null : "cannot reach the litefs node at http://gone:20202: ECONNREFUSED", listing: null, asked: false, ...over };
}

/** A healthy cluster as seen from the primary: p and replicas r1, r2. */
function healthy(): ClusterProbe {
  const l1 = listing("r1", "00000000000000r1");
  const l2 = listing("r2", "00000000000000r2");
  const primary = node(info("p", "000000000000000p", { isPrimary: true, replicas: [l1, l2] }), { asked: true, url: P_URL });
  return { asked: primary, primary, replicas: [node(info("r1", l1.nodeId), { listing: l1 }), node(info("r2", l2.nodeId), { listing: l2 })] };
}

describe("the litefs status verdict", () => {
  test("a primary with two connected replicas at its positions is healthy (exit 0)", () => {
    expect(assessCluster(healthy(), MAX_LAG)).toEqual({ health: "healthy", exitCode: 0, problems: [] });
  });

  test("the node asked unreachable: exit 2, naming it and what to check", () => {
    const asked = node(null, { asked: true });
    const v = assessCluster({ asked, primary: null, replicas: [] }, MAX_LAG);
    expect(v).toMatchObject({ health: "unreachable", exitCode: 2 });
    expect(v.problems[0]).toMatch(/the node asked: cannot reach .*http:\/\/gone:20202.*check -url/);
  });

  test("the primary unreachable: exit 2, naming the primary", () => {
    const asked = node(info("r1", "00000000000000r1"), { asked: true });
    const v = assessCluster({ asked, primary: node(null, { url: P_URL }), replicas: [asked] }, MAX_LAG);
    expect(v).toMatchObject({ health: "unreachable", exitCode: 2 });
    expect(v.problems[0]).toMatch(/^the primary p, as r1 names it: cannot reach/);
  });

  test("the primary named by a static replica's config unreachable: exit 2, saying where the URL came from", () => {
    const asked = node(info("r1", "00000000000000r1", { primary: null, primaryUrl: null }), { asked: true });
    const v = assessCluster({ asked, primary: node(null, { url: P_URL }), replicas: [asked] }, MAX_LAG);
    expect(v.exitCode).toBe(2);
    expect(v.problems[0]).toMatch(/^the primary \(lease.advertise-url of r1\): cannot reach/);
  });

  test("no primary known: degraded (exit 1)", () => {
    const asked = node(info("r1", "00000000000000r1", { primary: null, primaryUrl: null }), { asked: true });
    const v = assessCluster({ asked, primary: null, replicas: [asked] }, MAX_LAG);
    expect(v).toMatchObject({ health: "degraded", exitCode: 1 });
    expect(v.problems[0]).toMatch(/r1 knows no primary/);
  });

  test("a replica lagging past max-lag is degraded; at max-lag it is not", () => {
    const probe = healthy();
    probe.replicas[0]!.info!.lagMs = MAX_LAG;
    expect(assessCluster(probe, MAX_LAG).exitCode).toBe(0);
    probe.replicas[0]!.info!.lagMs = MAX_LAG + 1;
    const v = assessCluster(probe, MAX_LAG);
    expect(v.exitCode).toBe(1);
    expect(v.problems).toEqual([expect.stringMatching(/^replica r1 is 10\.0s behind the primary \(max-lag 10\.0s\)/)]);
  });

  test("a replica at the primary's TXID with another checksum is degraded; one behind is not", () => {
    const probe = healthy();
    probe.replicas[1]!.info!.databases["app.db"] = { position: "0000000000000004/00000000000000bb", exists: true };
    expect(assessCluster(probe, MAX_LAG).exitCode).toBe(0);
    probe.replicas[1]!.info!.databases["app.db"] = { position: "0000000000000005/00000000000000bb", exists: true };
    const v = assessCluster(probe, MAX_LAG);
    expect(v.exitCode).toBe(1);
    expect(v.problems[0]).toMatch(/replica r2 has app\.db at TXID 0000000000000005 with checksum 00000000000000bb, the primary 00000000000000aa.*restart r2/);
  });

  test("a replica the primary lists but that cannot be reached is degraded, not unreachable", () => {
    const probe = healthy();
    probe.replicas[1] = node(null, { listing: probe.replicas[1]!.listing });
    const v = assessCluster(probe, MAX_LAG);
    expect(v).toMatchObject({ health: "degraded", exitCode: 1 });
    expect(v.problems).toEqual([expect.stringMatching(/^replica r2: cannot reach/)]);
  });

  test("a replica listed as disconnected (it stopped) is degraded, whether or not it still answers", () => {
    const probe = healthy();
    const gone = { ...probe.replicas[0]!.listing!, connected: false, disconnectedAt: "2024-01-01T00:01:00.000Z" };
    probe.replicas[0] = node(null, { listing: gone });
    const v = assessCluster(probe, MAX_LAG);
    expect(v.exitCode).toBe(1);
    expect(v.problems).toEqual([expect.stringMatching(/^replica r1 disconnected from the primary p at 2024-01-01T00:01:00.000Z; cannot reach/)]);

    probe.replicas[0] = node(info("r1", gone.nodeId), { listing: gone });
    expect(assessCluster(probe, MAX_LAG).problems).toEqual([expect.stringMatching(/^replica r1 disconnected .*; see its logs/)]);
  });

  test("a replica asked directly that the primary does not list is degraded", () => {
    const probe = healthy();
    const asked = node(info("r3", "00000000000000r3"), { asked: true });
    const v = assessCluster({ ...probe, asked, replicas: [asked, ...probe.replicas] }, MAX_LAG);
    expect(v.exitCode).toBe(1);
    expect(v.problems).toEqual([expect.stringMatching(/^replica r3 is not connected to the primary p/)]);
  });

  test("a listed replica without an API URL (an older node) cannot be checked: degraded", () => {
    const probe = healthy();
    probe.replicas[0] = { url: null, info: null, error: null, listing: { ...probe.replicas[0]!.listing!, url: null }, asked: false };
    expect(assessCluster(probe, MAX_LAG).problems).toEqual([expect.stringMatching(/^replica r1: it did not report its API URL/)]);
  });

  test("a second node that says it is primary is degraded", () => {
    const probe = healthy();
    probe.replicas[0]!.info!.isPrimary = true;
    expect(assessCluster(probe, MAX_LAG).problems).toEqual([expect.stringMatching(/^r1 says it is primary too, besides p/)]);
  });

  test("dropped databases and databases a replica does not want are not compared", () => {
    const probe = healthy();
    probe.primary!.info!.databases["old.db"] = { position: "0000000000000009/0000000000000001", exists: false };
    probe.replicas[0]!.info!.databases["old.db"] = { position: "0000000000000009/0000000000000002", exists: false };
    delete probe.replicas[1]!.info!.databases["app.db"];
    expect(assessCluster(probe, MAX_LAG).exitCode).toBe(0);
  });
});
