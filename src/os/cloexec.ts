import * as fs from "node:fs";
import koffi from "koffi";

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

type Fcntl = (fd: number, cmd: number, ...args: unknown[]) => number;
let fcntl: Fcntl | null = null;

function libcFcntl(): Fcntl {
  fcntl ??= koffi.load("libc.so.6").func("int fcntl(int fd, int cmd, ...)") as Fcntl;
  return fcntl;
}

/**
 * Marks every open descriptor of this process that refers to `devicePath` close-on-exec.
 * libfuse 2.9 opens /dev/fuse without O_CLOEXEC, so every child the daemon starts (the app,
 * exec commands, the mount agent) would hold the FUSE connection: a child stuck on the mount
 * then keeps the connection alive after the daemon dies, and unmounting hangs in D state.
 * Returns how many descriptors were changed.
 */
export function setCloseOnExecFor(devicePath: string): number {
  let changed = 0;
  for (const name of fs.readdirSync("/proc/self/fd")) {
    const fd = Number(name);
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // closed meanwhile (the descriptor readdir itself used)
    }
    if (target !== devicePath) continue;
    const flags = libcFcntl()(fd, F_GETFD);
    if (flags < 0 || flags & FD_CLOEXEC) continue;
    if (libcFcntl()(fd, F_SETFD, "int", flags | FD_CLOEXEC) === 0) changed++;
  }
  return changed;
}
