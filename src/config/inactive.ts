import { DEFAULT_DEMOTE_DELAY_MS } from "./schema.js";
import type { Config } from "./types.js";

/** A key the user set that the node accepts but does not act on yet. */
export interface InactiveSetting {
  /** The key as written in litefs.yml, e.g. "http.snapshot-timeout". */
  key: string;
  /** One sentence saying what the node does instead. */
  message: string;
}

/**
 * The keys set to something other than their default that this node parses but ignores, in a
 * stable order, so that startup can log one warning per key. Keys left at their default are not
 * listed: they change nothing.
 */
export function inactiveSettings(config: Config): InactiveSetting[] {
  const found: InactiveSetting[] = [];
  const add = (key: string, message: string) => found.push({ key, message });

  // LiteFS writes a trace only with a path: tracing.enabled defaults to true and alone does nothing.
  if (config.tracing.enabled && config.tracing.path !== undefined) {
    add("tracing", "tracing is accepted but no trace file is written");
  }
  if (config.strictVerify) {
    add("strict-verify", "strict-verify is accepted but no extra checksum verification is done");
  }
  if (config.http.snapshotTimeoutMs > 0) {
    add("http.snapshot-timeout", "http.snapshot-timeout is accepted but snapshots are sent without a time limit");
  }
  if (config.lease.demoteDelayMs !== DEFAULT_DEMOTE_DELAY_MS) {
    add(
      "lease.demote-delay",
      "lease.demote-delay is accepted but a demoted node may try to become primary again without waiting",
    );
  }
  return found;
}
