import { parser as promql } from "@prometheus-io/lezer-promql";
import { request } from "undici";
import { expect } from "vitest";
import type { LitefsNode } from "./node-process.js";
import { parseExposition, type Family, type Sample } from "./prometheus-text.js";
import { apiUrl } from "./roles.js";

export type { Family, Sample };

/** A node's GET /metrics, parsed (test/support/prometheus-text.ts), with its histograms checked. */
export class Scrape {
  readonly families: Map<string, Family>;

  constructor(readonly text: string) {
    this.families = parseExposition(text);
    for (const family of this.families.values()) {
      expect(family.help, `HELP of ${family.name}`).not.toBe("");
      expect(family.type, `TYPE of ${family.name}`).not.toBe("untyped");
      if (family.type === "counter") for (const s of family.samples) expect(s.value, `${s.name}${JSON.stringify(s.labels)}`).toBeGreaterThanOrEqual(0);
      if (family.type === "histogram") checkHistogram(family);
    }
  }

  family(name: string): Family {
    const f = this.families.get(name);
    if (!f) throw new Error(`no metric ${name} in the scrape; it has:\n${[...this.families.keys()].join("\n")}`);
    return f;
  }

  /** The value of the sample `name` whose labels include `labels` (NaN when there is none). */
  value(name: string, labels: Record<string, string> = {}, family = name): number {
    return this.family(family).samples.find((s) => s.name === name && matches(s, labels))?.value ?? NaN;
  }

  /** A histogram series' count (0 while the series does not exist). */
  histogramCount(name: string, labels: Record<string, string> = {}): number {
    const count = this.value(`${name}_count`, labels, name);
    return Number.isNaN(count) ? 0 : count;
  }
}

function matches(s: Sample, labels: Record<string, string>): boolean {
  return Object.entries(labels).every(([k, v]) => s.labels[k] === v);
}

/** Per series: buckets cumulative, a +Inf bucket equal to the count, a sum. */
function checkHistogram(family: Family): void {
  const series = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name.endsWith("_bucket")) entry.buckets.push([le === "+Inf" ? Infinity : Number(le), s.value]);
    else if (s.name.endsWith("_count")) entry.count = s.value;
    else entry.sum = s.value;
  }
  for (const [key, { buckets, count, sum }] of series) {
    const what = `${family.name}${key}`;
    buckets.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i][1], `${what}: buckets are cumulative`).toBeGreaterThanOrEqual(buckets[i - 1][1]);
    expect(buckets.at(-1)?.[0], `${what}: has a +Inf bucket`).toBe(Infinity);
    expect(count, `${what}: _count equals the +Inf bucket`).toBe(buckets.at(-1)?.[1]);
    expect(sum, `${what}: has a _sum`).toBeGreaterThanOrEqual(0);
  }
}

export async function scrape(node: LitefsNode, token = node.config.token): Promise<Scrape> {
  const res = await request(`${apiUrl(node)}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`/metrics on ${node.config.hostname}: ${res.statusCode} ${text}`);
  expect(String(res.headers["content-type"])).toMatch(/^text\/plain; version=0\.0\.4/);
  return new Scrape(text);
}

/**
 * The metric names a PromQL expression selects, read with the PromQL grammar of Prometheus's own
 * UI; throws on a syntax error. Grafana's variables are replaced by plausible values first.
 */
export function metricNamesIn(expr: string): string[] {
  const query = expr.replace(/\$__rate_interval|\$__interval|\$__range/g, "5m").replace(/\$\{?[a-zA-Z_]+(:[a-z]+)?\}?/g, ".*");
  const names: string[] = [];
  const errors: string[] = [];
  promql.parse(query).iterate({
    enter(node) {
      if (node.type.isError) errors.push(`at ${node.from}: ${JSON.stringify(query.slice(Math.max(0, node.from - 20), node.to + 20))}`);
      if (node.type.name === "Identifier" && node.node.parent?.type.name === "VectorSelector") names.push(query.slice(node.from, node.to));
    },
  });
  if (errors.length) throw new Error(`not valid PromQL: ${query} (${errors.join("; ")})`);
  return names;
}
