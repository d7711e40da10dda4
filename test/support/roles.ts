import { request } from "undici";
import type { LitefsNode } from "./node-process.js";
import { nodeAddress, waitFor } from "./node-process.js";

export interface NodeInfo {
  hostname: string;
  nodeId: string;
  clusterId: string | null;
  role: "primary" | "replica" | "stopping";
  isPrimary: boolean;
  primary: string | null;
  primaryUrl: string | null;
  databases: Record<string, { position: string; exists: boolean }>;
  /** Connected replicas, then those disconnected in the last minute (`connected: false`). */
  replicas: Array<{ hostname: string; nodeId: string; candidate: boolean; url: string | null; connected: boolean; disconnectedAt?: string }>;
  /** Synchronous replication, when replication.sync-replicas is set. */
  sync?: { required: number; members: string[]; degraded: boolean; waiting: number; degradations: number };
}

export function apiUrl(node: LitefsNode): string {
  return `http://${nodeAddress(node.config)}:${node.config.httpPort}`;
}

export async function info(node: LitefsNode): Promise<NodeInfo> {
  const res = await request(`${apiUrl(node)}/info`, { headers: node.config.token ? { authorization: `Bearer ${node.config.token}` } : {} });
  if (res.statusCode !== 200) throw new Error(`/info on ${node.config.hostname}: ${res.statusCode} ${await res.body.text()}`);
  return (await res.body.json()) as NodeInfo;
}

export async function isPrimary(node: LitefsNode): Promise<boolean> {
  return node.proc ? (await info(node).catch(() => null))?.isPrimary === true : false;
}

export async function waitForPrimary(nodes: LitefsNode[], timeoutMs = 30_000): Promise<LitefsNode> {
  let found: LitefsNode | null = null;
  await waitFor(
    async () => {
      for (const n of nodes) if (await isPrimary(n)) found = n;
      return found !== null;
    },
    timeoutMs,
    "a primary",
  );
  return found!;
}

export async function post(node: LitefsNode, path: string): Promise<{ status: number; body: string }> {
  const res = await request(`${apiUrl(node)}${path}`, { method: "POST", headers: node.config.token ? { authorization: `Bearer ${node.config.token}` } : {} });
  return { status: res.statusCode, body: await res.body.text() };
}
