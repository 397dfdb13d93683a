#!/usr/bin/env bash
# The whole test suite: Solidity (forge: formatting, unit, fuzz, invariant, gas snapshots), then
# Python (pytest, including the tests that run against real Anvil nodes). Any failure fails the command.
# Extra arguments go to pytest, e.g. ./dpre test -k attestation
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
status=0

echo "== forge fmt --check (contracts and forge tests) =="
if ! forge fmt --check contracts tests/forge; then
  echo "forge fmt --check FAILED: run 'forge fmt contracts tests/forge' and commit the result" >&2
  status=1
fi

echo
echo "== forge test (contracts: unit, fuzz, invariant) =="
if ! forge test -vv --no-match-path 'tests/forge/gas/*'; then
  echo "forge test FAILED" >&2
  status=1
fi

echo
echo "== forge gas snapshots (isolated transactions; rewrites snapshots/*.json) =="
if ! FOUNDRY_PROFILE=gas forge test --match-path 'tests/forge/gas/*'; then
  echo "forge gas snapshots FAILED" >&2
  status=1
elif git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- snapshots/; then
  # Checked like a lock file: a change in gas is committed with the change that caused it.
  git diff --stat -- snapshots/
  echo "gas snapshots differ from the committed ones: review 'git diff snapshots/' and commit them" >&2
  status=1
fi

echo
echo "== Python gates: ruff (lint, format) and mypy (strict on the risk engine, messages, replica) =="
if ! ruff check . || ! ruff format --check .; then
  echo "ruff FAILED: 'ruff check --fix .' and 'ruff format .' fix most of it" >&2
  status=1
fi
if ! mypy; then
  echo "mypy FAILED" >&2
  status=1
fi

echo
echo "== pytest (off-chain engine, services, chain integration) =="
python -m pytest "$@"
rc=$?
# pytest exits 5 when nothing was collected: that is a failure of the suite, not a pass.
[ $rc -eq 0 ] || status=1

if [ $status -eq 0 ]; then echo "ALL TESTS PASSED"; else echo "TESTS FAILED" >&2; fi
exit $status
