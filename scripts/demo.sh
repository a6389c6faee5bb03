#!/usr/bin/env bash
# The main job: install what is missing, build, then run shoal-bench in temporary store
# directories: first one member against the raw disk (sequential write, read, random sample
# reads), then a world of 4 ranks on this machine, each with its own store directory and node
# name (aggregate write/read, remote reads vs raw disk and raw UCX, metadata create/stat/list).
# Arguments are passed to both runs, e.g.: scripts/demo.sh --size 512M
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh > /dev/null
export SHOAL_LOG="${SHOAL_LOG:-warn}"
echo "== one member =="
./build/benchmarks/shoal-bench all --size 2G "$@"
echo
echo "== a world of 4 ranks on this machine (replicas 1) =="
exec ./build/benchmarks/shoal-bench all --ranks 4 --size 2G --files 200000 "$@"
