import { describe, expect, test } from "vitest";
import { formatDuration, parseDuration } from "../../src/config/duration.js";
import { ConfigError } from "../../src/config/errors.js";

describe("parseDuration reads Go durations", () => {
  test.each([
    ["0", 0],
    ["-0", 0],
    ["10s", 10_000],
    ["1m30s", 90_000],
    ["500ms", 500],
    ["1h", 3_600_000],
    ["1.5h", 5_400_000],
    [".5s", 500],
    ["1.s", 1_000],
    ["+2m", 120_000],
    ["-1s", -1_000],
    ["1h2m3s4ms", 3_723_004],
    ["1500us", 1.5],
    ["1500µs", 1.5], // micro sign U+00B5
    ["1500μs", 1.5], // Greek mu U+03BC
    ["2000000ns", 2],
    ["1ns", 0.000001],
    ["0s", 0],
  ])("%s is %d ms", (input, ms) => {
    expect(parseDuration(input)).toBeCloseTo(ms, 9);
  });

  test.each([
    ["", /invalid duration ""/],
    ["10", /missing unit .* "10"/],
    ["1h30", /missing unit .* "1h30"/],
    ["abc", /invalid duration "abc"/],
    ["1d", /unknown unit "d" .* "1d"/],
    ["10 s", /unknown unit " s"/],
    [".s", /invalid duration/],
    ["-", /invalid duration/],
    ["3000000h", /out of range/],
  ])("%j is refused", (input, message) => {
    let caught: unknown;
    try {
      parseDuration(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).code).toBe("CONFIG_BAD_DURATION");
    expect((caught as ConfigError).message).toMatch(message);
  });
});

describe("formatDuration writes what Go's Duration.String writes", () => {
  test.each([
    [0, "0s"],
    [10_000, "10s"],
    [90_000, "1m30s"],
    [600_000, "10m0s"],
    [3_600_000, "1h0m0s"],
    [5_400_000, "1h30m0s"],
    [1_500, "1.5s"],
    [500, "500ms"],
    [1.5, "1.5ms"],
    [0.0015, "1.5µs"],
    [0.000001, "1ns"],
    [-1_000, "-1s"],
    [3_723_004, "1h2m3.004s"],
  ])("%d ms is %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  test("what it writes parses back to the same duration", () => {
    for (const ms of [0, 1, 999, 1_000, 61_001, 86_400_000, 0.25]) {
      expect(parseDuration(formatDuration(ms))).toBeCloseTo(ms, 9);
    }
  });
});
