import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/**
 * A small tmpfs mounted at `dir` (a node's data dir) that a test fills up and frees. Always
 * unmounted by `remove` (lazily, if a daemon still holds files); `removeLeftovers` clears those of
 * a crashed run (tmpfs mounts under litefs-test-* dirs).
 */
export class SmallDisk {
  private constructor(
    readonly dir: string,
    private readonly filler: string,
  ) {}

  static async mount(dir: string, sizeMb: number): Promise<SmallDisk> {
    await fsp.mkdir(dir, { recursive: true });
    await execFileAsync("mount", ["-t", "tmpfs", "-o", `size=${sizeMb}m`, "tmpfs", dir]);
    return new SmallDisk(dir, path.join(dir, "filler"));
  }

  /** Writes a filler file until the disk refuses (ENOSPC). */
  async fill(): Promise<void> {
    const fh = await fsp.open(this.filler, "a");
    const chunk = Buffer.alloc(64 * 1024, 1);
    try {
      for (;;) await fh.write(chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
    } finally {
      await fh.close();
    }
    // Smaller leftovers too, down to a page.
    for (let size = 32 * 1024; size >= 512; size /= 2) {
      await fsp.appendFile(this.filler, Buffer.alloc(size, 1)).catch(() => undefined);
    }
  }

  async free(): Promise<void> {
    await fsp.rm(this.filler, { force: true });
  }

  async remove(): Promise<void> {
    await execFileAsync("umount", [this.dir]).catch(() => execFileAsync("umount", ["-l", this.dir]).catch(() => undefined));
  }

  static async removeLeftovers(): Promise<void> {
    for (const line of fs.readFileSync("/proc/self/mounts", "utf8").split("\n")) {
      const [, dir, type] = line.split(" ");
      if (type === "tmpfs" && dir?.includes("/litefs-test-")) await execFileAsync("umount", ["-l", dir]).catch(() => undefined);
    }
  }
}
