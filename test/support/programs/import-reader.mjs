// Holds one read-only connection to a database and reads it until told to stop (SIGTERM), checking
// that every read sees one whole version: table t holds `count` rows all tagged with one version.
// Prints "saw <version>" when it first sees a version, and at the end a JSON summary: reads per
// version seen, and the first error or mixed read.
// Usage: node import-reader.mjs <db path>
import Database from "better-sqlite3";

const [db] = process.argv.slice(2);
const conn = new Database(db, { readonly: true, timeout: 10_000 });
const seen = {};
let problem = null;
let stop = false;
process.on("SIGTERM", () => (stop = true));
process.stdout.write("ready\n");
while (!stop && problem === null) {
  try {
    const rows = conn.prepare("SELECT tag, count(*) AS n FROM t GROUP BY tag").all();
    if (rows.length !== 1) problem = `mixed read: ${JSON.stringify(rows)}`;
    else {
      const version = `${rows[0].tag}:${rows[0].n}`;
      if (!(version in seen)) process.stdout.write(`saw ${version}\n`);
      seen[version] = (seen[version] ?? 0) + 1;
    }
  } catch (err) {
    problem = `read failed: ${err.message}`;
  }
  await new Promise((r) => setImmediate(r));
}
process.stdout.write(JSON.stringify({ seen, problem }) + "\n");
