import Database from "better-sqlite3";

/**
 * Builds a database of about `mb` MB outside any mount: rows of 4,000 random bytes (so neither
 * LZ4 nor the disk can shrink it), rollback journal, 10,000 rows per transaction.
 */
export function buildDatabase(file: string, mb: number): void {
  const db = new Database(file);
  db.pragma("journal_mode = DELETE");
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)");
  const insert = db.prepare("INSERT INTO t (b) VALUES (randomblob(4000))");
  const rows = Math.ceil((mb * 1024 * 1024) / 4096);
  const batch = db.transaction((n: number) => {
    for (let i = 0; i < n; i++) insert.run();
  });
  for (let done = 0; done < rows; done += 10_000) batch(Math.min(10_000, rows - done));
  db.close();
}
