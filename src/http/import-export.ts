import * as fs from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import type { Node } from "../node/node.js";
import type { Store } from "../store/store.js";
import { HttpError } from "./errors.js";
import { sendJson } from "./respond.js";

/** The `name` query parameter, required. */
function databaseName(url: URL, verb: string): string {
  const name = url.searchParams.get("name");
  if (!name) throw new HttpError("HTTP_BAD_REQUEST", `${verb} needs ?name=<database name>`);
  return name;
}

/**
 * POST /import?name=NAME, the body a SQLite database file: received into data.dir/tmp (streamed,
 * never held whole), then imported as one transaction (Node.importDatabase). Primary only; a
 * replica answers 503 naming the primary before reading the body.
 */
export async function serveImport(req: IncomingMessage, res: ServerResponse, url: URL, node: Node, store: Store): Promise<void> {
  const name = databaseName(url, "import");
  if (!node.isPrimary) {
    req.resume();
    const primary = node.primary();
    throw new HttpError(
      "HTTP_NOT_PRIMARY",
      `this node is a replica: import on the primary${primary ? ` ${primary.hostname} (${primary.advertiseUrl}), e.g. litefs import -url ${primary.advertiseUrl}` : ""}`,
    );
  }
  const tmp = store.tempPath("import");
  try {
    await pipeline(req, fs.createWriteStream(tmp, { mode: 0o600 }));
    const declared = req.headers["content-length"];
    const received = fs.statSync(tmp).size;
    if (declared !== undefined && Number(declared) !== received) {
      throw new HttpError("HTTP_BAD_REQUEST", `the upload ended after ${received} of ${declared} bytes: nothing was imported`);
    }
    const result = await node.importDatabase(name, tmp);
    sendJson(res, 200, { name, position: result.position.toString(), txid: result.position.txid, pageSize: result.pageSize, pages: result.pageCount });
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * GET /export?name=NAME: the database at one position, as a plain SQLite file (headers
 * Litefs-Position and Content-Length). Written to data.dir/tmp first by a worker thread, from
 * a copy-on-write view of one position while commits go on (see writeDatabaseImage in
 * store/snapshot.ts), then streamed.
 */
export async function serveExport(req: IncomingMessage, res: ServerResponse, url: URL, store: Store): Promise<void> {
  req.resume();
  const name = databaseName(url, "export");
  const db = store.database(name);
  if (!db) throw new HttpError("HTTP_NOT_FOUND", `no database named ${JSON.stringify(name)} on this node`);
  const tmp = store.tempPath("export");
  try {
    const image = await store.writeDatabaseImage(db, tmp);
    res.writeHead(200, {
      "content-type": "application/vnd.sqlite3",
      "content-length": image.size,
      "litefs-position": image.position.toString(),
      "litefs-page-size": image.pageSize,
    });
    await pipeline(fs.createReadStream(tmp), res);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}
