import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** Leftover FUSE mounts under the test temp root from a crashed run are unmounted first. */
export default function setup(): void {
  const mounts = readFileSync("/proc/self/mounts", "utf8").split("\n");
  for (const line of mounts) {
    const [, dir, type] = line.split(" ");
    if (type?.startsWith("fuse") && dir?.includes("litefs-test-")) {
      try {
        execFileSync("fusermount", ["-u", "-z", dir], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
  }
}
