"""torchrun support on PyTorch's own engine: process group from torchrun's environment variables,
DistributedDataParallel around the pretext, and an all-gather that keeps gradients (for global negatives).

One process is the default and costs nothing here: every function falls back to the single-process answer."""

from __future__ import annotations

import datetime as dt
import gc
import os
import warnings

import torch
import torch.distributed as td
from torch import nn


def launched() -> bool:
    """True inside a torchrun (or any env://) launch."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def active() -> bool:
    return td.is_available() and td.is_initialized()


def rank() -> int:
    return td.get_rank() if active() else 0


def world_size() -> int:
    return td.get_world_size() if active() else 1


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each rank takes the GPU of its LOCAL_RANK."""
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def init(device: torch.device) -> None:
    """Join the process group torchrun set up: NCCL on GPUs, gloo on CPU. A no-op on one process."""
    if not launched() or active():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    td.init_process_group(backend, timeout=dt.timedelta(minutes=30))


def shutdown(wait_for_peers: bool = True) -> None:
    """Leave the process group, by default together: a rank that tears gloo down while its peer is still working
    can abort with "terminate called without an active exception" (seen under load, about 1 run in 8). A rank
    that failed leaves at once (``wait_for_peers=False``): its peers may be in another collective, and torchrun
    stops them. Garbage is collected first: a DDP wrapper left in a reference cycle holds the process group, and
    freed only by the interpreter's teardown it aborts the same way."""
    if active():
        if wait_for_peers:
            td.barrier()
        gc.collect()
        td.destroy_process_group()


def barrier() -> None:
    if active():
        td.barrier()


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` on every rank (e.g. the run directory it created)."""
    if not active():
        return obj
    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def agree(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank: for decisions that start a collective (e.g. a checkpoint)."""
    if not active():
        return flag
    box = torch.tensor([int(flag)], device=device)
    td.broadcast(box, src=0)
    return bool(box.item())


def all_gather_object(obj: object) -> list[object]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank; ``[obj]`` on one process."""
    if not active():
        return [obj]
    out: list[object] = [None] * world_size()
    td.all_gather_object(out, obj)
    return out


def wrap(model: nn.Module, device: torch.device, sync_batchnorm: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` when there are several ranks; ``model`` itself otherwise."""
    if not active() or world_size() == 1:
        return model
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0 (rank order), keeping the gradient path to every part.

    Backward sums each part's gradient over the ranks that used it, so with DDP's gradient averaging a loss
    computed on the gathered tensor on every rank trains exactly as the same loss on one process would."""
    if not active() or world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    # deprecated in favour of a private module, but still the public gather with autograd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(x), dim=0)


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over the ranks (``x`` itself in one process): for running statistics every rank must
    keep alike. No gradient flows through it."""
    if not active() or world_size() == 1:
        return x
    x = x.clone()
    td.all_reduce(x)
    return x / world_size()
