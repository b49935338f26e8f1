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
