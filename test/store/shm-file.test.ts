import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ShmBackingFile } from "../../src/store/shm-file.js";
import { tempDir } from "../sqlite/helpers.js";

let dir: string;
let cleanup: () => void;
let shm: ShmBackingFile;
beforeEach(() => {
  ({ dir, cleanup } = tempDir("litefs-shm-"));
  shm = new ShmBackingFile(path.join(dir, "shm"));
});
afterEach(() => {
  shm.close();
  cleanup();
});

const onDisk = () => fs.statSync(shm.path).size;

/** What SQLite's unix VFS does to a -shm: the first connection truncates it to 3 bytes, then writes the last byte of each 4 KiB page. */
function growLikeSqlite(file: ShmBackingFile, bytes: number): void {
  for (let page = Math.floor(file.size() / 4096); page < bytes / 4096; page++) file.write(Buffer.alloc(1), 1, page * 4096 + 4095);
}

describe("the -shm backing file keeps its disk space", () => {
  it("is created with one 32 KiB wal-index block on disk while the mount sees it empty", () => {
    shm.open(true);
    expect(shm.size()).toBe(0);
    expect(shm.stat()!.size).toBe(0);
    expect(onDisk()).toBe(32 * 1024);
  });

  it("a truncation shrinks what the mount sees, zeroes the rest, and keeps the blocks", () => {
    growLikeSqlite(shm, 64 * 1024);
    shm.write(Buffer.alloc(4096, 0xab), 4096, 0);
    expect(shm.size()).toBe(64 * 1024);
    shm.truncate(3);
    expect(shm.size()).toBe(3);
    expect(shm.stat()!.size).toBe(3);
    expect(onDisk()).toBe(64 * 1024);
    const buf = Buffer.alloc(100, 0x55);
    expect(shm.read(buf, 100, 0)).toBe(3);
    // Grown again: only zeros past the 3 bytes kept, never the old header.
    growLikeSqlite(shm, 32 * 1024);
    expect(shm.size()).toBe(32 * 1024);
    const after = shm.readAt(0, 4096);
    expect([...after.subarray(0, 3)]).toEqual([0xab, 0xab, 0xab]);
    expect(after.subarray(3).every((b) => b === 0)).toBe(true);
  });

  it("an unlink hides it and keeps its blocks; created again it is empty and zeroed", () => {
    shm.write(Buffer.alloc(8192, 0xcd), 8192, 0);
    shm.unlink();
    expect(shm.exists()).toBe(false);
    expect(shm.stat()).toBeNull();
    expect(onDisk()).toBe(32 * 1024);
    shm.open(true);
    expect(shm.exists()).toBe(true);
    expect(shm.size()).toBe(0);
    growLikeSqlite(shm, 8192);
    expect(shm.readAt(0, 8192).subarray(0, 4095).every((b) => b === 0)).toBe(true);
  });

  it("gives back space past 4 MiB when it shrinks", () => {
    shm.truncate(6 * 1024 * 1024);
    shm.truncate(0);
    expect(shm.size()).toBe(0);
    expect(onDisk()).toBe(4 * 1024 * 1024);
  });

  it("after a restart (a new object), the mount sees what is on disk", () => {
    shm.write(Buffer.alloc(10, 1), 10, 0);
    shm.close();
    const again = new ShmBackingFile(shm.path);
    expect(again.size()).toBe(32 * 1024);
    again.close();
  });
});
