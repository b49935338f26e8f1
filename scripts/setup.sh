#!/usr/bin/env bash
# Idempotent set-up for a fresh machine (Debian, Node.js + npm, no Deno): installs the pinned
# Deno from npm into .tools/, fetches the npm dependencies, and builds the native CUDA library
# when nvcc is present. Sourced by scripts/demo.sh and scripts/test.sh; puts deno on PATH.
set -euo pipefail
KILN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DENO_VERSION=2.9.6
export PATH="$KILN_ROOT/.tools/node_modules/.bin:$PATH"

if ! deno --version 2>/dev/null | grep -q "deno $DENO_VERSION"; then
  echo "[setup] installing deno $DENO_VERSION from npm into .tools/" >&2
  mkdir -p "$KILN_ROOT/.tools"
  npm install --silent --no-audit --no-fund --prefix "$KILN_ROOT/.tools" "deno@$DENO_VERSION" >&2
fi

cd "$KILN_ROOT"
# npm packages named in deno.json (zod, protobufjs, ...) into node_modules/, once.
deno install --quiet >&2

if command -v nvcc >/dev/null 2>&1 && [ -f cuda/build.ts ]; then
  deno task --quiet build:native >&2
fi

# Test command only (scripts/test.sh sets KILN_TEST_TOOLS=1): what the notebook and browser
# tests need, from Debian, when missing and we are root or have passwordless sudo: Jupyter's
# nbconvert (executes notebooks/ headless), Chromium (opens the HTML exports) and Liberation fonts
# (Helvetica's metrics, which Graphviz lays text out with). Then the Deno kernel, for people who
# open the notebooks. Without these, those tests fail and say what to install.
if [ "${KILN_TEST_TOOLS:-}" = 1 ]; then
  missing=()
  jupyter nbconvert --version >/dev/null 2>&1 || missing+=(jupyter-nbconvert jupyter-client)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  fc-list 2>/dev/null | grep -q LiberationSans || missing+=(fonts-liberation)
  as_root=""
  [ "$(id -u)" = 0 ] || as_root="sudo -n"
  if [ ${#missing[@]} -gt 0 ] && { [ -z "$as_root" ] || sudo -n true 2>/dev/null; }; then
    echo "[setup] installing ${missing[*]} with apt-get" >&2
    # A fresh image may have no package lists yet.
    apt-cache show "${missing[@]}" >/dev/null 2>&1 || $as_root apt-get update -qq >&2 || true
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >&2 || echo "[setup] apt-get failed: ${missing[*]} not installed" >&2
  elif [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] not root and no passwordless sudo: ${missing[*]} not installed" >&2
  fi
  if kernels=$(jupyter kernelspec list 2>/dev/null) && ! grep -qE '^\s*deno\s' <<<"$kernels"; then
    deno jupyter --install >&2
  fi
fi
