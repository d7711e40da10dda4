import { expect } from "vitest";
import { ConfigError, parseConfig, type Config, type ConfigProblem } from "../../src/config/index.js";

export const FILE = "/etc/litefs.yml";
export const CWD = "/work";

/** The smallest valid file: everything else has a default. */
export const MINIMAL = "lease:\n  type: static\n";

export function parse(yaml: string, env: Record<string, string> = {}): Config {
  return parseConfig(yaml, { path: FILE, env: { HOSTNAME: "node1", ...env }, cwd: CWD });
}

/** The ConfigError parse() throws; fails the test if it does not throw one. */
export function refusal(yaml: string, env: Record<string, string> = {}): ConfigError {
  try {
    parse(yaml, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected the config to be refused");
}

export function problems(yaml: string, env: Record<string, string> = {}): ConfigProblem[] {
  return [...refusal(yaml, env).problems];
}

/** The single problem reported for `path`; fails if there is not exactly one. */
export function problemAt(yaml: string, path: string, env: Record<string, string> = {}): ConfigProblem {
  const all = problems(yaml, env);
  const matching = all.filter((p) => p.path === path);
  expect(matching, `problems: ${JSON.stringify(all)}`).toHaveLength(1);
  return matching[0]!;
}

/** YAML written indented inside a test, with the common indentation removed. */
export function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = String.raw({ raw: strings }, ...values).replace(/^\n/, "");
  const indent = Math.min(...text.split("\n").filter((l) => l.trim() !== "").map((l) => l.search(/\S/)));
  return text
    .split("\n")
    .map((l) => l.slice(indent))
    .join("\n");
}
