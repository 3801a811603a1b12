"""Exponential moving average of generator weights (Karras et al.; Yazici et al. 2019).

Sampling from the EMA generator instead of the raw one removes much of the step-to-step jitter
of adversarial training. The decay is set as a half-life in *images*, so it means the same thing
at any batch size: after ``halflife_kimg`` thousand images, an old weight's influence has halved.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class EMA:
    def __init__(self, model: nn.Module, halflife_kimg: float, rampup: float = 0.05):
        self.halflife_kimg, self.rampup = halflife_kimg, rampup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.weight = torch.zeros((), device=next(self.model.parameters()).device)  # 1 - beta

    def decay(self, images_seen: int, batch_size: int) -> float:
        """Per-step decay beta; early in training the half-life ramps up with images seen."""
        halflife = self.halflife_kimg * 1000
        if self.rampup > 0:
            halflife = min(halflife, images_seen * self.rampup)
        return 0.5 ** (batch_size / max(halflife, 1e-8))

    def set_progress(self, images_seen: int, batch_size: int) -> None:
        """Store this step's weight 1 - beta on the model's device (one small copy, no sync)."""
        self.weight.fill_(1.0 - self.decay(images_seen, batch_size))

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """ema += weight x (model - ema). Device work only, with the weight read from a tensor, so
        a captured CUDA graph replays it with each step's own decay."""
        ema_params = list(self.model.parameters())
        step = torch._foreach_sub([p.detach() for p in model.parameters()], ema_params)
        torch._foreach_mul_(step, self.weight)
        torch._foreach_add_(ema_params, step)
        for ema_buf, buf in zip(self.model.buffers(), model.buffers()):
            ema_buf.copy_(buf)  # BatchNorm running statistics are copied, not averaged
