import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { SingleBar } from "cli-progress";
import { request, type Dispatcher } from "undici";
import { authHeaders } from "../http/auth.js";
import { errorText } from "../http/client.js";
import type { NodeApi } from "./api-client.js";
import { CliError } from "./errors.js";

/**
 * Counts the bytes passing through and shows a progress bar on a terminal (stderr); silent in
 * pipes and logs, where a bar would only be noise.
 */
export function progress(label: string, total: number | null): Transform {
  const bar =
    process.stderr.isTTY && total
      ? new SingleBar({ format: `${label} [{bar}] {percentage}% | {value}/{total} MB | {eta}s left`, hideCursor: true, stream: process.stderr }, undefined)
      : null;
  let done = 0;
  bar?.start(mb(total ?? 0), 0);
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      bar?.update(mb(done));
      cb(null, chunk);
    },
    flush(cb) {
      bar?.stop();
      cb();
    },
    destroy(err, cb) {
      bar?.stop();
      cb(err);
    },
  });
}

function mb(bytes: number): number {
  return Math.round((bytes / (1024 * 1024)) * 10) / 10;
}

/**
 * Uploads `file` to the node's API with node:http (undici's stream bodies cost about 50 MB more
 * RSS over a 1 GB upload here) and returns the JSON answer; a non-2xx answer becomes a CliError
 * naming the node.
 */
export async function uploadFile(api: NodeApi, path: string, file: string, size: number, label: string): Promise<unknown> {
  const url = new URL(path, api.baseUrl);
  const send = url.protocol === "https:" ? https.request : http.request;
  const req = send(url, {
    ...api.tls,
    method: "POST",
    headers: { ...authHeaders(api.token), "content-type": "application/vnd.sqlite3", "content-length": String(size) },
  });
  const answer = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.once("response", resolve);
    req.once("error", reject);
  });
  try {
    // The node may answer (a refusal) before it has read the whole body: the answer counts then.
    await Promise.race([pipeline(fs.createReadStream(file), progress(label, size), req), answer]);
    const res = await answer;
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    if ((res.statusCode ?? 0) >= 300) {
      throw new CliError("CLI_NODE_REFUSED", `${api.baseUrl}: POST ${path.split("?")[0]} failed (${res.statusCode}): ${errorText(text)}`);
    }
    return JSON.parse(text) as unknown;
  } catch (err) {
    req.destroy();
    if (err instanceof CliError) throw err;
    throw new CliError("CLI_NODE_UNREACHABLE", `upload to the litefs node at ${api.baseUrl} failed: ${(err as Error).message} (is litefs mount running? is -url right?)`);
  }
}

/** A request to the node's API whose body is streamed; a non-2xx answer becomes a CliError naming the node. */
export async function streamRequest(api: NodeApi, method: "GET" | "POST", path: string): Promise<Dispatcher.ResponseData> {
  let res;
  try {
    res = await request(new URL(path, api.baseUrl), {
      method,
      headers: authHeaders(api.token),
      dispatcher: api.dispatcher,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  } catch (err) {
    throw new CliError("CLI_NODE_UNREACHABLE", `cannot reach the litefs node at ${api.baseUrl}: ${(err as Error).message} (is litefs mount running? is -url right?)`);
  }
  if (res.statusCode >= 300) {
    const text = await res.body.text();
    throw new CliError("CLI_NODE_REFUSED", `${api.baseUrl}: ${method} ${path.split("?")[0]} failed (${res.statusCode}): ${errorText(text)}`);
  }
  return res;
}
