import { InvalidArgumentError, type Command } from "commander";
import { loadConfig, parseDuration } from "../config/index.js";
import type { NodeInfo } from "../node/node.js";
import type { ReplicaListing } from "../node/replicas.js";
import { NodeApi } from "./api-client.js";
import { assessCluster, nameOf, seconds, type ClusterProbe, type ClusterVerdict, type ProbedNode } from "./cluster-health.js";

/** Each node gets this long to answer; they are asked in parallel. */
const PROBE_TIMEOUT_MS = 5_000;

interface StatusFlags {
  config?: string;
  url?: string;
  json?: boolean;
  maxLag?: number;
}

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description(
      "report every node reachable from this one (the node asked, its primary, the primary's replicas): role, API URL, positions, lag, lease. " +
        "Exit 0 healthy, 1 degraded, 2 the node asked or the primary unreachable",
    )
    .option("--config <path>", "litefs.yml of the node to ask (its http.addr, http.token, http.tls and proxy.max-lag)")
    .option("--url <url>", "API URL of the node to ask (default: from http.addr)")
    .option("--json", "print one JSON document: every node's /info, the verdict and its problems")
    .option("--max-lag <duration>", "a replica further behind is degraded (default: proxy.max-lag, 10s)", parseMaxLag)
    .action(async (flags: StatusFlags) => {
      const { config } = await loadConfig({ configPath: flags.config });
      const maxLagMs = flags.maxLag ?? config.proxy.maxLagMs;
      // A disconnected replica names no primary; a static replica's config does (only when it is the node asked).
      const staticPrimaryUrl = !flags.url && config.lease.type === "static" && !config.lease.candidate ? config.lease.advertiseUrl : undefined;
      const probe = await probeCluster(await NodeApi.forConfig(config, flags.url), staticPrimaryUrl);
      const verdict = assessCluster(probe, maxLagMs);
      if (flags.json) {
        process.stdout.write(JSON.stringify(statusDocument(probe, verdict, maxLagMs), null, 2) + "\n");
      } else {
        process.stdout.write(statusTable(probe, verdict));
        for (const problem of verdict.problems) process.stderr.write(`litefs: ${problem}\n`);
      }
      process.exitCode = verdict.exitCode;
    });
}

function parseMaxLag(text: string): number {
  try {
    return parseDuration(text);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** The node asked, the primary it names, and every replica that primary lists, each asked once (with the asked node's credentials). */
async function probeCluster(api: NodeApi, staticPrimaryUrl: string | undefined): Promise<ClusterProbe> {
  const asked = await probe(api, null, true);
  const askedInfo = asked.info;
  if (!askedInfo) return { asked, primary: null, replicas: [] };
  const primaryUrl = askedInfo.primaryUrl ?? staticPrimaryUrl;
  if (!askedInfo.isPrimary && !primaryUrl) return { asked, primary: null, replicas: [asked] };

  const primary = askedInfo.isPrimary ? asked : await probe(api.at(primaryUrl!), null, false);
  const primaryInfo = primary.info;
  if (!primaryInfo) return { asked, primary, replicas: [asked] };

  const listings = primaryInfo.replicas ?? [];
  const others = listings.filter((l) => l.nodeId !== askedInfo.nodeId && l.nodeId !== primaryInfo.nodeId);
  const probed = await Promise.all(
    others.map((l) => (l.url ? probe(api.at(l.url), l, false) : Promise.resolve<ProbedNode>({ url: null, info: null, error: null, listing: l, asked: false }))),
  );
  if (asked === primary) return { asked, primary, replicas: probed };
  const askedAsReplica = { ...asked, listing: listings.find((l) => l.nodeId === askedInfo.nodeId) ?? null };
  return { asked: askedAsReplica, primary, replicas: [askedAsReplica, ...probed] };
}

async function probe(api: NodeApi, listing: ReplicaListing | null, asked: boolean): Promise<ProbedNode> {
  const url = api.baseUrl;
  try {
    const info = await api.call<NodeInfo>("GET", "/info", { timeoutMs: PROBE_TIMEOUT_MS });
    if (typeof info?.hostname !== "string" || typeof info.databases !== "object" || info.databases === null) {
      return { url, info: null, error: `${url}/info is not a litefs node's info`, listing, asked };
    }
    return { url, info, error: null, listing, asked };
  } catch (err) {
    return { url, info: null, error: (err as Error).message, listing, asked };
  }
}

/** The primary first, then the replicas (the node asked first among them). */
function nodesOf(probe: ClusterProbe): ProbedNode[] {
  const nodes = probe.primary ? [probe.primary, ...probe.replicas] : [...probe.replicas];
  return nodes.includes(probe.asked) ? nodes : [probe.asked, ...nodes];
}

function leaseOf(probe: ClusterProbe): { type: string | null; holder: string | null } {
  const info = probe.primary?.info ?? probe.asked.info;
  return {
    type: info?.leaseType ?? null,
    holder: probe.primary?.info?.hostname ?? probe.asked.info?.primary ?? (probe.asked.info?.isPrimary ? probe.asked.info.hostname : null),
  };
}

/** `-json`: one document, every node with its full /info. */
function statusDocument(probe: ClusterProbe, verdict: ClusterVerdict, maxLagMs: number) {
  return {
    health: verdict.health,
    exitCode: verdict.exitCode,
    problems: verdict.problems,
    maxLagMs,
    lease: leaseOf(probe),
    nodes: nodesOf(probe).map((node) => ({
      hostname: node.info?.hostname ?? node.listing?.hostname ?? null,
      role: node.info?.role ?? null,
      url: node.url,
      asked: node.asked,
      // How the primary lists it: null for the primary itself, or a replica it does not list.
      connected: node.listing?.connected ?? null,
      ...(node.listing?.disconnectedAt && { disconnectedAt: node.listing.disconnectedAt }),
      error: node.error,
      info: node.info,
    })),
  };
}

/** The human form: lease and verdict, then one row per node with its databases under it. */
function statusTable(probe: ClusterProbe, verdict: ClusterVerdict): string {
  const lease = leaseOf(probe);
  const rows = nodesOf(probe).map((node) => [
    nameOf(node) + (node.asked ? " *" : ""),
    node.info?.role ?? (node.listing ? "replica" : "?"),
    node.info ? seconds(node.info.lagMs) : "-",
    node.url ?? "(no API URL)",
    remarkOf(node),
  ]);
  const header = ["NODE", "ROLE", "LAG", "API URL", ""];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  const out = [
    `lease:    ${lease.type ?? "unknown"}, ${lease.holder ? `held by ${lease.holder}` : "no primary known"}`,
    `health:   ${verdict.health}${verdict.problems.length ? ` (${verdict.problems.length} problem${verdict.problems.length > 1 ? "s" : ""})` : ""}`,
    ...syncLine(probe),
    "",
    line(header),
  ];
  const dbWidth = Math.max(widths[0]! - 2, ...nodesOf(probe).flatMap((n) => Object.keys(n.info?.databases ?? {}).map((db) => db.length)));
  nodesOf(probe).forEach((node, i) => {
    out.push(line(rows[i]!));
    const backup = (node.info as (NodeInfo & { backup?: Record<string, BackupLine> }) | null)?.backup ?? {};
    for (const [db, d] of Object.entries(node.info?.databases ?? {})) {
      out.push(`  ${db.padEnd(dbWidth)}  ${d.position}${d.exists ? "" : "  (dropped)"}${backupRemark(backup[db])}`);
    }
  });
  out.push("(* the node asked)");
  return out.join("\n") + "\n";
}

/** Synchronous replication as the primary reports it; nothing when asynchronous. */
function syncLine(probe: ClusterProbe): string[] {
  const sync = probe.primary?.info?.sync;
  if (!sync) return [];
  const state = sync.degraded ? "DEGRADED" : "in sync";
  return [`sync:     ${state}: ${sync.members.length}/${sync.required} in-sync replicas (${sync.members.join(", ") || "none"}), ${sync.waiting} commits waiting${sync.strict ? ", strict" : ""}`];
}

/** What the primary's /info says of a database's backup (src/backup/ Shipper.status). */
interface BackupLine {
  position: string | null;
  lagMs: number;
  error: string | null;
}

function backupRemark(b: BackupLine | undefined): string {
  if (!b) return "";
  const at = b.position ? `backup ${b.position}` : "backup: not yet";
  return `  ${at}, lag ${seconds(b.lagMs)}${b.error ? ` (failing: ${b.error})` : ""}`;
}

function remarkOf(node: ProbedNode): string {
  if (!node.info) return "unreachable";
  if (node.listing && !node.listing.connected) return `disconnected at ${node.listing.disconnectedAt}`;
  return "";
}
