import { execFile } from "node:child_process";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import type { Logger } from "pino";

import { MountError } from "./errors.js";

const require = createRequire(import.meta.url);

// litefs-fuse (vendor/litefs-fuse: libfuse's low-level API served on the event loop) is CommonJS without types.
const Fuse = require("litefs-fuse") as any;

export interface MountOptions {
  allowOther: boolean;
  debug: boolean;
  /** fuse.busy-poll: how long to keep polling for the next request before sleeping. */
  busyPollMs: number;
  /** Where files found in the bare fuse.dir are moved (data.dir/stray). */
  strayDir: string;
}

/**
 * How the mount is served (DESIGN.md section 12):
 * - entry/attr/negative timeouts keep SQLite's per-transaction lookups (`-journal`/`-wal`
 *   existence, fstat) in the kernel; safe because every change goes through the mount.
 * - autoCache keeps file pages cached across opens unless mtime/size moved (stat'ed again at
 *   every open), which also makes the synthetic files (whose mtime moves with their content)
 *   fresh on every open.
 * - unlinked open files stay usable through their handles (libfuse's hard_remove), never renamed
 *   to `.fuse_hidden*`.
 * - maxWrite: a 64 KiB page arrives as one write, not sixteen.
 * - no direct_io: it breaks WAL (SQLITE_IOERR_SHMMAP) and makes reads 100x slower.
 * - busyPollUs: the event loop keeps reading the FUSE device for a moment after each request;
 *   an app's next request usually comes within microseconds, and a sleeping thread costs a
 *   VM tens of microseconds to wake (docs/benchmarks.md).
 * - nonempty: files in the bare directory are moved aside first (moveLeftoversAside), but an app
 *   still running may create one again before the mount is up; the node must come back anyway.
 */
function fuseOptions(opts: MountOptions) {
  const mountOptions = ["fsname=litefs", "subtype=litefs", "default_permissions", "nonempty"];
  if (opts.allowOther) mountOptions.push("allow_other");
  return {
    mountOptions,
    debug: opts.debug,
    maxWrite: 131072,
    entryTimeout: 10,
    attrTimeout: 10,
    negativeTimeout: 1,
    autoCache: true,
    acAttrTimeout: 0,
    busyPollUs: Math.round(opts.busyPollMs * 1000),
  };
}

export class FuseMount {
  private fuse: any = null;

  constructor(
    readonly dir: string,
    private readonly ops: Record<string, (...args: any[]) => void>,
    private readonly opts: MountOptions,
    private readonly log: Logger,
  ) {}

  async mount(): Promise<void> {
    await cleanStaleMount(this.dir, this.log);
    await fsp.mkdir(this.dir, { recursive: true });
    await this.moveLeftoversAside();
    const fuse = new Fuse(this.dir, this.ops, fuseOptions(this.opts));
    await new Promise<void>((resolve, reject) =>
      fuse.mount((err: Error | null) => (err ? reject(new MountError("MOUNT_FAILED", `cannot mount ${this.dir}: ${err.message}`)) : resolve())),
    );
    this.fuse = fuse;
    this.log.info({ dir: this.dir }, "mounted");
  }

  /**
   * Files in the bare fuse.dir were written while nothing was mounted (an app that ran while the
   * daemon was down): libfuse would refuse to mount over them, and mounting over would hide them.
   * They are moved to data.dir/stray/<time>/ and the log says where; the node comes back.
   */
  private async moveLeftoversAside(): Promise<void> {
    const leftovers = await fsp.readdir(this.dir);
    if (leftovers.length === 0) return;
    const dest = path.join(this.opts.strayDir, new Date().toISOString().replace(/[:.]/g, "-"));
    try {
      await fsp.mkdir(dest, { recursive: true });
      for (const name of leftovers) {
        const from = path.join(this.dir, name);
        await fsp.rename(from, path.join(dest, name)).catch(async (err: NodeJS.ErrnoException) => {
          if (err.code !== "EXDEV") throw err;
          await fsp.cp(from, path.join(dest, name), { recursive: true, preserveTimestamps: true });
          await fsp.rm(from, { recursive: true, force: true });
        });
      }
    } catch (err) {
      throw new MountError(
        "MOUNT_DIR_NOT_EMPTY",
        `fuse.dir ${this.dir} is not empty (${leftovers.slice(0, 3).join(", ")}${leftovers.length > 3 ? ", ..." : ""}) and moving ` +
          `those files to ${dest} failed: ${(err as Error).message}; move them away, then start again`,
        { cause: err },
      );
    }
    this.log.warn(
      { dir: this.dir, moved: leftovers, to: dest },
      `fuse.dir held files written while nothing was mounted (an app ran while litefs was down); moved them to ${dest}: they are not part of any database`,
    );
  }

  /**
   * The process that made the FUSE request being handled: the kernel's request header, set by
   * the binding before each operation runs (valid until the handler's first await; 0 after).
   * A thread ID when the caller used a thread other than its main one.
   */
  callerPid(): number {
    return this.fuse?.callerPid ?? 0;
  }

  async unmount(): Promise<void> {
    const fuse = this.fuse;
    if (!fuse) return;
    this.fuse = null;
    try {
      await new Promise<void>((resolve, reject) => fuse.unmount((err: Error | null) => (err ? reject(err) : resolve())));
    } catch (err) {
      // Busy (a process still has files open): detach lazily so the daemon can exit.
      this.log.warn({ err }, "unmount failed; detaching lazily");
      await promisify(execFile)("fusermount", ["-u", "-z", this.dir]).catch(() => undefined);
    }
    this.log.info({ dir: this.dir }, "unmounted");
  }
}

/** A mount left behind by a crashed daemon answers ENOTCONN: detach it before mounting again. */
async function cleanStaleMount(dir: string, log: Logger): Promise<void> {
  const mounts = await fsp.readFile("/proc/self/mounts", "utf8");
  const stale = mounts.split("\n").some((line) => line.split(" ")[1] === dir.replace(/ /g, "\\040"));
  if (!stale) return;
  log.warn({ dir }, "stale mount found at fuse.dir; unmounting it");
  await promisify(execFile)("fusermount", ["-u", "-z", dir]).catch(async () => {
    await promisify(execFile)("umount", ["-l", dir]);
  });
}
