// A small real web app for the proxy tests: it reads and writes a database on the mount with
// better-sqlite3, as an unchanged app would. Usage: node web-app.mjs <port> <node name> <db path>
// (port 0: any free port; it prints "listening <port>" once it accepts connections).
//   POST /rows          body = note text      -> {"id": n, "node": name}   (one INSERT, autocommit)
//   GET  /rows/:id                            -> {"id", "note", "node"} or 404
//   POST /blob?respond=N                      -> reads the whole body, answers N bytes, streamed;
//                                                trailer x-received = bytes read
//   ANY  /whoami, /assets/*, /login           -> {"node", "method", "headers"}
//   GET  /ws (WebSocket upgrade)              -> echoes every message, prefixed with the node name
import http from "node:http";
import fs from "node:fs";
import Database from "better-sqlite3";
import { WebSocketServer } from "ws";

const [portArg, node, dbPath] = process.argv.slice(2);
let conn = null;

function db() {
  // On a replica the database appears when the first write replicates; open it lazily.
  if (conn === null) {
    if (!fs.existsSync(dbPath)) return null;
    conn = new Database(dbPath, { timeout: 10_000 });
  }
  return conn;
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function readAll(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const server = http.createServer(async (req, res) => {
  try {
    // Appended, not resolved: a target such as "//x" would otherwise be read as a host.
    const url = new URL(`http://app${req.url.startsWith("/") ? "" : "/"}${req.url}`);
    if (req.method === "POST" && url.pathname === "/rows") {
      const note = await readAll(req);
      if (conn === null) {
        conn = new Database(dbPath, { timeout: 10_000 });
        conn.pragma("journal_mode = WAL");
        conn.exec("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, note TEXT)");
      }
      const { lastInsertRowid } = conn.prepare("INSERT INTO notes (note) VALUES (?)").run(note);
      return sendJson(res, 201, { id: Number(lastInsertRowid), node });
    }
    const row = /^\/rows\/(\d+)$/.exec(url.pathname);
    if (req.method === "GET" && row) {
      const found = db()?.prepare("SELECT id, note FROM notes WHERE id = ?").get(Number(row[1]));
      return found ? sendJson(res, 200, { ...found, node }) : sendJson(res, 404, { error: `no row ${row[1]}`, node });
    }
    if (req.method === "POST" && url.pathname === "/blob") {
      process.stdout.write(`blob ${req.url}\n`);
      let received = 0;
      for await (const chunk of req) received += chunk.length;
      let left = Number(url.searchParams.get("respond") ?? 0);
      res.writeHead(200, { "content-type": "application/octet-stream", trailer: "x-received" });
      const block = Buffer.alloc(64 * 1024, 0x61);
      while (left > 0) {
        const n = Math.min(left, block.length);
        left -= n;
        if (!res.write(n === block.length ? block : block.subarray(0, n))) await new Promise((r) => res.once("drain", r));
      }
      res.addTrailers({ "x-received": String(received) });
      return res.end();
    }
    if (url.pathname === "/whoami" || url.pathname.startsWith("/assets/") || url.pathname === "/login") {
      req.resume();
      return sendJson(res, 200, { node, method: req.method, headers: req.headers });
    }
    req.resume();
    sendJson(res, 404, { error: "no such route", node });
  } catch (err) {
    sendJson(res, 500, { error: err.message, node });
  }
});

const wss = new WebSocketServer({ server, path: "/ws" });
wss.on("connection", (ws) => ws.on("message", (data) => ws.send(`${node}: ${data}`)));

server.listen(Number(portArg), "127.0.0.1", () => process.stdout.write(`listening ${server.address().port}\n`));
process.on("SIGTERM", () => process.exit(0));
