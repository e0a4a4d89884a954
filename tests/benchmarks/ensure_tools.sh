#!/usr/bin/env bash
# Make sure the benchmark tools (wrk, nginx) are installed; install the missing
# ones from Debian's packages with apt-get. Idempotent: does nothing when both
# are there. Says what it did.
#
#   bash tests/benchmarks/ensure_tools.sh
set -euo pipefail

have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]
}

missing=()
for tool in wrk nginx; do
    if have "$tool"; then
        echo "ensure_tools: $tool already installed"
    else
        missing+=("$tool")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_tools: missing ${missing[*]} and there is no apt-get; install them by hand" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo -n)
    else
        echo "ensure_tools: missing ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

echo "ensure_tools: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
for tool in "${missing[@]}"; do
    if have "$tool"; then
        echo "ensure_tools: installed $tool"
    else
        echo "ensure_tools: $tool still missing after apt-get install" >&2
        exit 1
    fi
done
