import { request } from "undici";
import { loadConfig, type Config } from "../config/index.js";
import { LitefsError } from "../errors.js";

/** Talks to the local node's cluster API (http.addr and http.token from its config). */
export class NodeApi {
  constructor(
    readonly baseUrl: string,
    private readonly token?: string,
  ) {}

  static async fromConfig(flags: { config?: string; url?: string }): Promise<NodeApi> {
    const { config } = await loadConfig({ configPath: flags.config });
    return new NodeApi(flags.url ?? localUrl(config), config.http.token);
  }

  async call<T>(method: "GET" | "POST", path: string): Promise<T> {
    let res;
    try {
      res = await request(new URL(path, this.baseUrl), {
        method,
        headers: this.token ? { authorization: `Bearer ${this.token}` } : {},
        headersTimeout: 30_000,
      });
    } catch (err) {
      throw new LitefsError("API_UNREACHABLE", `cannot reach the litefs node at ${this.baseUrl}: ${(err as Error).message} (is litefs mount running?)`);
    }
    const text = await res.body.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // plain text answer
    }
    if (res.statusCode !== 200) {
      const msg = typeof body === "object" && body && "error" in body ? String((body as { error: unknown }).error) : text.trim();
      throw new LitefsError("API_ERROR", `${method} ${path} failed (${res.statusCode}): ${msg}`);
    }
    return body as T;
  }
}

export function localUrl(config: Config): string {
  const addr = config.http.addr;
  const i = addr.lastIndexOf(":");
  const host = addr.slice(0, i).replace(/^\[|\]$/g, "");
  const port = addr.slice(i + 1);
  return `http://${host === "" || host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host}:${port}`;
}
