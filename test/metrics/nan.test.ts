import { Gauge, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { exactNaN } from "../../src/metrics/node-metrics.js";
import { parseExposition } from "../support/prometheus-text.js";

describe("NaN in /metrics", () => {
  it('is written "NaN", as the text format says, not prom-client\'s "Nan"', async () => {
    // What nodejs_eventloop_lag_mean_seconds reads when no delay was sampled since the last scrape.
    const registry = new Registry();
    new Gauge({ name: "lag_mean_seconds", help: "h", registers: [registry] }).set(NaN);
    new Gauge({ name: "label_nan", help: "h", labelNames: ["v"], registers: [registry] }).set({ v: "Nan" }, 1);
    const raw = await registry.metrics();
    expect(raw).toContain("lag_mean_seconds Nan\n");
    expect(() => parseExposition(raw)).toThrow(/bad value "Nan"/);
    const fixed = exactNaN(raw);
    expect(parseExposition(fixed).get("lag_mean_seconds")!.samples[0].value).toBeNaN();
    expect(fixed).toContain('label_nan{v="Nan"} 1\n'); // only values change, never label text
  });
});
