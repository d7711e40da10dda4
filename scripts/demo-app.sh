#!/usr/bin/env bash
# The application that scripts/demo.sh runs under `litefs mount -- bash scripts/demo-app.sh`.
# litefs starts it once the mount is ready, as a child process; when it exits, litefs unmounts
# and exits with its exit code.
#
# It writes to a database on the mount with the sqlite3 CLI, first in rollback-journal (DELETE)
# mode and then in WAL mode, and shows after each step the position litefs recorded
# (<db>-pos: TXID/checksum). Then it looks at what litefs keeps in its data directory: one LTX
# file per transaction under dbs/<db>/ltx/, checked with `litefs ltx verify` and `ltx dump`.
# Each run continues the same database.
set -euo pipefail
cd "$(dirname "$0")/.."

mnt="${LITEFS_DEMO_FUSE_DIR:-/litefs}"
data="${LITEFS_DEMO_DATA_DIR:-/var/lib/litefs}"
db=demo.db
litefs=(node "$(pwd)/dist/src/cli/main.js")

step() { printf '\n== %s\n' "$*"; }
show_pos() {
  local pos
  pos="$(cat "$mnt/$db-pos")"
  printf '   %s-pos  %s   (TXID/checksum)\n' "$db" "$pos"
}
sql() { sqlite3 -bail "$mnt/$db" "$@"; }

step "the mount ($mnt) before this run"
ls -la "$mnt"
# Test for the database, not for <db>-pos: the kernel remembers a failed lookup for a second
# (negative_timeout), so probing <db>-pos before the database exists would hide it for that long.
if [ -e "$mnt/$db" ]; then show_pos; fi

run="$(sql "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, run INTEGER NOT NULL, mode TEXT NOT NULL, note TEXT, payload BLOB);
            SELECT coalesce(max(run), 0) + 1 FROM events;")"
echo "   run $run of this demo on $mnt/$db"

step "rollback journal: PRAGMA journal_mode=DELETE, one row per transaction"
echo "   journal_mode: $(sql 'PRAGMA journal_mode=DELETE;')"
for i in 1 2; do
  sql "INSERT INTO events (run, mode, note) VALUES ($run, 'delete', 'row $i');"
  show_pos
done

step "rollback journal: one transaction of 100 rows (many pages)"
sql "BEGIN;
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
     INSERT INTO events (run, mode, note, payload) SELECT $run, 'delete', 'bulk ' || i, randomblob(300) FROM n;
     COMMIT;"
show_pos

step "WAL: PRAGMA journal_mode=WAL, one row per transaction"
echo "   journal_mode: $(sql 'PRAGMA journal_mode=WAL;')"
show_pos
for i in 1 2; do
  sql "INSERT INTO events (run, mode, note) VALUES ($run, 'wal', 'row $i');"
  show_pos
done

step "WAL: one transaction of 100 rows, and a reader holding the database open meanwhile"
# A second connection keeps the -wal and -shm files in place so they can be seen on the mount.
coproc reader { sqlite3 "$mnt/$db"; }
reader_pid="$reader_PID"
trap 'kill "$reader_pid" 2>/dev/null || true' EXIT
echo "SELECT count(*) FROM events;" >&"${reader[1]}"
read -r -t 10 before <&"${reader[0]}"
sql "BEGIN;
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
     INSERT INTO events (run, mode, note, payload) SELECT $run, 'wal', 'bulk ' || i, randomblob(300) FROM n;
     COMMIT;"
echo "SELECT count(*) FROM events;" >&"${reader[1]}"
read -r -t 10 after <&"${reader[0]}"
echo "   the reader saw $before rows, then $after"
show_pos
ls -la "$mnt"
reader_in="${reader[1]}"
exec {reader_in}>&-
wait "$reader_pid" 2>/dev/null || true

step "back to DELETE mode (checkpoints the WAL into the database; the next run starts here)"
echo "   journal_mode: $(sql 'PRAGMA journal_mode=DELETE;')"
show_pos
echo "   rows: $(sql 'SELECT count(*) FROM events;'), in $(sql 'SELECT count(DISTINCT run) FROM events;') run(s); integrity_check: $(sql 'PRAGMA integrity_check;')"

step "the database's position against its contents"
pos="$(cat "$mnt/$db-pos")"
if "${litefs[@]}" --help 2>/dev/null | grep -q '^ *ltx '; then
  sum="$("${litefs[@]}" ltx checksum "$mnt/$db")"
  echo "   litefs ltx checksum $mnt/$db -> $sum"
  if [ "$sum" = "${pos#*/}" ]; then
    echo "   matches the checksum in $db-pos ($pos)"
  else
    echo "   DOES NOT MATCH the checksum in $db-pos ($pos)" >&2
    exit 1
  fi
else
  echo "   (this build has no 'litefs ltx' command; skipping)"
fi

ltx_dir="$data/dbs/$db/ltx"
step "the LTX files litefs wrote ($ltx_dir: one per transaction; older ones are removed after data.retention, 10m)"
ls -l "$ltx_dir" | tail -n 12
tmp_out="$(mktemp)"
mapfile -t files < <(ls "$ltx_dir"/*.ltx | sort)
newest="${files[${#files[@]} - 1]}"
if "${litefs[@]}" --help 2>/dev/null | grep -q '^ *ltx '; then
  step "litefs ltx verify (every LTX file of $db)"
  "${litefs[@]}" ltx verify "${files[@]}" >"$tmp_out"
  if [ "${#files[@]}" -gt 8 ]; then echo "   ... (showing the last 8)"; fi
  tail -n 8 "$tmp_out"
  echo "   ${#files[@]} LTX file(s) verified"
  step "litefs ltx dump $(basename "$newest") (the last transaction)"
  "${litefs[@]}" ltx dump "$newest"
fi

rm -f "$tmp_out"
printf '\ndemo app: done (run %s); exiting, litefs will unmount %s\n' "$run" "$mnt"
