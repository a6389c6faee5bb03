#!/usr/bin/env bash
# The main job: install what is missing, build, and run shoal-bench (sequential write, read,
# and random sample reads, each beside the raw-disk baseline) in a temporary store directory.
# Arguments are passed to shoal-bench, e.g.: scripts/demo.sh --size 512M
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh > /dev/null
exec ./build/benchmarks/shoal-bench all --size 2G "$@"
