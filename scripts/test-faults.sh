#!/usr/bin/env bash
# The fault-injection suite (npm run test:faults): builds, clears leftovers of a crashed run
# (mounts, namespaces, tmpfs), runs test/faults/*.faults.test.ts and prints the report
# (one JSON line per scenario, also kept in $LITEFS_FAULT_REPORT).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run build
export LITEFS_FAULT_REPORT="${LITEFS_FAULT_REPORT:-$(mktemp -t litefs-fault-report-XXXXXX.jsonl)}"
status=0
timeout 45m npx vitest run --config vitest.faults.config.ts "$@" || status=$?
echo "--- fault report ($LITEFS_FAULT_REPORT)"
cat "$LITEFS_FAULT_REPORT" 2>/dev/null || true
exit $status
