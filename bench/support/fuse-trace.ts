/**
 * Counts FUSE requests in libfuse's debug output (`litefs mount -fuse.debug`), one slice of the
 * daemon's log at a time. libfuse 2.9 prints one line per request:
 *   unique: 42, opcode: WRITE (16), nodeid: 3, insize: 4176, pid: 1234
 */
import * as fs from "node:fs";

export type OpCounts = Map<string, number>;

const OPCODE = /^unique: \d+, opcode: ([A-Z_]+) \(\d+\)/;

/** Requests per opcode in bytes [start, end) of the log file. */
export async function countFuseOps(logPath: string, start: number, end: number): Promise<OpCounts> {
  const counts: OpCounts = new Map();
  if (end <= start) return counts;
  let rest = "";
  const stream = fs.createReadStream(logPath, { start, end: end - 1, encoding: "utf8", highWaterMark: 1 << 20 });
  const count = (line: string) => {
    const m = OPCODE.exec(line);
    if (m) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
  };
  for await (const chunk of stream) {
    const lines = (rest + (chunk as string)).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) count(line);
  }
  count(rest);
  return counts;
}

/** "12,345 requests, 3.28 per op: WRITE 3.20, READ 0.06, ..." busiest first. */
export function formatOpsPer(counts: OpCounts, ops: number): string {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const per = (n: number) => (n / ops >= 0.1 ? (n / ops).toFixed(2) : (n / ops).toPrecision(2));
  const parts = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${n.toLocaleString("en-US")}`);
  return `${total.toLocaleString("en-US")} requests (${per(total)} per op): ${parts.join(", ")}`;
}
