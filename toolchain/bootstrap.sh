#!/usr/bin/env bash
# Installs everything DPRE needs into the checkout, from the package registries only:
#   node_modules/  chain tools (anvil, forge, cast), solc-js and OpenZeppelin, from package-lock.json
#   .venv/         Python 3.11 virtual environment from requirements.lock, plus this package
#   .venv/bin/solc and .venv/solcx/  the solc-js wrapper where forge, ape and py-solc-x look for it
# Idempotent: each step is skipped while the lock file it was made from is unchanged.
# Source it or run it; it prints only when it does something (or fails).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOLC_VERSION="0.8.28"
VENV="$ROOT/.venv"

say() { printf '[bootstrap] %s\n' "$*" >&2; }
die() {
  printf '\n[bootstrap] ERROR: %s\n' "$1" >&2
  [ $# -gt 1 ] && printf '[bootstrap] hint: %s\n' "$2" >&2
  exit 1
}

# Prints a hash of the given files; a step re-runs when this differs from its stamp.
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- prerequisites --------------------------------------------------------------------------
command -v node >/dev/null 2>&1 ||
  die "Node.js was not found on PATH." "install Node.js 20 (with npm), then run this command again."
command -v npm >/dev/null 2>&1 ||
  die "npm was not found on PATH." "install npm (it ships with Node.js 20), then run this command again."
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "Node.js $(node --version) is too old." "DPRE needs Node.js 18 or newer (20 is tested)."

PYTHON="${DPRE_PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      PYTHON="$candidate"
      break
    fi
  done
fi
[ -n "$PYTHON" ] || die "Python 3.11 was not found (tried python3.11 and python3)." \
  "install Python 3.11, or point DPRE_PYTHON at its interpreter."

# --- npm packages ---------------------------------------------------------------------------
npm_stamp="$ROOT/node_modules/.dpre-stamp"
npm_want="$(fingerprint "$ROOT/package.json" "$ROOT/package-lock.json")"
if [ ! -f "$npm_stamp" ] || [ "$(cat "$npm_stamp")" != "$npm_want" ]; then
  say "installing npm packages (anvil, forge, cast, solc-js, OpenZeppelin) ..."
  # `npm install` (not `ci`) installs exactly the lock file's versions but tolerates optional
  # platform packages the registry does not serve; --ignore-scripts: the platform binaries arrive
  # as optional dependencies, so no post-install download is needed.
  if ! (cd "$ROOT" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error >&2); then
    die "npm install failed." "check that the npm registry is reachable; the output above names the package."
  fi
  # npm may add the optional platform entries it resolved to the lock: stamp what is there now,
  # so the next run does not install again.
  fingerprint "$ROOT/package.json" "$ROOT/package-lock.json" >"$npm_stamp"
fi

# --- Python environment ---------------------------------------------------------------------
py_stamp="$VENV/.dpre-stamp"
py_want="$(fingerprint "$ROOT/requirements.lock" "$ROOT/pyproject.toml")"
if [ ! -f "$py_stamp" ] || [ "$(cat "$py_stamp")" != "$py_want" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment in .venv ..."
    "$PYTHON" -m venv "$VENV" || die "could not create .venv with $PYTHON." \
      "on Debian/Ubuntu install the python3.11-venv package."
  fi
  say "installing Python packages from requirements.lock (first run takes a minute or two) ..."
  # pip's own status, without the machine-level notes about unreachable extra indexes.
  pip_quiet() {
    "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither" >&2 || true; }
    return "${PIPESTATUS[0]}"
  }
  # --no-deps: the lock file is the complete, already-resolved set.
  pip_quiet install --quiet --no-deps -r "$ROOT/requirements.lock" ||
    die "pip install failed." "check that PyPI is reachable; the output above names the package."
  pip_quiet install --quiet --no-deps -e "$ROOT" || die "installing the dpre package itself failed."
  echo "$py_want" >"$py_stamp"
fi

# --- chain tools and compiler on the venv's PATH ----------------------------------------------
for tool in anvil forge cast; do
  # Link the platform binary directly: it skips a node start-up on every call.
  target="$(ls "$ROOT"/node_modules/@foundry-rs/"$tool"-*/bin/"$tool" 2>/dev/null | head -n1 || true)"
  [ -n "$target" ] || target="$ROOT/node_modules/.bin/$tool"
  [ -e "$target" ] || die "$tool is missing from node_modules." "delete node_modules and run again."
  ln -sfn "$target" "$VENV/bin/$tool"
done

# py-solc-x copies nothing if the binary is already where it looks (SOLCX_BINARY_PATH);
# the launcher holds an absolute path so it works from any directory.
write_launcher() {
  local dest="$1"
  local body
  body="$(printf '#!/usr/bin/env bash\nexec node "%s/toolchain/solc.cjs" "$@"\n' "$ROOT")"
  if [ ! -f "$dest" ] || [ "$(cat "$dest")" != "$body" ]; then
    mkdir -p "$(dirname "$dest")"
    printf '%s\n' "$body" >"$dest"
    chmod +x "$dest"
  fi
}
write_launcher "$VENV/bin/solc"
write_launcher "$VENV/solcx/solc-v$SOLC_VERSION"
