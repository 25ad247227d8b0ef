#!/bin/bash
# Install what memobserve needs to build and test on Debian 12, as root.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps.sh: run as root (apt-get needs it): sudo $0" >&2
    exit 1
fi

packages=(
    cmake make g++ pkg-config clang llvm
    libbpf-dev bpftool libelf-dev libdw-dev zlib1g-dev libcapstone-dev
    libcli11-dev libfmt-dev nlohmann-json3-dev catch2
    libprotobuf-dev protobuf-compiler
    # Tests of the exports: pprof reader, headless browser, JSON Schema validator.
    golang-go chromium python3-jsonschema
    # Tests of probe placement on another allocator.
    libjemalloc2
)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "install-deps.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
