"""Edited copies: does the originality check catch a training work after the edits a memorising
model or a careless user makes, without flagging works that are not in the collection?

A collection of WikiArt 64 px paintings (--per-style of each style); copies of --planted of its
works under each edit; negatives: held-out paintings of the same styles, less those with an
identical twin in the collection (WikiArt repeats works across its folders; those are copies).
Per edit, the share detected at the default thresholds (calibrated on the collection alone) by
the edited-copy checks (``metrics/copies.py``: the whole work, a region of it, either) and by the
pixel measure (tiled L2) beside them; the false-alarm rates on the negatives; the cost per image.

    python benchmarks/originality.py --per-style 2000 --planted 200
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from common import SHARED, load_styles  # noqa: E402  (puts src/ on the path)
from brushwork.metrics.copies import EditedCopies  # noqa: E402
from brushwork.metrics.originality import tiled_l2  # noqa: E402


def _crop(image: Image.Image, frac: float, rng: random.Random | None) -> Image.Image:
    """A square crop of ``frac`` of the side (centred, or at a random place), resized back."""
    side, r = int(image.width * frac), image.width
    x, y = ((r - side) // 2,) * 2 if rng is None else (rng.randint(0, r - side), rng.randint(0, r - side))
    return image.crop((x, y, x + side, y + side)).resize((r, r), Image.BICUBIC)


def _hue(image: Image.Image, shift: float) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    return Image.merge("HSV", (h.point(lambda p: (p + int(shift * 255)) % 256), s, v)).convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _paste(image: Image.Image, other: Image.Image, rng: random.Random, moved: bool = False) -> Image.Image:
    """A quarter of the work's area (half its side), pasted onto another work in place, or
    ``moved`` to another random place (no alignment with the work's own grid to lean on)."""
    half = image.width // 2
    x, y = rng.randint(0, half), rng.randint(0, half)
    to = (rng.randint(0, half), rng.randint(0, half)) if moved else (x, y)
    out = other.copy()
    out.paste(image.crop((x, y, x + half, y + half)), to)
    return out


def edits(rng: random.Random, others: list[Image.Image]) -> dict:
    side = lambda im: rng.choice([0.85, 1.15])  # noqa: E731  (+-15%)
    return {
        "exact": lambda im: im,
        "mirror": lambda im: im.transpose(Image.FLIP_LEFT_RIGHT),
        "centre crop 75%": lambda im: _crop(im, 0.75, None),
        "off-centre crop 90%": lambda im: _crop(im, 0.9, rng),
        "centre crop 80%": lambda im: _crop(im, 0.8, None),
        "mirrored crop 85%": lambda im: _crop(im.transpose(Image.FLIP_LEFT_RIGHT), 0.85, None),
        "brightness/contrast 15%": lambda im: ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(side(im)))
        .enhance(side(im)),
        "hue shift 18 deg": lambda im: _hue(im, rng.choice([-0.05, 0.05])),
        "JPEG quality 40": lambda im: _jpeg(im, 40),
        "rotation 5 deg": lambda im: im.rotate(rng.choice([-5, 5]), Image.BICUBIC),
        "downscale x2 and back": lambda im: im.resize((im.width // 2,) * 2, Image.BICUBIC).resize(im.size, Image.BICUBIC),
        "25% region pasted": lambda im: _paste(im, rng.choice(others), rng),
        "25% region pasted elsewhere": lambda im: _paste(im, rng.choice(others), rng, moved=True),
    }


def as_tensor(images: list[Image.Image]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(i) for i in images])).permute(0, 3, 1, 2).contiguous()


def as_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(i.permute(1, 2, 0).numpy()) for i in images]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SHARED / "wikiart64"))
    ap.add_argument("--styles", default="baroque,romanticism,impressionism")
    ap.add_argument("--per-style", type=int, default=2000, help="works of each style in the collection")
    ap.add_argument("--negatives", type=int, default=300, help="held-out works of each style")
    ap.add_argument("--planted", type=int, default=200, help="copies per edit")
    ap.add_argument("--json", default="benchmarks/results/originality-edits.json")
    args = ap.parse_args(argv)
    ds = load_styles(args.data, args.styles, 64, progress=False)
    rng, collection, held_out = random.Random(0), [], []
    for style in range(len(ds.label_names)):
        members = (ds.labels == style).nonzero()[:, 0]
        collection.append(members[:args.per_style])
        held_out.append(members[args.per_style:args.per_style + args.negatives])
    works, held_out = ds.images[torch.cat(collection)], ds.images[torch.cat(held_out)]
    in_collection, _ = tiled_l2(held_out, works)  # <= 0.5: an identical twin in the collection
    negatives = held_out[in_collection > 0.5]
    result = {"benchmark": "originality-edits", "collection": len(works), "negatives": len(negatives),
              "held_out_twins_of_collection_works": int((in_collection <= 0.5).sum()), "planted_per_edit": args.planted}
    t0 = time.perf_counter()
    check = EditedCopies.build(works)
    calib_l2 = tiled_l2(works[:1000], works[:1000], exclude_self=True)[0]
    l2_threshold = torch.quantile(calib_l2[calib_l2 > 0.5], 0.05).item()  # the pixel measure's default
    result |= {"index_and_calibration_seconds": round(time.perf_counter() - t0, 1),
               "thresholds": {"whole": round(check.whole_threshold, 4), "region": round(check.region_threshold, 4),
                              "tiled_l2": round(l2_threshold, 4)}}

    def flags(images: torch.Tensor) -> dict[str, torch.Tensor]:
        scores = check.scores(images)
        found = {"whole": scores["edit_score"] >= check.whole_threshold,
                 "region": scores["region_score"] >= check.region_threshold}
        return {"either": found["whole"] | found["region"], **found,
                "tiled_l2": tiled_l2(images, works)[0] <= l2_threshold}

    def rates(found: dict[str, torch.Tensor]) -> dict[str, float]:
        return {k: round(v.float().mean().item(), 4) for k, v in found.items()}

    t0 = time.perf_counter()
    result["false_alarms"] = rates(flags(negatives))
    result["seconds_per_image"] = round((time.perf_counter() - t0) / len(negatives), 4)
    picked = rng.sample(range(len(works)), args.planted)
    originals, others = as_pil(works[picked]), as_pil(negatives)
    result["detected"] = {}
    for name, edit in edits(rng, others).items():
        result["detected"][name] = rates(flags(as_tensor([edit(im) for im in originals])))
        print(json.dumps({name: result["detected"][name]}), flush=True)
    print(json.dumps(result, indent=1))
    with open(Path(__file__).resolve().parents[1] / args.json, "a") as f:
        f.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()
