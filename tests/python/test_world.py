"""Multi-process worlds started with torch.distributed.run (gloo): state-dict round trips,
async save, retention, errors on every rank, a later world of another size, DCP save with 4
ranks and load with 3 (resharding) and 5, and the training example killed and resumed."""
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def test_state_dict_round_trips_in_a_world_of_three(run_world, tmp_path):
    out = run_world(3, "world_worker.py", "roundtrip", tmp_path).stdout
    assert out.count("roundtrip ok") == 3, out
    # The same stores opened by a world of 2: load needs shard=, and then works.
    out = run_world(2, "world_worker.py", "reload", tmp_path).stdout
    assert out.count("reload ok") == 2, out


def test_dcp_save_with_four_ranks_loads_with_three_and_five(run_world, tmp_path):
    out = run_world(4, "world_worker.py", "dcp-save", tmp_path).stdout
    assert out.count("dcp save ok") == 4, out
    # 3 ranks: stores 0..2 (store 3 is gone; replicas 2 keep a copy of everything), the
    # sharded tensor resharded from 4 row blocks to 3. 5 ranks: a new empty member joins.
    for n in (3, 5):
        out = run_world(n, "world_worker.py", "dcp-load", tmp_path).stdout
        assert out.count("dcp load ok") == n, out


def test_training_killed_mid_save_resumes_bit_identical():
    """examples/torch_train.py under torchrun: rank 1 SIGKILLed while a save is in flight, the
    rerun resumes from `latest` and ends with the uninterrupted run's parameters."""
    repo = os.path.dirname(os.path.dirname(HERE))
    build = os.environ.get("SHOAL_BUILD_DIR", os.path.join(repo, "build"))
    p = subprocess.run(["bash", os.path.join(repo, "scripts", "example-torch-resume.sh"), build],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0 and "PASS" in p.stdout, p.stdout[-6000:]
    assert "resumed from step-60" in p.stdout, p.stdout[-3000:]
