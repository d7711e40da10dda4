import type { NodeInfo } from "../node/node.js";
import type { ReplicaListing } from "../node/replicas.js";

/** `litefs status` exits 0, 1 or 2 for these. */
export type Health = "healthy" | "degraded" | "unreachable";

export const STATUS_EXIT_CODES: Record<Health, number> = { healthy: 0, degraded: 1, unreachable: 2 };

/** One node as `litefs status` saw it. */
export interface ProbedNode {
  /** Where its /info was asked; null when the primary listed it without a URL. */
  url: string | null;
  /** Its /info; null when it could not be read. */
  info: NodeInfo | null;
  /** Why its /info could not be read (the message names the URL). */
  error: string | null;
  /** How the primary lists it among its replicas; null for the primary, or a replica it does not list. */
  listing: ReplicaListing | null;
  /** The node `litefs status` was pointed at. */
  asked: boolean;
}

/** What `litefs status` gathered: the node asked, the primary it named, and every replica. */
export interface ClusterProbe {
  asked: ProbedNode;
  /** The node asked when it is the primary; null when no primary is known (or the node asked could not be read). */
  primary: ProbedNode | null;
  /** Replicas: the node asked when it is one, then every other replica the primary lists. */
  replicas: ProbedNode[];
}

export interface ClusterVerdict {
  health: Health;
  exitCode: number;
  /** One sentence each: which node, what is wrong, what to do. */
  problems: string[];
}

/**
 * The health verdict over what `litefs status` gathered. Unreachable (2): the node asked or the
 * primary it names cannot be read. Degraded (1): no primary is known; a replica the primary
 * lists (connected or disconnected in the last minute) cannot be read; a replica is disconnected
 * from the primary, or not listed by it; a replica lags more than `maxLagMs`; a replica is at
 * the primary's TXID of a database with another checksum; a second node says it is primary;
 * synchronous replication is degraded.
 */
export function assessCluster(probe: ClusterProbe, maxLagMs: number): ClusterVerdict {
  const { asked, primary, replicas } = probe;
  if (!asked.info) return verdict("unreachable", [`the node asked: ${asked.error}; check -url, or http.addr in -config`]);
  if (!primary) {
    return verdict("degraded", [
      `${asked.info.hostname} knows no primary: it is not connected to one (is a lease candidate running? see ${asked.info.hostname}'s logs)`,
    ]);
  }
  if (!primary.info) {
    // A replica without a primary names none: the URL then came from the static lease's config.
    const named = asked.info.primary ? `the primary ${asked.info.primary}, as ${asked.info.hostname} names it` : `the primary (lease.advertise-url of ${asked.info.hostname})`;
    return verdict("unreachable", [`${named}: ${primary.error}`]);
  }

  const problems: string[] = [];
  const primaryName = primary.info.hostname;
  if (!primary.info.isPrimary) {
    problems.push(`${primaryName} was named primary by ${asked.info.hostname} but is a ${primary.info.role} now (a failover in progress?): run litefs status again`);
  }
  for (const replica of replicas) {
    const name = nameOf(replica);
    const info = replica.info;
    const unreadable = replica.error ?? "it did not report its API URL to the primary (an older litefs?)";
    if (!replica.listing) {
      problems.push(`replica ${name} is not connected to the primary ${primaryName}: see ${name}'s logs for why its stream fails`);
    } else if (!replica.listing.connected) {
      const why = info ? "see its logs (it reconnects on its own when it can)" : unreadable;
      problems.push(`replica ${name} disconnected from the primary ${primaryName} at ${replica.listing.disconnectedAt}; ${why}`);
      if (!info) continue;
    }
    if (!info) {
      problems.push(`replica ${name}: ${unreadable}`);
      continue;
    }
    if (info.isPrimary) problems.push(`${name} says it is primary too, besides ${primaryName}: check the lease configuration (lease.candidate, lease.type)`);
    if (info.lagMs > maxLagMs) {
      problems.push(`replica ${name} is ${seconds(info.lagMs)} behind the primary (max-lag ${seconds(maxLagMs)}): see its logs for replication errors`);
    }
    for (const [db, ours] of Object.entries(primary.info.databases)) {
      const theirs = info.databases[db];
      if (!ours.exists || !theirs?.exists) continue;
      const [txid, checksum] = ours.position.split("/");
      const [replicaTxid, replicaChecksum] = theirs.position.split("/");
      if (txid === replicaTxid && checksum?.toLowerCase() !== replicaChecksum?.toLowerCase()) {
        problems.push(
          `replica ${name} has ${db} at TXID ${txid} with checksum ${replicaChecksum}, the primary ${checksum}: the copies differ; restart ${name} so it reconnects and is sent a snapshot`,
        );
      }
    }
  }
  const sync = primary.info.sync;
  if (sync?.degraded) {
    problems.push(
      `synchronous replication is degraded on ${primaryName}: ${sync.members.length} of ${sync.required} in-sync replicas (${sync.members.join(", ") || "none"}); commits go on without the missing ones until a replica catches up`,
    );
  }
  return verdict(problems.length ? "degraded" : "healthy", problems);
}

/** A node's hostname as it says, else as the primary lists it, else where it was asked. */
export function nameOf(node: ProbedNode): string {
  return node.info?.hostname ?? node.listing?.hostname ?? node.url ?? "(unknown)";
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function verdict(health: Health, problems: string[]): ClusterVerdict {
  return { health, exitCode: STATUS_EXIT_CODES[health], problems };
}
