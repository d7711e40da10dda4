/**
 * Environment expansion exactly as LiteFS does it before parsing litefs.yml: Go's os.Expand
 * syntax (`$NAME`, `${NAME}`), with LiteFS's extra `${NAME == 'x'}`, `${NAME != "x"}` and
 * `${NAME == OTHER}` expressions that expand to `true` or `false`. Unset variables expand to "".
 * There is no escape: a literal `$NAME` in the file needs `-no-expand-env`.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export function expandEnv(text: string, env: Env): string {
  return expandEnvMapped(text, env).text;
}

/**
 * Expanded text plus a map from offsets in it back to offsets in `text`, so that YAML errors
 * are reported at the line the user wrote even when a variable's value spans several lines.
 */
export interface ExpandedText {
  text: string;
  toSourceOffset(offset: number): number;
}

interface Replacement {
  from: number; // start in the source
  to: number; // end in the source
  outFrom: number; // start in the output
  outTo: number; // end in the output
}

export function expandEnvMapped(text: string, env: Env): ExpandedText {
  const out: string[] = [];
  const replacements: Replacement[] = [];
  let outLen = 0;
  let copied = 0; // source offset up to which text has been copied to out

  const emit = (s: string) => {
    out.push(s);
    outLen += s.length;
  };

  for (let j = 0; j < text.length; j++) {
    // Like Go, a '$' as the very last character is left alone.
    if (text[j] !== "$" || j + 1 >= text.length) continue;
    emit(text.slice(copied, j));
    const { name, width } = shellName(text, j + 1);
    const outFrom = outLen;
    if (name === "" && width > 0) {
      // Bad syntax ("${", "${}"): Go drops these characters.
    } else if (name === "") {
      emit("$"); // '$' not followed by a name: keep it.
    } else {
      emit(lookup(name, env));
    }
    replacements.push({ from: j, to: j + 1 + width, outFrom, outTo: outLen });
    j += width;
    copied = j + 1;
  }
  emit(text.slice(copied));

  return {
    text: out.join(""),
    toSourceOffset(offset: number): number {
      let delta = 0; // source offset minus output offset, after the replacements passed so far
      for (const r of replacements) {
        if (offset < r.outFrom) break;
        if (offset < r.outTo) return r.from; // inside an expanded value: point at its `$`
        delta = r.to - r.outTo;
      }
      return offset + delta;
    },
  };
}

/** Go's os.getShellName: the name after a '$' starting at `start`, and how many chars it took. */
function shellName(s: string, start: number): { name: string; width: number } {
  const c = s[start]!;
  if (c === "{") {
    if (start + 2 < s.length && isShellSpecial(s[start + 1]!) && s[start + 2] === "}") {
      return { name: s[start + 1]!, width: 3 };
    }
    const close = s.indexOf("}", start + 1);
    if (close === -1) return { name: "", width: 1 }; // eat "${"
    if (close === start + 1) return { name: "", width: 2 }; // eat "${}"
    return { name: s.slice(start + 1, close), width: close - start + 1 };
  }
  if (isShellSpecial(c)) return { name: c, width: 1 };
  let i = start;
  while (i < s.length && isAlphaNum(s[i]!)) i++;
  return { name: s.slice(start, i), width: i - start };
}

function isShellSpecial(c: string): boolean {
  return "*#$@!?-0123456789".includes(c);
}

function isAlphaNum(c: string): boolean {
  return c === "_" || (c >= "0" && c <= "9") || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z");
}

// LiteFS's expression forms. Written with Go's RE2 meanings: \w and \s are ASCII-only and
// '.' is anything but a newline.
const WS = "[\\t\\n\\f\\r ]*";
const EXPR_SINGLE = new RegExp(`^([A-Za-z0-9_]+)${WS}(==|!=)${WS}'([^\\n]*)'$`);
const EXPR_DOUBLE = new RegExp(`^([A-Za-z0-9_]+)${WS}(==|!=)${WS}"([^\\n]*)"$`);
const EXPR_VAR = new RegExp(`^([A-Za-z0-9_]+)${WS}(==|!=)${WS}([A-Za-z0-9_]+)$`);

function lookup(rawName: string, env: Env): string {
  const name = rawName.trim();
  const get = (key: string) => env[key] ?? "";

  const literal = EXPR_SINGLE.exec(name) ?? EXPR_DOUBLE.exec(name);
  if (literal) return compare(get(literal[1]!), literal[2]!, literal[3]!);

  const vars = EXPR_VAR.exec(name);
  if (vars) return compare(get(vars[1]!), vars[2]!, get(vars[3]!));

  return get(name);
}

function compare(a: string, op: string, b: string): string {
  return String(op === "==" ? a === b : a !== b);
}
