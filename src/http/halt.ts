import type { IncomingMessage, ServerResponse } from "node:http";
import { LtxError } from "../ltx/index.js";
import type { Node } from "../node/node.js";
import { HttpError } from "./errors.js";
import { sendJson } from "./respond.js";
import type { Route } from "./server.js";

/**
 * The HALT lock over the cluster API (src/node/halt.ts; LiteFS's migration flow):
 *
 *   POST   /halt?name=DB                          for `litefs run` on this node: a replica takes the
 *                                                 lock from its primary and catches up;
 *                                                 {id, position, ttlMs}, or {primary: true} on the primary
 *   POST   /halt?name=DB&node=ID&hostname=HOST    on the primary, from a replica: grants the lock
 *   POST   /halt?name=DB&id=ID                    renews it (on the replica: here and on its primary)
 *   DELETE /halt?name=DB&id=ID                    releases it
 *   POST   /tx?name=DB&id=ID                      on the primary: one LTX file the holder committed
 */
export function haltRoutes(node: () => Node): Record<string, Route> {
  return {
    "POST /halt": async (req, res, url) => {
      req.resume();
      const db = required(url, "name", "the database name");
      const id = url.searchParams.get("id");
      const nodeId = url.searchParams.get("node");
      if (id) {
        await node().renewHaltLock(db, id);
        return sendJson(res, 200, { renewed: true });
      }
      if (nodeId) {
        const grant = await node().grantHaltLock(db, { nodeId, hostname: url.searchParams.get("hostname") || nodeId });
        return sendJson(res, 200, { id: grant.id, position: grant.position.toString(), ttlMs: grant.ttlMs });
      }
      const held = await node().takeHaltLock(db);
      sendJson(res, 200, held ? { id: held.id, position: held.position.toString(), ttlMs: held.ttlMs } : { primary: true });
    },
    "DELETE /halt": async (req, res, url) => {
      req.resume();
      await node().releaseHaltLock(required(url, "name", "the database name"), required(url, "id", "the lock ID"));
      sendJson(res, 200, { released: true });
    },
    "POST /tx": (req, res, url) => receiveTransaction(req, res, url, node()),
  };
}

async function receiveTransaction(req: IncomingMessage, res: ServerResponse, url: URL, node: Node): Promise<void> {
  const db = required(url, "name", "the database name");
  const id = required(url, "id", "the HALT lock ID");
  let position;
  try {
    position = await node.applyHaltTransaction(db, id, req);
  } catch (err) {
    req.resume();
    if (err instanceof LtxError) throw new HttpError("HTTP_BAD_REQUEST", `${db}: the transaction is not a valid LTX file: ${err.message}`, { cause: err });
    throw err;
  }
  sendJson(res, 200, { position: position.toString(), txid: position.txid });
}

function required(url: URL, param: string, what: string): string {
  const value = url.searchParams.get(param);
  if (!value) throw new HttpError("HTTP_BAD_REQUEST", `${url.pathname} needs ?${param}=<${what}>`);
  return value;
}
