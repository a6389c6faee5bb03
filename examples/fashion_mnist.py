"""Fashion-MNIST trained through shoal's data path, under torchrun.

    python3 scripts/fashion-mnist-tree.py /var/tmp/fmnist          # Debian's IDX -> PNG tree
    python3 -m torch.distributed.run --nproc_per_node=2 --redirects=2 --tee=2 \\
        examples/fashion_mnist.py --tree /var/tmp/fmnist --store /var/tmp/fm-store/{rank}

The model is the "2 Conv+pooling" row of the dataset's benchmark table (0.916 test accuracy
there): conv 5x5x32 + max-pool, conv 5x5x64 + max-pool, dense 1024 + dropout 0.4, dense 10. Each
rank reads its share of every epoch (shoal.data.DistributedSampler: exactly once over the
world, padded with a mask) through 4 DataLoader workers that reach the rank's engine through
shared memory; the PNGs come from the tree once, then from the dataset cache. Training stops at
--target test accuracy or after --epochs. A checkpoint (model, optimizer, sampler) is saved with
shoal.torch.save every --save-every steps and at each epoch's end; a rerun resumes from the
newest, mid-epoch included. --reader torchvision reads the same tree with
torchvision.datasets.ImageFolder and torch's DistributedSampler instead (the reference).

Each rank appends the samples it trained on to --log (epoch, step, index per line), so a run that
was killed and resumed can be checked for exactly-once (scripts/example-fashion-mnist.sh).
Prints one JSON line per epoch on rank 0 (accuracy, samples/s) and, with --loader-only, just
the DataLoader's samples/s over one epoch.
"""
import argparse
import json
import os
import signal
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import shoal
import shoal.data as sd
import shoal.torch


class TwoConvPooling(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.dense = nn.Linear(7 * 7 * 64, 1024)
        self.dropout = nn.Dropout(0.4)
        self.logits = nn.Linear(1024, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout(F.relu(self.dense(x.flatten(1))))
        return self.logits(x)


TRANSFORM = torchvision.transforms.Compose([
    torchvision.transforms.Grayscale(1), torchvision.transforms.ToTensor()])


def datasets(a, split):
    path = os.path.join(a.tree, split)
    if a.reader == "shoal":
        return sd.ImageFolder(path, transform=TRANSFORM)
    return torchvision.datasets.ImageFolder(path, transform=TRANSFORM)


def loader_for(a, ds, sampler, batch):
    kw = dict(num_workers=a.workers, persistent_workers=a.workers > 0)
    if a.workers:
        kw["prefetch_factor"] = 4
    if a.reader == "shoal":
        return sd.DataLoader(ds, batch_size=batch, sampler=sampler, **kw)
    inner = torch.utils.data.DataLoader(ds, batch_size=batch, sampler=sampler, **kw)
    return ((b, torch.ones(len(b[1]), dtype=torch.bool)) for b in inner)


def evaluate(model, a, test, rank, world):
    model.eval()
    if a.reader == "shoal":
        s = sd.DistributedSampler(test, shuffle=False)
    else:
        s = torch.utils.data.distributed.DistributedSampler(test, shuffle=False)
    correct = torch.zeros(2)
    with torch.no_grad():
        for (x, y), mask in loader_for(a, test, s, 500):
            pred = model(x).argmax(1)
            correct[0] += ((pred == y) & mask).sum()
            correct[1] += mask.sum()
    dist.all_reduce(correct)
    model.train()
    return (correct[0] / correct[1]).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", required=True)
    ap.add_argument("--store", default="/var/tmp/fm-store/{rank}")
    ap.add_argument("--reader", choices=["shoal", "torchvision"], default="shoal")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--target", type=float, default=0.91)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--kill-at", type=int, default=0, help="rank 1 SIGKILLs itself at this step")
    ap.add_argument("--log", default="")
    ap.add_argument("--loader-only", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if a.reader == "shoal":
        shoal.init(a.store, node=f"node-{rank}")
    train, test = datasets(a, "train"), datasets(a, "test")
    if a.reader == "shoal":
        sampler = sd.DistributedSampler(train, seed=1)
    else:
        sampler = torch.utils.data.distributed.DistributedSampler(train, seed=1)
    if a.loader_only:
        loader = loader_for(a, train, sampler, a.batch)
        t0, n = time.time(), 0
        for (x, _), mask in loader:
            n += int(mask.sum())
        counts = torch.tensor([n, time.time() - t0], dtype=torch.float64)
        dist.all_reduce(counts)
        if rank == 0:
            print(json.dumps({"reader": a.reader, "samples": int(counts[0]),
                              "samples_per_s": counts[0].item() / (counts[1].item() / world)}))
        return

    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(TwoConvPooling())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    step, epoch, resumed = 0, 0, False
    if a.reader == "shoal" and shoal.torch.tags():
        state = shoal.torch.load("latest", {"model": model.state_dict(),
                                            "opt": opt.state_dict()}, shard=0)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sampler.load_state_dict(state["sampler"])
        step, epoch, resumed = state["step"], sampler.epoch, True
        if rank == 0:
            print(json.dumps({"resumed_at_step": step, "epoch": epoch,
                              "consumed": state["sampler"]["consumed_count"]}), flush=True)
    log = open(a.log.format(rank=rank), "a") if a.log else None
    accuracy = 0.0
    order = None
    while epoch < a.epochs:
        sampler.set_epoch(epoch)
        loader = loader_for(a, train, sampler, a.batch)
        order = sampler.share()[sampler.position:] if a.reader == "shoal" else None
        pos, seen, t0 = 0, 0, time.time()
        for (x, y), mask in loader:
            loss = F.cross_entropy(model(x), y, reduction="none")
            loss = (loss * mask).sum() / max(1, int(mask.sum()))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            seen += int(mask.sum())
            if log is not None and order is not None:
                taken = [int(i) for i in order[pos:pos + len(mask)] if not isinstance(i, sd.Padded)]
                log.write("".join(f"{epoch} {step} {i}\n" for i in taken))
                log.flush()
            pos += len(mask)
            if a.reader == "shoal" and a.save_every and step % a.save_every == 0:
                save(model, opt, sampler, step, f"step-{step}")
            if a.kill_at and step == a.kill_at and rank == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        elapsed = time.time() - t0
        rate = torch.tensor([seen / elapsed])
        dist.all_reduce(rate)
        accuracy = evaluate(model, a, test, rank, world)
        epoch += 1
        if a.reader == "shoal":
            sampler.set_epoch(epoch)
            save(model, opt, sampler, step, f"epoch-{epoch}")
        if rank == 0:
            print(json.dumps({"reader": a.reader, "epoch": epoch, "step": step,
                              "test_accuracy": round(accuracy, 4),
                              "train_samples_per_s": round(rate.item(), 1),
                              "resumed": resumed}), flush=True)
        if accuracy >= a.target:
            break
    if rank == 0:
        print(json.dumps({"reader": a.reader, "final_test_accuracy": round(accuracy, 4),
                          "epochs": epoch, "target": a.target,
                          "reached": accuracy >= a.target}), flush=True)
    if a.reader == "shoal":
        shoal.shutdown()
    dist.destroy_process_group()


def save(model, opt, sampler, step, tag):
    state = {"model": model.state_dict(), "opt": opt.state_dict(),
             "sampler": sampler.state_dict(), "step": step}
    shoal.torch.save(state, tag, keep_last=2)


if __name__ == "__main__":
    main()
