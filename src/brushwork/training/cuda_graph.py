"""Whole training steps replayed as CUDA graphs (``--set cuda_graph=true``).

At batch 128 a DCGAN-64 step on a large GPU is bound by kernel launches, not arithmetic: a few
hundred small kernels, each launched from Python. A CUDA graph records every kernel of one step
(D update, lazy R1, G update, EMA) once and replays them with one launch. This needs shapes and
addresses that do not change: the real batch is copied into a fixed input tensor, the optimisers
are capturable (their step counts live on the device), and whatever depends on the step number is
settled on the host before the replay (``GANTask.train_step``) or read from device tensors (the
EMA weight, ADA's p). Random numbers (latents, DiffAugment) come from the CUDA generator, which
graphs advance on every replay, so each step draws new ones.

Two graphs at most: steps with and without the R1 update. The first ``WARMUP_STEPS`` steps run
eagerly on a side stream (optimiser state, cuDNN autotuning and torch.compile happen there), as
are steps of a conditioning ramp-in (its strength is a host number).
"""

from __future__ import annotations

import torch

WARMUP_STEPS = 3  # eager steps before the first capture


def graph_blocker(task) -> str | None:
    """Why this task's step cannot be captured, or None when it can."""
    if task.device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if task.world.distributed:
        return "CUDA graphs run in a single process for now (not under torchrun)"
    return None


class StepGraphs:
    """Runs ``task.update(real, labels, r1_due)``: eagerly at first, then as captured graphs."""

    def __init__(self, task, warmup: int = WARMUP_STEPS):
        self.task, self.warmup = task, warmup
        self.graphs: dict[bool, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor]]] = {}
        self.static_real: torch.Tensor | None = None
        self.static_labels: torch.Tensor | None = None
        self.eager_steps = 0
        self.side = torch.cuda.Stream(task.device)  # where eager warm-up steps run

    def run(self, real: torch.Tensor, labels: torch.Tensor | None, r1_due: bool) -> dict[str, torch.Tensor]:
        if self.eager_steps < self.warmup or self.task.cond_strength < 1.0:
            self.eager_steps += 1
            return self._eager(real, labels, r1_due)
        if r1_due not in self.graphs:
            self._capture(real, labels, r1_due)
        self.static_real.copy_(real)
        if labels is not None:
            self.static_labels.copy_(labels)
        graph, stats = self.graphs[r1_due]
        graph.replay()
        # The next replay overwrites these tensors; the Trainer adds them up before it, on the
        # same stream.
        return dict(stats)

    def _eager(self, real, labels, r1_due) -> dict[str, torch.Tensor]:
        """One eager step on a side stream (what capture expects warm-up to look like)."""
        self.side.wait_stream(torch.cuda.current_stream(self.task.device))
        with torch.cuda.stream(self.side):
            stats = self.task.update(real, labels, r1_due)
        torch.cuda.current_stream(self.task.device).wait_stream(self.side)
        return stats

    def _capture(self, real, labels, r1_due) -> None:
        """Record one step (kernels are recorded, not run: ``run`` replays it right after)."""
        if self.static_real is None:
            self.static_real = real.clone()  # same memory format (channels_last)
            self.static_labels = None if labels is None else labels.clone()
        torch.cuda.synchronize(self.task.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            stats = self.task.update(self.static_real, self.static_labels, r1_due)
        self.graphs[r1_due] = (graph, stats)
