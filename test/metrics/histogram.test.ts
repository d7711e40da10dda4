import { Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { LabelledHistogram } from "../../src/metrics/histogram.js";
import { parseExposition } from "../support/prometheus-text.js";

describe("LabelledHistogram", () => {
  it("exports what prom-client's own histogram exports for the same observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const buckets = [0.001, 0.01, 0.1];
    const h = new LabelledHistogram("x_seconds", "help", "op", buckets, ours);
    const ref = new Histogram({ name: "x_seconds", help: "help", labelNames: ["op"], buckets, registers: [theirs] });
    const observations: Array<[string, number]> = [["read", 0.0005], ["read", 0.001], ["read", 0.05], ["write", 7], ["write", 0.01], ["read", 0.2]];
    const children = new Map<string, (v: number) => void>();
    for (const [op, v] of observations) {
      if (!children.has(op)) children.set(op, h.child(op));
      children.get(op)!(v);
      ref.observe({ op }, v);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    const family = parseExposition(await ours.metrics()).get("x_seconds")!;
    expect(family.type).toBe("histogram");
    expect(family.samples.find((s) => s.name === "x_seconds_count" && s.labels.op === "read")?.value).toBe(4);
    expect(family.samples.find((s) => s.name === "x_seconds_bucket" && s.labels.op === "read" && s.labels.le === "0.001")?.value).toBe(2);
  });

  it("exports a series only once something was observed in it", async () => {
    const registry = new Registry();
    const h = new LabelledHistogram("y_seconds", "help", "op", [1], registry);
    const observe = h.child("idle");
    expect(parseExposition(await registry.metrics()).get("y_seconds")?.samples).toEqual([]);
    observe(2);
    expect(parseExposition(await registry.metrics()).get("y_seconds")?.samples).toHaveLength(4);
  });
});

describe("the test suite's exposition parser", () => {
  it("refuses what Prometheus would refuse", () => {
    const bad = [
      "x 1", // no final newline
      "x{a=b} 1\n", // unquoted label value
      'x{a="\\t"} 1\n', // an escape the format lacks
      "x one\n",
      "1x 1\n",
      "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx 2\n", // a family resumed
      "x 1\nx 2\n", // a series twice
      "# TYPE x histogram\nx_bucket 1\n", // a bucket without le
      "# TYPE x nonsense\n",
    ];
    for (const text of bad) expect(() => parseExposition(text), JSON.stringify(text)).toThrow();
  });

  it("reads labels with escapes, special values and timestamps", () => {
    const families = parseExposition('# HELP x a \\\\ help\n# TYPE x gauge\nx{a="q\\"uote",b="line\\nbreak",} NaN 1700000000000\nx{a="2"} +Inf\n');
    const x = families.get("x")!;
    expect(x.help).toBe("a \\ help");
    expect(x.samples[0].labels).toEqual({ a: 'q"uote', b: "line\nbreak" });
    expect(x.samples[0].value).toBeNaN();
    expect(x.samples[1].value).toBe(Infinity);
  });
});
