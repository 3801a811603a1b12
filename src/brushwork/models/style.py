"""What style transfer is made of: the VGG19 style encoder, feature statistics and AdaIN, and
the AdaIN decoder (Huang & Belongie 2017). Both the AdaIN training task and the style transfer
engines stand on this module.

The decoder maps VGG19 relu4_1 features to an image, mirroring the encoder: 3x3 convs with reflection padding and ReLU, nearest-neighbour upsampling
instead of pooling. ``width`` = channels at full resolution (64 in the paper: 512 -> 256 -> 128
-> 64 -> 3). Input [B, 512, H/8, W/8]; output [B, 3, H, W] in the data's [-1, 1] scale.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from brushwork.models.vgg import VGGFeatures

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"


def load_style_encoder(weights: str, device, reflection_padding: bool = False,
                       layers=STYLE_LAYERS + (CONTENT_LAYER,), channels_last: bool = True) -> VGGFeatures:
    """VGG19 features for style transfer; ``weights`` is "imagenet", "random" or a file path."""
    encoder = VGGFeatures(tuple(layers), weights=weights, channels_last=channels_last).to(device)
    if reflection_padding:  # fewer border artefacts than zero padding
        for module in encoder.features:
            if isinstance(module, torch.nn.Conv2d):
                module.padding_mode = "reflect"
    return encoder


def mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over space: each [B, C, 1, 1]."""
    flat = features.flatten(2)
    return flat.mean(-1)[..., None, None], (flat.var(-1, unbiased=False) + eps).sqrt()[..., None, None]


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Adaptive instance normalisation: content features with the style's channel mean and std."""
    c_mean, c_std = mean_std(content)
    s_mean, s_std = mean_std(style)
    return (content - c_mean) / c_std * s_std + s_mean


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
