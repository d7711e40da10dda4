# A Python sqlite3 client in its own process: same workload as workload.mjs.
import json, sqlite3, sys

db, journal_mode, n, page_size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
conn = sqlite3.connect(db, timeout=10, isolation_level=None)
conn.execute(f"PRAGMA page_size = {page_size}")
conn.execute(f"PRAGMA journal_mode = {journal_mode}")
committed = 0
conn.execute("CREATE TABLE IF NOT EXISTS w (id INTEGER PRIMARY KEY, v INTEGER, pad TEXT)")
committed += 1
for i in range(n):
    conn.execute("BEGIN")
    conn.execute("INSERT INTO w (v, pad) VALUES (?, ?)", (i, "x" * (100 + i % 300)))
    if i % 3 == 0:
        conn.execute("UPDATE w SET v = v + 1 WHERE id = ?", (i // 2 + 1,))
    if i % 7 == 6:
        conn.execute("DELETE FROM w WHERE id = ?", (i - 3,))
    conn.execute("COMMIT")
    committed += 1
conn.execute("BEGIN")
conn.execute("INSERT INTO w (v, pad) VALUES (?, ?)", (-1, "rolled back"))
conn.execute("ROLLBACK")
s = conn.execute("SELECT coalesce(sum(v), 0) FROM w").fetchone()[0]
conn.close()
print(json.dumps({"committed": committed, "sum": s}))
