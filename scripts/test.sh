#!/usr/bin/env bash
# Install what is missing, build, and run every test (ctest: GoogleTest suites, the install /
# find_package check, the bench smoke test, the example), then the same suite again in an
# AddressSanitizer + UndefinedBehaviorSanitizer build that stops at the first report, then the
# in-process world suite under ThreadSanitizer with several seeds (fewer kill trials). The Python
# tests (pytest, ctest python_tests) run in the first build: an ASan runtime cannot be loaded
# into /usr/bin/python3 after it started, so the sanitizer build leaves the module out. Last, a
# minute of libFuzzer over the decoders (scripts/fuzz.sh, its own clang build in build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j 2 --timeout 600

echo "== sanitizers (ASan + UBSan)"
san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DSHOAL_BUILD_PYTHON=OFF -DCMAKE_CXX_FLAGS="$san" \
  -DCMAKE_EXE_LINKER_FLAGS="$san" -DCMAKE_SHARED_LINKER_FLAGS="$san" > /dev/null
cmake --build build-sanitize -j "$(nproc)" > /dev/null
# The install check links a consumer without the sanitizer runtime; it ran above.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-sanitize --output-on-failure -j 2 --timeout 900 -E cmake_install

echo "== ThreadSanitizer: the in-process world suite, 3 seeds (kill trials bounded)"
tsan="-fsanitize=thread -fno-omit-frame-pointer"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHOAL_BUILD_PYTHON=OFF \
  -DSHOAL_BUILD_BENCHMARKS=OFF -DSHOAL_BUILD_EXAMPLES=OFF -DCMAKE_CXX_FLAGS="$tsan" \
  -DCMAKE_EXE_LINKER_FLAGS="$tsan" -DCMAKE_SHARED_LINKER_FLAGS="$tsan" > /dev/null
cmake --build build-tsan -j "$(nproc)" --target engine_inproc_world_test > /dev/null
for seed in 1 20261129 987654321; do
  SHOAL_TEST_SEED=$seed SHOAL_KILL_TRIALS=20 SHOAL_MIGRATION_TRIALS=2 SHOAL_LOG=error TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    build-tsan/tests/engine_inproc_world_test --gtest_brief=1
done

echo "== thread-safety annotations (clang -Wthread-safety)"
bash scripts/thread-safety.sh

echo "== fuzzing (libFuzzer + ASan + UBSan over the decoders, 60 s; scripts/fuzz.sh)"
bash scripts/fuzz.sh 60
