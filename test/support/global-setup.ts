import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";

/**
 * Mounts left behind by a crashed test run (their daemon is gone, so they answer ENOTCONN) are
 * detached first. Live mounts belong to a run still in progress and are left alone.
 */
export default function setup(): void {
  for (const line of readFileSync("/proc/self/mounts", "utf8").split("\n")) {
    const [, dir, type] = line.split(" ");
    if (!type?.startsWith("fuse") || !dir?.includes("litefs-test-")) continue;
    try {
      statSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOTCONN") continue;
      try {
        execFileSync("fusermount", ["-u", "-z", dir], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
  }
}
