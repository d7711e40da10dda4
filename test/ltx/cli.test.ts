import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, describe, expect, test, vi } from "vitest";
import { ltxChecksum, ltxDump, ltxVerify, registerLtx } from "../../src/cli/ltx.js";
import { LitefsError } from "../../src/errors.js";
import { LtxError } from "../../src/ltx/index.js";
import { INCREMENTAL, SNAPSHOT, fixture, fixturePath } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "litefs-ltx-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function collect(): { out: (line: string) => void; lines: string[] } {
  const lines: string[] = [];
  return { out: (line) => lines.push(line), lines };
}

function damagedCopy(name: string, at: number): string {
  const buf = fixture(name);
  buf[at] ^= 1;
  const path = join(tmp, `damaged-${at}-${name}`);
  writeFileSync(path, buf);
  return path;
}

describe("ltx verify", () => {
  test("reports each good file", async () => {
    const { out, lines } = collect();
    await ltxVerify([fixturePath(INCREMENTAL.file), fixturePath(SNAPSHOT.lz4.file)], out);
    expect(lines).toEqual([
      `${fixturePath(INCREMENTAL.file)}: ok (TXID 000000000000000d-000000000000000d, 3 pages, post-apply fe3831a381c602b9)`,
      `${fixturePath(SNAPSHOT.lz4.file)}: ok (TXID 0000000000000001-0000000000000001, 19 pages, post-apply de9809cf148608ce)`,
    ]);
  });

  test("stops at the first bad file, saying which and why", async () => {
    const bad = damagedCopy(INCREMENTAL.file, 600);
    const { out, lines } = collect();
    const run = ltxVerify([fixturePath(INCREMENTAL.file), bad, fixturePath(SNAPSHOT.lz4.file)], out);
    await expect(run).rejects.toBeInstanceOf(LtxError);
    await expect(run).rejects.toMatchObject({ code: "LTX_FILE_CHECKSUM_MISMATCH" });
    await expect(run).rejects.toThrow(`${bad}: file checksum mismatch: trailer says 9496a29358326fb5`);
    expect(lines.length).toBe(1);
  });

  test("a missing file is an error message, not a crash", async () => {
    const missing = join(tmp, "nope.ltx");
    const run = ltxVerify([missing], () => {});
    await expect(run).rejects.toBeInstanceOf(LitefsError);
    await expect(run).rejects.toThrow(`${missing}: ENOENT`);
  });
});

describe("ltx dump", () => {
  test("prints the header, page numbers and trailer", async () => {
    const { out, lines } = collect();
    await ltxDump(fixturePath(INCREMENTAL.file), out);
    expect(lines).toContain("  kind           incremental");
    expect(lines).toContain("  commit         10");
    expect(lines).toContain("  min TXID       000000000000000d");
    expect(lines).toContain("  pre-apply      9c74a15b4e4f246c");
    expect(lines.filter((l) => /^  page +\d/.test(l))).toEqual([
      "  page  1  checksum adf3e188cb5dc241",
      "  page  7  checksum eaf0947b2055d648",
      "  page  8  checksum 9a7407c73d4bb9da",
    ]);
    expect(lines.slice(-3)).toEqual([
      "trailer:",
      "  post-apply     fe3831a381c602b9",
      "  file checksum  9496a29358326fb5 (verified)",
    ]);
  });

  test("shows what it could read before the damage, then fails", async () => {
    const bad = damagedCopy(SNAPSHOT.uncompressed.file, 100 + 5 * 4100 + 4); // inside page 6
    const { out, lines } = collect();
    await expect(ltxDump(bad, out)).rejects.toMatchObject({ code: "LTX_FILE_CHECKSUM_MISMATCH" });
    expect(lines.filter((l) => /^  page +\d/.test(l)).length).toBe(SNAPSHOT.pages);
    expect(lines).not.toContain("trailer:");
  });
});

describe("ltx checksum", () => {
  test("prints the stated checksums of the fixture databases", async () => {
    for (const [name, sum] of [
      [INCREMENTAL.database, "fe3831a381c602b9"],
      [SNAPSHOT.database, "de9809cf148608ce"],
    ]) {
      const { out, lines } = collect();
      await ltxChecksum(fixturePath(name), out);
      expect(lines).toEqual([sum]);
    }
  });

  test("reads the page size from the SQLite header, where 1 means 65536", async () => {
    const db = Buffer.alloc(2 * 65536);
    db.write("SQLite format 3\0", 0, "latin1");
    db.writeUInt16BE(1, 16);
    const path = join(tmp, "big-pages.db");
    writeFileSync(path, db);
    const { out, lines } = collect();
    await ltxChecksum(path, out);
    const { databaseChecksum, formatChecksum } = await import("../../src/ltx/index.js");
    expect(lines).toEqual([formatChecksum(databaseChecksum(db, 65536))]);
    expect(lines).not.toEqual([formatChecksum(databaseChecksum(db, 4096))]);
  });

  test("an empty file is an empty database", async () => {
    const path = join(tmp, "empty.db");
    writeFileSync(path, "");
    const { out, lines } = collect();
    await ltxChecksum(path, out);
    expect(lines).toEqual(["8000000000000000"]);
  });

  test("a file that is not SQLite is refused", async () => {
    await expect(ltxChecksum(fixturePath(INCREMENTAL.file), () => {})).rejects.toThrow("not a SQLite database");
  });
});

describe("registration", () => {
  test("adds ltx verify, dump and checksum to the program", async () => {
    const program = new Command("litefs").exitOverride();
    registerLtx(program);
    const write = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    try {
      await program.parseAsync(["ltx", "checksum", fixturePath(SNAPSHOT.database)], { from: "user" });
      await program.parseAsync(["ltx", "verify", fixturePath(INCREMENTAL.file)], { from: "user" });
      expect(write.mock.calls.map((c) => String(c[0]))).toEqual([
        "de9809cf148608ce\n",
        `${fixturePath(INCREMENTAL.file)}: ok (TXID 000000000000000d-000000000000000d, 3 pages, post-apply fe3831a381c602b9)\n`,
      ]);
    } finally {
      write.mockRestore();
    }
  });
});
