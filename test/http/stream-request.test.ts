import { expect, test } from "vitest";
import { MAX_API_URL_LENGTH, parseStreamRequest } from "../../src/http/stream-request.js";

const BASE = { nodeId: "00000000000000a1", hostname: "replica-1", clusterId: "", positions: {} };

test("a replica may say where its own cluster API answers", () => {
  expect(parseStreamRequest(JSON.stringify({ ...BASE, apiUrl: "http://10.0.0.2:20202" })).apiUrl).toBe("http://10.0.0.2:20202");
  expect(parseStreamRequest(JSON.stringify({ ...BASE, apiUrl: "https://replica-1.internal/api" })).apiUrl).toBe("https://replica-1.internal/api");
  expect(parseStreamRequest(JSON.stringify(BASE)).apiUrl).toBeUndefined();
});

test("an apiUrl that is not an http(s) URL, or too long, is refused with a reason", () => {
  for (const apiUrl of ["replica-1:20202", "ftp://replica-1/", "", 42]) {
    expect(() => parseStreamRequest(JSON.stringify({ ...BASE, apiUrl }))).toThrow(/invalid stream request: apiUrl/);
  }
  const long = "http://r/" + "a".repeat(MAX_API_URL_LENGTH);
  expect(() => parseStreamRequest(JSON.stringify({ ...BASE, apiUrl: long }))).toThrow(/invalid stream request: apiUrl/);
});
