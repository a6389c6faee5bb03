#!/usr/bin/env bash
# The checkpoint example end to end: an uninterrupted run, then a run whose rank 1 is SIGKILLed
# in the middle of a save, resumed from `latest`; both must end with bit-identical state.
# The 3 ranks are started by `shoal run` (SHOAL_CLI, default build/bindings/cli/shoal).
# Usage: scripts/example-train-resume.sh [path/to/shoal-example-train] [extra flags]
set -euo pipefail
bin=${1:-build/examples/shoal-example-train}
shift || true
cli=${SHOAL_CLI:-build/bindings/cli/shoal}
d=$(mktemp -d /var/tmp/shoal-train-XXXXXX)
trap 'rm -rf "$d"' EXIT
flags=(--steps 200 --every 20 "$@")
run() { local dir=$1; shift; "$cli" run -n 3 --no-prefix --store "$dir" -- "$bin" --dir "$dir" "$@"; }

run "$d/a" "${flags[@]}" > "$d/a.out"
set +e
run "$d/b" "${flags[@]}" --crash-at 120 > "$d/b1.out"
rc=$?
set -e
cat "$d/b1.out"
if [ "$rc" -eq 0 ]; then echo "FAIL: the crashing run did not crash"; exit 1; fi
echo "crashing run ended with exit code $rc"
run "$d/b" "${flags[@]}" > "$d/b2.out"
cat "$d/b2.out"
grep -q "resumed from step-100" "$d/b2.out" || { echo "FAIL: did not resume from step-100"; exit 1; }
a=$(grep '^final' "$d/a.out" | sort)
b=$(grep '^final' "$d/b2.out" | sort)
echo "uninterrupted:"; echo "$a"
if [ -z "$a" ] || [ "$a" != "$b" ]; then echo "FAIL: resumed run differs"; exit 1; fi
echo "PASS: resumed after SIGKILL mid-save, final state bit-identical to the uninterrupted run"
