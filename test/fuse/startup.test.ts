import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Position } from "../../src/ltx/index.js";
import { CLI, LitefsNode, isMounted, makeTempDir, waitFor, withTimeout } from "../support/node-process.js";
import { run, sqlite3 } from "../support/sqlite-clients.js";

const nodes: LitefsNode[] = [];

async function newNode(label: string, config: ConstructorParameters<typeof LitefsNode>[1] = {}): Promise<LitefsNode> {
  const node = await LitefsNode.create(label, config);
  nodes.push(node);
  return node;
}

afterEach(async () => {
  for (const n of nodes.splice(0)) await n.cleanup();
});

describe("bad input at startup", () => {
  it("an invalid config refuses to start and names the key and line", async () => {
    const dir = await makeTempDir("badconfig");
    const file = path.join(dir, "litefs.yml");
    await fsp.writeFile(file, `fuse:\n  dir: ${dir}/mnt\ndata:\n  dir: ${dir}/data\n  retention: 10 minutes\nlease:\n  type: static\n  bogus: 1\n`);
    const r = await run(process.execPath, [CLI, "mount", "-config", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/litefs\.yml:5: data\.retention/);
    expect(r.stderr).toMatch(/lease\.bogus/);
    expect(isMounted(`${dir}/mnt`)).toBe(false);
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("a missing -config file is an error, not the demo configuration", async () => {
    const r = await run(process.execPath, [CLI, "mount", "-config", "/nonexistent/litefs.yml"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/config file not found: \/nonexistent\/litefs\.yml/);
  });

  it("a corrupted LTX file stops startup with a message naming it, and nothing is lost", async () => {
    const node = await newNode("badltx");
    await node.start();
    await sqlite3(node.db("a.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1), (2), (3);");
    const pos = await node.pos("a.db");
    await node.stop();

    const files = await node.ltxFiles("a.db");
    const last = path.join(node.ltxDir("a.db"), files.at(-1)!);
    const original = await fsp.readFile(last);
    const damaged = Buffer.from(original);
    damaged[damaged.length - 30] ^= 0xff;
    await fsp.writeFile(last, damaged);

    await node.start([], { waitForMount: false });
    const exit = await node.exit!;
    expect(exit.code).toBe(1);
    expect(node.logs).toContain(`cannot use its last LTX file ${last}`);
    expect(node.logs).toMatch(/refusing to start/);

    // Put the file back: everything committed is still there.
    await fsp.writeFile(last, original);
    await node.start();
    expect(await node.pos("a.db")).toBe(pos);
    expect(await sqlite3(node.db("a.db"), "SELECT sum(v) FROM t;")).toBe("6");
  });

  it("a database file changed behind the mount's back is refused with both checksums", async () => {
    const node = await newNode("mismatch");
    await node.start();
    await sqlite3(node.db("m.db"), "CREATE TABLE t (v); INSERT INTO t SELECT randomblob(3000) FROM generate_series(1, 20);");
    // The last transaction writes page 1 and one new page at the end, not page 3.
    await sqlite3(node.db("m.db"), "CREATE TABLE u (v);");
    await node.stop();
    // Only the newest LTX file is left (as retention would), so history cannot repair the page.
    const files = await node.ltxFiles("m.db");
    for (const f of files.slice(0, -1)) await fsp.rm(path.join(node.ltxDir("m.db"), f));
    const backing = path.join(node.dataDir, "dbs", "m.db", "database");
    const bytes = await fsp.readFile(backing);
    bytes[2 * 4096 + 100] ^= 0x55;
    await fsp.writeFile(backing, bytes);

    await node.start([], { waitForMount: false });
    expect((await withTimeout(node.exit!, 20_000, "litefs to refuse to start")).code).toBe(1);
    expect(node.logs).toMatch(/database m\.db: checksum mismatch at TXID 0000000000000003: last LTX .* says [0-9a-f]{16}, the database file has [0-9a-f]{16}/);
  });

  it("a journal with a torn header is not rolled back and the last LTX decides", async () => {
    const node = await newNode("torn");
    await node.start();
    await sqlite3(node.db("j.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (42);");
    const pos = await node.pos("j.db");
    await node.stop();
    // A journal whose header is garbage: not hot, must not be played back over the database.
    await fsp.writeFile(path.join(node.dataDir, "dbs", "j.db", "journal"), Buffer.concat([Buffer.from("garbage!"), Buffer.alloc(4096, 7)]));
    await node.start();
    expect(node.logs).toMatch(/journal has no valid header/);
    expect(await node.pos("j.db")).toBe(pos);
    expect(await sqlite3(node.db("j.db"), "SELECT v FROM t;")).toBe("42");
  });

  it("files written in the bare fuse.dir while litefs was down are moved aside, and the node comes back", async () => {
    const node = await newNode("nonempty");
    await fsp.mkdir(node.mnt, { recursive: true });
    await fsp.writeFile(path.join(node.mnt, "stray.db"), "written while nothing was mounted");
    await node.start();
    expect(node.logs).toMatch(/fuse\.dir held files written while nothing was mounted .*moved them to .*stray/);
    const strayRoot = path.join(node.dataDir, "stray");
    const [batch] = await fsp.readdir(strayRoot);
    expect(await fsp.readFile(path.join(strayRoot, batch, "stray.db"), "utf8")).toBe("written while nothing was mounted");
    // The mount serves the node's own databases, not the stray file.
    expect(await fsp.readdir(node.mnt)).not.toContain("stray.db");
    await sqlite3(node.db("stray.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    expect(await sqlite3(node.db("stray.db"), "SELECT count(*) FROM t;")).toBe("1");
    await node.stop();
  });

  it("a stale mount left by a killed daemon is cleaned up at start", async () => {
    const node = await newNode("stale");
    await node.start();
    await sqlite3(node.db("s.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    node.proc!.kill("SIGKILL");
    await node.exit;
    // The dead mount is still in the mount table and answers ENOTCONN.
    expect(isMounted(node.mnt)).toBe(true);
    await expect(fsp.stat(node.mnt)).rejects.toMatchObject({ code: "ENOTCONN" });
    await node.start();
    expect(node.logs).toMatch(/stale mount found/);
    expect(await sqlite3(node.db("s.db"), "SELECT count(*) FROM t;")).toBe("1");
  });
});

describe("supervising the app", () => {
  it("runs the app after --, exits with its exit code and unmounts", async () => {
    const node = await newNode("exec");
    await node.start(["--", "sh", "-c", `sqlite3 ${node.mnt}/app.db 'CREATE TABLE t (v)' && cat ${node.mnt}/app.db-pos > ${node.dir}/pos.txt && exit 7`], {
      waitForMount: false,
    });
    const exit = await node.exit!;
    expect(exit.code).toBe(7);
    expect(isMounted(node.mnt)).toBe(false);
    expect(Position.parse((await fsp.readFile(`${node.dir}/pos.txt`, "utf8")).trim()).txid).toBe(1);
  });

  it("runs exec commands in order: migrations to completion, then the app; if-candidate is honoured", async () => {
    const node = await newNode("execlist", {
      candidate: true,
      extraYaml: [
        "exec:",
        `  - cmd: "sh -c 'echo migrate >> ${"$"}{OUT}'"`,
        "    if-candidate: true",
        `  - cmd: "sh -c 'echo app >> ${"$"}{OUT}'"`,
      ].join("\n"),
    });
    process.env.OUT = path.join(node.dir, "out.txt");
    await node.start([], { waitForMount: false });
    expect((await node.exit!).code).toBe(0);
    expect(await fsp.readFile(process.env.OUT, "utf8")).toBe("migrate\napp\n");
    delete process.env.OUT;
  });

  it("the app does not inherit the FUSE connection", async () => {
    const node = await newNode("cloexec");
    await node.start(["--", "sh", "-c", `ls -l /proc/self/fd/ > ${node.dir}/fds.txt`], { waitForMount: false });
    expect((await node.exit!).code).toBe(0);
    const fds = await fsp.readFile(`${node.dir}/fds.txt`, "utf8");
    expect(fds).toMatch(/->/);
    expect(fds).not.toMatch(/\/dev\/fuse/);
  });

  it("forwards SIGTERM to the app", async () => {
    const node = await newNode("sigterm");
    await node.start(["--", "sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.05; done"]);
    await waitFor(() => node.logs.includes("starting subprocess"), 10_000, "app start");
    await new Promise((r) => setTimeout(r, 200));
    const result = await node.stop();
    expect(result.code).toBe(42);
  });
});

describe("retention", () => {
  it("removes LTX files older than data.retention but always keeps the newest", async () => {
    const node = await newNode("retention", { retention: "1s", retentionMonitorInterval: "200ms" });
    await node.start();
    const db = node.db("r.db");
    await sqlite3(db, "CREATE TABLE t (v);");
    for (let i = 0; i < 5; i++) await sqlite3(db, `INSERT INTO t VALUES (${i});`);
    // Retention may already have run (each sqlite3 process can take longer than the 1 s
    // retention on a loaded machine): only the newest file is certain to be there.
    expect((await node.ltxFiles("r.db")).at(-1)).toBe("0000000000000006-0000000000000006.ltx");
    await waitFor(async () => (await node.ltxFiles("r.db")).length === 1, 10_000, "retention to remove old files");
    expect(await node.ltxFiles("r.db")).toEqual(["0000000000000006-0000000000000006.ltx"]);
    // Still consistent after a restart: the newest file carries the position.
    await node.stop();
    await node.start();
    expect(Position.parse(await node.pos("r.db")).txid).toBe(6);
  });
});
