import type { ServerResponse } from "node:http";
import type { Logger } from "pino";
import { formatChecksum, formatTxid } from "../ltx/index.js";
import type { Node } from "../node/node.js";
import type { NodeEvent } from "../node/events.js";
import { limitSendBuffer } from "../os/send-buffer.js";

/** A subscriber that has this much unread output is too slow: it is disconnected, never allowed to slow the node. */
const MAX_BUFFERED_BYTES = 1 << 20;
/**
 * The kernel's share of a subscriber's unread output (SO_SNDBUF; it doubles the figure). Events
 * are small; without a cap Linux lets 4 MiB pile up in the kernel before this process sees a
 * single unsent byte, so a stalled subscriber would cost five times the limit above.
 */
const KERNEL_SEND_BUFFER_BYTES = 64 * 1024;

/** One line of LiteFS's event stream (its docs: "Reading the LiteFS event stream"). */
type LitefsEvent =
  | { type: "init" | "primaryChange"; data: { isPrimary: boolean; hostname?: string } }
  | { type: "tx"; db: string; data: { txID: string; postApplyChecksum: string; pageSize: number; commit: number; timestamp: string } }
  /** litefs-ts extension: synchronous replication degraded or restored (on the primary). */
  | { type: "syncChange"; data: { degraded: boolean; inSync: string[]; required: number } };

/**
 * GET /events: newline-delimited JSON as LiteFS sends it: `init` first, then `tx` for every
 * local commit, applied file and drop, and `primaryChange` whenever this node's role or the
 * primary it knows changes. Fed by the Node's event stream; ends when the client goes away.
 */
export function serveEvents(node: Node, res: ServerResponse, log: Logger): Promise<void> {
  res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
  if (res.socket) limitSendBuffer(res.socket, KERNEL_SEND_BUFFER_BYTES);
  const primaryData = (): { isPrimary: boolean; hostname?: string } => {
    const hostname = node.isPrimary ? node.hostname : node.primaryHostname();
    return hostname === null ? { isPrimary: node.isPrimary } : { isPrimary: node.isPrimary, hostname };
  };
  let last = JSON.stringify(primaryData());
  const send = (ev: LitefsEvent): void => {
    // Destroyed: 'close' (which unsubscribes) comes on a later tick, after more commits maybe.
    if (res.destroyed) return;
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      log.warn({ buffered: res.writableLength }, "event stream subscriber is not reading: disconnected");
      res.destroy();
      return;
    }
    res.write(`${JSON.stringify(ev)}\n`);
  };
  send({ type: "init", data: primaryData() });
  return new Promise<void>((resolve) => {
    const unsubscribe = node.events.subscribe((ev: NodeEvent) => {
      switch (ev.type) {
        case "commit":
          send({
            type: "tx",
            db: ev.db,
            data: {
              txID: formatTxid(ev.position.txid),
              postApplyChecksum: formatChecksum(ev.position.postApplyChecksum),
              pageSize: ev.pageSize,
              commit: ev.commit,
              timestamp: new Date(ev.timestamp).toISOString(),
            },
          });
          return;
        case "role":
        case "primary": {
          const data = primaryData();
          const text = JSON.stringify(data);
          if (text === last) return;
          last = text;
          send({ type: "primaryChange", data });
          return;
        }
        case "sync":
          send({ type: "syncChange", data: { degraded: ev.degraded, inSync: ev.members, required: ev.required } });
          return;
        default:
          return;
      }
    });
    res.once("close", () => {
      unsubscribe();
      resolve();
    });
  });
}
