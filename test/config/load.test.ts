import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  ConfigError,
  configSearchPaths,
  EMBEDDED_CONFIG_YAML,
  embeddedConfig,
  loadConfig,
} from "../../src/config/index.js";
import { MINIMAL } from "./support.js";

let root: string;
let cwd: string;
let home: string;
let etc: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "litefs-config-"));
  [cwd, home, etc] = ["work", "home", "etc"].map((d) => path.join(root, d)) as [string, string, string];
  await Promise.all([cwd, home, etc].map((d) => mkdir(d)));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A config whose fuse.dir tells which file it came from. */
function configNamed(name: string): string {
  return `${MINIMAL}fuse:\n  dir: /mnt/${name}\n`;
}

/** The standard search order, with /etc replaced by a directory the test owns. */
function searchPaths(): string[] {
  return [path.join(cwd, "litefs.yml"), path.join(home, "litefs.yml"), path.join(etc, "litefs.yml")];
}

async function expectRefusal(promise: Promise<unknown>): Promise<ConfigError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

describe("the search path", () => {
  test("is ./litefs.yml, then ~/litefs.yml, then /etc/litefs.yml, as in LiteFS", () => {
    expect(configSearchPaths({ cwd: "/srv/app", home: "/home/me" })).toEqual([
      "/srv/app/litefs.yml",
      "/home/me/litefs.yml",
      "/etc/litefs.yml",
    ]);
  });

  test("skips the home directory when there is none", () => {
    expect(configSearchPaths({ cwd: "/srv/app", home: "" })).toEqual(["/srv/app/litefs.yml", "/etc/litefs.yml"]);
  });

  test("the working directory's file wins over the others", async () => {
    for (const [dir, name] of [
      [cwd, "cwd"],
      [home, "home"],
      [etc, "etc"],
    ] as const) {
      await writeFile(path.join(dir, "litefs.yml"), configNamed(name));
    }
    const { config, source } = await loadConfig({ cwd, searchPaths: searchPaths() });
    expect(source).toBe(path.join(cwd, "litefs.yml"));
    expect(config.fuse.dir).toBe("/mnt/cwd");
  });

  test("then the home directory's", async () => {
    await writeFile(path.join(home, "litefs.yml"), configNamed("home"));
    await writeFile(path.join(etc, "litefs.yml"), configNamed("etc"));
    const { config, source } = await loadConfig({ cwd, searchPaths: searchPaths() });
    expect(source).toBe(path.join(home, "litefs.yml"));
    expect(config.fuse.dir).toBe("/mnt/home");
  });

  test("then /etc's", async () => {
    await writeFile(path.join(etc, "litefs.yml"), configNamed("etc"));
    const { config, source } = await loadConfig({ cwd, searchPaths: searchPaths() });
    expect(source).toBe(path.join(etc, "litefs.yml"));
    expect(config.fuse.dir).toBe("/mnt/etc");
  });

  test.skipIf(existsSync("/etc/litefs.yml"))("uses cwd and home when no list is given", async () => {
    await writeFile(path.join(home, "litefs.yml"), configNamed("home"));
    const { source } = await loadConfig({ cwd, home });
    expect(source).toBe(path.join(home, "litefs.yml"));
  });

  test("a found file that is invalid is an error, not a reason to look further", async () => {
    await writeFile(path.join(cwd, "litefs.yml"), "lease:\n  type: bad\n");
    await writeFile(path.join(home, "litefs.yml"), configNamed("home"));
    const err = await expectRefusal(loadConfig({ cwd, searchPaths: searchPaths() }));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.file).toBe(path.join(cwd, "litefs.yml"));
    expect(err.message).toContain(`${path.join(cwd, "litefs.yml")}:2: lease.type:`);
  });

  test("a found file that cannot be read is an error naming it", async () => {
    await mkdir(path.join(cwd, "litefs.yml")); // a directory: unreadable even for root
    await writeFile(path.join(home, "litefs.yml"), configNamed("home"));
    const err = await expectRefusal(loadConfig({ cwd, searchPaths: searchPaths() }));
    expect(err.code).toBe("CONFIG_READ");
    expect(err.message).toContain(path.join(cwd, "litefs.yml"));
  });
});

describe("when no file is found", () => {
  test("the embedded configuration is used, and the source says so", async () => {
    const { config, source } = await loadConfig({ cwd, searchPaths: searchPaths() });
    expect(source).toBe("embedded");
    expect(config).toEqual(embeddedConfig());
  });

  test.skipIf(existsSync("/etc/litefs.yml"))("also with the standard search list", async () => {
    expect((await loadConfig({ cwd, home })).source).toBe("embedded");
  });
});

describe("-config PATH", () => {
  test("reads that file only, relative to the working directory", async () => {
    await writeFile(path.join(cwd, "litefs.yml"), configNamed("cwd"));
    await mkdir(path.join(cwd, "conf"));
    await writeFile(path.join(cwd, "conf", "node.yml"), configNamed("explicit"));
    const { config, source } = await loadConfig({ cwd, configPath: "conf/node.yml", searchPaths: searchPaths() });
    expect(source).toBe(path.join(cwd, "conf", "node.yml"));
    expect(config.fuse.dir).toBe("/mnt/explicit");
  });

  test("must exist: no search and no embedded fallback", async () => {
    await writeFile(path.join(cwd, "litefs.yml"), configNamed("cwd"));
    const err = await expectRefusal(loadConfig({ cwd, configPath: "missing.yml", searchPaths: searchPaths() }));
    expect(err.code).toBe("CONFIG_NOT_FOUND");
    expect(err.message).toBe(`config file not found: ${path.join(cwd, "missing.yml")}`);
  });

  test("a directory is refused as unreadable", async () => {
    const err = await expectRefusal(loadConfig({ cwd, configPath: ".", searchPaths: searchPaths() }));
    expect(err.code).toBe("CONFIG_READ");
  });
});

describe("options reach the parser", () => {
  const text = `${MINIMAL}fuse:\n  dir: $MNT\ndata:\n  dir: state\n`;

  test("env is used for expansion and relative paths resolve against cwd", async () => {
    await writeFile(path.join(cwd, "litefs.yml"), text);
    const { config } = await loadConfig({ cwd, env: { MNT: "/mnt/env" }, searchPaths: searchPaths() });
    expect(config.fuse.dir).toBe("/mnt/env");
    expect(config.data.dir).toBe(path.join(cwd, "state"));
  });

  test("noExpandEnv keeps $VAR as written", async () => {
    await writeFile(path.join(cwd, "litefs.yml"), text);
    const { config } = await loadConfig({ cwd, env: { MNT: "/mnt/env" }, noExpandEnv: true, searchPaths: searchPaths() });
    expect(config.fuse.dir).toBe(path.join(cwd, "$MNT"));
  });
});

describe("the embedded configuration", () => {
  test("is a single static primary on the standard directories and port", () => {
    const config = embeddedConfig();
    expect(config.fuse.dir).toBe("/litefs");
    expect(config.data.dir).toBe("/var/lib/litefs");
    expect(config.http.addr).toBe(":20202");
    expect(config.lease).toMatchObject({
      type: "static",
      candidate: true,
      advertiseUrl: "http://localhost:20202",
    });
    expect(config.exec).toEqual([]);
  });

  test("is not expanded from the environment", () => {
    expect(EMBEDDED_CONFIG_YAML).not.toContain("$");
  });

  test("takes overrides by key path, so a demo can use its own directories", () => {
    const config = embeddedConfig({ "fuse.dir": "mnt", "data.dir": "/tmp/demo/data", "http.addr": ":0" }, { cwd: "/tmp/demo" });
    expect(config.fuse.dir).toBe("/tmp/demo/mnt");
    expect(config.data.dir).toBe("/tmp/demo/data");
    expect(config.http.addr).toBe(":0");
  });

  test("overrides are validated like a file", () => {
    let err: unknown;
    try {
      embeddedConfig({ "data.dir": "/litefs" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(
      "invalid config embedded:\n  embedded:2: fuse.dir: must differ from data.dir (both are /litefs)",
    );
  });
});
