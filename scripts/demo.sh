#!/usr/bin/env bash
# The README's quick start. Installs what is missing (scripts/setup.sh), then runs
#
#   litefs mount -- bash scripts/demo-app.sh
#
# with the embedded default configuration: one node that is its own static primary, the mount
# at /litefs and the data in /var/lib/litefs. The demo app writes to /litefs/demo.db with the
# sqlite3 CLI; when it exits, litefs unmounts and exits with the app's exit code.
# Run it again and the same database continues (its position keeps rising).
#
# Other directories or API port (the embedded configuration listens on :20202):
#   LITEFS_DEMO_FUSE_DIR=/mnt/x LITEFS_DEMO_DATA_DIR=/tmp/x LITEFS_DEMO_PORT=20203 bash scripts/demo.sh
# The embedded configuration cannot be changed, so in that case (and when a litefs.yml would be
# found in ./, ~/ or /etc/ and picked up instead of it) the demo writes the same configuration
# with those values to a temporary file and passes it with -config.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

bash scripts/setup.sh

fuse_dir="$(realpath -m "${LITEFS_DEMO_FUSE_DIR:-/litefs}")"
data_dir="$(realpath -m "${LITEFS_DEMO_DATA_DIR:-/var/lib/litefs}")"
port="${LITEFS_DEMO_PORT:-20202}"

# A live litefs (another demo, another shell) already serves this mount: do not take it over.
# (A mount left by a crashed litefs answers ENOTCONN; litefs mount detaches that one itself.)
if awk -v d="$fuse_dir" '$2 == d {found=1} END {exit !found}' /proc/self/mounts && stat "$fuse_dir" >/dev/null 2>&1; then
  echo "demo: $fuse_dir is already mounted by a running litefs; stop it first, or pick another directory:" >&2
  echo "      LITEFS_DEMO_FUSE_DIR=/mnt/litefs-demo LITEFS_DEMO_DATA_DIR=/var/lib/litefs-demo bash scripts/demo.sh" >&2
  exit 1
fi

config_args=()
config_file=""
cleanup() { [ -z "$config_file" ] || rm -f "$config_file"; }
trap cleanup EXIT

found_config=""
for f in ./litefs.yml "$HOME/litefs.yml" /etc/litefs.yml; do
  if [ -e "$f" ]; then found_config="$f"; break; fi
done

if [ "$fuse_dir" = /litefs ] && [ "$data_dir" = /var/lib/litefs ] && [ "$port" = 20202 ] && [ -z "$found_config" ]; then
  echo "demo: using litefs's embedded default configuration (mount /litefs, data /var/lib/litefs, static primary)"
else
  if [ -n "$found_config" ]; then
    echo "demo: $found_config exists and litefs would use it; the demo passes its own config with -config instead"
  fi
  config_file="$(mktemp /tmp/litefs-demo.XXXXXX.yml)"
  cat >"$config_file" <<EOF
# Written by scripts/demo.sh: litefs's embedded default configuration with other directories.
fuse:
  dir: "$fuse_dir"
data:
  dir: "$data_dir"
http:
  addr: ":$port"
lease:
  type: static
  candidate: true
  advertise-url: http://localhost:$port
EOF
  config_args=(-config "$config_file")
  echo "demo: using $config_file (the embedded configuration with mount $fuse_dir, data $data_dir, API port $port)"
fi

export LITEFS_DEMO_FUSE_DIR="$fuse_dir" LITEFS_DEMO_DATA_DIR="$data_dir"
echo "demo: node dist/src/cli/main.js mount ${config_args[*]:+${config_args[*]} }-- bash scripts/demo-app.sh"
echo

code=0
node "$root/dist/src/cli/main.js" mount "${config_args[@]}" -- bash "$root/scripts/demo-app.sh" || code=$?

echo
if awk -v d="$fuse_dir" '$2 == d {found=1} END {exit !found}' /proc/self/mounts; then
  echo "demo: warning: $fuse_dir is still mounted" >&2
  [ "$code" -ne 0 ] || code=1
else
  echo "demo: litefs exited with code $code and $fuse_dir is unmounted; the data stays in $data_dir"
fi
exit "$code"
