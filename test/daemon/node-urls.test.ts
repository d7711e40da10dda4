import { describe, expect, test } from "vitest";
import { nodeUrls } from "../../src/daemon/leaser.js";
import { MINIMAL, parse } from "../config/support.js";

const PROXY = "proxy:\n  addr: ':8080'\n  target: localhost:8081\n  db: app.db\n";

test("without a proxy a node publishes only its API URL, LiteFS's default one when none is set", () => {
  expect(nodeUrls(parse(MINIMAL + "  hostname: db-1\n"), 20202)).toEqual({ advertiseUrl: "http://db-1:20202", apiUrl: "http://db-1:20202" });
});

test("with http.tls the default URLs are https; the proxy's stays http (it serves plain HTTP)", () => {
  const TLS = "http:\n  tls:\n    cert: c.pem\n    key: k.pem\n";
  expect(nodeUrls(parse(MINIMAL + "  hostname: db-1\n" + TLS + PROXY), 20202)).toEqual({
    advertiseUrl: "https://db-1:20202",
    apiUrl: "https://db-1:20202",
    proxyUrl: "http://db-1:8080",
  });
  const replica = parse("lease:\n  type: static\n  candidate: false\n  hostname: replica-1\n  advertise-url: https://primary:20202\n" + TLS);
  expect(nodeUrls(replica, 20202).apiUrl).toBe("https://replica-1:20202");
});

test("the proxy URL defaults to the advertise URL's host with the port of proxy.addr", () => {
  const config = parse("lease:\n  type: static\n  advertise-url: https://db-1.internal:9000/api\n" + PROXY);
  expect(nodeUrls(config, 20202)).toEqual({
    advertiseUrl: "https://db-1.internal:9000/api",
    apiUrl: "https://db-1.internal:9000/api",
    proxyUrl: "http://db-1.internal:8080",
  });
});

test("proxy.advertise-url wins", () => {
  const config = parse(MINIMAL + PROXY + "  advertise-url: http://public.example:80\n");
  expect(nodeUrls(config, 20202).proxyUrl).toBe("http://public.example:80");
});

describe("the API URL a replica tells the primary (litefs status reaches it there)", () => {
  const REPLICA = "lease:\n  type: static\n  candidate: false\n  hostname: replica-1\n  advertise-url: http://primary:20202\n";

  test("a static candidate's and a Consul node's advertise URL is their own", () => {
    expect(nodeUrls(parse("lease:\n  type: static\n  advertise-url: http://db-1:7000\n"), 20202).apiUrl).toBe("http://db-1:7000");
    const consul = parse("lease:\n  type: consul\n  hostname: db-2\n  consul:\n    url: http://consul:8500\n    key: litefs/app\n");
    expect(nodeUrls(consul, 20202).apiUrl).toBe("http://db-2:20202");
  });

  test("a static replica's advertise URL is the primary's: it reports lease.hostname when http.addr names no host", () => {
    const urls = nodeUrls(parse(REPLICA), 20202);
    expect(urls.advertiseUrl).toBe("http://primary:20202");
    expect(urls.apiUrl).toBe("http://replica-1:20202");
    expect(nodeUrls(parse(REPLICA + "http:\n  addr: '0.0.0.0:20202'\n"), 20202).apiUrl).toBe("http://replica-1:20202");
    expect(nodeUrls(parse(REPLICA + "http:\n  addr: '[::]:20202'\n"), 20202).apiUrl).toBe("http://replica-1:20202");
  });

  test("a static replica whose http.addr names a host reports that host, with the port it bound", () => {
    expect(nodeUrls(parse(REPLICA + "http:\n  addr: '127.0.0.1:0'\n"), 41234).apiUrl).toBe("http://127.0.0.1:41234");
    expect(nodeUrls(parse(REPLICA + "http:\n  addr: '[fd00::5]:20202'\n"), 20202).apiUrl).toBe("http://[fd00::5]:20202");
  });
});
