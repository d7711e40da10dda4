import { expect, test } from "vitest";
import { nodeUrls } from "../../src/daemon/leaser.js";
import { MINIMAL, parse } from "../config/support.js";

const PROXY = "proxy:\n  addr: ':8080'\n  target: localhost:8081\n  db: app.db\n";

test("without a proxy a node publishes only its API URL, LiteFS's default one when none is set", () => {
  expect(nodeUrls(parse(MINIMAL + "  hostname: db-1\n"), 20202)).toEqual({ advertiseUrl: "http://db-1:20202" });
});

test("the proxy URL defaults to the advertise URL's host with the port of proxy.addr", () => {
  const config = parse("lease:\n  type: static\n  advertise-url: https://db-1.internal:9000/api\n" + PROXY);
  expect(nodeUrls(config, 20202)).toEqual({ advertiseUrl: "https://db-1.internal:9000/api", proxyUrl: "http://db-1.internal:8080" });
});

test("proxy.advertise-url wins", () => {
  const config = parse(MINIMAL + PROXY + "  advertise-url: http://public.example:80\n");
  expect(nodeUrls(config, 20202).proxyUrl).toBe("http://public.example:80");
});
