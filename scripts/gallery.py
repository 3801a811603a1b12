"""Compose the README's picture from a demo folder: the base's 128 px panels on top as they are,
the 32 px panels below enlarged x2 (nearest neighbour, so they stay crisp):

    .venv/bin/python scripts/gallery.py brushwork-demo docs/gallery.png
"""

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SCALE = 2
BACKGROUND = (249, 248, 244)
LEFT = [("built-in training art, a row per style", "training_art"),
        ("new works from a style-conditional GAN, seeds 0-7 per style (1,500 steps, CPU)", "styles")]
RIGHT = [("style mix: grid blending into circles", "mix"),
         ("creative mode (CAN): works the critic cannot place in any learned style", "creative")]
TOP = [("builtin:base, before any training: 128 px works learned from public-domain paintings "
        "(baroque, then romanticism)", "base"),
       ("the base paints a crude sketch (strength 0.5, then 0.8), a row per style", "base-painted"),
       ("the base adapted to the built-in art with LoRA in minutes, a row per new style", "adapted"),
       ("the adapted base paints the sketch in each new style: strength 0.5, then 0.8", "painted"),
       ("a work, its centre masked, six repaintings by the adapted base: the rest is the work's own", "inpainted")]


def column(folder: str, panels: list[tuple[str, str]], scale: int = SCALE) -> Image.Image:
    """Titled panels one above the other."""
    font = ImageFont.load_default(size=13)
    images = []
    for _, name in panels:
        image = Image.open(f"{folder}/{name}.png").convert("RGB")
        images.append(image.resize((image.width * scale, image.height * scale), Image.NEAREST))
    out = Image.new("RGB", (max(i.width for i in images), sum(22 + i.height + 14 for i in images)), BACKGROUND)
    draw, y = ImageDraw.Draw(out), 0
    for (title, _), image in zip(panels, images):
        draw.text((2, y + 4), title, fill=(40, 40, 40), font=font)
        out.paste(image, (0, y + 22))
        y += 22 + image.height + 14
    return out


def main(folder: str, path: str) -> None:
    left, right = column(folder, LEFT), column(folder, RIGHT)
    top = column(folder, TOP, scale=1) if all(Path(folder, f"{n}.png").is_file() for _, n in TOP) else None
    width = max(left.width + right.width + 60, (top.width + 32) if top else 0)
    below = top.height + 20 if top else 0
    page = Image.new("RGB", (width, below + max(left.height, right.height) + 20), BACKGROUND)
    if top:
        page.paste(top, (16, 10))
    page.paste(left, (16, below + 10))
    page.paste(right, (left.width + 44, below + 10))
    # 256 colours: the picture stays under 2 MiB in the repository, and these works have few
    page.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
