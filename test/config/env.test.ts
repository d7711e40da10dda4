import { describe, expect, test } from "vitest";
import { expandEnv, expandEnvMapped } from "../../src/config/env.js";

const env = {
  HOME: "/home/gopher",
  FLY_REGION: "ord",
  PRIMARY_REGION: "ord",
  OTHER_REGION: "syd",
  EMPTY: "",
  home_1: "/usr/foo",
  H: "(H)",
};

describe("expandEnv follows Go's os.ExpandEnv", () => {
  test.each([
    ["", ""],
    ["no variables", "no variables"],
    ["$HOME", "/home/gopher"],
    ["${HOME}", "/home/gopher"],
    ["$home_1", "/usr/foo"],
    ["${H}OME", "(H)OME"],
    ["$HOME/litefs", "/home/gopher/litefs"],
    ["$HOME-x", "/home/gopher-x"], // '-' ends a name
    ["$UNSET", ""],
    ["${UNSET}", ""],
    ["a${EMPTY}b", "ab"],
    // '$' not followed by a name stays as it is
    ["$", "$"],
    ["cost: 5$", "cost: 5$"],
    ["$}", "$}"],
    ["a $+b $^c", "a $+b $^c"],
    ["$ HOME", "$ HOME"],
    // bad brace syntax is dropped, as Go drops it
    ["${", ""],
    ["x${}y", "xy"],
    ["${HOME", "HOME"],
    // shell special names are looked up and, unset, vanish; there is no "$$" escape
    ["$$", ""],
    ["$1x", "x"],
    ["${*}", ""],
    ["a$-b", "ab"],
  ])("%j → %j", (input, output) => {
    expect(expandEnv(input, env)).toBe(output);
  });
});

describe("expandEnv evaluates LiteFS's ${A == 'x'} expressions", () => {
  test.each([
    ["${FLY_REGION == 'ord'}", "true"],
    ["${FLY_REGION == 'syd'}", "false"],
    ["${FLY_REGION != 'syd'}", "true"],
    ["${FLY_REGION != 'ord'}", "false"],
    ['${FLY_REGION == "ord"}', "true"],
    ['${FLY_REGION != "ord"}', "false"],
    ["${FLY_REGION=='ord'}", "true"],
    ["${ FLY_REGION   ==   'ord' }", "true"],
    ["${UNSET == ''}", "true"],
    ["${UNSET != ''}", "false"],
    ["${FLY_REGION == ''}", "false"],
    // two variables compared with each other
    ["${FLY_REGION == PRIMARY_REGION}", "true"],
    ["${FLY_REGION == OTHER_REGION}", "false"],
    ["${FLY_REGION != OTHER_REGION}", "true"],
    ["${UNSET == ALSO_UNSET}", "true"],
    // the quoted value is taken as written
    ["${FLY_REGION == 'o rd'}", "false"],
    ["${FLY_REGION == \"ord'}", ""], // mismatched quotes: not an expression, an unset name
    ["candidate: ${FLY_REGION == 'ord'}", "candidate: true"],
  ])("%s → %j", (input, output) => {
    expect(expandEnv(input, env)).toBe(output);
  });

  test("an expression's value does not reach beyond its closing brace", () => {
    expect(expandEnv("${FLY_REGION == 'a}b'}", env)).toBe("b'}");
  });
});

describe("expandEnvMapped maps offsets in the expanded text back to the source", () => {
  test("offsets after a value that grew or shrank point at the same source characters", () => {
    const source = "a: $HOME\nb: ${EMPTY}x\nc: 1";
    const { text, toSourceOffset } = expandEnvMapped(source, env);
    expect(text).toBe("a: /home/gopher\nb: x\nc: 1");
    for (const needle of ["b:", "x", "c:", "1"]) {
      expect(source[toSourceOffset(text.indexOf(needle))]).toBe(needle[0]);
    }
  });

  test("an offset inside an expanded value points at its '$'", () => {
    const source = "key: ${HOME}";
    const { text, toSourceOffset } = expandEnvMapped(source, env);
    expect(toSourceOffset(text.indexOf("gopher"))).toBe(source.indexOf("$"));
  });
});
