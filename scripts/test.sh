#!/bin/bash
# Install, build, and run every test: unit tests, then the integration tests,
# which need root and real BPF (they skip with a reason otherwise).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ $(id -u) -eq 0 ]]; then
    "$root/scripts/install-deps.sh"
else
    echo "test.sh: not root: skipping package installation; integration tests will skip" >&2
fi
"$root/scripts/build.sh"
cd "$root/build"
ctest --output-on-failure --timeout 3600
