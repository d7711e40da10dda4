import { describe, expect, test } from "vitest";
import { PathPatterns } from "../../src/proxy/patterns.js";

describe("PathPatterns", () => {
  test("an empty list matches nothing", () => {
    const p = new PathPatterns([]);
    for (const path of ["", "/", "/a", "*", ".*"]) expect(p.matches(path)).toBe(false);
  });

  test("a pattern without * matches only that exact path", () => {
    const p = new PathPatterns(["/health"]);
    expect(p.matches("/health")).toBe(true);
    expect(p.matches("/health/")).toBe(false);
    expect(p.matches("/healthz")).toBe(false);
    expect(p.matches("/api/health")).toBe(false);
    expect(p.matches("/Health")).toBe(false);
  });

  test("is anchored at the start", () => {
    const p = new PathPatterns(["/a*"]);
    expect(p.matches("/abc")).toBe(true);
    expect(p.matches("/x/abc")).toBe(false);
  });

  test("is anchored at the end", () => {
    const p = new PathPatterns(["*.css"]);
    expect(p.matches("/style.css")).toBe(true);
    expect(p.matches("/style.css.map")).toBe(false);
  });

  test("* matches any run of characters, / included", () => {
    const p = new PathPatterns(["/static/*"]);
    expect(p.matches("/static/a.js")).toBe(true);
    expect(p.matches("/static/deep/nested/a.js")).toBe(true);
    expect(p.matches("/static/")).toBe(true);
    expect(p.matches("/static")).toBe(false);
  });

  test("* matches the empty run", () => {
    const p = new PathPatterns(["/a*b"]);
    expect(p.matches("/ab")).toBe(true);
    expect(p.matches("/a/x/y/b")).toBe(true);
    expect(p.matches("/a/x/y/bc")).toBe(false);
  });

  test("a lone * matches every path", () => {
    const p = new PathPatterns(["*"]);
    for (const path of ["", "/", "/a/b/c", "/?q=1"]) expect(p.matches(path)).toBe(true);
  });

  test("several * in one pattern each match independently", () => {
    const p = new PathPatterns(["/api/*/items/*"]);
    expect(p.matches("/api/v1/items/42")).toBe(true);
    expect(p.matches("/api/v1/beta/items/42/x")).toBe(true);
    expect(p.matches("/api/v1/things/42")).toBe(false);
  });

  test("a path matching any one of several patterns matches", () => {
    const p = new PathPatterns(["/health", "/static/*", "*.ico"]);
    expect(p.matches("/health")).toBe(true);
    expect(p.matches("/static/x")).toBe(true);
    expect(p.matches("/favicon.ico")).toBe(true);
    expect(p.matches("/api")).toBe(false);
  });

  test("anchoring applies to every alternative, not just the first and last", () => {
    const p = new PathPatterns(["/a", "/b", "/c"]);
    expect(p.matches("/b")).toBe(true);
    expect(p.matches("/bx")).toBe(false);
    expect(p.matches("x/b")).toBe(false);
    expect(p.matches("/ax")).toBe(false);
    expect(p.matches("x/c")).toBe(false);
  });

  test(". is literal: /a.b does not match /axb", () => {
    const p = new PathPatterns(["/a.b"]);
    expect(p.matches("/a.b")).toBe(true);
    expect(p.matches("/axb")).toBe(false);
  });

  test("parentheses are literal: /(x) matches only /(x)", () => {
    const p = new PathPatterns(["/(x)"]);
    expect(p.matches("/(x)")).toBe(true);
    expect(p.matches("/x")).toBe(false);
  });

  test("| is literal and does not split a pattern into alternatives", () => {
    const p = new PathPatterns(["/a|/b"]);
    expect(p.matches("/a|/b")).toBe(true);
    expect(p.matches("/a")).toBe(false);
    expect(p.matches("/b")).toBe(false);
  });

  test("?, + and {n} are literal, not quantifiers", () => {
    expect(new PathPatterns(["/ab?"]).matches("/a")).toBe(false);
    expect(new PathPatterns(["/ab?"]).matches("/ab?")).toBe(true);
    expect(new PathPatterns(["/ab+"]).matches("/abb")).toBe(false);
    expect(new PathPatterns(["/ab+"]).matches("/ab+")).toBe(true);
    expect(new PathPatterns(["/a{2}"]).matches("/aa")).toBe(false);
    expect(new PathPatterns(["/a{2}"]).matches("/a{2}")).toBe(true);
  });

  test("brackets, ^, $ and backslash are literal", () => {
    expect(new PathPatterns(["/[ab]"]).matches("/a")).toBe(false);
    expect(new PathPatterns(["/[ab]"]).matches("/[ab]")).toBe(true);
    expect(new PathPatterns(["/^x$"]).matches("/^x$")).toBe(true);
    expect(new PathPatterns(["/^x$"]).matches("/x")).toBe(false);
    expect(new PathPatterns(["/a\\d"]).matches("/a\\d")).toBe(true);
    expect(new PathPatterns(["/a\\d"]).matches("/a1")).toBe(false);
  });

  test("metacharacters stay literal next to a wildcard", () => {
    const p = new PathPatterns(["/v1.*.json"]);
    expect(p.matches("/v1.users.json")).toBe(true);
    expect(p.matches("/v1x/users.json")).toBe(false);
    expect(p.matches("/v1.usersxjson")).toBe(false);
  });

  test("an empty pattern matches only the empty path", () => {
    const p = new PathPatterns([""]);
    expect(p.matches("")).toBe(true);
    expect(p.matches("/")).toBe(false);
  });
});
