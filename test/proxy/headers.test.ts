import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { describe, expect, test } from "vitest";
import {
  FORWARDED_BY_HEADER,
  downstreamResponseHeaders,
  upstreamRequestHeaders,
} from "../../src/proxy/headers.js";

/** upstreamRequestHeaders reads only `req.headers` (names lower-cased, as Node delivers them). */
const request = (headers: IncomingHttpHeaders) => ({ headers }) as IncomingMessage;

const HOP_BY_HOP = {
  connection: "keep-alive",
  "keep-alive": "timeout=5",
  "proxy-connection": "keep-alive",
  "proxy-authenticate": "Basic",
  "proxy-authorization": "Basic Zm9vOmJhcg==",
  te: "trailers",
  "transfer-encoding": "chunked",
  upgrade: "websocket",
  "http2-settings": "AAMAAABkAAQAAP__",
};

describe("upstreamRequestHeaders", () => {
  test("passes end-to-end headers through unchanged", () => {
    const out = upstreamRequestHeaders(
      request({ host: "app.example", accept: "text/html", cookie: "a=1; b=2", "content-type": "application/json", "content-length": "12", "x-custom": "v" }),
      "10.0.0.1",
    );
    expect(out).toMatchObject({ accept: "text/html", cookie: "a=1; b=2", "content-type": "application/json", "content-length": "12", "x-custom": "v" });
  });

  test("keeps the original Host", () => {
    const out = upstreamRequestHeaders(request({ host: "app.example:8080" }), "10.0.0.1");
    expect(out.host).toBe("app.example:8080");
  });

  test("drops hop-by-hop headers", () => {
    const out = upstreamRequestHeaders(request({ host: "h", ...HOP_BY_HOP, accept: "*/*" }), "10.0.0.1");
    for (const name of Object.keys(HOP_BY_HOP)) expect(out).not.toHaveProperty(name);
    expect(out.accept).toBe("*/*");
  });

  test("drops headers the Connection header names, whatever their case and spacing", () => {
    const out = upstreamRequestHeaders(
      request({ host: "h", connection: "close,  X-Secret ,x-other", "x-secret": "s", "x-other": "o", "x-kept": "k" }),
      "10.0.0.1",
    );
    expect(out).not.toHaveProperty("x-secret");
    expect(out).not.toHaveProperty("x-other");
    expect(out).not.toHaveProperty("connection");
    expect(out["x-kept"]).toBe("k");
  });

  test("drops Expect, Trailer and the forwarded-by marker", () => {
    const out = upstreamRequestHeaders(
      request({ host: "h", expect: "100-continue", trailer: "x-checksum", [FORWARDED_BY_HEADER]: "node-1", accept: "*/*" }),
      "10.0.0.1",
    );
    expect(FORWARDED_BY_HEADER).toBe("litefs-forwarded-by");
    expect(out).not.toHaveProperty("expect");
    expect(out).not.toHaveProperty("trailer");
    expect(out).not.toHaveProperty(FORWARDED_BY_HEADER);
    expect(out.accept).toBe("*/*");
  });

  test("keeps the litefs-consistency header for the upstream app", () => {
    const out = upstreamRequestHeaders(request({ host: "h", "litefs-consistency": "strong" }), "10.0.0.1");
    expect(out["litefs-consistency"]).toBe("strong");
  });

  test("sets X-Forwarded-For to the client's address", () => {
    const out = upstreamRequestHeaders(request({ host: "h" }), "10.0.0.1");
    expect(out["x-forwarded-for"]).toBe("10.0.0.1");
  });

  test("appends the client's address to an existing X-Forwarded-For", () => {
    const out = upstreamRequestHeaders(request({ host: "h", "x-forwarded-for": "203.0.113.7" }), "10.0.0.1");
    expect(out["x-forwarded-for"]).toBe("203.0.113.7, 10.0.0.1");
  });

  test("appends after a chain of earlier proxies", () => {
    const out = upstreamRequestHeaders(request({ host: "h", "x-forwarded-for": "203.0.113.7, 198.51.100.2" }), "::ffff:10.0.0.1");
    expect(out["x-forwarded-for"]).toBe("203.0.113.7, 198.51.100.2, ::ffff:10.0.0.1");
  });

  test("without a client address leaves X-Forwarded-For as the client sent it", () => {
    expect(upstreamRequestHeaders(request({ host: "h", "x-forwarded-for": "203.0.113.7" }), undefined)["x-forwarded-for"]).toBe("203.0.113.7");
    expect(upstreamRequestHeaders(request({ host: "h" }), undefined)).not.toHaveProperty("x-forwarded-for");
  });

  test("sets X-Forwarded-Proto to http and X-Forwarded-Host to the Host", () => {
    const out = upstreamRequestHeaders(request({ host: "app.example" }), "10.0.0.1");
    expect(out["x-forwarded-proto"]).toBe("http");
    expect(out["x-forwarded-host"]).toBe("app.example");
  });

  test("keeps X-Forwarded-Proto and -Host that a proxy in front already set", () => {
    const out = upstreamRequestHeaders(
      request({ host: "internal:8080", "x-forwarded-proto": "https", "x-forwarded-host": "public.example" }),
      "10.0.0.1",
    );
    expect(out["x-forwarded-proto"]).toBe("https");
    expect(out["x-forwarded-host"]).toBe("public.example");
    expect(out.host).toBe("internal:8080");
  });

  test("without a Host sets no X-Forwarded-Host", () => {
    const out = upstreamRequestHeaders(request({}), "10.0.0.1");
    expect(out).not.toHaveProperty("x-forwarded-host");
    expect(out["x-forwarded-proto"]).toBe("http");
  });

  test("does not modify the incoming request's headers", () => {
    const headers: IncomingHttpHeaders = { host: "h", connection: "close", "x-forwarded-for": "1.2.3.4" };
    const before = structuredClone(headers);
    upstreamRequestHeaders(request(headers), "10.0.0.1");
    expect(headers).toEqual(before);
  });
});

describe("downstreamResponseHeaders", () => {
  test("passes end-to-end headers through unchanged", () => {
    const out = downstreamResponseHeaders({ "content-type": "text/plain", "content-length": "5", etag: '"abc"', "cache-control": "no-store" });
    expect(out).toEqual({ "content-type": "text/plain", "content-length": "5", etag: '"abc"', "cache-control": "no-store" });
  });

  test("drops hop-by-hop headers", () => {
    const out = downstreamResponseHeaders({ ...HOP_BY_HOP, "content-type": "text/plain" });
    expect(out).toEqual({ "content-type": "text/plain" });
  });

  test("drops headers the Connection header names", () => {
    const out = downstreamResponseHeaders({ connection: "X-Internal, close", "x-internal": "1", "x-public": "2" });
    expect(out).toEqual({ "x-public": "2" });
  });

  test("keeps every Set-Cookie, as an array", () => {
    const out = downstreamResponseHeaders({ "set-cookie": ["a=1; Path=/", "b=2; HttpOnly"], "content-type": "text/plain" });
    expect(out["set-cookie"]).toEqual(["a=1; Path=/", "b=2; HttpOnly"]);
  });

  test("keeps a response's Trailer declaration (only requests lose it)", () => {
    expect(downstreamResponseHeaders({ trailer: "x-checksum" })).toEqual({ trailer: "x-checksum" });
  });

  test("skips headers whose value is undefined", () => {
    expect(downstreamResponseHeaders({ "content-type": undefined, "x-a": "1" })).toEqual({ "x-a": "1" });
  });
});
