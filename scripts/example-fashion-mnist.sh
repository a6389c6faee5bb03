#!/usr/bin/env bash
# Fashion-MNIST end to end (issue 15): Debian's dataset as a PNG tree, trained with 2 ranks under
# torchrun through shoal.data (4 workers per rank), rank 1 SIGKILLed mid-epoch, resumed from the
# newest checkpoint, then the same training with torchvision's ImageFolder on the same tree.
# Checks that the interrupted epoch trained on every sample exactly once (what the killed run
# took up to its checkpoint, plus what the resumed run took) and prints a summary.
#
#   scripts/example-fashion-mnist.sh [--limit N] [--epochs E] [--target ACC] [--kill-at STEP]
#                                    [--save-every STEPS] [--min-accuracy ACC] [--no-reference]
# Defaults: the whole dataset (60,000 + 10,000), 10 epochs, target 0.91, rank 1 killed at step
# 700 (epoch 2 with batches of 64 over 2 ranks), checkpoints every 200 steps. Needs the built
# Python package on PYTHONPATH (or build/python). Work files: $FM_DIR (default /var/tmp/fm).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
limit=0 epochs=10 target=0.91 kill_at=700 save_every=200 min_acc=0 reference=1
while [ $# -gt 0 ]; do
  case "$1" in
    --limit) limit=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    --kill-at) kill_at=$2; shift 2 ;;
    --save-every) save_every=$2; shift 2 ;;
    --min-accuracy) min_acc=$2; shift 2 ;;
    --no-reference) reference=0; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
py=/usr/bin/python3
export PYTHONPATH=${PYTHONPATH:-$here/build/python}
export OMP_NUM_THREADS=1 SHOAL_LOG=${SHOAL_LOG:-warn}
dir=${FM_DIR:-/var/tmp/fm}
tree=$dir/tree-$limit
mkdir -p "$dir"
rm -rf "$dir/store" "$dir"/log-* "$dir"/run-*.out
$py "$here/scripts/fashion-mnist-tree.py" "$tree" --limit "$limit"

port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run() {  # run NAME ARGS...: one torchrun world of 2; its output in $dir/run-NAME.out
  local name=$1; shift
  local rc=0
  $py -m torch.distributed.run --nnodes=1 --nproc_per_node=2 --redirects=2 --tee=2 \
    --rdzv_backend=c10d --rdzv_endpoint=127.0.0.1:"$(port)" --max_restarts=0 \
    "$here/examples/fashion_mnist.py" --tree "$tree" --store "$dir/store/{rank}" \
    --epochs "$epochs" --target "$target" --save-every "$save_every" "$@" \
    > "$dir/run-$name.out" 2>&1 || rc=$?
  grep -h '^{' "$dir/run-$name.out" | sed "s/^/$name: /" || true
  return $rc
}

echo "== shoal, rank 1 killed at step $kill_at"
if run killed --kill-at "$kill_at" --log "$dir/log-killed-{rank}"; then
  echo "the run meant to be killed finished (kill step $kill_at is past the end?)" >&2; exit 1
fi
echo "== shoal, resumed"
run resumed --log "$dir/log-resumed-{rank}" || { tail -50 "$dir/run-resumed.out"; exit 1; }

$py - "$dir" "$limit" <<'EOF'
import glob, json, os, re, sys
d, limit = sys.argv[1], int(sys.argv[2])
n = len(glob.glob(os.path.join(d, f"tree-{limit}", "train", "*", "*.png")))
out = open(os.path.join(d, "run-resumed.out")).read()
m = re.search(r'\{"resumed_at_step": (\d+), "epoch": (\d+)', out)
assert m, "the second run did not resume from a checkpoint"
at, epoch = int(m.group(1)), int(m.group(2))
def lines(run):
    for f in glob.glob(os.path.join(d, f"log-{run}-*")):
        for line in open(f):
            e, s, i = map(int, line.split())
            yield e, s, i
before = [i for e, s, i in lines("killed") if e == epoch and s <= at]
after = [i for e, s, i in lines("resumed") if e == epoch]
both = before + after
assert sorted(both) == list(range(n)), (
    f"epoch {epoch}: {len(both)} samples taken for {n}, {len(set(both))} distinct")
print(json.dumps({"interrupted_epoch": epoch, "resumed_at_step": at,
                  "taken_before_checkpoint": len(before), "taken_after_resume": len(after),
                  "exactly_once": True}))
final = [json.loads(l) for l in out.splitlines() if l.startswith('{"reader"') and "final" in l]
print(json.dumps({"shoal": final[-1]}))
EOF
if [ "$min_acc" != 0 ]; then
  $py -c "import json,sys; f=[json.loads(l) for l in open('$dir/run-resumed.out') if '\"final_test_accuracy\"' in l][-1]; sys.exit(0 if f['final_test_accuracy'] >= $min_acc else 1)" \
    || { echo "accuracy under $min_acc" >&2; exit 1; }
fi
if [ "$reference" = 1 ]; then
  echo "== torchvision ImageFolder (reference)"
  run reference --reader torchvision
fi
echo "== DataLoader alone, one epoch (samples/s, 2 ranks x 4 workers)"
run loader-shoal --loader-only --reader shoal
run loader-torchvision --loader-only --reader torchvision
