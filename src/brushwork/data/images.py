"""Robust image decoding: whatever a folder of artworks holds becomes RGB, or a reason it can't.

Real collections contain CMYK scans, 16-bit TIFFs, palette GIFs, transparent PNGs, phone photos
rotated by EXIF, truncated downloads and the odd text file named ``.jpg``. Each of those is either
converted to plain 8-bit RGB here or rejected with a short reason that training reports.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from brushwork.errors import BrushworkError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}

# Decompression-bomb guard: refuse images with more pixels than this before decoding them. It is
# the level at which Pillow itself refuses (2x its MAX_IMAGE_PIXELS): a 13k x 13k painting scan.
# Checked here, per image, because changing Pillow's global limit is not thread-safe.
MAX_PIXELS = 178_956_970


class UnreadableImage(Exception):
    """An image that cannot be decoded; the message is a short human reason."""


def list_image_files(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive, sorted, hidden files and folders skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    return found


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / 32-bit greyscale: scale the actual range to 0..255 instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        img = Image.fromarray(((arr - lo) * scale).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB") if img.mode != "RGB" else img


def load_rgb(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """Decode one image file to RGB with EXIF orientation applied, or raise UnreadableImage.
    Images with more than ``max_pixels`` pixels are refused from their header, before decoding."""
    path, limit = Path(path), max_pixels or MAX_PIXELS
    try:
        if path.stat().st_size == 0:
            raise UnreadableImage("empty file")
        with Image.open(path) as img:  # reads the header only
            if img.width * img.height > limit:
                raise UnreadableImage(f"too many pixels: {img.width} x {img.height} (decompression-"
                                      f"bomb guard, limit {limit:,})")
            img.seek(0)  # first frame of animated GIF/WebP/TIFF
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return _to_rgb(img)
    except UnreadableImage:
        raise
    except Image.DecompressionBombError:
        raise UnreadableImage(f"too many pixels (decompression-bomb guard, limit {MAX_PIXELS:,})")
    except Image.UnidentifiedImageError:
        raise UnreadableImage("not an image PIL can identify")
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated / corrupt data
        raise UnreadableImage(f"corrupt or truncated ({str(exc).splitlines()[0][:80]})")


def load_rgb_or_exit(path: str | Path) -> Image.Image:
    """``load_rgb`` for a single file the user named: failures become a BrushworkError."""
    if not Path(path).is_file():
        raise BrushworkError(f"no such image file: {path}")
    try:
        return load_rgb(path)
    except UnreadableImage as exc:
        raise BrushworkError(f"cannot read image {path}: {exc}") from None


def crop_resize(img: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """Centre-crop to the largest box of the aspect of ``size`` ((height, width), or an int for a
    square), then resize to it with a Lanczos filter: the work keeps its proportions."""
    h_out, w_out = (size, size) if isinstance(size, int) else size
    w, h = img.size
    scale = min(w / w_out, h / h_out)  # the box of the asked aspect that fits the work
    bw, bh = min(w, round(w_out * scale)), min(h, round(h_out * scale))
    left, top = (w - bw) // 2, (h - bh) // 2
    img = img.crop((left, top, left + bw, top + bh))
    if (bw, bh) != (w_out, h_out):
        img = img.resize((w_out, h_out), Image.LANCZOS, reducing_gap=3.0)
    return img


def square_crop_resize(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square, then resize to ``size`` x ``size`` with a Lanczos filter."""
    return crop_resize(img, size)


def decode_canvas(path: str | Path, size: int | tuple[int, int]) -> np.ndarray | str:
    """One file as uint8 [3, H, W] (centre crop of that aspect; an int: a square), or the reason
    it is unreadable. Lives in this torch-free module so cache-building workers start quickly."""
    try:
        return to_uint8_chw(crop_resize(load_rgb(path), size))
    except UnreadableImage as exc:
        return str(exc)


def decode_square(path: str | Path, size: int) -> np.ndarray | str:
    """One file as uint8 [3, size, size] (centre crop), or the reason it is unreadable."""
    return decode_canvas(path, size)


def to_uint8_chw(img: Image.Image) -> np.ndarray:
    """PIL RGB image -> uint8 array [3, H, W]."""
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
