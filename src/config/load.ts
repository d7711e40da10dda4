import { readFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { parseDocument } from "yaml";
import { EMBEDDED_CONFIG_YAML } from "./embedded.js";
import { expandEnvMapped, type Env } from "./env.js";
import { ConfigError, type ConfigProblem } from "./errors.js";
import { lineCounterFor, offsetOf } from "./positions.js";
import { validateConfig } from "./schema.js";
import type { Config } from "./types.js";

export interface LoadConfigOptions {
  /** `-config PATH`: read only this file, which must exist. Relative to `cwd`. */
  configPath?: string;
  /** `-no-expand-env`: leave `$VAR` in the file as written. */
  noExpandEnv?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  home?: string;
  /** Replaces the standard search list (configSearchPaths); for tests. */
  searchPaths?: string[];
}

/**
 * Reads litefs.yml like LiteFS: the `-config` file if given, else the first of ./litefs.yml,
 * ~/litefs.yml and /etc/litefs.yml that exists. Unlike LiteFS, when none exists this returns
 * the embedded demo configuration (`source: "embedded"`) instead of failing.
 */
export async function loadConfig(
  opts: LoadConfigOptions = {},
): Promise<{ config: Config; source: string }> {
  const cwd = opts.cwd ?? process.cwd();
  const parseOpts = { noExpandEnv: opts.noExpandEnv, env: opts.env, cwd };

  if (opts.configPath !== undefined) {
    const file = path.resolve(cwd, opts.configPath);
    const text = await readConfigFile(file);
    if (text === undefined) {
      throw new ConfigError("CONFIG_NOT_FOUND", `config file not found: ${file}`, { file });
    }
    return { config: parseConfig(text, { ...parseOpts, path: file }), source: file };
  }

  const candidates = opts.searchPaths ?? configSearchPaths({ cwd, home: opts.home ?? os.homedir() });
  for (const candidate of candidates) {
    const file = path.resolve(cwd, candidate);
    const text = await readConfigFile(file);
    if (text === undefined) continue;
    return { config: parseConfig(text, { ...parseOpts, path: file }), source: file };
  }
  return { config: embeddedConfig({}, { cwd }), source: "embedded" };
}

/** LiteFS's search order: working directory, home directory, /etc. */
export function configSearchPaths(opts: { cwd: string; home?: string }): string[] {
  const paths = [path.join(opts.cwd, "litefs.yml")];
  if (opts.home) paths.push(path.join(opts.home, "litefs.yml"));
  paths.push("/etc/litefs.yml");
  return paths;
}

/** The file's text, or undefined if there is no file there. Other failures are errors. */
async function readConfigFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new ConfigError("CONFIG_READ", `cannot read config file ${file}: ${(err as Error).message}`, {
      file,
      cause: err,
    });
  }
}

export interface ParseConfigOptions {
  /** Named in error messages. */
  path: string;
  noExpandEnv?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Relative paths in the file resolve against this (default: the process's). */
  cwd?: string;
}

/**
 * Expands the environment, parses the YAML and validates it. Throws a ConfigError listing
 * every problem, each with its key path and line.
 */
export function parseConfig(text: string, opts: ParseConfigOptions): Config {
  const file = opts.path;
  const hostname = os.hostname();

  // `litefs mount` sets HOSTNAME when the environment lacks it, so configs can use it.
  const env: Env = opts.env ?? process.env;
  const vars = env.HOSTNAME ? env : { ...env, HOSTNAME: hostname };
  const expanded = opts.noExpandEnv
    ? { text, toSourceOffset: (o: number) => o }
    : expandEnvMapped(text, vars);

  // Lines are counted in the file as written, so they stay right when a value had newlines.
  const lines = lineCounterFor(text);
  const position = (offset: number | undefined) => {
    if (offset === undefined) return {};
    const { line, col } = lines.linePos(expanded.toSourceOffset(offset));
    return { line, column: col };
  };

  // merge: LiteFS's yaml.v3 understands `<<: *anchor`.
  const doc = parseDocument(expanded.text, { prettyErrors: false, merge: true });
  if (doc.errors.length > 0) {
    const problems = unique(
      doc.errors.map((e) => ({ path: "", ...position(e.pos[0]), message: e.message })),
    );
    throw new ConfigError("CONFIG_SYNTAX", `invalid YAML in ${file}`, { file, problems });
  }

  let raw: unknown;
  try {
    raw = doc.toJS();
  } catch (err) {
    // e.g. a "billion laughs" of aliases, which yaml refuses to expand
    throw new ConfigError("CONFIG_SYNTAX", `invalid YAML in ${file}: ${(err as Error).message}`, { file, cause: err });
  }
  const result = validateConfig(raw, { cwd: opts.cwd ?? process.cwd(), hostname });
  if (result.config) return result.config;

  const problems: ConfigProblem[] = result.problems.map((p) => ({
    path: formatKeyPath(p.path),
    ...position(offsetOf(doc, p.path)),
    message: p.message,
  }));
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  throw new ConfigError("CONFIG_INVALID", `invalid config ${file}`, { file, problems });
}

// One bad value can trip the YAML parser twice at the same place.
function unique(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.line}:${p.column}:${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** `["exec", 1, "cmd"]` → `exec[1].cmd` */
function formatKeyPath(p: readonly (string | number)[]): string {
  return p.reduce<string>((acc, seg) => {
    if (typeof seg === "number") return `${acc}[${seg}]`;
    return acc === "" ? seg : `${acc}.${seg}`;
  }, "");
}

/**
 * The embedded configuration, with `overrides` given as YAML key paths, e.g.
 * `{ "fuse.dir": "/tmp/demo/mnt", "data.dir": "/tmp/demo/data" }`. The result is validated
 * like any file.
 */
export function embeddedConfig(overrides: Record<string, unknown> = {}, opts: { cwd?: string } = {}): Config {
  const doc = parseDocument(EMBEDDED_CONFIG_YAML);
  for (const [key, value] of Object.entries(overrides)) doc.setIn(key.split("."), value);
  return parseConfig(String(doc), { path: "embedded", noExpandEnv: true, cwd: opts.cwd });
}
