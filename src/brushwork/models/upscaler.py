"""A small super-resolution network (EDSR-like: residual blocks without normalisation, Lim et al.
2017; sub-pixel upsampling, Shi et al. 2016) that predicts the detail to add to a bicubic
enlargement. Its last convolution starts at zero, so an untrained network is bicubic and
training only ever adds what the collection's works teach it.

Shapes: B batch, h x w input, s scale (2 or 4), W width. Images in [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from brushwork.config import UpscalerConfig


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2, True),
                                  nn.Conv2d(width, width, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upscaler(nn.Module):
    def __init__(self, cfg: UpscalerConfig):
        super().__init__()
        self.scale = cfg.scale
        w = cfg.width
        self.head = nn.Conv2d(3, w, 3, padding=1)  # [B, 3, h, w] -> [B, W, h, w]
        self.body = nn.Sequential(*[ResidualBlock(w) for _ in range(cfg.blocks)])
        up = []
        for _ in range(int(math.log2(cfg.scale))):  # each: [B, W, H, W'] -> [B, W, 2H, 2W']
            up += [nn.Conv2d(w, 4 * w, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.2, True)]
        self.up = nn.Sequential(*up)
        self.tail = nn.Conv2d(w, 3, 3, padding=1)  # [B, W, sh, sw] -> [B, 3, sh, sw]
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        # input pixels each output pixel depends on, either way: head 1, 2 per block, the first
        # upsampling conv 1, bicubic 2 (later convolutions work at the finer grid: under 1 each)
        self.reach = 1 + 2 * cfg.blocks + 1 + 2 + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        features = self.head(x)
        return base + self.tail(self.up(self.body(features)))
