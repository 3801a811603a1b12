"""Tensor <-> image conversions and sample grids."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from brushwork.utils import atomic_write


def unit_from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0..255) -> floats in [-1, 1], the scale every model works in."""
    return images.float() / 127.5 - 1


def as_unit(images: torch.Tensor) -> torch.Tensor:
    """Images of either kind (uint8, or floats already in [-1, 1]) -> floats in [-1, 1]."""
    return unit_from_uint8(images) if images.dtype == torch.uint8 else images.float()


def uint8_from_unit(images: torch.Tensor) -> torch.Tensor:
    """Floats in [-1, 1] -> uint8 tensor (rounded, as saved to PNG), same layout."""
    return images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image [N] of images [N, 3, H, W] in [-1, 1] (peak = the full 0..255 range)."""
    mse01 = ((a.float().clamp(-1, 1) - b.float().clamp(-1, 1)) / 2).square().flatten(1).mean(1)
    return 10 * torch.log10(1 / mse01.clamp_min(1e-10))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] floats in [-1, 1] -> uint8 [N, H, W, 3] (round to nearest)."""
    return uint8_from_unit(images).permute(0, 2, 3, 1).numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(a) for a in to_uint8(images)]


def grid_image(images: torch.Tensor, columns: int | None = None, pad: int = 2) -> Image.Image:
    """Tile [N, 3, H, W] into one picture, ``columns`` wide (default: as square as possible)."""
    arrays = to_uint8(images)
    n, h, w, _ = arrays.shape
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i, a in enumerate(arrays):
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = a
    return Image.fromarray(canvas)


def png_bytes(img: Image.Image, pnginfo=None) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=pnginfo)
    return buf.getvalue()


def save_grid(images: torch.Tensor, path: Path, columns: int | None = None) -> Path:
    atomic_write(path, png_bytes(grid_image(images, columns)))
    return Path(path)


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure as PNG atomically (and close it)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return Path(path)


TILES = 4  # tiles per side: the tiled L2 distance of the originality checks compares images tile by tile


def tiles(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] (uint8 or float in [-1, 1]) -> [TILES*TILES, N, 3*(H/4)*(W/4)] float tile
    vectors in [0, 1]."""
    x = images.float() / 255 if images.dtype == torch.uint8 else (images.float() + 1) / 2
    n, c, h, w = x.shape
    th, tw = h // TILES, w // TILES
    x = x[:, :, : th * TILES, : tw * TILES].reshape(n, c, TILES, th, TILES, tw)
    return x.permute(2, 4, 0, 1, 3, 5).reshape(TILES * TILES, n, c * th * tw)
