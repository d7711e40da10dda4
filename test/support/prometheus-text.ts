/**
 * A strict parser of Prometheus's text exposition format 0.0.4 (what prom-client serves), for
 * tests. prom-client only writes the format; the one parser on npm (parse-prometheus-text-format
 * 1.1.1) merges the series of a labelled histogram into one and drops their labels, so the
 * commit-latency histogram per database could not be read with it.
 *
 * Checked: every line is a HELP, TYPE, comment or sample line; names and label names are valid;
 * label values use only the format's escapes; values are floats (NaN, +Inf, -Inf included); a
 * family's lines are contiguous and its TYPE comes before its samples; sample names belong to
 * their family (`_bucket`, `_sum`, `_count` for histograms); no series appears twice.
 */

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

export interface Sample {
  /** The sample's own name: `x`, or `x_bucket`, `x_sum`, `x_count` in a histogram `x`. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

const TYPES = new Set<MetricType>(["counter", "gauge", "histogram", "summary", "untyped"]);
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class ExpositionError extends Error {}

export function parseExposition(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith("\n")) throw new ExpositionError("the exposition does not end with a newline");
  const families = new Map<string, Family>();
  let current: Family | null = null;
  const seen = new Set<string>();
  const familyOf = (name: string, lineNo: number): Family => {
    if (current?.name === name) return current;
    if (families.has(name)) throw new ExpositionError(`line ${lineNo}: family ${name} resumes after another family`);
    current = { name, help: "", type: "untyped", samples: [] };
    families.set(name, current);
    return current;
  };
  const lines = text.split("\n");
  lines.pop();
  lines.forEach((line, i) => {
    const lineNo = i + 1;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) return; // a plain comment
      const [, keyword, name, rest = ""] = m;
      if (!NAME.test(name)) throw new ExpositionError(`line ${lineNo}: bad metric name ${JSON.stringify(name)}`);
      const family = familyOf(name, lineNo);
      if (keyword === "HELP") {
        if (family.help) throw new ExpositionError(`line ${lineNo}: second HELP for ${name}`);
        family.help = unescapeHelp(rest, lineNo);
      } else {
        if (!TYPES.has(rest as MetricType)) throw new ExpositionError(`line ${lineNo}: unknown type ${JSON.stringify(rest)}`);
        if (family.samples.length) throw new ExpositionError(`line ${lineNo}: TYPE of ${name} after its samples`);
        family.type = rest as MetricType;
      }
      return;
    }
    const sample = parseSample(line, lineNo);
    const family = familyOf(familyName(sample.name, current), lineNo);
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seen.has(key)) throw new ExpositionError(`line ${lineNo}: series ${key} appears twice`);
    seen.add(key);
    if (family.type === "histogram" && sample.name === `${family.name}_bucket` && sample.labels.le === undefined) {
      throw new ExpositionError(`line ${lineNo}: histogram bucket without le`);
    }
    family.samples.push(sample);
  });
  return families;
}

/** The family a sample line belongs to: the current one when its name is one of the family's. */
function familyName(sampleName: string, current: Family | null): string {
  if (!current) return sampleName;
  const suffixes = current.type === "histogram" ? ["_bucket", "_sum", "_count"] : current.type === "summary" ? ["_sum", "_count", ""] : [""];
  return suffixes.some((s) => sampleName === current.name + s) ? current.name : sampleName;
}

function parseSample(line: string, lineNo: number): Sample {
  let i = 0;
  const fail = (why: string): never => {
    throw new ExpositionError(`line ${lineNo}: ${why}: ${line}`);
  };
  while (i < line.length && line[i] !== "{" && line[i] !== " " && line[i] !== "\t") i++;
  const name = line.slice(0, i);
  if (!NAME.test(name)) fail("bad metric name");
  const labels: Record<string, string> = {};
  if (line[i] === "{") {
    i++;
    for (;;) {
      while (line[i] === " ") i++;
      if (line[i] === "}") {
        i++;
        break;
      }
      const eq = line.indexOf("=", i);
      if (eq < 0) fail("label without =");
      const label = line.slice(i, eq).trim();
      if (!LABEL.test(label)) fail(`bad label name ${JSON.stringify(label)}`);
      if (label in labels) fail(`label ${label} twice`);
      i = eq + 1;
      if (line[i] !== '"') fail("label value not quoted");
      let value = "";
      for (i++; ; i++) {
        if (i >= line.length) fail("unterminated label value");
        const c = line[i];
        if (c === '"') break;
        if (c === "\\") {
          const next = line[++i];
          if (next === "\\") value += "\\";
          else if (next === '"') value += '"';
          else if (next === "n") value += "\n";
          else fail(`bad escape \\${next}`);
        } else {
          value += c;
        }
      }
      labels[label] = value;
      i++;
      while (line[i] === " ") i++;
      if (line[i] === ",") i++;
      else if (line[i] !== "}") fail("expected , or } after a label");
    }
  }
  const rest = line.slice(i).trim().split(/[ \t]+/);
  if (rest.length > 2 || rest[0] === "") fail("expected a value and at most a timestamp");
  const value = parseValue(rest[0]);
  if (value === null) fail(`bad value ${JSON.stringify(rest[0])}`);
  if (rest.length === 2 && !/^-?\d+$/.test(rest[1])) fail(`bad timestamp ${JSON.stringify(rest[1])}`);
  return { name, labels, value: value! };
}

function parseValue(text: string): number | null {
  if (text === "NaN") return NaN;
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return null;
  return Number(text);
}

/** HELP text escapes only backslash and newline. */
function unescapeHelp(text: string, lineNo: number): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== "\\") {
      out += text[i];
      continue;
    }
    const next = text[++i];
    if (next === "\\") out += "\\";
    else if (next === "n") out += "\n";
    else throw new ExpositionError(`line ${lineNo}: bad escape \\${next} in HELP`);
  }
  return out;
}
