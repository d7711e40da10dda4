import { LitefsError } from "../errors.js";

/** Stable codes; callers branch on these, never on message text. */
export type ConfigErrorCode =
  | "CONFIG_NOT_FOUND" // an explicit -config path does not exist
  | "CONFIG_READ" // the file exists but cannot be read (permissions, a directory, ...)
  | "CONFIG_SYNTAX" // not valid YAML
  | "CONFIG_INVALID" // valid YAML, but keys, types or values are wrong
  | "CONFIG_TLS" // a file named by http.tls cannot be read, or is not a usable certificate, key or CA
  | "CONFIG_BAD_DURATION"; // parseDuration() refused its input

/** One thing wrong with a config file, pointing at the key and, when known, its line. */
export interface ConfigProblem {
  /** Key path as written in the YAML, e.g. `lease.consul.ttl` or `exec[1].cmd`; "" for the file. */
  path: string;
  line?: number;
  column?: number;
  message: string;
}

export class ConfigError extends LitefsError {
  /** The config file the problems are in ("embedded" for the built-in default), if any. */
  readonly file: string | undefined;
  readonly problems: readonly ConfigProblem[];

  constructor(
    code: ConfigErrorCode,
    summary: string,
    options: { file?: string; problems?: ConfigProblem[]; cause?: unknown } = {},
  ) {
    const problems = options.problems ?? [];
    const lines = problems.map((p) => `  ${formatProblem(options.file, p)}`);
    super(code, lines.length > 0 ? `${summary}:\n${lines.join("\n")}` : summary, {
      cause: options.cause,
    });
    this.file = options.file;
    this.problems = problems;
  }
}

/** Compiler style, so editors and terminals can jump to it: `file:line: path: message`. */
function formatProblem(file: string | undefined, p: ConfigProblem): string {
  let where = file ?? "";
  if (p.line !== undefined) where += `:${p.line}`;
  if (p.line !== undefined && p.column !== undefined && p.path === "") where += `:${p.column}`;
  const parts = [where, p.path, p.message].filter((s) => s !== "");
  return parts.join(": ");
}
