// The example application of the deploy examples (Fly.io, Docker Compose, Kubernetes).
// litefs starts it through `exec` once the node is the primary or has caught up with it.
// It serves plain HTTP on $PORT (8081), behind the litefs proxy on :8080:
//
//   POST /         records a visit (a write: only the primary can do it)
//   GET  /         this node, the primary it follows, the number of visits and the last five
//   GET  /healthz  200 while the process runs
//
// The database is $LITEFS_DIR/app.db (/litefs/app.db), which must match proxy.db in litefs.yml.
// It uses better-sqlite3, which the litefs-ts image already contains.
import { readFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import Database from "better-sqlite3";

const dir = process.env.LITEFS_DIR ?? "/litefs";
const port = Number(process.env.PORT ?? 8081);
const path = `${dir}/app.db`;

/** `.primary` holds the primary's hostname on a replica and is absent on the primary. */
function primary() {
  try {
    return readFileSync(`${dir}/.primary`, "utf8").trim();
  } catch {
    return null;
  }
}

function reply(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}

function handle(req, res) {
  if (req.url === "/healthz") return reply(res, 200, { ok: true });
  if (req.url !== "/") return reply(res, 404, { error: "not found" });
  const node = os.hostname();
  if (req.method === "POST") {
    // Opening creates the database if needed; a replica refuses that, and any write, with
    // "attempt to write a readonly database": writes belong on the primary (the proxy sends
    // them there).
    const db = new Database(path);
    try {
      db.pragma("journal_mode = WAL");
      db.exec("CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, node TEXT NOT NULL, at TEXT NOT NULL)");
      const { lastInsertRowid } = db.prepare("INSERT INTO visits (node, at) VALUES (?, ?)").run(node, new Date().toISOString());
      return reply(res, 201, { node, visit: Number(lastInsertRowid) });
    } finally {
      db.close();
    }
  }
  if (req.method === "GET" || req.method === "HEAD") {
    let db;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
    } catch {
      return reply(res, 200, { node, primary: primary() ?? node, visits: 0, note: "no visits yet: POST / first" });
    }
    try {
      const visits = db.prepare("SELECT count(*) AS n FROM visits").get().n;
      const last = db.prepare("SELECT id, node, at FROM visits ORDER BY id DESC LIMIT 5").all();
      return reply(res, 200, { node, primary: primary() ?? node, visits, last });
    } finally {
      db.close();
    }
  }
  return reply(res, 405, { error: "use GET or POST" });
}

http
  .createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      reply(res, 500, { error: err.message });
    }
  })
  .listen(port, () => console.log(`example app listening on :${port}, database ${path}`));

process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
