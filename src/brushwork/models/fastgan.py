"""FastGAN (Liu et al., ICLR 2021): a GAN that trains on a hundred images at up to 1024 px.

Generator: a 4x4 map from z, then one 2x upsampling block per doubling (nearest upsample, 3x3
conv, BatchNorm, GLU; the "comp" blocks at 8, 32, 128 and 512 px add a second conv and noise
injection). Skip-layer excitation (SLE) lets a small map gate the channels of a map four doublings
larger (4->64, 8->128, 16->256, 32->512): global layout steers fine texture at little cost. Two
outputs: the full-size image and, above 128 px, a 128 px image that the discriminator also judges.

Discriminator: a stem to at most 256 px, then down blocks (a strided-conv path and an
average-pool path, averaged) to 8x8, SLE inside (256->16, 128->8), patch logits [B, 1, 5, 5];
above 128 px a second, small branch judges the 128 px image. It is regularised by being asked to
*reconstruct* real images from its 8x8 features with small decoders: the whole image, and a
random quadrant of the 16x16 map against the same quadrant of the image (a self-supervised
auto-encoding task that keeps D's features descriptive on small data).

Channel counts depend on the map's size only (as in the paper's code), scaled by the width:
``fastgan_channels``. Shapes: B batch, Z latent, R resolution, T = min(R, 128).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from brushwork.config import base_map, canvas_of

# channels per map size, in units of width/8 (paper: ngf = ndf = 64 -> 1024 channels at 4x4)
_G_UNITS = {4: 128, 8: 64, 16: 32, 32: 16, 64: 16, 128: 8, 256: 4, 512: 2, 1024: 1}
_D_UNITS = {4: 128, 8: 128, 16: 64, 32: 32, 64: 16, 128: 8, 256: 4, 512: 2, 1024: 1}
COMP_SIZES = (8, 32, 128, 512)  # generator blocks with two convs and noise injection
G_SLE = {64: 4, 128: 8, 256: 16, 512: 32}  # gated map size -> the map that gates it
D_SLE = {16: 256, 8: 128}
SMALL = 128  # the second output / second D branch


def fastgan_channels(width: int, size: int, units: dict[int, int] = _G_UNITS) -> int:
    return max(4, width * units[size] // 8)


def init_weights(module: nn.Module) -> None:
    """The paper's init: convs ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02); spectral-normalised
    convs are initialised through their stored (un-normalised) weight."""
    from torch.nn.utils import parametrize

    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        weight = (module.parametrizations.weight.original if parametrize.is_parametrized(module, "weight")
                  else module.weight)
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class NoiseInjection(nn.Module):
    """x + w * N(0, 1) per pixel, one learned w (0 at start): stochastic detail while training.
    In eval mode (all sampling) the noise is one fixed map per layer, shared by every image, so a
    seed always makes the same image (StyleGAN's "const" noise)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        # (rank, world size): under torchrun every process draws the noise of the whole global
        # batch from the shared generator and keeps its own rows (as for the latents), so ranks
        # do not repeat each other's noise and N x B trains like 1 x N*B.
        self.share = (0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            rank, size = self.share
            b = x.shape[0]
            noise = torch.randn(b * size, 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
            noise = noise[rank * b:(rank + 1) * b]
        else:
            g = torch.Generator().manual_seed(x.shape[2])  # the same map for this size, anywhere
            noise = torch.randn(1, 1, x.shape[2], x.shape[3], generator=g).to(x.device, x.dtype)
        return x + self.weight.to(x.dtype) * noise


def share_noise(module: nn.Module, rank: int, world_size: int) -> None:
    """Tell every NoiseInjection which rows of the global batch this process trains on."""
    for m in module.modules():
        if isinstance(m, NoiseInjection):
            m.share = (rank, world_size)


def _up_block(c_in: int, c_out: int, comp: bool) -> nn.Sequential:
    """[B, c_in, S, S] -> [B, c_out, 2S, 2S]; GLU halves the conv's 2 x c_out channels."""
    layers = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, 2 * c_out, 3, 1, 1, bias=False)]
    layers += [NoiseInjection()] if comp else []
    layers += [nn.BatchNorm2d(2 * c_out), nn.GLU(dim=1)]
    if comp:
        layers += [nn.Conv2d(c_out, 2 * c_out, 3, 1, 1, bias=False), NoiseInjection(),
                   nn.BatchNorm2d(2 * c_out), nn.GLU(dim=1)]
    return nn.Sequential(*layers)


class SkipExcitation(nn.Module):
    """SLE: channel gates [B, C_big, 1, 1] for a big map, from a small map pooled to 4x4."""

    def __init__(self, c_small: int, c_big: int, sn=lambda m: m):
        super().__init__()
        self.net = nn.Sequential(nn.AdaptiveAvgPool2d(4), sn(nn.Conv2d(c_small, c_big, 4, 1, 0, bias=False)),
                                 nn.LeakyReLU(0.1), sn(nn.Conv2d(c_big, c_big, 1, 1, 0, bias=False)),
                                 nn.Sigmoid())

    def forward(self, small: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
        return big * self.net(small)


class FastGANGenerator(nn.Module):
    def __init__(self, cfg, in_dim: int | None = None):
        super().__init__()
        self.resolution, w = min(canvas_of(cfg.resolution, cfg.height)), cfg.g_width  # sizes: the shorter side
        ch = lambda size: fastgan_channels(w, size)  # noqa: E731
        seed_map = base_map(cfg.resolution, cfg.height)  # 4 x 4 for squares
        self.init = nn.Sequential(nn.ConvTranspose2d(in_dim or cfg.z_dim, 2 * ch(4), seed_map, 1, 0, bias=False),
                                  nn.BatchNorm2d(2 * ch(4)), nn.GLU(dim=1))  # [B, ch(4), 4, 4] (h0 x w0)
        self.sizes = [8 * 2**i for i in range((self.resolution // 8).bit_length())]  # 8 .. R
        self.blocks = nn.ModuleDict({str(s): _up_block(ch(s // 2), ch(s), s in COMP_SIZES) for s in self.sizes})
        self.sle = nn.ModuleDict({str(big): SkipExcitation(ch(small), ch(big))
                                  for big, small in G_SLE.items() if big <= self.resolution})
        self.to_big = nn.Conv2d(ch(self.resolution), 3, 3, 1, 1)
        self.to_small = nn.Conv2d(ch(SMALL), 3, 1, 1, 0) if self.resolution > SMALL else None
        self.apply(init_weights)

    def forward(self, z: torch.Tensor, both: bool = False):
        """Images [B, 3, R, R] in [-1, 1] from z [B, Z]; ``both``: (that, the 128 px image or None)."""
        maps = {4: self.init(z[:, :, None, None])}
        for s in self.sizes:
            x = self.blocks[str(s)](maps[s // 2])
            maps[s] = self.sle[str(s)](maps[G_SLE[s]], x) if str(s) in self.sle else x
        big = torch.tanh(self.to_big(maps[self.resolution]))
        if not both:
            return big
        return big, (torch.tanh(self.to_small(maps[SMALL])) if self.to_small is not None else None)


class DownBlock(nn.Module):
    """[B, c_in, S, S] -> [B, c_out, S/2, S/2]: a strided-conv path and an average-pool path,
    averaged (the paper's DownBlockComp)."""

    def __init__(self, c_in: int, c_out: int, sn):
        super().__init__()
        self.main = nn.Sequential(sn(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)), nn.BatchNorm2d(c_out),
                                  nn.LeakyReLU(0.2), sn(nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)),
                                  nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))
        self.direct = nn.Sequential(nn.AvgPool2d(2), sn(nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False)),
                                    nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


class Decoder(nn.Module):
    """D's reconstruction head: an 8x8 feature map [B, C, 8, 8] -> image [B, 3, T, T]."""

    def __init__(self, c_in: int, width: int, out_size: int):
        super().__init__()
        layers, c, s = [nn.AdaptiveAvgPool2d(8)], c_in, 8
        while s < out_size:
            c_next = fastgan_channels(width, 2 * s, _D_UNITS)
            layers.append(_up_block(c, c_next, comp=False))
            c, s = c_next, 2 * s
        layers += [nn.Conv2d(c, 3, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _stem(resolution: int, c_out: int, width: int, sn) -> tuple[nn.Sequential, int]:
    """Image [B, 3, R, R] -> [B, c, S, S] with S = min(R, 256): strided convs above 256 px."""
    layers, c, s = [], 3, resolution
    while s > 256:
        c_next = fastgan_channels(width, s // 2, _D_UNITS)
        layers += [sn(nn.Conv2d(c, c_next, 4, 2, 1, bias=False))]
        layers += [nn.BatchNorm2d(c_next)] if c != 3 else []
        layers += [nn.LeakyReLU(0.2)]
        c, s = c_next, s // 2
    if not layers:
        layers = [sn(nn.Conv2d(3, c_out, 3, 1, 1, bias=False)), nn.LeakyReLU(0.2)]
        c = c_out
    return nn.Sequential(*layers), c


def quadrant(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Quadrant q (a 1-element tensor: 0 top left, 1 top right, 2 bottom left, 3 bottom right) of
    maps [B, C, 2S, 2S] -> [B, C, S, S]."""
    b, c, h, w = x.shape
    tiles = x.reshape(b, c, 2, h // 2, 2, w // 2)
    rows = tiles.index_select(2, torch.div(q, 2, rounding_mode="floor"))
    return rows.index_select(4, q % 2).reshape(b, c, h // 2, w // 2)


class FastGANDiscriminator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        sn = spectral_norm if cfg.spectral_norm else (lambda m: m)
        w, r = cfg.d_width, min(canvas_of(cfg.resolution, cfg.height))  # sizes: the shorter side
        ch = lambda size: fastgan_channels(w, size, _D_UNITS)  # noqa: E731
        self.resolution, self.top = r, min(r, 256)
        self.recon_size = min(r, SMALL)
        self.stem, c = _stem(r, ch(self.top), w, sn)
        self.sizes = [self.top // 2**i for i in range(1, (self.top // 8).bit_length())]  # ... 16, 8
        downs, c_prev = {}, c
        for s in self.sizes:
            downs[str(s)] = DownBlock(c_prev, ch(s), sn)
            c_prev = ch(s)
        self.down = nn.ModuleDict(downs)
        channels = {self.top: c, **{s: ch(s) for s in self.sizes}}
        self.sle = nn.ModuleDict({str(t): SkipExcitation(channels[src], ch(t), sn)
                                  for t, src in D_SLE.items() if src in channels and t in channels})
        self.logits = nn.Sequential(sn(nn.Conv2d(ch(8), ch(8), 1, 1, 0, bias=False)), nn.BatchNorm2d(ch(8)),
                                    nn.LeakyReLU(0.2), sn(nn.Conv2d(ch(8), 1, 4, 1, 0)))  # [B, 1, 5, 5]
        self.small = None
        if r > SMALL:  # a second judge for the 128 px image
            self.small = nn.Sequential(sn(nn.Conv2d(3, ch(64), 4, 2, 1, bias=False)), nn.LeakyReLU(0.2),
                                       DownBlock(ch(64), ch(32), sn), DownBlock(ch(32), ch(16), sn),
                                       DownBlock(ch(16), ch(8), sn))  # [B, ch(8), 8, 8]
            self.small_logits = sn(nn.Conv2d(ch(8), 1, 4, 1, 0))
        self.decode_small = self.decode_whole = self.decode_part = None
        if cfg.d_recon != "off":  # the decoders (none without the reconstruction loss)
            self.decode_small = Decoder(ch(8), w, self.recon_size) if self.small is not None else None
            self.decode_whole = Decoder(ch(8), w, self.recon_size)
            self.decode_part = Decoder(ch(16), w, self.recon_size) if 16 in channels else None
        self.apply(init_weights)

    def forward(self, images, reconstruct: bool = False):
        """Patch logits [B, N] of images [B, 3, R, R] (or (images, their 128 px versions)).
        ``reconstruct`` (reals): also [(decoded, target), ...] image pairs [B, 3, T, T]."""
        big, small = images if isinstance(images, tuple) else (images, None)
        maps = {self.top: self.stem(big)}
        previous = self.top
        for s in self.sizes:
            x = self.down[str(s)](maps[previous])
            maps[s] = self.sle[str(s)](maps[D_SLE[s]], x) if str(s) in self.sle else x
            previous = s
        logits = [self.logits(maps[8]).flatten(1)]
        small_map = None
        if self.small is not None:
            if small is None:  # the shorter side at SMALL px
                size = [round(side * SMALL / self.resolution) for side in big.shape[-2:]]
                small = F.interpolate(big, size=size, mode="bilinear", align_corners=False, antialias=True)
            small_map = self.small(small)
            logits.append(self.small_logits(small_map).flatten(1))
        logits = torch.cat(logits, 1)
        if not reconstruct:
            return logits
        return logits, self._reconstructions(big, maps, small_map, small)

    def _reconstructions(self, big, maps, small_map, small) -> list[tuple[torch.Tensor, torch.Tensor]]:
        t = self.recon_size
        # targets at T x T (a canvas that is not square squeezed to it, as the decoders' 8 x 8 pool is)
        resize = lambda x: x if tuple(x.shape[-2:]) == (t, t) else F.interpolate(  # noqa: E731
            x, size=t, mode="bilinear", align_corners=False, antialias=True)
        pairs = [(self.decode_whole(maps[8]), resize(big))]
        if self.decode_part is not None:
            # One random quadrant for the batch, as in the paper, drawn and applied on the device
            # (no host sync, so a CUDA graph can replay the step).
            q = torch.randint(4, (1,), device=big.device)
            pairs.append((self.decode_part(quadrant(maps[16], q)), resize(quadrant(big, q))))
        if self.decode_small is not None:
            pairs.append((self.decode_small(small_map), resize(small)))
        return pairs
