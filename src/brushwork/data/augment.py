"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to reals *and* fakes.

Augmenting only the discriminator's inputs, identically for both, stops D from memorising a small
art collection without teaching G to paint augmented images. All ops are batched and use the
global torch RNG (saved in checkpoints) so resumed runs are exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brushwork.config import AUGMENTATION_OPS, parse_policy


def _brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)


def _saturation(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean


def _contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio*size pixels, filling with zeros (reflection-free)."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    tx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    gy = torch.arange(h, device=x.device)[None, :, None] + ty  # [B, H, 1]
    gx = torch.arange(w, device=x.device)[None, None, :] + tx  # [B, 1, W]
    padded = F.pad(x, [1, 1, 1, 1])
    gy, gx = gy.clamp(-1, h) + 1, gx.clamp(-1, w) + 1  # out-of-range -> zero border
    bi = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[bi, gy, gx].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random square of ratio*size per image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = ((ys - cy).abs() <= ch // 2) & ((xs - cx).abs() <= cw // 2)  # [B, H, W]
    return x * (~inside).unsqueeze(1).to(x.dtype)


AUGMENTATIONS = {
    "color": (_brightness, _saturation, _contrast),
    "translation": (_translation,),
    "cutout": (_cutout,),
}
assert tuple(AUGMENTATIONS) == AUGMENTATION_OPS, "config.AUGMENTATION_OPS names the ops implemented here"


def diff_augment(x: torch.Tensor, policy: str, p: torch.Tensor | None = None) -> torch.Tensor:
    """Apply the comma-separated ``policy`` to a batch [B, C, H, W]; differentiable in x.
    ``p`` (a 0-d tensor, adaptive augmentation): each op is applied to each image with
    probability p instead of always."""
    for name in parse_policy(policy):
        for op in AUGMENTATIONS[name]:
            if p is None:
                x = op(x)
            else:
                skip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= p
                x = torch.where(skip, x, op(x))
    return x
