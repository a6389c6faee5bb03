#!/usr/bin/env bash
# Install what is missing, build, and run every test (ctest: GoogleTest suites, the install /
# find_package check, the bench smoke test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j 2 --timeout 600
