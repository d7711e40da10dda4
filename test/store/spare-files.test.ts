import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SpareFiles } from "../../src/store/spare-files.js";
import { waitFor } from "../support/node-process.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "litefs-spares-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Takes into fresh names until one succeeds (the first take only starts the refill). */
async function takeOne(spares: SpareFiles, dest: string): Promise<void> {
  await waitFor(() => spares.take(dest), 10_000, "a spare file");
}

describe("SpareFiles", () => {
  it("has none before the first take, then renames an empty spare to the destination", async () => {
    const spares = new SpareFiles(path.join(dir, "spare"), 8);
    expect(spares.take(path.join(dir, "first"))).toBe(false);
    expect(fs.existsSync(path.join(dir, "first"))).toBe(false);
    await takeOne(spares, path.join(dir, "a"));
    expect(fs.statSync(path.join(dir, "a")).size).toBe(0);
    // The rest of the pool is there: takes in a row succeed without waiting.
    for (let i = 0; i < 3; i++) expect(spares.take(path.join(dir, `b${i}`))).toBe(true);
    await spares.close();
  });

  it("refills as files are taken, and each spare is used once", async () => {
    const spares = new SpareFiles(path.join(dir, "spare"), 4);
    const taken = new Set<number>();
    for (let i = 0; i < 20; i++) {
      await takeOne(spares, path.join(dir, `t${i}`));
      taken.add(fs.statSync(path.join(dir, `t${i}`)).ino);
    }
    expect(taken.size).toBe(20);
    await spares.close();
  });

  it("answers false, without an unhandled rejection, when spares cannot be created; the caller creates its file", async () => {
    const blocker = path.join(dir, "not-a-folder");
    fs.writeFileSync(blocker, "x");
    const spares = new SpareFiles(path.join(blocker, "spare"), 4);
    for (let i = 0; i < 5; i++) {
      expect(spares.take(path.join(dir, `c${i}`))).toBe(false);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await spares.close();
  });

  it("never recreates a folder that was removed: a data dir deleted under it stays deleted", async () => {
    const data = path.join(dir, "data");
    fs.mkdirSync(path.join(data, "tmp"), { recursive: true });
    const spares = new SpareFiles(path.join(data, "tmp", "spare"), 4);
    fs.rmSync(data, { recursive: true });
    expect(spares.take(path.join(dir, "x"))).toBe(false); // starts a fill, which cannot make its folder
    await spares.close();
    expect(fs.existsSync(data)).toBe(false);
  });

  it("answers false when the destination is on another filesystem", async () => {
    const spares = new SpareFiles(path.join(dir, "spare"), 4);
    await takeOne(spares, path.join(dir, "warm"));
    // A spare is ready, so the take below fails at the rename, not for want of one.
    const ready = () => fs.readdirSync(path.join(dir, "spare"), { recursive: true }).filter((f) => /\/\d+$/.test(String(f))).length;
    await waitFor(() => ready() > 0, 10_000, "a spare file ready");
    const other = fs.mkdtempSync("/dev/shm/litefs-spares-");
    try {
      expect(spares.take(path.join(other, "x"))).toBe(false);
      expect(fs.existsSync(path.join(other, "x"))).toBe(false);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
    await takeOne(spares, path.join(dir, "same-filesystem")); // still usable
    await spares.close();
  });

  it("recycles a removed file: its name goes at once, and it comes back empty as a spare", async () => {
    const spares = new SpareFiles(path.join(dir, "spare"), 4);
    await takeOne(spares, path.join(dir, "warm")); // the pool's folder exists once a fill ran
    const journal = path.join(dir, "journal");
    fs.writeFileSync(journal, Buffer.alloc(8192, 7));
    const ino = fs.statSync(journal).ino;
    expect(spares.recycle(journal)).toBe(true);
    expect(fs.existsSync(journal)).toBe(false);
    // Taken last in, first out once emptied: the same inode, with nothing in it.
    await waitFor(() => {
      const dest = path.join(dir, `again-${Math.random()}`);
      return spares.take(dest) && fs.statSync(dest).ino === ino;
    }, 10_000, "the recycled file handed out again");
    const again = fs.readdirSync(dir).find((f) => f.startsWith("again-") && fs.statSync(path.join(dir, f)).ino === ino)!;
    expect(fs.statSync(path.join(dir, again)).size).toBe(0);
    await spares.close();
  });

  it("refuses to recycle when the pool is full, closed, or the file is missing: the caller removes it", async () => {
    const spares = new SpareFiles(path.join(dir, "spare"), 2);
    await takeOne(spares, path.join(dir, "warm"));
    expect(spares.recycle(path.join(dir, "missing"))).toBe(false);
    const results = [];
    for (let i = 0; i < 6; i++) {
      const f = path.join(dir, `r${i}`);
      fs.writeFileSync(f, "x");
      results.push(spares.recycle(f));
    }
    expect(results.filter((r) => !r).length).toBeGreaterThan(0); // at most twice the target
    await spares.close();
    const f = path.join(dir, "after-close");
    fs.writeFileSync(f, "x");
    expect(spares.recycle(f)).toBe(false);
    expect(fs.existsSync(f)).toBe(true);
  });
});
