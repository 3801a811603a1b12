"""Compose the README's picture from a demo folder, each panel enlarged x2 (nearest neighbour, so
32 px works stay crisp):

    .venv/bin/python scripts/gallery.py brushwork-demo docs/gallery.png
"""

import sys

from PIL import Image, ImageDraw, ImageFont

SCALE = 2
BACKGROUND = (249, 248, 244)
LEFT = [("built-in training art, a row per style", "training_art"),
        ("new works from a style-conditional GAN, seeds 0-7 per style (1,500 steps, CPU)", "styles"),
        ("style mix: grid blending into circles", "mix")]
RIGHT = [("a crude sketch (sky, sun, hill)", "sketch"),
         ("painted by a diffusion model of the same art, a row per style: strength 0.5, then 0.8", "painted"),
         ("a work, its centre masked, six repaintings: the rest is the work's own", "inpainted"),
         ("creative mode (CAN): works the critic cannot place in any learned style", "creative")]


def column(folder: str, panels: list[tuple[str, str]]) -> Image.Image:
    """Titled panels one above the other."""
    font = ImageFont.load_default(size=13)
    images = []
    for _, name in panels:
        image = Image.open(f"{folder}/{name}.png").convert("RGB")
        images.append(image.resize((image.width * SCALE, image.height * SCALE), Image.NEAREST))
    out = Image.new("RGB", (max(i.width for i in images), sum(22 + i.height + 14 for i in images)), BACKGROUND)
    draw, y = ImageDraw.Draw(out), 0
    for (title, _), image in zip(panels, images):
        draw.text((2, y + 4), title, fill=(40, 40, 40), font=font)
        out.paste(image, (0, y + 22))
        y += 22 + image.height + 14
    return out


def main(folder: str, path: str) -> None:
    left, right = column(folder, LEFT), column(folder, RIGHT)
    page = Image.new("RGB", (left.width + right.width + 60, max(left.height, right.height) + 20), BACKGROUND)
    page.paste(left, (16, 10))
    page.paste(right, (left.width + 44, 10))
    page.save(path, optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
