"""The first stage of latent diffusion: a KL-regularised convolutional autoencoder (Rombach et al.
2022, "KL-f4" / "KL-f8") and the patch discriminator that sharpens its reconstructions.

encoder: conv in, then per level ``blocks`` residual blocks and a stride-2 conv (one level per
halving), residual blocks at the latent size, a norm (per pixel, or LDM's GroupNorm), SiLU, and
a 3x3 conv to 2C maps: the posterior's mean and log-variance, each [B, C, H/f, W/f].
decoder: the mirror image, nearest-neighbour 2x + 3x3 conv instead of the strided convs.
No attention: at f=4 the latents are 32 px, and convolutions alone reach the LDM paper's
reconstruction quality for f=4 (its KL-f4 has none either).

Shapes: B batch, C latent channels, f the factor, H x W the canvas (any size the factor divides).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn.utils import spectral_norm

from brushwork.config import AutoencoderConfig
from brushwork.models.samplers import in_fixed_batches

LOGVAR_RANGE = (-30.0, 20.0)  # the posterior's log-variance is clamped here, as LDM does


class ChannelNorm(nn.LayerNorm):
    """[B, C, H, W] -> the same, each pixel's C values normalised (and scaled per channel) on their
    own: LayerNorm over channels, as ConvNeXt's. No statistic spans the image (see
    AutoencoderConfig.norm for why that matters here)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        # back in the input's layout: the next conv would pick another kernel for another layout,
        # and an image would then depend on how the tensor it came in was laid out (and padded)
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        return out.contiguous(memory_format=layout)


def _norm(channels: int, kind: str) -> nn.Module:
    if kind == "channel":
        return ChannelNorm(channels, eps=1e-6)
    return nn.GroupNorm(math.gcd(32, channels), channels, eps=1e-6)


class ResBlock(nn.Module):
    """[B, Cin, H, W] -> [B, Cout, H, W]: two norm-SiLU-conv layers beside a (1x1) shortcut."""

    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(_norm(c_in, norm), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  _norm(c_out, norm), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Encoder(nn.Module):
    """Images [B, 3, H, W] in [-1, 1] -> (mean, logvar), each [B, C, H/f, W/f]."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        widths = [cfg.width * m for m in cfg.multipliers]
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1)]
        for level, c in enumerate(widths):
            c_in = widths[max(level - 1, 0)]
            layers += [ResBlock(c_in if i == 0 else c, c, cfg.norm) for i in range(cfg.blocks)]
            if level < len(widths) - 1:  # halve: [B, c, h, w] -> [B, c, h/2, w/2]
                layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        layers += [ResBlock(widths[-1], widths[-1], cfg.norm), _norm(widths[-1], cfg.norm), nn.SiLU(),
                   nn.Conv2d(widths[-1], 2 * cfg.channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.net(x).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)


class Decoder(nn.Module):
    """Latents [B, C, h, w] -> images [B, 3, h*f, w*f] (not clamped: the Gaussian's mean)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        widths = [cfg.width * m for m in cfg.multipliers][::-1]  # coarsest first
        layers: list[nn.Module] = [nn.Conv2d(cfg.channels, widths[0], 3, padding=1),
                                   ResBlock(widths[0], widths[0], cfg.norm)]
        for level, c in enumerate(widths):
            c_in = widths[max(level - 1, 0)]
            if level > 0:  # double: [B, c_in, h, w] -> [B, c_in, 2h, 2w]
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_in, 3, padding=1)]
            layers += [ResBlock(c_in if i == 0 else c, c, cfg.norm) for i in range(cfg.blocks)]
        layers += [_norm(widths[-1], cfg.norm), nn.SiLU(), nn.Conv2d(widths[-1], 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Autoencoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        cfg.validate()
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, 3, H, W] (and the posterior sample's noise [B, C, h, w], default fresh) ->
        (reconstruction [B, 3, H, W], mean and logvar [B, C, h, w])."""
        mean, logvar = self.encoder(x)
        eps = torch.randn_like(mean) if noise is None else noise
        return self.decoder(mean + (0.5 * logvar).exp() * eps), mean, logvar


class PatchDiscriminator(nn.Module):
    """Images [B, 3, H, W] -> logits [B, 1, H/8 - 2, W/8 - 2], one per overlapping 70 px patch
    (pix2pix's PatchGAN, Isola et al. 2017), spectral-normalised instead of BatchNorm so that a
    patch's logit never depends on the rest of its batch."""

    def __init__(self, width: int = 64):
        super().__init__()
        sn = spectral_norm
        c = [width, 2 * width, 4 * width, 8 * width]
        self.net = nn.Sequential(
            sn(nn.Conv2d(3, c[0], 4, 2, 1)), nn.LeakyReLU(0.2, True),
            sn(nn.Conv2d(c[0], c[1], 4, 2, 1)), nn.LeakyReLU(0.2, True),
            sn(nn.Conv2d(c[1], c[2], 4, 2, 1)), nn.LeakyReLU(0.2, True),
            sn(nn.Conv2d(c[2], c[3], 4, 1, 1)), nn.LeakyReLU(0.2, True),
            sn(nn.Conv2d(c[3], 1, 4, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ---- codecs: what a diffusion model works in ---------------------------------------------------
class PixelCodec(nn.Module):
    """Pixel diffusion works on the images themselves: encoding and decoding change nothing."""

    factor = 1

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().clamp(-1, 1)


class LatentCodec(nn.Module):
    """Images [N, 3, H, W] in [-1, 1] <-> the latents a latent diffusion model works in
    [N, C, H/f, W/f]: the autoencoder's posterior means times ``scale`` (which brings their spread
    to the diffusion model's sigma_data), and back through its decoder."""

    def __init__(self, cfg: AutoencoderConfig, scale: float = 1.0):
        super().__init__()
        self.autoencoder, self.autoencoder_cfg = Autoencoder(cfg), cfg
        self.factor, self.scale = cfg.factor, scale

    # Both run in fixed batches (as sampling does): a batch of another size computes slightly
    # other floats on the CPU, and an image must not depend on what else was made with it.
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return in_fixed_batches(lambda x: self.autoencoder.encoder(x)[0], images) * self.scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return in_fixed_batches(lambda z: self.autoencoder.decoder(z / self.scale), latents).float().clamp(-1, 1)


def codec_for(model_cfg, autoencoder_weights: dict[str, torch.Tensor]) -> nn.Module:
    """The codec of a diffusion config: pixels, or its autoencoder loaded with these weights."""
    ae_cfg = getattr(model_cfg, "latent_autoencoder", None)
    if ae_cfg is None:
        return PixelCodec()
    codec = LatentCodec(ae_cfg, model_cfg.latent_scale)
    codec.autoencoder.load_state_dict(autoencoder_weights)
    return codec.eval().requires_grad_(False)
