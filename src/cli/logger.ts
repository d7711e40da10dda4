import { pino, type Logger } from "pino";

export interface LoggerOptions {
  format: "text" | "json";
  debug: boolean;
  timestamp?: boolean;
}

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const SKIP = new Set(["level", "time", "msg", "pid", "hostname"]);

/**
 * pino writes JSON; LiteFS's default is a readable text line. The text form is a small
 * synchronous transform (no worker thread) writing `time LEVEL msg key=value ...` to stderr.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.debug ? "debug" : "info";
  const base = { level, base: undefined, timestamp: opts.timestamp === false ? false : pino.stdTimeFunctions.epochTime };
  if (opts.format === "json") return pino(base, pino.destination({ fd: 2, sync: true }));
  return pino(base, {
    write(line: string) {
      process.stderr.write(formatTextLine(line));
    },
  });
}

function formatTextLine(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line);
  } catch {
    return line;
  }
  const parts: string[] = [];
  if (typeof rec.time === "number") parts.push(new Date(rec.time).toISOString());
  parts.push(LEVEL_NAMES[rec.level as number] ?? String(rec.level));
  if (rec.msg !== undefined) parts.push(String(rec.msg));
  for (const [k, v] of Object.entries(rec)) {
    if (SKIP.has(k)) continue;
    const text = k === "err" && v && typeof v === "object" ? ((v as { message?: string }).message ?? JSON.stringify(v)) : typeof v === "string" ? v : JSON.stringify(v);
    parts.push(`${k}=${/\s/.test(text) ? JSON.stringify(text) : text}`);
  }
  return parts.join(" ") + "\n";
}
