/**
 * LiteFS is a Go program: its flags are written `-config x` as often as `--config x`.
 * Commander only knows the double-dash form, so single-dash words longer than one letter are
 * rewritten before parsing. Everything after `--` (the supervised app's own argv) is left alone.
 */
export function normalizeGoFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  let passthrough = false;
  for (const arg of argv) {
    if (passthrough) {
      out.push(arg);
    } else if (arg === "--") {
      passthrough = true;
      out.push(arg);
    } else if (/^-[A-Za-z][A-Za-z0-9.-]+(=.*)?$/.test(arg)) {
      out.push(`-${arg}`);
    } else {
      out.push(arg);
    }
  }
  return out;
}
