#!/usr/bin/env bash
# The PyTorch example end to end: an uninterrupted run, then a run whose rank 1 is SIGKILLed
# while a save is in flight, resumed from `latest` by running the same command again; both must
# end with bit-identical parameters on every rank.
# Usage: scripts/example-torch-resume.sh [build dir] ; needs the built Python package.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
export PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}"
export SHOAL_LOG=${SHOAL_LOG:-warn}
d=$(mktemp -d /var/tmp/shoal-torch-XXXXXX)
trap 'rm -rf "$d"' EXIT
run() {  # run DIR [flags]: one torchrun world of 3 ranks
  local dir=$1; shift
  # --redirects/--tee 2: torch 1.13's launcher breaks on Python 3.11 with the default 0.
  /usr/bin/python3 -m torch.distributed.run --nnodes=1 --nproc_per_node=3 --redirects=2 --tee=2 \
    --rdzv_backend=c10d --rdzv_endpoint=127.0.0.1:0 --max_restarts=0 \
    examples/torch_train.py --dir "$dir" --steps 120 --every 20 "$@"
}
run "$d/a" > "$d/a.out" 2>&1 || { cat "$d/a.out"; echo "FAIL: uninterrupted run"; exit 1; }
set +e
run "$d/b" --crash-at 80 > "$d/b1.out" 2>&1
rc=$?
set -e
grep -v '^\[' "$d/b1.out" | grep -E "SIGKILL|step" || true
if [ "$rc" -eq 0 ]; then echo "FAIL: the crashing run did not crash"; exit 1; fi
echo "crashing run ended with exit code $rc"
run "$d/b" > "$d/b2.out" 2>&1 || { cat "$d/b2.out"; echo "FAIL: resumed run"; exit 1; }
grep -E "resumed|final" "$d/b2.out"
grep -q "resumed from step-" "$d/b2.out" || { echo "FAIL: did not resume"; exit 1; }
a=$(grep '^final' "$d/a.out" | sort)
b=$(grep '^final' "$d/b2.out" | sort)
echo "uninterrupted:"; echo "$a"
if [ "$(echo "$a" | wc -l)" -ne 3 ] || [ "$a" != "$b" ]; then echo "FAIL: resumed run differs"; exit 1; fi
echo "PASS: resumed after SIGKILL mid-save, final parameters bit-identical to the uninterrupted run"
