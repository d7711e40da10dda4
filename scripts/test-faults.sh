#!/usr/bin/env bash
# The fault-injection suite (npm run test:faults): builds, clears leftovers of a crashed run
# (mounts, namespaces, tmpfs), runs test/faults/*.faults.test.ts and prints the report
# (one JSON line per scenario, also kept in $LITEFS_FAULT_REPORT).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run build
# Network namespaces, veth pairs and bridges of the network tests (test/support/netns.ts) left by a
# crashed run: only our own prefix.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^lfst-' || true); do ip netns del "$ns" || true; done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^lfst-' || true); do ip link del "$link" 2>/dev/null || true; done
export LITEFS_FAULT_REPORT="${LITEFS_FAULT_REPORT:-$(mktemp -t litefs-fault-report-XXXXXX.jsonl)}"
status=0
# Bounded: the whole suite took 31.5 min on this kind of machine (the 8 x 50 kills 18 of them).
timeout 180m npx vitest run --config vitest.faults.config.ts "$@" || status=$?
echo "--- fault report ($LITEFS_FAULT_REPORT)"
cat "$LITEFS_FAULT_REPORT" 2>/dev/null || true
exit $status
