"""Multi-process worlds started with torch.distributed.run (gloo): state-dict round trips,
async save, retention, errors on every rank, a later world of another size, DCP save with 4
ranks and load with 3 (resharding) and 2."""


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
