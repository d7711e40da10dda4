import { readFileSync } from "node:fs";
import * as os from "node:os";
import { describe, expect, test } from "vitest";
import { parseConfig } from "../../src/config/index.js";

const example = readFileSync(new URL("../../litefs.yml.example", import.meta.url), "utf8");

const env = {
  HOSTNAME: "node1",
  LITEFS_TOKEN: "0123456789abcdef",
  LITEFS_PRIMARY: "true",
  FLY_REGION: "ord",
  PRIMARY_REGION: "ord",
  FLY_APP_NAME: "myapp",
  FLY_CONSUL_URL: "https://:secret@consul.fly.io/myapp-abc",
};

/** The example with its static lease section replaced by the commented Consul one. */
function consulVariant(text: string): string {
  const [head, tail] = text.split("# --- Consul variant");
  // The static section: from "lease:" up to the next top-level key.
  const withoutStatic = head!.replace(/^lease:\n(?:[ #].*\n|\n)*/m, "");
  const consul = tail!.slice(tail!.indexOf("# lease:")).replace(/^# ?/gm, "");
  return `${withoutStatic}\n${consul}`;
}

describe("litefs.yml.example", () => {
  test("parses as a static primary", () => {
    const config = parseConfig(example, { path: "litefs.yml.example", env, cwd: "/" });
    expect(config.lease).toMatchObject({
      type: "static",
      candidate: true,
      hostname: "node1",
      advertiseUrl: "http://primary.internal:20202",
    });
    expect(config.http.token).toBe("0123456789abcdef");
    expect(config.exec).toEqual([
      { cmd: "myapp migrate", ifCandidate: true },
      { cmd: "myapp serve -addr :8081", ifCandidate: false },
    ]);
    expect(config.proxy).toMatchObject({ addr: ":8080", target: "localhost:8081", databases: ["my.db"], flyReplay: false });
  });

  test("parses as a static replica", () => {
    const config = parseConfig(example, { path: "litefs.yml.example", env: { ...env, LITEFS_PRIMARY: "" }, cwd: "/" });
    expect(config.lease.candidate).toBe(false);
  });

  test("refuses to start without the token variable rather than run open", () => {
    expect(() =>
      parseConfig(example, { path: "litefs.yml.example", env: { ...env, LITEFS_TOKEN: undefined }, cwd: "/" }),
    ).toThrow(/http\.token: is empty/);
  });

  test("its Consul variant parses too", () => {
    const text = consulVariant(example);
    expect(text).toContain("type: \"consul\"");
    const config = parseConfig(text, { path: "consul variant", env, cwd: "/" });
    expect(config.lease).toEqual({
      type: "consul",
      hostname: os.hostname(), // not set in the variant: the machine's name, as in LiteFS
      advertiseUrl: "http://node1.vm.myapp.internal:20202",
      candidate: true,
      promote: true,
      reconnectDelayMs: 1_000,
      demoteDelayMs: 10_000,
      databases: [],
      consul: { url: "https://:secret@consul.fly.io/myapp-abc", key: "litefs/myapp", ttlMs: 10_000, lockDelayMs: 1_000 },
    });
  });
});
