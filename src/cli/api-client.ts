import { request } from "undici";
import { loadConfig, type Config } from "../config/index.js";
import { authHeaders } from "../http/auth.js";
import { errorText } from "../http/client.js";
import { CliError } from "./errors.js";

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
        headers: authHeaders(this.token),
        headersTimeout: 30_000,
      });
    } catch (err) {
      throw new CliError("CLI_NODE_UNREACHABLE", `cannot reach the litefs node at ${this.baseUrl}: ${(err as Error).message} (is litefs mount running?)`);
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new CliError("CLI_NODE_REFUSED", `${method} ${path} failed (${res.statusCode}): ${errorText(text)}`);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError("CLI_NODE_REFUSED", `${method} ${path}: the node answered 200 with a body that is not JSON: ${text.slice(0, 200)}`);
    }
  }
}

function localUrl(config: Config): string {
  const addr = config.http.addr;
  const i = addr.lastIndexOf(":");
  const host = addr.slice(0, i).replace(/^\[|\]$/g, "");
  const port = addr.slice(i + 1);
  return `http://${host === "" || host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host}:${port}`;
}
