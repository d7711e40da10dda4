import type { Position } from "../ltx/index.js";
import type { ChangeSource } from "../store/events.js";

/** A node's role: primary (holds the lease, writes), replica (streams from the primary), or stopping. */
export type NodeRole = "primary" | "replica" | "stopping";

/**
 * What happens on a node, in the order it happened (DESIGN.md section 8). `/events`, and later
 * metrics and the proxy, are fed from here; each event is self-contained.
 */
export type NodeEvent =
  /** This node's role changed. `reason` says why it stopped being primary, when it did. */
  | { type: "role"; role: NodeRole; previous: NodeRole; reason?: string }
  /** Who this node knows as the primary changed (itself when it is the primary; null: unknown). */
  | { type: "primary"; hostname: string | null; advertiseUrl: string | null; isPrimary: boolean }
  /** A transaction became part of a database: committed here, or applied from the primary. Commit 0: dropped. */
  | { type: "commit"; db: string; source: ChangeSource; position: Position; pageSize: number; commit: number; timestamp: number }
  /** Synchronous replication degraded (fewer in-sync replicas than required) or was restored. */
  | { type: "sync"; degraded: boolean; members: string[]; required: number }
  | { type: "created"; db: string }
  | { type: "dropped"; db: string; source: ChangeSource; position: Position };

/**
 * An ordered, synchronous event stream: every subscriber sees every event in emit order. A
 * subscriber that throws is logged by the caller's `onError` and stays subscribed; one that must
 * not slow the node (an HTTP client) buffers or drops on its own side.
 */
export class NodeEvents {
  private readonly subscribers = new Set<(ev: NodeEvent) => void>();

  constructor(private readonly onError: (err: unknown, ev: NodeEvent) => void) {}

  subscribe(fn: (ev: NodeEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  emit(ev: NodeEvent): void {
    for (const fn of this.subscribers) {
      try {
        fn(ev);
      } catch (err) {
        this.onError(err, ev);
      }
    }
  }
}
