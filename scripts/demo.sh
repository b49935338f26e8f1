#!/usr/bin/env bash
# The README's demo command: set up, then run what ships on the best device present.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
deno task --quiet demo
