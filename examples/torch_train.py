"""A PyTorch training loop that checkpoints with shoal and survives being killed.

    python3 -m torch.distributed.run --nproc_per_node=3 --redirects=2 --tee=2 \
        examples/torch_train.py --dir /tmp/shoal-train --steps 120 --every 20

Every rank trains the same small MLP data-parallel over gloo (gradients all-reduced per
parameter, in a fixed order), on data that is a function of (step, rank), with SGD + momentum. Every `--every` steps it saves {model, optimizer, step}
with shoal.torch.save(async_save=True, keep_last=2): the step continues while the bytes are
written. At start it resumes from shoal.torch.latest() when there is one, loading into the
model's and optimizer's own tensors. `--crash-at S` makes rank 1 SIGKILL itself right after it
starts the save of step S (a save in flight); torchrun then stops the others. Run the same
command again and it resumes from the last committed checkpoint; the final parameters are
bit-identical to an uninterrupted run (scripts/example-torch-resume.sh checks it).

Each rank's store is <dir>/store-<rank> (its "local disk"); the ranks bootstrap shoal over the
gloo process group. Prints "final <rank> <sha256 of the parameters>".

Why not DistributedDataParallel here: DDP rebuilds its gradient buckets after the first
iteration, so a resumed run's first step sums gradients in a different order than the
uninterrupted run did at that step (float sums differ in the last bits). Bit-identity of a
resumed run needs the same reduction order at every step; a fixed per-parameter all-reduce
gives it. Everything about checkpointing is the same with DDP.
"""
import argparse
import hashlib
import os
import signal
import sys

import torch
import torch.distributed as dist

import shoal
import shoal.torch


def batch(step, rank, n=64, dim=32):
    g = torch.Generator().manual_seed(step * 1000 + rank)
    x = torch.randn(n, dim, generator=g)
    y = (x[:, :4].sum(dim=1, keepdim=True) > 0).float()
    return x, y


def digest(model):
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--crash-at", type=int, default=-1)
    args = ap.parse_args()

    torch.manual_seed(0)  # the same initial model on every rank
    torch.use_deterministic_algorithms(True)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    shoal.init(os.path.join(args.dir, "store-{rank}"), node=f"node-{rank}")

    model = torch.nn.Sequential(torch.nn.Linear(32, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 1))
    world = dist.get_world_size()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    start = 0
    tag = shoal.torch.latest()
    if tag is not None:
        state = shoal.torch.load(tag, {"model": model.state_dict(), "optim": opt.state_dict()})
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        start = state["step"]
        print(f"rank {rank}: resumed from {tag} (step {start})", flush=True)

    loss_fn = torch.nn.BCEWithLogitsLoss()
    pending = None
    for step in range(start, args.steps):
        x, y = batch(step, rank)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        for p in model.parameters():  # data parallel: the mean gradient, in a fixed order
            dist.all_reduce(p.grad)
            p.grad /= world
        opt.step()
        done = step + 1
        if done % args.every == 0:
            pending = shoal.torch.save(
                {"model": model.state_dict(), "optim": opt.state_dict(), "step": done},
                f"step-{done}", async_save=True, keep_last=2)
            if done == args.crash_at and rank == 1:
                print(f"rank {rank}: SIGKILL during the save of step-{done}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        if rank == 0 and done % 20 == 0:
            print(f"step {done} loss {loss.item():.4f}", flush=True)
    if pending is not None:
        pending.wait()
    sys.stdout.write(f"final {rank} {digest(model)}\n")  # one write: lines of ranks never mix
    sys.stdout.flush()
    shoal.shutdown()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
