import { request } from "undici";
import { loadConfig, type Config } from "../config/index.js";
import { authHeaders } from "../http/auth.js";
import { errorBody } from "../http/client.js";
import { CliError } from "./errors.js";

/** Talks to the local node's cluster API (http.addr and http.token from its config). */
export class NodeApi {
  constructor(
    readonly baseUrl: string,
    readonly token?: string,
  ) {}

  static async fromConfig(flags: { config?: string; url?: string }): Promise<NodeApi> {
    const { config } = await loadConfig({ configPath: flags.config });
    return new NodeApi(flags.url ?? localUrl(config), config.http.token);
  }

  /** `timeoutMs` bounds the wait for the answer's headers and between its body's chunks (default 30 s). */
  async call<T>(method: "GET" | "POST" | "DELETE", path: string, opts: { timeoutMs?: number } = {}): Promise<T> {
    let res;
    try {
      res = await request(new URL(path, this.baseUrl), {
        method,
        headers: authHeaders(this.token),
        headersTimeout: opts.timeoutMs ?? 30_000,
        ...(opts.timeoutMs !== undefined && { bodyTimeout: opts.timeoutMs }),
      });
    } catch (err) {
      throw new CliError("CLI_NODE_UNREACHABLE", `cannot reach the litefs node at ${this.baseUrl}: ${(err as Error).message} (is litefs mount running?)`);
    }
    let text;
    try {
      text = await res.body.text();
    } catch (err) {
      throw new CliError("CLI_NODE_UNREACHABLE", `the litefs node at ${this.baseUrl} stopped answering ${method} ${path}: ${(err as Error).message}`);
    }
    if (res.statusCode !== 200) {
      const { message, code } = errorBody(text);
      throw new CliError("CLI_NODE_REFUSED", `${method} ${path} failed (${res.statusCode}): ${message}`, { nodeCode: code });
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError("CLI_NODE_REFUSED", `${method} ${path}: the node answered 200 with a body that is not JSON: ${text.slice(0, 200)}`);
    }
  }
}

/** The local node's cluster API, from http.addr (loopback when it listens on every address). */
export function localUrl(config: Config): string {
  const addr = config.http.addr;
  const i = addr.lastIndexOf(":");
  const host = addr.slice(0, i).replace(/^\[|\]$/g, "");
  const port = addr.slice(i + 1);
  return `http://${host === "" || host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host}:${port}`;
}
