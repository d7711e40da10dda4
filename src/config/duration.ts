import { ConfigError } from "./errors.js";

/**
 * Durations as Go's time.ParseDuration reads them, so LiteFS config files mean the same here:
 * an optional sign, then one or more `<number><unit>` parts ("1h30m", "1.5s", ".5ms"), units
 * ns, us (µs, μs), ms, s, m, h; a bare "0" is the only unitless value. Returns milliseconds
 * (fractional below 1 ms).
 */
export function parseDuration(s: string): number {
  const ns = parseNanoseconds(s);
  return ns / NS_PER_MS;
}

const NS_PER_MS = 1e6;
const UNIT_NS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  "\u00b5s": 1e3, // micro sign
  "\u03bcs": 1e3, // Greek mu
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};
// Go durations are int64 nanoseconds: about 292 years.
const MAX_NS = 2 ** 63 - 1;

function parseNanoseconds(input: string): number {
  const bad = (why: string) =>
    new ConfigError("CONFIG_BAD_DURATION", `${why} ${JSON.stringify(input)}`);
  let s = input;
  let sign = 1;
  if (s.startsWith("-") || s.startsWith("+")) {
    if (s[0] === "-") sign = -1;
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw bad("invalid duration");

  let total = 0;
  while (s !== "") {
    const m = /^([0-9]*)(?:\.([0-9]*))?/.exec(s)!;
    const whole = m[1]!;
    const frac = m[2];
    // Go needs a digit on at least one side of the dot.
    if (whole === "" && (frac === undefined || frac === "")) throw bad("invalid duration");
    s = s.slice(m[0].length);

    let i = 0;
    while (i < s.length && s[i] !== "." && !(s[i]! >= "0" && s[i]! <= "9")) i++;
    const unit = s.slice(0, i);
    s = s.slice(i);
    if (unit === "") throw bad('missing unit (ns, us, ms, s, m or h) in duration');
    const unitNs = UNIT_NS[unit];
    if (unitNs === undefined) {
      throw bad(`unknown unit ${JSON.stringify(unit)} (use ns, us, ms, s, m or h) in duration`);
    }

    // Like Go: the fraction is truncated to whole nanoseconds.
    let v = Number(whole || "0") * unitNs;
    if (frac) v += Math.trunc(Number(frac) * (unitNs / 10 ** frac.length));
    total += v;
    if (total > MAX_NS) throw bad("duration out of range");
  }
  return sign * total;
}

/** Go's Duration.String(): "0s", "500ms", "1.5s", "1m30s", "1h0m0s". */
export function formatDuration(ms: number): string {
  let ns = Math.round(ms * NS_PER_MS);
  if (ns === 0) return "0s";
  const sign = ns < 0 ? "-" : "";
  ns = Math.abs(ns);

  if (ns < 1e3) return `${sign}${ns}ns`;
  if (ns < 1e6) return `${sign}${fraction(ns, 1e3)}\u00b5s`;
  if (ns < 1e9) return `${sign}${fraction(ns, 1e6)}ms`;

  const hours = Math.floor(ns / 3600e9);
  ns -= hours * 3600e9;
  const minutes = Math.floor(ns / 60e9);
  ns -= minutes * 60e9;
  let out = `${fraction(ns, 1e9)}s`;
  if (hours > 0) out = `${hours}h${minutes}m${out}`;
  else if (minutes > 0) out = `${minutes}m${out}`;
  return sign + out;
}

/** `n / unit` written with as many decimals as needed and no trailing zeros. */
function fraction(n: number, unit: number): string {
  const whole = Math.floor(n / unit);
  const rest = n - whole * unit;
  if (rest === 0) return String(whole);
  const digits = String(unit).length - 1;
  return `${whole}.${String(rest).padStart(digits, "0").replace(/0+$/, "")}`;
}
