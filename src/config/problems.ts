import type { z } from "zod";

/** A problem before it is given a line: the key path as a list, and what is wrong. */
export interface RawProblem {
  path: (string | number)[];
  message: string;
}

/**
 * Turns a zod issue into problems a person can act on: one per unknown key (with a guess at
 * the key they meant), and types named the way YAML users think of them.
 */
export function toProblems(
  iss: z.core.$ZodIssue,
  knownKeys: (at: (string | number)[]) => string[],
): RawProblem[] {
  const at = iss.path.map((p) => (typeof p === "symbol" ? String(p) : p));
  switch (iss.code) {
    case "unrecognized_keys":
      return iss.keys.map((k) => {
        const guess = suggest(k, knownKeys(at));
        const message = guess === undefined ? "unknown key" : `unknown key (did you mean "${guess}"?)`;
        return { path: [...at, k], message };
      });
    case "invalid_type": {
      if (at.length === 0) {
        const message = `expected a mapping of keys such as "fuse:" and "lease:", got ${describe(iss.input)}`;
        return [{ path: at, message }];
      }
      const want = EXPECTED_AT[at.join(".")] ?? TYPE_NAMES[iss.expected] ?? iss.expected;
      if (iss.input === undefined) return [{ path: at, message: `is required (${want})` }];
      const hint = iss.expected === "string" ? quoteHint(iss.input) : "";
      return [{ path: at, message: `expected ${want}, got ${describe(iss.input)}${hint}` }];
    }
    case "invalid_value": {
      const options = iss.values.map((v) => JSON.stringify(v)).join(" or ");
      if (iss.input === undefined) return [{ path: at, message: `is required: ${options}` }];
      return [{ path: at, message: `must be ${options}, got ${describe(iss.input)}` }];
    }
    case "too_small":
      if (iss.origin === "string") return [{ path: at, message: "must not be empty" }];
      return [{ path: at, message: `must be at least ${String(iss.minimum)}, got ${describe(iss.input)}` }];
    default:
      return [{ path: at, message: iss.message }];
  }
}

// Keys that take more than one shape.
const EXPECTED_AT: Record<string, string> = {
  exec: "a command string or a list of {cmd, if-candidate}",
};

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  boolean: "true or false",
  number: "a whole number",
  int: "a whole number",
  array: "a list",
  object: "a mapping",
};

/** A value as the user wrote it: strings quoted, collections by kind. */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return "an empty value";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}

// YAML reads 8080, true or 1e3 as numbers or booleans; strings must be quoted to stay exact.
export function quoteHint(v: unknown): string {
  return typeof v === "number" || typeof v === "boolean" ? " (quote the value to make it a string)" : "";
}

/** A known key that differs only in case, '-' vs '_' (allow_other, advertiseURL) or a typo. */
function suggest(key: string, known: string[]): string | undefined {
  const norm = (k: string) => k.toLowerCase().replace(/[-_]/g, "");
  const same = known.find((k) => norm(k) === norm(key));
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestDist = 3; // more than two edits is not a typo
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestDist) [best, bestDist] = [k, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
