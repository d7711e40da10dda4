/**
 * What every benchmark hands to `npm run bench` (bench/run.ts): rows of one summary table, each
 * with its figures as text for the table and as numbers for the JSON file. A benchmark module
 * exports a function that measures and returns its raw results, and a `...Rows` function that
 * turns them into these rows; its own command line (`npm run bench:<name>`) prints its own
 * detailed report.
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export interface BenchRow {
  /** The benchmark it comes from: mount, replication, proxy, sync, backup, scale, ... */
  group: string;
  /** Stable identifier, for the JSON file and for comparing runs: `mount.wal-normal`. */
  key: string;
  /** What was measured, in words. */
  what: string;
  /** How much of it: `10,000 tx`, `1,000 dbs`. */
  n: string;
  /** The reference figure the ratio compares with (plain SQLite, direct request, async), or "-". */
  baseline: string;
  /** The figure for litefs. */
  litefs: string;
  /** litefs / baseline (time or latency: higher is slower), when there is a baseline. */
  ratio: number | null;
  /** A target and whether it was met, or a short note. */
  note?: string;
  /** The raw numbers behind the row (milliseconds, bytes, counts), for the JSON file. */
  values: Record<string, number | string | boolean | null>;
}

/** Markdown table, padded so that it also reads well in a terminal; first column left-aligned. */
export function markdownTable(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join(" | ")} |`;
  const sep = `|${widths.map((w, c) => (c === 0 ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(rows[0]), sep, ...rows.slice(1).map(line)].join("\n");
}

export function benchRowsTable(rows: BenchRow[]): string {
  const cells = [["measurement", "n", "baseline", "litefs", "ratio", "note"]];
  for (const r of rows) cells.push([`${r.group}: ${r.what}`, r.n, r.baseline, r.litefs, r.ratio === null ? "-" : `${r.ratio.toFixed(2)}x`, r.note ?? ""]);
  return markdownTable(cells);
}

/** True when the module at `url` is the script node was started with (not imported by run.ts). */
export function isMain(url: string): boolean {
  const script = process.argv[1];
  return script !== undefined && path.resolve(script) === fileURLToPath(url);
}

export const fmtMs = (ms: number): string =>
  !Number.isFinite(ms) ? "-" : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : ms >= 10 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`;
export const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-");
export const fmtMB = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MB`;
