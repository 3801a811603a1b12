"""GAN generators and discriminators for images of 32..256 px (FastGAN: models/fastgan.py).

Two architecture families, both readable top to bottom:

* ``seed``: the painting-assistant design the project started from (Keras, in the seed article):
  z -> Dense -> 8x8x128 -> transposed convs -> image; D = strided convs -> Flatten -> Dense.
  As published it had no non-linearities and stopped at 32x32 (two 2x upsamplings from 8x8), so
  it could neither reach 64x64 nor learn anything a linear map can't. Corrected here: LeakyReLU
  and BatchNorm after every hidden layer, one more upsampling per doubling of resolution, tanh out.
* ``dcgan``: Radford et al. 2016. ConvTranspose/BN/ReLU generator from a 4x4 seed map; strided
  conv/BN/LeakyReLU discriminator ending in a 4x4 "valid" conv. The ``modern`` preset reuses this
  backbone with spectral norm instead of BatchNorm in D. Not square (``config.check_canvas``):
  the seed map and D's last conv are 4 x k (64x80: 5 rows of 4), everything else the same.

Styles (first-level folders of the data) wrap either backbone: ``ConditionalGenerator`` joins a
style embedding to z; ``StyleDiscriminator`` adds the projection term (conditional runs) or a
K-way style head (creative runs, CAN) on the backbone's last feature map.

Shapes in comments: B batch, Z latent size, R output resolution, K styles, E style embedding.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from brushwork.config import GANConfig, base_map, canvas_of


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


# A nearest-2x upsample followed by a 3x3 conv (padding 1) is exactly a 4x4 stride-2 transposed
# conv (padding 1) whose taps are sums of the 3x3 taps, per axis: tap t of the transposed kernel
# = RESIZE_TAPS[t] . (k[-1], k[0], k[1]). So a transposed conv can *start* as a resize conv.
RESIZE_TAPS = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def init_as_resize(module: nn.Module, std: float = 0.02) -> None:
    """Initialise every 4x4 stride-2 transposed conv as a resize conv with N(0, std) 3x3 taps:
    no checkerboard at the start, the full transposed conv's freedom afterwards."""
    for m in module.modules():
        if isinstance(m, nn.ConvTranspose2d) and m.kernel_size == (4, 4) and m.stride == (2, 2):
            k = torch.randn(*m.weight.shape[:2], 3, 3) * std  # [in, out, 3, 3]
            with torch.no_grad():
                m.weight.copy_(torch.einsum("ya,ioab,xb->ioyx", RESIZE_TAPS, k, RESIZE_TAPS))


class GrowingUpsample(nn.Module):
    """A 2x upsampling layer that trains as a resize conv first and grows into a transposed conv:
    its 4x4 stride-2 kernel is the resize-conv kernel of 3x3 taps ``v`` plus ``gate`` x a free
    4x4 kernel ``u`` (zero at the start). While the gate is 0 the layer *is* a resize conv (same
    gradients for ``v``, so the same early training); the training task opens the gate from 0 to
    1 (``g_grow_kimg``), handing the transposed conv's freedom over gradually."""

    def __init__(self, c_in: int, c_out: int, std: float = 0.02):
        super().__init__()
        self.v = nn.Parameter(torch.randn(c_in, c_out, 3, 3) * std)  # [in, out, 3, 3]
        self.u = nn.Parameter(torch.zeros(c_in, c_out, 4, 4))  # [in, out, 4, 4]
        self.register_buffer("gate", torch.zeros(()))
        self.register_buffer("taps", RESIZE_TAPS.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in, S, S] -> [B, out, 2S, 2S]
        kernel = torch.einsum("ya,ioab,xb->ioyx", self.taps, self.v, self.taps) + self.gate * self.u
        return F.conv_transpose2d(x, kernel.to(x.dtype), stride=2, padding=1)


def set_growth(module: nn.Module, gate: float) -> None:
    """Set every GrowingUpsample's gate (0: resize convs, 1: full transposed convs)."""
    for m in module.modules():
        if isinstance(m, GrowingUpsample):
            m.gate.fill_(gate)


def _upsample(c_in: int, c_out: int, how: str) -> nn.Module:
    """A 2x upsampling layer: DCGAN's 4x4 stride-2 transposed conv, "resize" (nearest 2x then
    a 3x3 conv; Odena et al. 2016), which cannot make the checkerboard patterns transposed convs
    paint while their kernels are young, or "grow" (a resize conv becoming a transposed conv)."""
    if how == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False))
    if how == "grow":
        return GrowingUpsample(c_in, c_out)
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)


class DCGANGenerator(nn.Module):
    def __init__(self, cfg: GANConfig, in_dim: int | None = None):
        super().__init__()
        res, w = min(canvas_of(cfg.resolution, cfg.height)), cfg.g_width  # sizes count along the shorter side
        ch = lambda size: dcgan_channels(w, res, size)  # noqa: E731
        layers = [nn.ConvTranspose2d(in_dim or cfg.z_dim, ch(4), base_map(cfg.resolution, cfg.height), 1, 0,
                                     bias=False),  # [B, ch(4), 4, 4] (not square: [B, ch(4), h0, w0])
                  nn.BatchNorm2d(ch(4)), nn.ReLU(True)]
        size = 4
        while size < res // 2:  # each block doubles the map: 4 -> 8 -> ... -> R/2
            layers += [_upsample(ch(size), ch(2 * size), cfg.g_upsample),
                       nn.BatchNorm2d(ch(2 * size)), nn.ReLU(True)]
            size *= 2
        layers += [_upsample(ch(size), 3, cfg.g_upsample), nn.Tanh()]  # [B, 3, R, R]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)
        if cfg.g_upsample == "transpose-as-resize":
            init_as_resize(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # z [B, Z] -> image [B, 3, R, R] in [-1, 1]
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        res, w = min(canvas_of(cfg.resolution, cfg.height)), cfg.d_width  # sizes count along the shorter side
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
        layers.append(sn(nn.Conv2d(ch(4), 1, base_map(cfg.resolution, cfg.height), 1, 0, bias=bias)))  # [B, 1, 1, 1]
        self.net = nn.Sequential(*layers)
        self.feature_channels = ch(4)
        self.apply(init_dcgan_weights)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # x [B, 3, R, R] -> h [B, ch(4), 4, 4]
        return self.net[:-1](x)

    def head(self, h: torch.Tensor) -> torch.Tensor:  # h -> logits [B]
        return self.net[-1](h).flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, 3, R, R] -> logits [B]
        return self.net(x).flatten()


class SeedGenerator(nn.Module):
    def __init__(self, cfg: GANConfig, in_dim: int | None = None):
        super().__init__()
        w = cfg.g_width  # 128 in the seed design
        self.dense = nn.Linear(in_dim or cfg.z_dim, 8 * 8 * w)  # [B, Z] -> [B, 8*8*w]
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
        self.feature_channels = 8 * w
        self.apply(init_keras_weights)

    def head(self, h: torch.Tensor) -> torch.Tensor:  # h [B, 8w, R/4, R/4] -> logits [B]
        return self.dense(h.flatten(1)).flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The seed's final sigmoid is folded into the loss (BCE with logits) for numerical safety.
        return self.head(self.features(x))


class ConditionalGenerator(nn.Module):
    """One generator for all styles: the style's embedding is joined to z (as StyleGAN2-ADA feeds
    its label embedding in beside z).

    Chosen over BigGAN's class-conditional BatchNorm because it works unchanged on both backbones
    (the seed's dense layer, DCGAN's first transposed conv), and a mix of styles is then exactly a
    weighted sum of their embeddings fed in the same way; conditional BatchNorm would need gains in
    every layer, and in eval mode its running statistics are shared by all styles anyway.
    """

    def __init__(self, cfg: GANConfig, backbone: type[nn.Module]):
        super().__init__()
        self.embed = nn.Linear(cfg.num_styles, cfg.style_dim, bias=False)  # [B, K] weights -> [B, E]
        nn.init.normal_(self.embed.weight)
        self.backbone = backbone(cfg, in_dim=cfg.z_dim + cfg.style_dim)

    def forward(self, z: torch.Tensor, style: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """z [B, Z], style [B, K] weights summing to 1 (one-hot for one style) -> [B, 3, R, R].
        ``strength`` < 1 fades the style out (during a conditioning ramp-in; 0 = unconditional)."""
        e = self.embed(style)
        e = e * torch.rsqrt(e.square().mean(1, keepdim=True) + 1e-8)  # unit 2nd moment, like z
        return self.backbone(torch.cat([z, strength * e], dim=1))


class StyleDiscriminator(nn.Module):
    """A backbone discriminator that knows the styles, returning (logits [B], style logits [B, K]
    or None).

    * conditional: the projection discriminator (Miyato & Koyama 2018),
      ``logit = head(h) + <embed(y), sum_pool(h)>`` with y the style weights [B, K];
    * creative (CAN): a K-way style classifier on the same pooled features, sharing the trunk.
    """

    def __init__(self, cfg: GANConfig, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        c = backbone.feature_channels
        sn = spectral_norm if cfg.spectral_norm else (lambda m: m)
        self.project = sn(nn.Linear(cfg.num_styles, c, bias=False)) if cfg.conditional else None
        self.style_head = nn.Linear(c, cfg.num_styles) if cfg.creative else None

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None, strength: float = 1.0):
        h = self.backbone.features(x)  # [B, C, s, s]
        logits = self.backbone.head(h)  # [B]
        pooled = h.sum(dim=(2, 3))  # [B, C]
        if self.project is not None and strength:
            logits = logits + strength * (self.project(style.to(pooled.dtype)) * pooled).sum(dim=1)
        return logits, self.style_head(pooled) if self.style_head is not None else None


def build_gan(cfg: GANConfig) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) for a validated config."""
    cfg.validate()
    if cfg.styled and cfg.num_styles < 2:
        raise ValueError(f"a conditional or creative GAN needs num_styles >= 2, got {cfg.num_styles}")
    if cfg.architecture == "fastgan":
        from brushwork.models.fastgan import FastGANDiscriminator, FastGANGenerator

        return FastGANGenerator(cfg), FastGANDiscriminator(cfg)
    G_cls, D_cls = (SeedGenerator, SeedDiscriminator) if cfg.architecture == "seed" else \
        (DCGANGenerator, DCGANDiscriminator)
    G = ConditionalGenerator(cfg, G_cls) if cfg.conditional else G_cls(cfg)
    D = StyleDiscriminator(cfg, D_cls(cfg)) if cfg.styled else D_cls(cfg)
    return G, D


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
