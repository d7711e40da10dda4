import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LeaseError } from "../../src/lease/errors.js";
import { StaticLeaser } from "../../src/lease/static.js";

const primary = { hostname: "primary-1", advertiseUrl: "http://primary-1:20202" };
const dirs: string[] = [];

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function expectCode(p: Promise<unknown>, code: string): Promise<LeaseError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LeaseError);
  expect((err as LeaseError).code).toBe(code);
  return err as LeaseError;
}

describe("static leaser", () => {
  it("makes the candidate primary with a lease that never expires", async () => {
    const leaser = new StaticLeaser({ candidate: true, ...primary });
    expect(leaser.type).toBe("static");
    expect(leaser.advertiseUrl).toBe(primary.advertiseUrl);
    const lease = await leaser.acquire();
    expect(lease.ttlMs).toBe(Infinity);
    expect(lease.signal.aborted).toBe(false);
    await lease.renew();
    expect(await leaser.primaryInfo()).toBeNull();
  });

  it("refuses other nodes with LEASE_PRIMARY_EXISTS and points them at the configured primary", async () => {
    const leaser = new StaticLeaser({ candidate: false, ...primary });
    const err = await expectCode(leaser.acquire(), "LEASE_PRIMARY_EXISTS");
    expect(err.message).toContain("primary-1");
    expect(await leaser.primaryInfo()).toEqual(primary);
    expect(leaser.hostname).toBe("primary-1");
    expect(leaser.advertiseUrl).toBe("");
  });

  it("does not support handoff", async () => {
    const leaser = new StaticLeaser({ candidate: true, ...primary });
    const lease = await leaser.acquire();
    await expectCode(lease.handoff("node-2"), "LEASE_UNSUPPORTED");
    await expectCode(leaser.acquireExisting("static"), "LEASE_UNSUPPORTED");
    expect(lease.signal.aborted).toBe(false);
  });

  it("keeps the cluster ID in memory: first set wins, the same ID again is fine", async () => {
    const leaser = new StaticLeaser({ candidate: true, ...primary });
    expect(await leaser.clusterId()).toBeNull();
    await leaser.setClusterId("LFSC0123456789ABCDEF");
    await leaser.setClusterId("LFSC0123456789ABCDEF");
    await expectCode(leaser.setClusterId("LFSCFFFFFFFFFFFFFFFF"), "LEASE_CLUSTER_ID_CONFLICT");
    expect(await leaser.clusterId()).toBe("LFSC0123456789ABCDEF");
  });

  it("keeps the cluster ID in a file across restarts when given a path", async () => {
    const dir = await mkdtemp(join(tmpdir(), "litefs-lease-"));
    dirs.push(dir);
    const path = join(dir, "sub", "clusterid");
    const first = new StaticLeaser({ candidate: true, ...primary, clusterIdPath: path });
    expect(await first.clusterId()).toBeNull();
    await first.setClusterId("LFSC0123456789ABCDEF");
    expect(await readFile(path, "utf8")).toBe("LFSC0123456789ABCDEF\n");
    const second = new StaticLeaser({ candidate: true, ...primary, clusterIdPath: path });
    expect(await second.clusterId()).toBe("LFSC0123456789ABCDEF");
    await expectCode(second.setClusterId("LFSCFFFFFFFFFFFFFFFF"), "LEASE_CLUSTER_ID_CONFLICT");
  });

  it("close ends the lease (signal aborted with LEASE_CLOSED) and the leaser", async () => {
    const leaser = new StaticLeaser({ candidate: true, ...primary });
    const lease = await leaser.acquire();
    await leaser.close();
    expect(lease.signal.aborted).toBe(true);
    expect((lease.signal.reason as LeaseError).code).toBe("LEASE_CLOSED");
    await expectCode(leaser.acquire(), "LEASE_CLOSED");
  });

  it("requires the primary's hostname and advertise-url", () => {
    expect(() => new StaticLeaser({ candidate: true, hostname: "", advertiseUrl: "http://x" })).toThrow(LeaseError);
    expect(() => new StaticLeaser({ candidate: false, hostname: "x", advertiseUrl: "" })).toThrow(/advertise-url/);
  });
});
