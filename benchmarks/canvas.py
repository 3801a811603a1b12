"""Portrait-format works kept in their proportions vs cropped to squares: the same collection, the
same GAN preset and the same number of images shown, one run on a 4:5 canvas (``--size``) and one
square (the top and bottom cropped away, as brushwork always did before canvases).

The collection: WikiArt romanticism at 128 px (the shared set holds square crops only), each work
centre-cropped to 4:5 (102 x 128), so that it is a portrait-format collection; the last --held-out
works are never trained on. Quality: SWD of each run's samples against the held-out works cropped
the way that run's output is (4:5, or the square centre), beside its floor (training works vs the
held-out ones, cropped alike). A grid of each run is written side by side.

    python benchmarks/canvas.py --kimg 60
    python benchmarks/canvas.py --kimg 200 --seeds 0,1,2,3 --out benchmarks/results/canvas-200k
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import ROOT, SHARED  # noqa: E402  (puts src/ on the path)
from brushwork.cli import main as cli  # noqa: E402
from brushwork.data.dataset import load_dataset  # noqa: E402
from brushwork.imaging import grid_image, unit_from_uint8  # noqa: E402
from brushwork.making.generate import load_model  # noqa: E402
from brushwork.metrics.swd import swd  # noqa: E402


def portrait_collection(source: Path, folder: Path, held_out: int) -> tuple[Path, Path]:
    """(train folder, held-out folder) of 4:5 crops of the works in ``source``."""
    from PIL import Image

    files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    for name, part in (("train", files[:-held_out]), ("held", files[-held_out:])):
        (folder / name).mkdir(parents=True)
        for path in part:
            img = Image.open(path).convert("RGB")
            w = round(img.height * 4 / 5)
            left = (img.width - w) // 2
            img.crop((left, 0, left + w, img.height)).save(folder / name / f"{path.stem}.png")
    return folder / "train", folder / "held"


def train(data: Path, out: Path, size: str, args, seed: int) -> float:
    steps = int(args.kimg * 1000 / args.batch)
    start = time.perf_counter()
    code = cli(["train", "gan", "--data", str(data), "--out", str(out), "--size", size, "--steps", str(steps),
                "--batch-size", str(args.batch), "--device", "cpu", "--seed", str(seed), "--quiet",
                "--ckpt-every", str(steps)])
    assert code == 0
    return time.perf_counter() - start


def measure(train_dir: Path, held_dir: Path, work: Path, seed: int, args) -> tuple[dict, list]:
    """Both runs of one seed: {canvas: figures} and their sample grids."""
    row, grids = {}, []
    for name, size in (("portrait", "32x40"), ("square", "32x32")):
        width, height = (int(v) for v in size.split("x"))
        seconds = train(train_dir, work / f"{name}-{seed}", size, args, seed)
        h = 0 if height == width else height
        real = load_dataset(str(train_dir), width, progress=False, height=h).images
        held = load_dataset(str(held_dir), width, progress=False, height=h).images
        samples = load_model(work / f"{name}-{seed}", "cpu").seed_pixels(list(range(args.n)))
        n = min(len(held), args.n)
        floor = swd(real[torch.randperm(len(real), generator=torch.Generator().manual_seed(1))[:n]], held[:n])
        row[name] = {"size": size, "train_seconds": round(seconds, 1), "swd": swd(samples[:n], held[:n])["mean"],
                     "floor_swd": floor["mean"]}
        row[name]["swd_over_floor"] = round(row[name]["swd"] / row[name]["floor_swd"], 2)
        print(json.dumps({f"{name}/seed {seed}": row[name]}), flush=True)
        grids.append(grid_image(unit_from_uint8(samples[:32]), columns=8))
    return row, grids


def side_by_side(grids: list, path: Path) -> None:
    from PIL import Image

    sheet = Image.new("RGB", (grids[0].width + grids[1].width + 16, max(g.height for g in grids)), "white")
    sheet.paste(grids[0], (0, 0))
    sheet.paste(grids[1], (grids[0].width + 16, 0))
    sheet.save(path)


def summary(rows: dict) -> dict:
    """Mean and spread over seeds of each canvas's SWD / floor, and how many seeds each won."""
    ratios = {name: [row[name]["swd_over_floor"] for row in rows.values()] for name in ("portrait", "square")}
    out = {name: {"mean_swd_over_floor": round(float(np.mean(r)), 3), "std": round(float(np.std(r, ddof=1)), 3)
                  if len(r) > 1 else None} for name, r in ratios.items()}
    out["portrait_no_worse_seeds"] = sum(p <= s for p, s in zip(ratios["portrait"], ratios["square"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SHARED / "wikiart128" / "romanticism"))
    ap.add_argument("--held-out", type=int, default=200)
    ap.add_argument("--kimg", type=float, default=60, help="thousands of images shown to each run")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n", type=int, default=200, help="samples compared with the held-out works")
    ap.add_argument("--seeds", default="0", help="comma list: one pair of runs per seed")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "canvas"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "canvas", "kimg": args.kimg, "batch": args.batch, "n": args.n, "seeds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_dir, held_dir = portrait_collection(Path(args.data), tmp / "art", args.held_out)
        for seed in (int(s) for s in args.seeds.split(",")):
            result["seeds"][seed], grids = measure(train_dir, held_dir, tmp, seed, args)
            side_by_side(grids, out / f"portrait-vs-square-seed{seed}.png")
    result["summary"] = summary(result["seeds"])
    (out / "canvas.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
