"""GAN generators and discriminators for square images of 32..256 px.

Two architecture families, both readable top to bottom:

* ``seed``: the painting-assistant design the project started from (Keras, in the seed article):
  z -> Dense -> 8x8x128 -> transposed convs -> image; D = strided convs -> Flatten -> Dense.
  As published it had no non-linearities and stopped at 32x32 (two 2x upsamplings from 8x8), so
  it could neither reach 64x64 nor learn anything a linear map can't. Corrected here: LeakyReLU
  and BatchNorm after every hidden layer, one more upsampling per doubling of resolution, tanh out.
* ``dcgan``: Radford et al. 2016. ConvTranspose/BN/ReLU generator from a 4x4 seed map; strided
  conv/BN/LeakyReLU discriminator ending in a 4x4 "valid" conv. The ``modern`` preset reuses this
  backbone with spectral norm instead of BatchNorm in D.

Shapes in comments: B batch, Z latent size, R output resolution.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from brushwork.config import GANConfig


def dcgan_channels(width: int, resolution: int, size: int) -> int:
    """Channels of a DCGAN feature map of spatial ``size``: ``width`` at R/2, doubling as the
    maps shrink, capped at 8x width (64 px: 512, 256, 128, 64 channels at 4, 8, 16, 32 px)."""
    return width * min(8, resolution // (2 * size))


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02); BatchNorm scale ~ N(1, 0.02), shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def init_keras_weights(module: nn.Module) -> None:
    """Keras defaults (glorot-uniform weights, zero bias), as the seed design was trained with."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        res, w = cfg.resolution, cfg.g_width
        ch = lambda size: dcgan_channels(w, res, size)  # noqa: E731
        layers = [nn.ConvTranspose2d(cfg.z_dim, ch(4), 4, 1, 0, bias=False),  # [B, ch(4), 4, 4]
                  nn.BatchNorm2d(ch(4)), nn.ReLU(True)]
        size = 4
        while size < res // 2:  # each block doubles the map: 4 -> 8 -> ... -> R/2
            layers += [nn.ConvTranspose2d(ch(size), ch(2 * size), 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch(2 * size)), nn.ReLU(True)]
            size *= 2
        layers += [nn.ConvTranspose2d(ch(size), 3, 4, 2, 1, bias=False), nn.Tanh()]  # [B, 3, R, R]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # z [B, Z] -> image [B, 3, R, R] in [-1, 1]
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        res, w = cfg.resolution, cfg.d_width
        ch = lambda size: dcgan_channels(w, res, size)  # noqa: E731
        sn = spectral_norm if cfg.spectral_norm else (lambda m: m)
        bias = not cfg.d_batchnorm  # BatchNorm has its own shift; otherwise convs need a bias
        layers = [sn(nn.Conv2d(3, ch(res // 2), 4, 2, 1, bias=bias)), nn.LeakyReLU(0.2, True)]
        size = res // 2
        while size > 4:  # [B, ch(s), s, s] -> [B, ch(s/2), s/2, s/2]
            layers.append(sn(nn.Conv2d(ch(size), ch(size // 2), 4, 2, 1, bias=bias)))
            if cfg.d_batchnorm:
                layers.append(nn.BatchNorm2d(ch(size // 2)))
            layers.append(nn.LeakyReLU(0.2, True))
            size //= 2
        layers.append(sn(nn.Conv2d(ch(4), 1, 4, 1, 0, bias=bias)))  # [B, 1, 1, 1]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, 3, R, R] -> logits [B]
        return self.net(x).flatten()


class SeedGenerator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        w = cfg.g_width  # 128 in the seed design
        self.dense = nn.Linear(cfg.z_dim, 8 * 8 * w)  # [B, Z] -> [B, 8*8*w]
        self.width = w
        act = lambda c: [nn.BatchNorm2d(c), nn.LeakyReLU(0.2, True)]  # noqa: E731
        # Seed: ConvT(128, 5, stride 2) -> Conv(128, 5) at 16x16, as published.
        layers = [nn.BatchNorm2d(w), nn.LeakyReLU(0.2, True),
                  nn.ConvTranspose2d(w, w, 5, 2, 2, output_padding=1), *act(w),
                  nn.Conv2d(w, w, 5, 1, 2), *act(w)]
        size, c = 16, w
        while size < cfg.resolution // 2:  # the missing upsamplings: 16 -> ... -> R/2
            layers += [nn.ConvTranspose2d(c, max(c // 2, 32), 5, 2, 2, output_padding=1),
                       *act(max(c // 2, 32))]
            size, c = size * 2, max(c // 2, 32)
        layers += [nn.ConvTranspose2d(c, 3, 5, 2, 2, output_padding=1), nn.Tanh()]  # [B, 3, R, R]
        self.net = nn.Sequential(*layers)
        self.apply(init_keras_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.dense(z).view(-1, self.width, 8, 8))


class SeedDiscriminator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        w = cfg.d_width  # 64 in the seed design
        lrelu = lambda: nn.LeakyReLU(0.2, True)  # noqa: E731
        self.features = nn.Sequential(  # [B, 3, R, R] -> [B, 8w, R/4, R/4]
            nn.Conv2d(3, w, 3, 2, 1), lrelu(),
            nn.Conv2d(w, 2 * w, 3, 1, 1), lrelu(),
            nn.Conv2d(2 * w, 4 * w, 3, 1, 1), lrelu(),
            nn.Conv2d(4 * w, 8 * w, 3, 2, 1), lrelu(),
        )
        self.dense = nn.Linear(8 * w * (cfg.resolution // 4) ** 2, 1)
        self.apply(init_keras_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The seed's final sigmoid is folded into the loss (BCE with logits) for numerical safety.
        return self.dense(self.features(x).flatten(1)).flatten()


def build_gan(cfg: GANConfig) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) for a validated config."""
    cfg.validate()
    if cfg.architecture == "seed":
        return SeedGenerator(cfg), SeedDiscriminator(cfg)
    return DCGANGenerator(cfg), DCGANDiscriminator(cfg)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
