#!/usr/bin/env bash
# Re-resolves pyproject.toml's dependencies (runtime + test) in a scratch environment and writes
# the fully pinned result to requirements.lock. Run after changing a dependency; commit the result.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3.11 -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install --quiet "$ROOT[test]"
"$scratch/venv/bin/pip" check
{
  echo "# Fully resolved Python environment for DPRE (Python 3.11, Linux x86_64)."
  echo "# Regenerate with toolchain/lock-python.sh after changing pyproject.toml."
  "$scratch/venv/bin/pip" freeze --exclude dpre
} >"$ROOT/requirements.lock"
echo "wrote requirements.lock ($(grep -vc '^#' "$ROOT/requirements.lock") packages)"
