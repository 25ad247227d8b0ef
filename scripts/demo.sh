#!/bin/bash
# Install, build, and run memobserve on the demo service: 2.4 GiB allocated,
# about 260 MiB resident. Writes demo-snapshot.json in the current directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"

echo
echo "== memobserve snapshot of the demo service (5 seconds) =="
"$root/build/memobserve" snapshot --duration 5 -o demo-snapshot.json --top 6 \
    -- "$root/build/demo/hungry_service" 8
