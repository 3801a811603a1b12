"""Training on several processes: torchrun sets the environment, PyTorch's DistributedDataParallel
averages the gradients, and brushwork decides who reads and writes what.

The rules (README, "Several GPUs or machines"):
- ``--batch-size`` is per process; the global batch is ``world x batch``. Every process draws the
  same global batch order, latents and crops from the same seeded generators and keeps its own
  rows, so N processes with batch B follow the trajectory of one process with batch N x B (up to
  float summation order), and a checkpoint resumes under any world size with the same global
  batch.
- BatchNorm statistics span all processes (SyncBatchNorm; on the CPU, where PyTorch's own does
  not run, ``CrossProcessBatchNorm``), unless ``sync_bn`` is off.
- Rank 0 alone writes checkpoints, metrics, grids and TensorBoard, keeps the EMA generator and
  runs evaluation; every rank reads the newest checkpoint to resume.
- A stop (Ctrl-C, SIGTERM, a time limit) is agreed on by all ranks at a step boundary; a rank that
  dies makes the others fail their next collective within seconds (``PeerLost``), not hang.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn as nn

from brushwork.errors import BrushworkError

# A collective that waits longer than this for a peer gives up (NCCL would otherwise wait 10 min).
COLLECTIVE_TIMEOUT = timedelta(seconds=int(os.environ.get("BRUSHWORK_DIST_TIMEOUT", "120")))


class PeerLost(BrushworkError):
    """Another process of the job died or stopped answering."""


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank, world size and the GPU it owns."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a tensor drawn for the whole global batch [world x B, ...]."""
        if not self.distributed:
            return x
        per = len(x) // self.size
        return x[self.rank * per:(self.rank + 1) * per]


SINGLE = World()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_world(device_name: str) -> tuple[World, torch.device]:
    """Join the job torchrun started (NCCL on GPUs, gloo on CPUs); a single process otherwise.
    Returns this process's World and the device it trains on (cuda:LOCAL_RANK on GPUs)."""
    from brushwork.utils import resolve_device

    if not launched_by_torchrun():
        return SINGLE, resolve_device(device_name)
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise BrushworkError(f"local rank {local} has no GPU (this machine has "
                                 f"{torch.cuda.device_count()}); lower --nproc-per-node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT,
                                **({"device_id": device} if device.type == "cuda" else {}))
    return World(rank, size, local), device


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        _collective(dist.barrier)


def _collective(fn, *args, **kwargs):
    """Run a collective; a dead or silent peer becomes one readable PeerLost."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as exc:
        raise _lost_message(dist.get_rank(), str(exc)) from None


def agree(world: World, *flags: bool) -> tuple[bool, ...]:
    """Each flag True on every rank if any rank says True (e.g. 'stop now'): one collective."""
    if not world.distributed:
        return flags
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=_collective_device())
    _collective(dist.all_reduce, t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def peer_lost(exc: BaseException, world: World) -> PeerLost | None:
    """The readable error for a failed collective (a dead or stopped peer), else None."""
    if not world.distributed:
        return None
    text = str(exc)
    markers = ("gloo", "nccl", "connection", "peer", "timed out", "timeout", "socket", "broken pipe")
    if not (isinstance(exc, dist.DistError) or any(m in text.lower() for m in markers)):
        return None
    return _lost_message(world.rank, text)


def _lost_message(rank: int, text: str) -> PeerLost:
    reason = text.splitlines()[0].rsplit("] ", 1)[-1].strip()[:80]  # without gloo's source path
    return PeerLost(f"rank {rank} lost contact with another training process ({reason}): it died "
                    "or was stopped. The newest checkpoint is kept; run the same command with "
                    "--resume to continue")


def sum_over_ranks(world: World, t: torch.Tensor) -> torch.Tensor:
    """The tensor summed over the ranks (in place; itself in a single process)."""
    if world.distributed:
        _collective(dist.all_reduce, t)
    return t


def mean_over_ranks(world: World, values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the ranks (same keys, same order on every rank)."""
    if not world.distributed or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=_collective_device())
    _collective(dist.all_reduce, t)
    return dict(zip(values, (t / world.size).tolist()))


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---- models -----------------------------------------------------------------------------------
class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) with its gradient: the gradient of a sum over ranks is summed too. The
    backward is itself this function, so it can be differentiated again (R1 through BatchNorm)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _SumOverRanks.apply(grad)


class CrossProcessBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the whole global batch, on any device
    and backend (torch.nn.SyncBatchNorm runs on GPUs only). Same parameters and buffers as
    BatchNorm2d, so checkpoints load into either. Two all-reduces per layer (the mean, then the
    squared deviations from it), differentiable, so gradients see the global statistics too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c, xf = x.shape[1], x.float()
        count = torch.full((1,), x.numel() / c, device=x.device)
        sums = _SumOverRanks.apply(torch.cat([xf.sum((0, 2, 3)), count]))
        n = sums[-1]
        mean = sums[:c] / n
        # two passes, as BatchNorm itself: E[x^2] - E[x]^2 loses digits when |mean| >> std
        var = _SumOverRanks.apply((xf - mean[:, None, None]).square().sum((0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        y = (xf - mean[:, None, None]) * torch.rsqrt(var + self.eps)[:, None, None]
        if self.affine:
            y = y * self.weight[:, None, None] + self.bias[:, None, None]
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module, world: World, device: torch.device, enabled: bool = True,
                   second_order: bool = False) -> nn.Module:
    """BatchNorm layers whose statistics span the processes: torch's SyncBatchNorm on GPUs, else
    CrossProcessBatchNorm, which also runs on CPUs and, unlike SyncBatchNorm, can be
    differentiated twice (``second_order``: a discriminator with an R1 penalty)."""
    if not (world.distributed and enabled):
        return module
    if device.type == "cuda" and not second_order:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_cross_process(module)


def _convert_cross_process(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = CrossProcessBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                        child.track_running_stats).to(next(child.buffers()).device)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            _convert_cross_process(child)
    return module


def ddp(module: nn.Module, world: World, device: torch.device) -> nn.Module:
    """The module wrapped for gradient averaging (itself in a single process). Buffers are not
    broadcast: BatchNorm statistics are already global (or deliberately per rank, sync_bn off)."""
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)


def unreached_parameters(loss: torch.Tensor, params: list[nn.Parameter]) -> list[nn.Parameter]:
    """Those of ``params`` that ``loss.backward()`` would leave without a gradient (a walk over
    the autograd graph, nothing computed)."""
    reached, seen, todo = set(), set(), [loss.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):  # AccumulateGrad: where a leaf's gradient lands
            reached.add(id(node.variable))
        todo.extend(next_node for next_node, _ in node.next_functions)
    return [p for p in params if id(p) not in reached]


def normal_rows(world: World, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Standard-normal noise for this rank's rows of the global batch: every rank draws the whole
    [world x B, ...] from the same generator state and keeps its rows (so the job draws what one
    process with the global batch draws)."""
    return world.rows(torch.randn((shape[0] * world.size, *shape[1:]), device=device))
