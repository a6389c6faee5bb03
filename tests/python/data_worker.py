"""One rank of the shoal.data world tests (started by torch.distributed.run from
test_data_world.py). Usage: data_worker.py PHASE DIR SRC TAKE

PHASE "first": opens the dataset cache over SRC (collective), reads TAKE batches of 8 of epoch 0
with 4 forked DataLoader workers, checks every sample bit-exact, saves the sampler's state with
shoal.torch.save("resume") and writes the names it consumed to DIR/taken-first-<rank>.
PHASE "rest": loads that state (another world size), reads the rest of the epoch the same way,
writes DIR/taken-rest-<rank>. Asserts; a failure exits non-zero."""
import os
import sys

import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal  # noqa: E402
import shoal.data as sd  # noqa: E402
import shoal.torch  # noqa: E402
from data_helpers import as_list, content  # noqa: E402


def main():
    phase, d, src, take = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    shoal.init(os.path.join(d, "store-{rank}"), node=f"node-{rank}")
    # The resumed world reads ahead what its members do not hold into a memory tier.
    opts = {"memory_bytes": 32 << 20} if phase == "rest" else None
    ds = sd.ShoalDataset.from_source(src, root="datasets/world", output="bytes",
                                     collate_fn=as_list, cache_options=opts)
    # Every sample with its name: the transform cannot see the index, the batch's order can.
    sampler = sd.DistributedSampler(ds, seed=5, locality=(phase == "rest"))
    if phase == "rest":
        state = shoal.torch.load("resume", shard=0)["sampler"]
        sampler.load_state_dict(state)
        assert sampler.epoch == 0
    loader = sd.DataLoader(ds, batch_size=8, sampler=sampler, num_workers=4,
                           multiprocessing_context="fork",
                           prefetch_remote=4 if phase == "rest" else 0)
    order = sampler.share()[sampler.position:]
    taken = []
    pos = 0
    for batch, mask in loader:
        for data, real in zip(batch, mask.tolist()):
            index = order[pos]
            pos += 1
            assert data == content(ds.names[index]), f"sample {ds.names[index]} differs"
            if real:
                taken.append(ds.names[index])
        if phase == "first" and pos >= take * 8:
            break
    if phase == "first":
        shoal.torch.save({"sampler": sampler.state_dict()}, "resume")
    else:
        assert sampler.position == len(sampler.share())
        if rank == 2:  # a new member holds nothing: every sample is remote, read ahead
            print(f"rank 2 memory hits {ds._cache.stats()['memory_hits']}", flush=True)
    with open(os.path.join(d, f"taken-{phase}-{rank}"), "w") as f:
        f.write("\n".join(taken))
    shoal.shutdown()
    dist.destroy_process_group()
    print(f"rank {rank}/{world}: {phase} took {len(taken)}", flush=True)


if __name__ == "__main__":
    main()
