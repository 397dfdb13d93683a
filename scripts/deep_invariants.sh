#!/usr/bin/env bash
# Every forge invariant suite (tests/forge/invariant/*.t.sol) under FOUNDRY_PROFILE=deep, where
# each invariant campaign makes runs × depth ≥ 100,000 handler calls ([profile.deep.invariant] in
# foundry.toml). Prints, per suite, its invariants, the calls and reverts of their campaigns and
# the wall time; exits non-zero if any suite fails, reports nothing, or the profile is too shallow.
#
#   scripts/deep_invariants.sh                 # every suite, one after the other
#   scripts/deep_invariants.sh BadDebt         # only the suites whose file name contains BadDebt
#
# Full forge output of each suite goes to $DEEP_LOG_DIR (default .forge/deep/<suite>.log).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
export FOUNDRY_PROFILE=deep
MIN_CALLS="${DEEP_MIN_CALLS:-100000}"
LOG_DIR="${DEEP_LOG_DIR:-$ROOT/.forge/deep}"
mkdir -p "$LOG_DIR"

if ! command -v forge >/dev/null 2>&1; then
  echo "forge not found: run ./dpre test once to install the toolchain" >&2
  exit 2
fi

read -r RUNS DEPTH < <(forge config --json | python3 -c \
  'import json, sys; c = json.load(sys.stdin)["invariant"]; print(c["runs"], c["depth"])')
if [ $((RUNS * DEPTH)) -lt $MIN_CALLS ]; then
  echo "profile deep: runs $RUNS × depth $DEPTH = $((RUNS * DEPTH)) calls per invariant, below $MIN_CALLS" >&2
  exit 2
fi
echo "profile deep: runs $RUNS × depth $DEPTH = $((RUNS * DEPTH)) calls per invariant"

filter="${1:-}"
suites=()
for f in tests/forge/invariant/*.t.sol; do
  [[ -z "$filter" || "$f" == *"$filter"* ]] && suites+=("$f")
done
if [ ${#suites[@]} -eq 0 ]; then
  echo "no invariant suite matches '${filter}'" >&2
  exit 2
fi

# Compile once, outside the timings.
if ! forge build >"$LOG_DIR/build.log" 2>&1; then
  cat "$LOG_DIR/build.log" >&2
  exit 1
fi

status=0
total_calls=0
total_reverts=0
total_start=$(date +%s)
printf '%-28s %10s %6s %12s %10s %9s\n' "suite" "invariants" "failed" "calls" "reverts" "wall"
for suite in "${suites[@]}"; do
  name="$(basename "$suite" .t.sol)"
  log="$LOG_DIR/$name.log"
  start=$(date +%s)
  forge test --match-path "$suite" -vv >"$log" 2>&1
  rc=$?
  wall=$(($(date +%s) - start))
  # one campaign per "(runs: R, calls: C, reverts: V)" line; a failing one follows its
  # "[FAIL: reason]" line. The "Failing tests:" recap at the end repeats them: stop there.
  read -r n failed calls reverts short < <(awk -v min="$MIN_CALLS" '
    /^Failing tests:/ { exit }
    /^\[PASS/ { last = "PASS" }
    /^\[FAIL/ { last = "FAIL" }
    /\(runs: / && /calls: / {
      n++; if (last == "FAIL") f++
      c = $0; sub(/.*calls: /, "", c); sub(/[,)].*/, "", c)
      r = $0; sub(/.*reverts: /, "", r); sub(/[,)].*/, "", r)
      calls += c; reverts += r
      if (last == "PASS" && c + 0 < min) s++
      last = ""
    }
    END { print n + 0, f + 0, calls + 0, reverts + 0, s + 0 }' "$log")
  printf '%-28s %10d %6d %12d %10d %8ds\n' "$name" "$n" "$failed" "$calls" "$reverts" "$wall"
  total_calls=$((total_calls + calls))
  total_reverts=$((total_reverts + reverts))
  if [ $rc -ne 0 ] || [ "$failed" -ne 0 ] || [ "$n" -eq 0 ] || [ "$short" -ne 0 ]; then
    status=1
    [ "$n" -eq 0 ] && echo "  no invariant campaign reported (exit $rc): see $log"
    [ "$short" -ne 0 ] && echo "  $short campaign(s) made fewer than $MIN_CALLS calls: see $log"
    awk '/^Failing tests:/ { exit } /^\[FAIL/ { reason = $0 } /\(runs: / && reason != "" { name = $1; print "  " name " " reason; reason = "" }' "$log"
  fi
done
printf '%-28s %10s %6s %12d %10d %8ds\n' "total" "" "" "$total_calls" "$total_reverts" "$(($(date +%s) - total_start))"
if [ $status -eq 0 ]; then echo "DEEP INVARIANTS PASSED"; else echo "DEEP INVARIANTS FAILED (logs in $LOG_DIR)" >&2; fi
exit $status
