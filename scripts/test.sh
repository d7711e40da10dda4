#!/usr/bin/env bash
# The test suite: installs what is missing, builds, unmounts leftovers of a crashed run, and runs
# vitest (unit, FUSE and multi-process tests). Long soak runs are separate: npm run test:soak.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Detach test mounts whose daemon died (they answer ENOTCONN); live ones belong to another run.
for m in $(awk '$3 ~ /^fuse/ && $2 ~ /litefs-test-/ {print $2}' /proc/self/mounts); do
  if ! stat "$m" >/dev/null 2>&1; then
    fusermount -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  fi
done
exec npx vitest run "$@"
