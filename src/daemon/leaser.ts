import * as path from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import { ConsulLeaser, StaticLeaser, type Leaser } from "../lease/index.js";

/** Where other nodes reach this one: its cluster API, and its application proxy when it runs one. */
export interface NodeUrls {
  advertiseUrl: string;
  proxyUrl?: string;
}

/**
 * A node without lease.advertise-url advertises http://<hostname>:<API port>, as LiteFS does.
 * Its proxy is reached at proxy.advertise-url, else on the advertise URL's host with the port of
 * proxy.addr, so most clusters need no new key.
 */
export function nodeUrls(config: Config, httpPort: number): NodeUrls {
  const advertiseUrl = config.lease.advertiseUrl ?? `http://${config.lease.hostname}:${httpPort}`;
  const { proxy } = config;
  if (proxy.target === undefined || proxy.addr === undefined) return { advertiseUrl };
  if (proxy.advertiseUrl !== undefined) return { advertiseUrl, proxyUrl: proxy.advertiseUrl };
  const url = new URL(advertiseUrl);
  url.protocol = "http:"; // the proxy serves plain HTTP
  url.port = proxy.addr.slice(proxy.addr.lastIndexOf(":") + 1);
  url.pathname = "/";
  return { advertiseUrl, proxyUrl: url.origin };
}

/** The Leaser for lease.type. */
export function createLeaser(config: Config, dataDir: string, urls: NodeUrls, log: Logger): Leaser {
  const lease = config.lease;
  if (lease.type === "static") {
    return new StaticLeaser({
      candidate: lease.candidate,
      hostname: lease.hostname,
      advertiseUrl: urls.advertiseUrl,
      clusterIdPath: path.join(dataDir, "clusterid"),
    });
  }
  return new ConsulLeaser({
    url: lease.consul.url!,
    key: lease.consul.key!,
    hostname: lease.hostname,
    advertiseUrl: urls.advertiseUrl,
    proxyUrl: urls.proxyUrl,
    ttlMs: lease.consul.ttlMs,
    lockDelayMs: lease.consul.lockDelayMs,
    candidate: lease.candidate,
    logger: log,
  });
}
