#!/usr/bin/env bash
# The recovery story on a running lab: orders flow through the front door (with a ledger of every
# acknowledged one) while an upgrade to a faulty release fails its gates and is rolled back at once;
# then the ledger is checked against the database and the report printed.
# Usage: scripts/demo.sh [TARGET] [RELEASE]    (defaults: lab, v2-unhealthy)
# With v2-corrupts-totals the damaged orders are listed for a person and the ledger check names them.
set -euo pipefail

target="${1:-lab}"
release="${2:-v2-unhealthy}"
root="$(cd "$(dirname "$0")/.." && pwd)"
recovery="${RECOVERY:-$root/.venv/bin/recovery}"
work="$(mktemp -d)"
load_pid=""
cleanup() {
  if [ -n "$load_pid" ] && kill -0 "$load_pid" 2>/dev/null; then kill -TERM "$load_pid"; wait "$load_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== orders under load (10/s, ledger $work/ledger.jsonl)"
"$recovery" load --target "$target" --rate 10 --duration 600 --ledger "$work/ledger.jsonl" >"$work/load.out" 2>&1 &
load_pid=$!
sleep 3

echo "== upgrade to $release with automatic rollback"
set +e
"$recovery" upgrade --release "$release" --target "$target" --auto-rollback --yes --watch 5 \
  --junit "$work/report.xml" --output json >"$work/report.json"
code=$?
set -e
sleep 2  # a few orders on the rolled-back release too
kill -TERM "$load_pid"; wait "$load_pid" || true; load_pid=""

echo "== report (exit $code)"
"$root/.venv/bin/python" - "$work/report.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))["result"]
print(f"status: {doc.get('status')}  failed gate: {doc.get('failed_gate')}")
print(f"reason: {doc.get('reason')}")
print(f"detected in {doc.get('detection_seconds')} s, rolled back and verified in {doc.get('rollback_seconds')} s")
for name in ("upgrade", "rollback"):
    run = doc.get(name) or {}
    for step in run.get("steps", []):
        took = "-" if step["duration_s"] is None else f"{step['duration_s']:.2f}s"
        print(f"  {name:<8} {step['name']:<16} {step['status']:<8} {took:>8}")
rollback = doc.get("rollback") or {}
if rollback.get("decision"):
    print(f"database: {rollback['decision']}")
carried = rollback.get("carry_over") or {}
if carried:
    print(f"carried over: {carried['orders_inserted']} orders, {carried['transactions']} payments, "
          f"{carried['stock_updates']} stock levels")
for order in rollback.get("needs_a_person", []):
    print(f"NEEDS A PERSON: order {order['order_id']}: {order['reason']}")
if rollback.get("needs_a_person_count", 0) > len(rollback.get("needs_a_person", [])):
    print(f"... {rollback['needs_a_person_count']} in all: {rollback['needs_a_person_file']}")
PY

echo "== ledger check: every acknowledged order and payment is in the database"
"$recovery" verify --ledger "$work/ledger.jsonl" --target "$target"
# The demo succeeds when the faulty release was rolled back cleanly (6) and the ledger holds.
[ "$code" -eq 6 ] && exit 0
exit "$code"
