#!/usr/bin/env bash
# Checks the thread-safety annotations (base/thread_annotations.h: GUARDED_BY, REQUIRES, ...)
# with clang's -Wthread-safety: every file that uses the annotated shoal::Mutex is compiled
# (syntax and analysis only, no code generated) with the warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(grep -l -E "MutexLock|thread_annotations.h|cluster.h|flight.h|task_pool.h|member_service.h|member_client.h|messenger_impl.h" --include=*.cc -r base engine transport lib)
flags=(-std=c++20 -fsyntax-only -Wthread-safety -Wthread-safety-beta -Werror=thread-safety
       -Werror=thread-safety-beta -I. -Iinclude $(pkg-config --cflags ucx liburing lmdb libisal))
n=0
for f in $files; do
  clang++-16 "${flags[@]}" "$f"
  n=$((n + 1))
done
echo "thread-safety: $n files checked by clang -Wthread-safety"
