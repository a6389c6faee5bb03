#!/usr/bin/env bash
# Builds shoal-fuzz (tests/fuzz: libFuzzer with ASan + UBSan, clang-16) in build-fuzz and fuzzes
# shoal's decoders from the committed corpus tests/fuzz/corpus for SECONDS in total (default
# 60); the corpus's regression inputs run first. Fails on any crash, leak or broken round trip;
# the input that did it is left in build-fuzz/crashes/, libFuzzer's log in build-fuzz/fuzz.log.
# New inputs the fuzzer finds go to a scratch folder, not into the committed corpus.
#
#   scripts/fuzz.sh [SECONDS] [TARGET]    TARGET: one of `shoal-fuzz --list` (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
target="${2:-}"

CC=clang-16 CXX=clang++-16 cmake -S . -B build-fuzz -DSHOAL_BUILD_FUZZ=ON -DSHOAL_BUILD_TESTS=OFF \
  -DSHOAL_BUILD_PYTHON=OFF -DSHOAL_BUILD_BENCHMARKS=OFF -DSHOAL_BUILD_EXAMPLES=OFF > /dev/null
cmake --build build-fuzz --target shoal-fuzz -j "$(nproc)" > /dev/null
fuzz=build-fuzz/tests/fuzz/shoal-fuzz

corpus=(tests/fuzz/corpus/*/)
if [ -n "$target" ]; then
  corpus=("tests/fuzz/corpus/$target/")
  export SHOAL_FUZZ_TARGET="$target"
fi
scratch="$(mktemp -d "${TMPDIR:-/tmp}/shoal-fuzz-XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
mkdir -p build-fuzz/crashes
echo "== fuzzing ${target:-all targets} for ${seconds} s"
if ! "$fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix=build-fuzz/crashes/ "$scratch" "${corpus[@]}" 2> build-fuzz/fuzz.log; then
  tail -n 60 build-fuzz/fuzz.log
  echo "shoal-fuzz: crash; the input is in build-fuzz/crashes/ (its first byte selects the" \
    "target, see \`$fuzz --list\`). Fix the decoder, then keep the input in" \
    "tests/fuzz/corpus/<target>/ as a regression." >&2
  exit 1
fi
grep -E "^Done" build-fuzz/fuzz.log || true
