import { randomBytes } from "node:crypto";
import * as net from "node:net";

/**
 * HTTP clients that misbehave on purpose, over raw TCP (node:net), so a test controls exactly
 * which bytes reach the server and when the connection dies. Each helper writes a request line and
 * headers, some (or none) of a body, and then vanishes: the socket is reset (RST, via
 * socket.resetAndDestroy()) without finishing the body, as a crashing or killed client would.
 *
 * They never throw for what the server does (a reply, a close, a reset): that is reported in the
 * result, for the test to judge.
 */

export interface HostileOptions {
  host?: string;
  /** Sent as `Authorization: Bearer <token>` when set. */
  token?: string;
  /** Body bytes to send before vanishing (default 4 MiB; a cut JSON body is as long as it is). */
  bytes?: number;
  /** Size of each chunk written (default 64 KiB). */
  chunkSize?: number;
  /**
   * After sending, wait up to this long for the server's reply (or close) before resetting.
   * Default 0: reset at once, while the server may not even have read what is in flight (a busy
   * server then only sees ECONNRESET). A linger lets a slow server read past its body limit and
   * start answering first, so its error path, not just its abort path, runs before the reset.
   */
  lingerMs?: number;
  /**
   * Stop sending (and vanish) when the server has not taken a write for this long (default 1 s):
   * a server that stopped reading, answered or not, has nothing more to learn from us.
   */
  stallMs?: number;
  /** Gives up (and resets) after this long whatever happens (default 10 s). */
  timeoutMs?: number;
}

export interface HostileResult {
  /** Body bytes accepted by the socket before it died (or we killed it). */
  sent: number;
  /** The status of the server's reply, if one arrived before the socket died. */
  status: number | null;
  /** The first bytes the server sent back (up to 4 KiB). */
  response: string;
  /** The server ended or reset the connection before we did. */
  closedByServer: boolean;
  /** A socket error seen on the way (EPIPE, ECONNRESET...), if any. */
  error: string | null;
}

export type Variant = "garbage" | "headers-only" | "mid-chunk" | "short-content-length" | "cut-json";

export const VARIANTS: readonly Variant[] = ["garbage", "headers-only", "mid-chunk", "short-content-length", "cut-json"];

const MiB = 1 << 20;

let pool: Buffer | null = null;

/** `size` random bytes (slices of one random 4 MiB pool: cheap enough for hundreds of requests). */
function randomChunk(size: number): Buffer {
  pool ??= randomBytes(4 * MiB);
  if (size > pool.length) return randomBytes(size);
  const at = Math.floor(Math.random() * (pool.length - size + 1));
  return pool.subarray(at, at + size);
}

/** Chunked request, `bytes` of random chunks written as fast as the socket takes them, then RST. */
export function sendGarbageAndVanish(port: number, method: string, path: string, opts: HostileOptions = {}): Promise<HostileResult> {
  return hostileRequest(port, method, path, "garbage", opts);
}

/** Chunked request headers, not one byte of body, then RST. */
export function vanishAfterHeaders(port: number, method: string, path: string, opts: HostileOptions = {}): Promise<HostileResult> {
  return hostileRequest(port, method, path, "headers-only", opts);
}

/** Random chunks, the last one announced at full size but only half sent, then RST. */
export function vanishMidChunk(port: number, method: string, path: string, opts: HostileOptions = {}): Promise<HostileResult> {
  return hostileRequest(port, method, path, "mid-chunk", opts);
}

/** `Content-Length` twice what is sent (random bytes), then RST. */
export function shortContentLength(port: number, method: string, path: string, opts: HostileOptions = {}): Promise<HostileResult> {
  return hostileRequest(port, method, path, "short-content-length", opts);
}

/** A JSON body that looks like a /stream request (huge positions map), chunked, cut off mid-string, then RST. */
export function cutJson(port: number, method: string, path: string, opts: HostileOptions = {}): Promise<HostileResult> {
  return hostileRequest(port, method, path, "cut-json", opts);
}

export function hostileRequest(port: number, method: string, path: string, variant: Variant, opts: HostileOptions = {}): Promise<HostileResult> {
  const host = opts.host ?? "127.0.0.1";
  const total = opts.bytes ?? 4 * MiB;
  const chunkSize = opts.chunkSize ?? 64 * 1024;
  const result: HostileResult = { sent: 0, status: null, response: "", closedByServer: false, error: null };

  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let done = false;
    let replied: () => void = () => undefined;
    const repliedOrClosed = new Promise<void>((r) => (replied = r));
    const timer = setTimeout(() => finish(), opts.timeoutMs ?? 10_000);

    socket.on("data", (d: Buffer) => {
      if (result.response.length < 4096) result.response += d.toString("latin1").slice(0, 4096 - result.response.length);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(result.response);
      if (m && result.status === null) result.status = Number(m[1]);
      if (result.status !== null) replied();
    });
    socket.on("end", () => {
      result.closedByServer = true;
      replied();
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      result.error ??= err.code ?? err.message;
      if (!done) result.closedByServer = true;
      replied();
    });
    socket.on("close", () => {
      if (!done) result.closedByServer = true;
      replied();
      finish();
    });

    /** Vanish: RST where the platform allows it, otherwise a plain destroy. */
    function finish(): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!socket.destroyed) {
        try {
          if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
          else socket.destroy();
        } catch {
          socket.destroy();
        }
      }
      resolve(result);
    }

    /**
     * Writes and waits for the socket to take it; false once the socket is gone, or when the
     * server has not taken more bytes for `stallMs`: then it is time to vanish.
     */
    async function write(data: Buffer | string, countsAsBody = true): Promise<boolean> {
      if (done || socket.destroyed || !socket.writable) return false;
      const ok = socket.write(data);
      if (countsAsBody) result.sent += Buffer.byteLength(data);
      if (ok) return true;
      const drained = await new Promise<boolean>((resolve) => {
        const end = (value: boolean) => {
          clearTimeout(stalled);
          socket.off("drain", onDrain);
          socket.off("close", onClose);
          resolve(value);
        };
        const onDrain = () => end(true);
        const onClose = () => end(false);
        const stalled = setTimeout(() => end(false), opts.stallMs ?? 1_000);
        socket.on("drain", onDrain);
        socket.on("close", onClose);
      });
      return drained && !done && !socket.destroyed;
    }

    const chunked = variant !== "short-content-length";
    const head = [
      `${method} ${path} HTTP/1.1`,
      `Host: ${host}:${port}`,
      "User-Agent: hostile-client",
      `Content-Type: ${variant === "cut-json" ? "application/json" : "application/octet-stream"}`,
      chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${total * 2}`,
      ...(opts.token ? [`Authorization: Bearer ${opts.token}`] : []),
      "",
      "",
    ].join("\r\n");

    async function body(): Promise<void> {
      if (!(await write(head, false))) return;
      switch (variant) {
        case "headers-only":
          return;
        case "short-content-length":
          for (let n = 0; n < total; n += chunkSize) if (!(await write(randomChunk(Math.min(chunkSize, total - n))))) return;
          return;
        case "garbage":
        case "mid-chunk":
          for (let n = 0; n < total; n += chunkSize) {
            const size = Math.min(chunkSize, total - n);
            const last = n + size >= total;
            const data = randomChunk(size);
            if (variant === "mid-chunk" && last) {
              // Announce the full chunk, send half of it: the server is left mid-chunk.
              if (!(await write(`${size.toString(16)}\r\n`, false))) return;
              await write(data.subarray(0, size >> 1));
              return;
            }
            if (!(await write(`${size.toString(16)}\r\n`, false))) return;
            if (!(await write(data))) return;
            if (!(await write("\r\n", false))) return;
          }
          return;
        case "cut-json": {
          // Valid-looking JSON that never ends: a /stream request whose positions map goes on.
          let json = `{"nodeId":"00000000000000ff","hostname":"hostile","clusterId":"","candidate":true,"positions":{`;
          for (let i = 0; json.length < total; i++) json += `"db${i}.db":"${i.toString(16).padStart(16, "0")}/0000000000000000",`;
          json += `"cut.db":"00000000`; // ...and the string, the map and the object are never closed.
          const buf = Buffer.from(json);
          for (let n = 0; n < buf.length; n += chunkSize) {
            const part = buf.subarray(n, n + chunkSize);
            if (!(await write(`${part.length.toString(16)}\r\n`, false))) return;
            if (!(await write(part))) return;
            if (!(await write("\r\n", false))) return;
          }
          return;
        }
      }
    }

    socket.once("connect", () => {
      body()
        .then(async () => {
          if (opts.lingerMs) await Promise.race([repliedOrClosed, new Promise((r) => setTimeout(r, opts.lingerMs))]);
        })
        .catch((err: Error) => (result.error ??= err.message))
        .finally(finish);
    });
  });
}

export interface RawResult {
  /** Status of the reply's first line, or null when the server closed without one. */
  status: number | null;
  /** The server neither answered nor closed within the timeout. */
  hung: boolean;
  head: string;
}

/**
 * Sends exactly these bytes on a fresh connection and reads up to the end of the reply's header
 * (a streaming answer such as /events is not waited for), then closes. For fuzzing, where undici
 * would refuse to send half of what a hostile client can.
 */
export function rawRequest(port: number, bytes: Buffer | string, timeoutMs = 5_000, host = "127.0.0.1"): Promise<RawResult> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    let head = "";
    let done = false;
    const finish = (hung: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ status: m ? Number(m[1]) : null, hung, head: head.slice(0, 2000) });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    socket.on("error", () => finish(false));
    socket.on("close", () => finish(false));
    socket.on("data", (d: Buffer) => {
      head += d.toString("latin1");
      if (head.includes("\r\n\r\n")) finish(false);
    });
    socket.write(bytes);
  });
}
