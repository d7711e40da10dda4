import { describe, expect, test } from "vitest";
import { inactiveSettings, type InactiveSetting } from "../../src/config/index.js";
import { MINIMAL, parse, yaml } from "./support.js";

/** The inactive settings of MINIMAL plus `extra` (whole top-level sections). */
function inactive(extra: string): InactiveSetting[] {
  return inactiveSettings(parse(MINIMAL + extra));
}

function keys(extra: string): string[] {
  return inactive(extra).map((s) => s.key);
}

describe("inactiveSettings", () => {
  test("a default config has none", () => {
    expect(inactiveSettings(parse(MINIMAL))).toEqual([]);
  });

  test("keys set to their defaults, or that do nothing on their own, are not listed", () => {
    const text = yaml`
      strict-verify: false
      http:
        snapshot-timeout: 0
      proxy:
        addr: ":8080"
        db: app.db
        debug: true
      backup:
        type: ""
      tracing:
        enabled: true
        max-size: 128
      lease:
        type: static
        demote-delay: 10s
    `;
    expect(inactiveSettings(parse(text))).toEqual([]);
  });

  test("http.tls is served, so it is not listed", () => {
    expect(keys("http:\n  tls:\n    cert: cert.pem\n    key: key.pem\n    ca: ca.pem\n")).toEqual([]);
  });

  // One case per key: the YAML that sets it, and words its message must contain.
  const cases: { key: string; yaml: string; says: string[] }[] = [
    {
      key: "tracing",
      yaml: "tracing:\n  path: /var/log/litefs.trace\n",
      says: ["no trace file is written"],
    },
    {
      key: "strict-verify",
      yaml: "strict-verify: true\n",
      says: ["no extra checksum verification"],
    },
    {
      key: "http.snapshot-timeout",
      yaml: "http:\n  snapshot-timeout: 30s\n",
      says: ["without a time limit"],
    },
  ];

  for (const c of cases) {
    test(`${c.key} set: exactly its entry, naming the key`, () => {
      const found = inactive(c.yaml);
      expect(found.map((s) => s.key)).toEqual([c.key]);
      const { message } = found[0]!;
      expect(message).toContain(c.key);
      for (const words of c.says) expect(message).toContain(words);
      expect(message).not.toContain("\n");
    });
  }

  test("lease.demote-delay other than 10s: exactly its entry", () => {
    const text = "lease:\n  type: static\n  demote-delay: 30s\n";
    const found = inactiveSettings(parse(text));
    expect(found.map((s) => s.key)).toEqual(["lease.demote-delay"]);
    expect(found[0]!.message).toContain("lease.demote-delay");
    expect(found[0]!.message).toContain("primary again");
  });

  test("lease.demote-delay shorter than the default is listed too", () => {
    const found = inactiveSettings(parse("lease:\n  type: static\n  demote-delay: 0\n"));
    expect(found.map((s) => s.key)).toEqual(["lease.demote-delay"]);
  });

  test("backups are active, so they are not listed", () => {
    expect(keys("backup:\n  type: file\n  path: /backups\n")).toEqual([]);
  });

  test("tracing turned off is not listed, even with a path (LiteFS would write nothing either)", () => {
    expect(keys("tracing:\n  enabled: false\n  path: trace.log\n")).toEqual([]);
    expect(keys("tracing:\n  enabled: true\n  path: trace.log\n")).toEqual(["tracing"]);
  });

  test("several set: one entry each, in a stable order", () => {
    const text = yaml`
      lease:
        type: static
        demote-delay: 1s
      tracing:
        path: trace.log
      strict-verify: true
      http:
        snapshot-timeout: 1m
        tls:
          cert: cert.pem
          key: key.pem
      proxy:
        addr: ":8080"
        target: "localhost:8081"
        db: app.db
    `;
    expect(inactiveSettings(parse(text)).map((s) => s.key)).toEqual([
      "tracing",
      "strict-verify",
      "http.snapshot-timeout",
      "lease.demote-delay",
    ]);
  });

  test("some set: only those, in the same order", () => {
    expect(keys("strict-verify: true\nbackup:\n  type: file\n  path: b\n")).toEqual(["strict-verify"]);
  });
});
