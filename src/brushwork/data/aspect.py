"""``--aspect auto``: the canvas a collection's own proportions ask for.

The typical aspect is the median height/width of the works (read from their headers, nothing
decoded); the canvas keeps ``--res`` as its shorter side and rounds the longer to the nearest size
the models support (``config.check_canvas``). Every work is then centre-cropped to that aspect:
how many are cropped and by how much (beside what a square would crop) is reported.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from brushwork.config import MAX_RATIO
from brushwork.errors import BrushworkError


@dataclass
class AspectChoice:
    resolution: int  # width of the chosen canvas
    height: int  # its height (0: square)
    works: int  # works measured
    median_ratio: float  # median height / width of the works
    cropped: int  # works that lose more than 1% of their area to the canvas's aspect
    mean_loss: float  # mean share of a work's area cropped away (all works)
    square_loss: float  # the same, were the canvas square

    @property
    def canvas(self) -> str:
        """'WxH', or '' for a square (what --size and the studio's canvas field take)."""
        return f"{self.resolution}x{self.height}" if self.height else ""

    def summary(self) -> str:
        w, h = self.resolution, self.height or self.resolution
        return (f"{w}x{h} (median height/width of {self.works} works: {self.median_ratio:.2f}); "
                f"{self.cropped} works cropped, by {100 * self.mean_loss:.1f}% of their area on average "
                f"(a square canvas: {100 * self.square_loss:.1f}%)")


def work_sizes(root: Path) -> list[tuple[int, int]]:
    """(width, height) of every readable image under ``root`` (headers only)."""
    from PIL import Image

    from brushwork.data.images import list_image_files

    sizes = []
    for path in list_image_files(root):
        try:
            with Image.open(path) as img:
                sizes.append(img.size)
        except (OSError, ValueError):
            continue  # unreadable: the dataset build skips and names it
    return sizes


def cropped_share(ratio: float, target: float) -> float:
    """Share of a work of height/width ``ratio`` cropped away to reach ``target``."""
    return 1 - min(ratio, target) / max(ratio, target)


def choose_canvas(sizes: list[tuple[int, int]], short: int) -> AspectChoice:
    """The canvas with shorter side ``short`` nearest the works' median aspect."""
    if not sizes:
        raise BrushworkError("no readable image to measure")
    ratios = [h / w for w, h in sizes]
    median = statistics.median(ratios)
    unit = short // 4
    steps = min(max(round(max(median, 1 / median) * 4), 4), 4 * MAX_RATIO)  # the longer side in units
    long = steps * unit
    width, height = (short, long) if median >= 1 else (long, short)
    target = height / width
    losses = [cropped_share(r, target) for r in ratios]
    return AspectChoice(width, 0 if width == height else height, len(sizes), median,
                        sum(loss > 0.01 for loss in losses), sum(losses) / len(losses),
                        sum(cropped_share(r, 1.0) for r in ratios) / len(ratios))


def auto_canvas(spec: str, short: int) -> AspectChoice:
    """``--aspect auto`` for a data folder (built-in sets are square)."""
    if spec.startswith("builtin:"):
        raise BrushworkError("the built-in set is square: measure a folder of works, or give --size WxH "
                             "for another canvas")
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise BrushworkError(f"data folder not found: {spec}")
    return choose_canvas(work_sizes(root), short)
