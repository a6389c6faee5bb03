"""shoal.init: an Engine from torchrun's environment, explicit arguments, or a torch.distributed
process group; the process-wide default engine that shoal.open and shoal.torch use."""
import atexit
import os
import secrets

from . import _shoal

_default = None


def _torch_group(process_group):
    """The process group to bootstrap over: the one given, else torch.distributed's default
    group when it is initialised, else None."""
    if process_group is not None:
        return process_group
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    if dist.is_available() and dist.is_initialized():
        return dist.group.WORLD
    return None


def init(store=None, *, rank=None, world_size=None, process_group=None, token=None, node=None,
         rendezvous=None, replicas=None, chunk_size=None, io_backend="auto", direct_io=True,
         queue_depth=None, join_timeout=None, set_default=True, **options):
    """Opens this rank's shoal Engine and joins the world; returns it (and makes it the default
    of shoal.open / shoal.torch unless set_default=False). Collective when world_size > 1.

    store: this rank's store directory (its local disk); "{rank}", "{local_rank}" and "{node}"
      are filled in by the engine (Options::store_dir) and missing directories made. Default:
      $SHOAL_STORE.
    rank, world_size: default from the launcher (torchrun's RANK/WORLD_SIZE, Open MPI,
      SHOAL_RANK/SHOAL_WORLD_SIZE), or from `process_group`.
    process_group: a torch.distributed group to bootstrap over (its all-gather exchanges the
      members' addresses and rank 0's fresh job token). Default: the initialised default group
      when there is one and neither `rendezvous` nor $SHOAL_RENDEZVOUS is set.
    token: the job's shared secret; default $SHOAL_TOKEN, or made by rank 0 when bootstrapping
      over a process group.
    node: failure domain (default $SHOAL_NODE, else the host name); replicas go to distinct ones.
    rendezvous: "tcp:HOST:PORT" or "file:DIR" (docs/bootstrap.md); default rank 0 hosts TCP at
      MASTER_ADDR:MASTER_PORT+1.
    **options: any other field of shoal::Options (include/shoal/options.h) by its name, e.g.
      repair_rate_mib_s, repair_parallelism, scrub_rate_mib_s, request_timeout_ms, window,
      inline_threshold, segment_size, metadata_map_size, serve_node_stores, create_if_missing,
      stat_lease_ms, stat_cache_entries, metrics_listen ("HOST:PORT": Prometheus text at
      /metrics), lost_members (a list of member ids); ranges and defaults as documented there
      (shoal.option_names() lists them: the C++ table, one source of truth).
    Errors: InvalidArgumentError (ValueError) for missing/bad settings or an unknown option; TimeoutError when ranks
    do not arrive; PermissionDeniedError for a wrong token or a store used by another process.
    """
    global _default
    group = None
    if rendezvous is None and not os.environ.get("SHOAL_RENDEZVOUS"):
        group = _torch_group(process_group)
    elif process_group is not None:
        raise _shoal.InvalidArgumentError("pass either process_group or rendezvous, not both")
    allgather = None
    if group is not None:
        import torch.distributed as dist
        g_rank, g_size = dist.get_rank(group), dist.get_world_size(group)
        if rank is not None and rank != g_rank:
            raise _shoal.InvalidArgumentError(
                f"rank={rank} differs from the process group's rank {g_rank}")
        if world_size is not None and world_size != g_size:
            raise _shoal.InvalidArgumentError(
                f"world_size={world_size} differs from the process group's size {g_size}")
        rank, world_size = g_rank, g_size
        if token is None:
            token = os.environ.get("SHOAL_TOKEN") or None
        if token is None and g_size > 1:
            box = [secrets.token_hex(16) if g_rank == 0 else None]
            src = 0 if group is dist.group.WORLD else dist.distributed_c10d._get_global_rank(group, 0)
            dist.broadcast_object_list(box, src=src, group=group)
            token = box[0]

        def allgather(mine):
            out = [None] * g_size
            dist.all_gather_object(out, mine, group=group)
            return out

    if store is None:
        store = os.environ.get("SHOAL_STORE")
    if not store:
        raise _shoal.InvalidArgumentError(
            "shoal.init needs a store directory: pass store=... or set SHOAL_STORE "
            "(\"{rank}\" in it becomes the rank, e.g. /nvme/shoal/{rank})")
    # The engine fills in {rank}/{local_rank}/{node} and makes missing directories (options.h).
    eng = _shoal.Engine._open_store(
        store, rank=-1 if rank is None else rank, world_size=world_size or 0, node=node or "",
        token=token or "", rendezvous=rendezvous or "", replicas=replicas or 0,
        chunk_size=chunk_size or 0, io_backend=io_backend, direct_io=direct_io,
        queue_depth=queue_depth or 0,
        join_timeout_ms=int(join_timeout * 1000) if join_timeout else 0, allgather=allgather,
        settings=options)
    if set_default:
        if _default is not None and not _default.closed:
            eng.close()
            raise _shoal.FailedPreconditionError(
                "shoal.init was already called in this process: shoal.shutdown() first, or pass "
                "set_default=False")
        _default = eng
    return eng


def engine(given=None):
    """The engine to use: `given` when not None, else the default one made by shoal.init."""
    if given is not None:
        return given
    if _default is None or _default.closed:
        raise _shoal.FailedPreconditionError("call shoal.init() first")
    return _default


def shutdown(barrier=True):
    """Closes the default engine and its checkpointers; with barrier=True waits first for every
    rank (so no rank leaves while others may still read from it)."""
    global _default
    if _default is None:
        return
    _close_checkpointers()
    if barrier and not _default.closed and _default.world_size > 1:
        _default.barrier()
    _default.close()
    _default = None


_checkpointer_closers = []


def _close_checkpointers():
    for close in list(_checkpointer_closers):
        close()


@atexit.register
def _at_exit():
    # Checkpointers wait for async saves in flight; engines close their files.
    try:
        _close_checkpointers()
        if _default is not None:
            _default.close()
    except Exception:  # noqa: BLE001  (exit must not raise)
        pass
