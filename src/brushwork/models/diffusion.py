"""A denoising diffusion model in the EDM formulation (Karras et al. 2022): a U-Net F and the
preconditioning that turns it into a denoiser D(x; sigma) with well-scaled inputs and targets.

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma), style)
    c_skip = sd^2 / (sigma^2 + sd^2)     c_out = sigma sd / sqrt(sigma^2 + sd^2)
    c_in   = 1 / sqrt(sigma^2 + sd^2)    c_noise = ln(sigma) / 4            (sd = sigma_data)

Training draws ln(sigma) ~ N(P_mean, P_std^2) and minimises lambda(sigma) ||D(x + sigma n) - x||^2
with lambda = (sigma^2 + sd^2) / (sigma sd)^2, which makes the effective target of F unit-variance
at every noise level. Sampling (``models/samplers.py``) integrates the probability-flow ODE
dx/dsigma = (x - D(x; sigma)) / sigma from sigma_max down to 0.

The U-Net is the DDPM++ layout reduced to its parts: residual blocks with GroupNorm and an
adaptive scale/shift from the noise (and style) embedding, self-attention on the coarsest levels,
strided-conv downsampling, nearest + conv upsampling, skip connections between mirrored blocks.
It is fully convolutional (attention is over however many positions there are), so a model trained
on squares also runs on wider or taller canvases (outpainting, ``making/paint.py``).

Styles: the style embedding is a weighted sum of learned per-style vectors plus (1 - sum of the
weights) times a learned "no style" vector, so a one-hot row asks for a style, a mix of rows for a
mix, and a row of zeros for none: what classifier-free guidance (Ho & Salimans 2022) contrasts.

Shapes: B batch, C channels, H x W image (a multiple of 2^(levels-1)), E embedding width (4C0).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from brushwork.config import DiffusionConfig


def _groups(channels: int) -> int:
    """GroupNorm groups: 32 as in DDPM++ where the channels allow, fewer for tiny test models."""
    return math.gcd(32, channels)


class NoiseEmbedding(nn.Module):
    """c_noise [B] -> [B, E]: sinusoidal features of the noise level, then a two-layer MLP."""

    def __init__(self, channels: int, out: int):
        super().__init__()
        self.channels = channels
        self.mlp = nn.Sequential(nn.Linear(channels, out), nn.SiLU(), nn.Linear(out, out))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        half = self.channels // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=c_noise.device) / half)
        angles = c_noise.float()[:, None] * freqs[None]  # [B, C/2]; c_noise spans about [-1.6, 1.1]
        return self.mlp(torch.cat([angles.cos(), angles.sin()], dim=1))


class ResBlock(nn.Module):
    """x [B, Cin, H, W], emb [B, E] -> [B, Cout, H, W]: norm, SiLU, conv, adaptive scale/shift
    from the embedding, dropout, conv; the sum with the (1x1-projected) input is scaled by
    sqrt(1/2) so that activations keep their size through the stack."""

    def __init__(self, c_in: int, c_out: int, emb: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.affine = nn.Linear(emb, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        h = self.conv2(self.dropout(h))
        return (self.skip(x) + h) * math.sqrt(0.5)


class Attention(nn.Module):
    """Self-attention over the H*W positions of a feature map (one head per 64 channels)."""

    def __init__(self, channels: int):
        super().__init__()
        self.heads = max(1, channels // 64)
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        out = out.transpose(-1, -2).reshape(b, c, h, w)  # [B, heads, HW, c/heads] -> [B, C, H, W]
        return (x + self.proj(out)) * math.sqrt(0.5)


class Level(nn.Module):
    """One resolution of the U-Net: residual blocks, each optionally followed by attention."""

    def __init__(self, c_ins: list[int], c_out: int, emb: int, dropout: float, attention: bool):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(c, c_out, emb, dropout) for c in c_ins)
        self.attn = nn.ModuleList(Attention(c_out) if attention else nn.Identity() for _ in c_ins)


class UNet(nn.Module):
    """F(x_in [B, C, H, W], c_noise [B], style weights [B, K] or None) -> [B, C, H, W] (C: 3 for
    pixels, the autoencoder's channels for latents)."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        widths = [cfg.width * m for m in cfg.multipliers]  # channels per level, finest first
        levels, emb = len(widths), 4 * cfg.width
        attended = lambda i: i >= levels - cfg.attention_levels  # noqa: E731  (the coarsest ones)
        self.noise_emb = NoiseEmbedding(cfg.width, emb)
        self.num_styles = cfg.num_styles if cfg.conditional else 0
        if self.num_styles:
            self.style_vectors = nn.Parameter(torch.randn(self.num_styles, emb) * 0.02)  # [K, E]
            self.no_style = nn.Parameter(torch.zeros(emb))  # [E]: what dropped labels ask for
        channels = cfg.space[0]  # 3 for pixels, C for an autoencoder's latents
        self.conv_in = nn.Conv2d(channels, cfg.width, 3, padding=1)
        # Encoder: level i has `blocks` blocks at widths[i]; every block output is a skip.
        self.down, self.downsample, skips, c = nn.ModuleList(), nn.ModuleList(), [cfg.width], cfg.width
        for i, w in enumerate(widths):
            self.down.append(Level([c] + [w] * (cfg.blocks - 1), w, emb, cfg.dropout, attended(i)))
            skips += [w] * cfg.blocks
            c = w
            if i < levels - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = Level([c, c], c, emb, cfg.dropout, True)
        # Decoder mirrors it: blocks + 1 per level, each eating one skip.
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            c_ins = []
            for _ in range(cfg.blocks + 1):
                c_ins.append(c + skips.pop())
                c = w
            self.up.append(Level(c_ins, w, emb, cfg.dropout, attended(i)))
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.norm_out = nn.GroupNorm(_groups(c), c)
        self.conv_out = nn.Conv2d(c, channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def embedding(self, c_noise: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        emb = self.noise_emb(c_noise)  # [B, E]
        if self.num_styles:
            weights = torch.zeros(len(c_noise), self.num_styles, device=emb.device) if style is None \
                else style.to(emb.dtype)
            emb = emb + weights @ self.style_vectors + (1 - weights.sum(1, keepdim=True)) * self.no_style
        return F.silu(emb)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embedding(c_noise, style)
        h = self.conv_in(x)
        skips = [h]
        for i, level in enumerate(self.down):
            for block, attn in zip(level.blocks, level.attn):
                h = attn(block(h, emb))
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        for block, attn in zip(self.mid.blocks, self.mid.attn):
            h = attn(block(h, emb))
        for i, level in enumerate(self.up):
            for block, attn in zip(level.blocks, level.attn):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), emb))
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def preconditioning(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """(c_skip, c_out, c_in, c_noise) of EDM's Table 1 for noise levels sigma (any shape)."""
    total = sigma ** 2 + sigma_data ** 2
    return sigma_data ** 2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt(), sigma.log() / 4


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """EDM's lambda(sigma) = 1 / c_out^2: the weight that gives F a unit-variance target."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


class Denoiser(nn.Module):
    """D(x [B, 3, H, W], sigma [B], style [B, K] or None) -> the denoised estimate [B, 3, H, W]."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        self.sigma_data = cfg.sigma_data
        self.unet = UNet(cfg)

    @property
    def num_styles(self) -> int:
        return self.unet.num_styles

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        c_skip, c_out, c_in, c_noise = (c.view(-1, 1, 1, 1) for c in
                                        preconditioning(sigma.float().reshape(-1), self.sigma_data))
        out = self.unet(c_in * x, c_noise.flatten(), style)
        return c_skip * x + c_out * out.float()
