/**
 * The command line every benchmark takes: `--quick` (a smaller run), `--keep` (leave the data
 * behind), and numeric flags (`--name N`), each a positive number (or whole number). Anything
 * else is refused with the list of flags known.
 */
export function parseBenchArgs<T extends { keep: boolean }>(
  argv: string[],
  spec: { defaults: T; quick: Partial<T>; numbers: Record<string, keyof T>; integers?: boolean },
): T {
  const args: T = { ...spec.defaults };
  const num = (i: number): number => {
    const v = Number(argv[i]);
    const ok = spec.integers ? Number.isInteger(v) : Number.isFinite(v);
    if (!ok || v <= 0) throw new Error(`${argv[i - 1]} needs a positive ${spec.integers ? "integer" : "number"}`);
    return v;
  };
  const known = ["--quick", ...Object.keys(spec.numbers).map((f) => `${f} N`), "--keep"].join(" ");
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--quick") Object.assign(args, spec.quick);
    else if (a === "--keep") args.keep = true;
    else if (Object.hasOwn(spec.numbers, a)) (args as Record<keyof T, unknown>)[spec.numbers[a]] = num(++i);
    else throw new Error(`unknown argument ${a} (known: ${known})`);
  }
  return args;
}
