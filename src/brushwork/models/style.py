"""AdaIN decoder (Huang & Belongie 2017): VGG19 relu4_1 features -> image.

Mirrors the encoder: 3x3 convs with reflection padding and ReLU, nearest-neighbour upsampling
instead of pooling. ``width`` = channels at full resolution (64 in the paper: 512 -> 256 -> 128
-> 64 -> 3). Input [B, 512, H/8, W/8]; output [B, 3, H, W] in the data's [-1, 1] scale.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _conv(c_in: int, c_out: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3)]
    return layers + [nn.ReLU(True)] if relu else layers


class AdaINDecoder(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        w4, w2, w1 = 4 * width, 2 * width, width
        up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
        self.net = nn.Sequential(
            *_conv(512, w4), up(),                                               # H/8 -> H/4
            *_conv(w4, w4), *_conv(w4, w4), *_conv(w4, w4), *_conv(w4, w2), up(),  # -> H/2
            *_conv(w2, w2), *_conv(w2, w1), up(),                                # -> H
            *_conv(w1, w1), *_conv(w1, 3, relu=False),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.net(t)
