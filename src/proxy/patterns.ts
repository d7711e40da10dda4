/**
 * proxy.passthrough and proxy.always-forward, as LiteFS matches them: the whole request path
 * must match a pattern, and `*` (the only wildcard) matches any run of characters, `/` included.
 */
export class PathPatterns {
  private readonly regex: RegExp | null;

  constructor(patterns: string[]) {
    const alternatives = patterns.map((p) => p.split("*").map(escapeRegex).join(".*"));
    this.regex = alternatives.length === 0 ? null : new RegExp(`^(?:${alternatives.join("|")})$`);
  }

  matches(path: string): boolean {
    return this.regex !== null && this.regex.test(path);
  }
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
