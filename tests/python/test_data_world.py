"""shoal.data in torchrun worlds: 2 ranks with 4 forked workers each read part of an epoch
bit-exact and save the sampler's state; 3 ranks (another world size, one member new) resume
and finish it; every sample of the epoch was taken exactly once."""
import glob
import os

from data_helpers import write_tree


def test_resume_mid_epoch_on_another_world_size_takes_each_sample_once(run_world, tmp_path):
    src = str(tmp_path / "src")
    names = write_tree(src, 300)
    run_world(2, "data_worker.py", "first", tmp_path, src, 6)
    run_world(3, "data_worker.py", "rest", tmp_path, src, 0)

    def read(pattern):
        out = []
        for f in sorted(glob.glob(str(tmp_path / pattern))):
            text = open(f).read()
            out += text.split("\n") if text else []
        return out

    first, rest = read("taken-first-*"), read("taken-rest-*")
    assert len(first) == 2 * 6 * 8
    assert sorted(first + rest) == names, "a sample was repeated or skipped over the resume"
    assert len(glob.glob(str(tmp_path / "taken-rest-*"))) == 3
    assert os.path.exists(tmp_path / "store-2")
