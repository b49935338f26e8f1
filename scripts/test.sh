#!/usr/bin/env bash
# The README's test command (and CI's): set up, then format check, lint and every test.
set -euo pipefail
export KILN_TEST_TOOLS=1 # setup.sh also installs Jupyter and Chromium for the tests
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
deno task --quiet test 2>&1 | tee "$log" || status=$?
# Deno prints "ok | 120 passed (3 steps) | 0 failed (12s)"; repeat it in the plain form CI reads.
summary=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -n 1 || true)
if [ -n "$summary" ]; then
  passed=$(echo "$summary" | sed -E 's/.*\| ([0-9]+) passed.*/\1/')
  failed=$(echo "$summary" | sed -E 's/.*\| ([0-9]+) failed.*/\1/')
  echo "kiln: $passed passed, $failed failed"
fi
exit $status
