"""Data-parallel capture under ``torchrun``: ranks, the item slice of a rank, its devices.

``torchrun --nproc_per_node N -m mimicry capture ...`` (or ``accelerate launch``) starts N
processes with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; :func:`rank_info` reads them (a
plain process is rank 0 of 1). The ranks talk through a ``gloo`` process group only to agree
on what is already committed (rank 0 reads it under the cache lock and broadcasts it) and to
wait for each other before rank 0 writes the index; activations never leave a rank, so
``gloo`` is used on GPUs too.

Slices: the items still to capture are dealt longest first to the rank with the fewest
tokens so far (ties: lowest rank), a deterministic function of the committed set, so every
rank computes the same partition and a re-run deals out exactly what is missing.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InputError

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 7 * 24 * 3600  # a rank waits this long for the slowest one at the end


@dataclass(frozen=True)
class RankInfo:
    """Where this process sits in the job: ``rank`` of ``world``, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Return True on rank 0 (the one that locks, reports and writes the index)."""
        return self.rank == 0


def rank_info(env: dict | None = None) -> RankInfo:
    """Return this process's :class:`RankInfo` from torchrun's environment variables."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise InputError(f"RANK/WORLD_SIZE/LOCAL_RANK are not integers ({env.get('RANK')!r}, "
                         f"{env.get('WORLD_SIZE')!r}, {env.get('LOCAL_RANK')!r})",
                         fix="launch with torchrun, or unset them for one process") from None
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"RANK={rank} is not within WORLD_SIZE={world}",
                         fix="launch with torchrun, or unset RANK and WORLD_SIZE")
    return RankInfo(rank, world, local)


class Group:
    """The job's control channel: ``broadcast`` and ``barrier`` (no-ops for one process)."""

    def __init__(self, info: RankInfo, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.info = info
        self._own = False
        if info.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo", rank=info.rank, world_size=info.world,
                                        timeout=datetime.timedelta(seconds=timeout_s))
                self._own = True
            elif dist.get_world_size() != info.world:
                raise InputError(f"a process group of {dist.get_world_size()} ranks is "
                                 f"initialised but WORLD_SIZE={info.world}",
                                 fix="launch capture with the job's own torchrun")

    def broadcast(self, obj):
        """Return rank 0's ``obj`` on every rank."""
        if self.info.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Return once every rank has reached this point."""
        if self.info.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Tear down the process group if this object created it."""
        if self._own:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._own = False


def deal(lengths: Sequence[int], world: int) -> list[list[int]]:
    """Return, per rank, the indices of ``lengths`` it captures (longest first, fewest tokens).

    Deterministic: ties in length keep input order, ties in load go to the lowest rank.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    load = [0] * world
    out: list[list[int]] = [[] for _ in range(world)]
    for i in order:
        r = min(range(world), key=lambda k: (load[k], k))
        out[r].append(i)
        load[r] += lengths[i]
    return [sorted(o) for o in out]


def rank_device(device: str | None, info: RankInfo, gpus_per_rank: int = 1,
                device_map=None) -> str | None:
    """Return the device this rank loads its model on, after restricting visible GPUs.

    One GPU per rank: ``cuda`` (or no device, when CUDA is available) becomes
    ``cuda:LOCAL_RANK``. Several (``gpus_per_rank`` k, for
    a model split with ``device_map``): ``CUDA_VISIBLE_DEVICES`` is narrowed to GPUs
    ``[LOCAL_RANK·k, (LOCAL_RANK+1)·k)`` of the node before CUDA starts, so ``device_map=auto``
    spreads the layers over this rank's GPUs only.
    """
    if gpus_per_rank < 1:
        raise InputError(f"gpus_per_rank must be >= 1, got {gpus_per_rank}")
    if info.world == 1 and gpus_per_rank == 1:
        return device
    if gpus_per_rank > 1 or device_map is not None:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            raise InputError("CUDA was started before the rank's GPUs were chosen",
                             fix="call capture() before any CUDA work in this process")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(
            torch.cuda.device_count() if torch.cuda.is_available() else 0)]
        mine = ids[info.local_rank * gpus_per_rank:(info.local_rank + 1) * gpus_per_rank]
        if ids and len(mine) < gpus_per_rank:
            raise InputError(f"rank {info.rank} (local {info.local_rank}) needs GPUs "
                             f"{info.local_rank * gpus_per_rank}..{(info.local_rank + 1) * gpus_per_rank - 1} "
                             f"but the node shows {len(ids)}",
                             fix="nproc_per_node × gpus_per_rank must not exceed the GPUs "
                                 "per node")
        if mine:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
            log.info("rank %d uses GPUs %s", info.rank, ",".join(mine))
        return device
    if device is None:  # ranks default to their own GPU when there is one
        import torch

        return f"cuda:{info.local_rank}" if torch.cuda.is_available() else None
    if device.startswith("cuda") and ":" not in device:
        return f"cuda:{info.local_rank}"
    return device


def torchrun_command(args: Sequence[str], nproc_per_node: int, nnodes: int = 1,
                     rdzv_endpoint: str = "HOST:29500") -> str:
    """Return the ``torchrun`` command line that runs ``mimicry ARGS`` on the given layout."""
    head = ["torchrun", f"--nproc_per_node {nproc_per_node}"]
    if nnodes > 1:
        head += [f"--nnodes {nnodes}", "--rdzv_backend c10d",
                 f"--rdzv_endpoint {rdzv_endpoint}", "--rdzv_id mimicry-capture"]
    return " ".join(head + ["-m", "mimicry", *args])
