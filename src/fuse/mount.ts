import { execFile } from "node:child_process";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import type { Logger } from "pino";

import { setCloseOnExecFor } from "../os/cloexec.js";
import { MountError } from "./errors.js";

const require = createRequire(import.meta.url);

// fuse-native (vendor/fuse-native: 2.2.6 patched to report the caller's PID) is CommonJS without types.
const Fuse = require("fuse-native") as any;

export interface MountOptions {
  allowOther: boolean;
  debug: boolean;
  /** Where files found in the bare fuse.dir are moved (data.dir/stray). */
  strayDir: string;
}

/**
 * libfuse 2.9 options. fuse-native only passes a whitelist (and drops any option set to 0), so
 * the option string is built here (DESIGN.md section 9):
 * - entry/attr/negative timeouts keep SQLite's per-transaction lookups (`-journal`/`-wal`
 *   existence, fstat) in the kernel; safe because every change goes through the mount.
 * - auto_cache keeps file pages cached across opens unless mtime/size moved, which also makes
 *   the synthetic files (whose mtime moves with their content) fresh on every open.
 * - hard_remove: unlinked open files are removed, not renamed to `.fuse_hidden*`.
 * - big_writes/max_write: a 64 KiB page arrives as one write, not sixteen.
 * - no direct_io: it breaks WAL (SQLITE_IOERR_SHMMAP) and makes reads 100x slower.
 * - nonempty: files in the bare directory are moved aside first (moveLeftoversAside), but an app
 *   still running may create one again before the mount is up; the node must come back anyway.
 */
function fuseOptionString(opts: MountOptions): string {
  const options = [
    "fsname=litefs",
    "subtype=litefs",
    "default_permissions",
    "hard_remove",
    "nonempty",
    "big_writes",
    "max_write=131072",
    "auto_cache",
    "ac_attr_timeout=0",
    "entry_timeout=10",
    "attr_timeout=10",
    "negative_timeout=1",
  ];
  if (opts.allowOther) options.push("allow_other");
  if (opts.debug) options.push("debug");
  return `-o${options.join(",")}`;
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
    const optionString = fuseOptionString(this.opts);
    const fuse = new Fuse(this.dir, this.ops, { force: false, mkdir: true, timeout: false });
    fuse._fuseOptions = () => optionString;
    await new Promise<void>((resolve, reject) =>
      fuse.mount((err: Error | null) => (err ? reject(new MountError("MOUNT_FAILED", `cannot mount ${this.dir}: ${err.message}`)) : resolve())),
    );
    this.fuse = fuse;
    setCloseOnExecFor("/dev/fuse");
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
   * The process that made the FUSE request being handled: the kernel's request header, read by
   * the patched binding before each operation runs (valid until the handler's first await).
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
