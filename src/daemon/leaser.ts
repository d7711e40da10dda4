import * as path from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import { apiScheme } from "../http/tls.js";
import { ConsulLeaser, StaticLeaser, type Leaser } from "../lease/index.js";

/** Where other nodes reach this one: its cluster API, and its application proxy when it runs one. */
export interface NodeUrls {
  /** What the lease publishes (a static replica's is the primary's URL, as in LiteFS). */
  advertiseUrl: string;
  /** This node's own cluster API, which replicas tell the primary (`litefs status` asks it there). */
  apiUrl: string;
  proxyUrl?: string;
}

/**
 * A node without lease.advertise-url advertises http://<hostname>:<API port>, as LiteFS does
 * (https:// with http.tls).
 * Its proxy is reached at proxy.advertise-url, else on the advertise URL's host with the port of
 * proxy.addr, so most clusters need no new key.
 */
export function nodeUrls(config: Config, httpPort: number): NodeUrls {
  const advertiseUrl = config.lease.advertiseUrl ?? `${apiScheme(config)}://${config.lease.hostname}:${httpPort}`;
  const apiUrl = ownApiUrl(config, advertiseUrl, httpPort);
  const { proxy } = config;
  if (proxy.target === undefined || proxy.addr === undefined) return { advertiseUrl, apiUrl };
  if (proxy.advertiseUrl !== undefined) return { advertiseUrl, apiUrl, proxyUrl: proxy.advertiseUrl };
  const url = new URL(advertiseUrl);
  url.protocol = "http:"; // the proxy serves plain HTTP
  url.port = proxy.addr.slice(proxy.addr.lastIndexOf(":") + 1);
  url.pathname = "/";
  return { advertiseUrl, apiUrl, proxyUrl: url.origin };
}

/**
 * A Consul node's advertise URL is its own, and so is a static candidate's (it is the primary).
 * A static replica's lease.advertise-url is the primary's, so it reports
 * http(s)://<host of http.addr>:<API port>, with lease.hostname when http.addr names no host
 * (":20202", 0.0.0.0, ::).
 */
function ownApiUrl(config: Config, advertiseUrl: string, httpPort: number): string {
  const { lease } = config;
  if (lease.type === "consul" || lease.candidate) return advertiseUrl;
  const addr = config.http.addr;
  const host = addr.slice(0, addr.lastIndexOf(":")).replace(/^\[|\]$/g, "");
  const name = host === "" || host === "0.0.0.0" || host === "::" ? lease.hostname : host;
  return `${apiScheme(config)}://${name.includes(":") ? `[${name}]` : name}:${httpPort}`;
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
