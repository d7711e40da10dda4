import * as path from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import { ConsulLeaser, StaticLeaser, type Leaser } from "../lease/index.js";

/**
 * The Leaser for lease.type. A Consul node without lease.advertise-url advertises
 * http://<hostname>:<API port>, as LiteFS does.
 */
export function createLeaser(config: Config, dataDir: string, httpPort: number, log: Logger): Leaser {
  const lease = config.lease;
  if (lease.type === "static") {
    return new StaticLeaser({
      candidate: lease.candidate,
      hostname: lease.hostname,
      advertiseUrl: lease.advertiseUrl ?? `http://${lease.hostname}:${httpPort}`,
      clusterIdPath: path.join(dataDir, "clusterid"),
    });
  }
  return new ConsulLeaser({
    url: lease.consul.url!,
    key: lease.consul.key!,
    hostname: lease.hostname,
    advertiseUrl: lease.advertiseUrl ?? `http://${lease.hostname}:${httpPort}`,
    ttlMs: lease.consul.ttlMs,
    lockDelayMs: lease.consul.lockDelayMs,
    candidate: lease.candidate,
    logger: log,
  });
}
