"""Data-parallel training with torch.distributed, the PyTorch form of "clones on several GPUs" and
"synchronous replicas".

Lesson 09 (training at scale) teaches it.

Launch the same script once per GPU (and per machine) with ``torchrun``::

    torchrun --nproc_per_node=4 train.py                        # one machine, 4 GPUs
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 \\
             --rdzv_endpoint=host0:29500 train.py              # two machines (node_rank 1 on host1)

torchrun sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` for each
process; :func:`setup` reads them, picks ``cuda:LOCAL_RANK`` (or the CPU), and joins the process
group (NCCL on CUDA, Gloo on the CPU). Every process then trains the same model on its own shard of
each batch, and DistributedDataParallel averages the gradients over the processes before each
optimizer step, so every replica stays identical.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from tutorial_det.runtime import pick_device

_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

#: How long a process waits for the others in a collective (a gradient all-reduce, a barrier)
#: before it fails, in seconds; torch's own default is 30 minutes. A hung or crashed process then
#: stops the others within this time. Set ``TUTORIAL_DET_DIST_TIMEOUT`` to change it (an
#: evaluation on rank 0 that takes longer needs more).
PROCESS_GROUP_TIMEOUT = 300.0


def process_group_timeout() -> timedelta:
    """``TUTORIAL_DET_DIST_TIMEOUT`` seconds (default :data:`PROCESS_GROUP_TIMEOUT`)."""
    text = os.environ.get("TUTORIAL_DET_DIST_TIMEOUT", str(PROCESS_GROUP_TIMEOUT))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"TUTORIAL_DET_DIST_TIMEOUT={text!r} must be a positive number of seconds")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes and on its machine."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    initialised_here: bool = False

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0: the process that logs, shows progress and writes checkpoints."""
        return self.rank == 0


def setup(device: str | torch.device | None = None) -> tuple[DistContext, torch.device]:
    """Join the process group if this process was started by torchrun, and pick its device.

    Three cases: a process group already exists (used as it is); ``WORLD_SIZE`` > 1 is set (a
    torchrun launch: the group is created here, NCCL for CUDA, Gloo otherwise); neither (a single
    process). Under torchrun a CUDA device (``cuda`` or ``cuda:0``) becomes ``cuda:LOCAL_RANK``.
    The group's collectives time out after :func:`process_group_timeout`.

    Raises:
        ValueError: torchrun's variables are incomplete, or the device cannot be shared out
            (MPS has no distributed backend, fewer GPUs than processes on this machine, a GPU
            index other than the local rank's).
    """
    device = pick_device(device)
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        initialised_here = False
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        missing = [name for name in _TORCHRUN_VARS if name not in os.environ]
        if missing:
            raise ValueError(
                f"WORLD_SIZE={os.environ['WORLD_SIZE']} is set but {', '.join(missing)} "
                "is not: start distributed training with torchrun, which sets all of them"
            )
        if not dist.is_available():
            raise ValueError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ["LOCAL_RANK"])
        initialised_here = True
    else:
        return DistContext(), device

    if device.type == "mps":
        raise ValueError("distributed training needs CUDA or the CPU; MPS has no backend")
    if device.type == "cuda":
        device = _rank_gpu(device, local_rank)
        torch.cuda.set_device(device)
    if initialised_here:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world_size, timeout=process_group_timeout()
        )
    return DistContext(rank, local_rank, world_size, initialised_here), device


def _rank_gpu(device: torch.device, local_rank: int) -> torch.device:
    """``cuda:LOCAL_RANK``: every process of a machine trains on its own GPU.

    ``cuda`` and ``cuda:0`` (what a command line passes on to every process alike) both mean
    "the GPU of my local rank"; another index would put two processes on one GPU.
    """
    if device.index not in (None, 0, local_rank):
        raise ValueError(
            f"under torchrun each process takes the GPU of its local rank (cuda:{local_rank} "
            f"here), not {device}: pass cuda, and choose the GPUs with CUDA_VISIBLE_DEVICES"
        )
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ValueError(
            f"local rank {local_rank} needs cuda:{local_rank} but this machine has {count} "
            f"GPU(s): start at most {count} process(es) per machine (torchrun "
            f"--nproc_per_node={count})"
        )
    return torch.device("cuda", local_rank)


def teardown(ctx: DistContext) -> None:
    """Leave the process group, if :func:`setup` created it."""
    if ctx.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The element-wise mean of ``values`` over all processes (``values`` itself on one)."""
    if not ctx.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / ctx.world_size


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on at least one (so all stop together)."""
    if not ctx.enabled:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """``obj`` from every process, indexed by rank (a one-element list on one process)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    """Wait until every process gets here."""
    if ctx.enabled:
        dist.barrier()
