"""Reproducing held-out paintings: GAN projection (`fastgan`, `modern`) beside VAE reconstruction.

A tenth of the paintings is held out. Each method trains on the rest through `brushwork train`
(or ``--runs name=DIR`` uses runs trained elsewhere; they must not have seen the held-out tenth);
then each of ``--n`` held-out paintings is projected into the GAN runs with the optimiser of
`brushwork project` and reconstructed by the VAE (posterior mean). Per method: PSNR (dB, higher
is better) and a perceptual distance (VGG19 features, unit-normalised per position, squared
difference averaged over relu1_2..relu4_2 as LPIPS does without its learned weights; lower is
better), with ImageNet weights when they are on disk, else a random-initialised stand-in (named
in the report: such features still order distortions, far less well).

Two references from the same paintings: the best of the 64 seeded samples each GAN run starts its
search from (what projection adds), and the nearest *training* painting by pixel distance (what a
look-up in the collection would give).

    python benchmarks/projection.py --device cpu --seconds 240 --n 16 --steps 300
    python benchmarks/projection.py --device cuda --res 128 --seconds 900 --steps 1000 \\
        --data ../shared/data/wikiart128/romanticism
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from common import SHARED, add_run_args  # noqa: E402  (puts src/ on the path)

from brushwork.config import RunConfig, TrainConfig, VAEConfig, gan_preset  # noqa: E402
from brushwork.data.dataset import load_dataset  # noqa: E402
from brushwork.making.generate import load_model  # noqa: E402
from brushwork.imaging import psnr, save_grid, unit_from_uint8  # noqa: E402
from brushwork.models.vgg import VGGFeatures, imagenet_weights_cached  # noqa: E402
from brushwork.making.projection import project  # noqa: E402
from brushwork.training.run import train_run  # noqa: E402
from brushwork.utils import resolve_device  # noqa: E402

LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_2")


class Perceptual:
    """Distance [N] between image batches [N, 3, R, R] in [-1, 1] on VGG19 features."""

    def __init__(self, device):
        weights = "imagenet" if imagenet_weights_cached() else "random"  # never download unasked
        self.net = VGGFeatures(LAYERS, weights=weights).to(device).eval()
        self.weights = weights if weights == "imagenet" else "random-init stand-in (no ImageNet weights here)"

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa, fb = self.net(a), self.net(b)
        return sum((F.normalize(fa[k].float(), dim=1) - F.normalize(fb[k].float(), dim=1))
                   .square().sum(1).mean(dim=(1, 2)) for k in fa) / len(fa)


def training_folder(tmp: Path, root: Path, files: list[str]) -> Path:
    """A folder of links to ``files`` (paths relative to ``root``), subfolders kept."""
    for rel in files:
        link = tmp / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to((root / rel).resolve())
    return tmp


def train_method(name: str, data: Path, args, out: Path) -> Path:
    """Train one method for ``--seconds`` on ``data``; returns its run directory."""
    train = TrainConfig(data=str(data), batch_size=args.batch, steps=10**9, log_every=50,
                        sample_every=10**9, ckpt_every=10**9, device=args.device, seed=args.seed)
    if name == "vae":
        model = VAEConfig(resolution=args.res, width=args.width or 64)
        run_cfg = RunConfig(kind="vae", model=model, train=train)
    else:
        model = gan_preset(name, args.res)
        if args.width:
            model.g_width = model.d_width = args.width
        run_cfg = RunConfig(kind="gan", model=model, train=train)
    run_dir = out / "runs" / name
    train_run(run_cfg, run_dir, quiet=args.quiet, time_limit=args.seconds)
    return run_dir


def reproduce(model, targets: torch.Tensor, args) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(Reproductions [N, 3, R, R], best of the 64 start samples or None for a VAE)."""
    if model.kind == "vae":
        mu, _ = model.encode(targets)
        return model.decode(mu).cpu(), None
    starts = model.generate_seeds(list(range(args.seed, args.seed + 64))).cpu()
    nearest = torch.cdist(targets.flatten(1), starts.flatten(1)).argmin(1)
    found = [project(model, t, steps=args.steps, distance=args.distance, seed=args.seed).image
             for t in targets]
    return torch.stack(found), starts[nearest]


def scores(images: torch.Tensor, targets: torch.Tensor, perceptual: Perceptual, device) -> dict:
    return {"psnr_db": round(float(psnr(images, targets).mean()), 3),
            "perceptual": round(float(perceptual(images.to(device), targets.to(device)).mean()), 4)}


def nearest_training(train_images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The training painting closest to each target in pixels: [N, 3, R, R] in [-1, 1]."""
    best = torch.full((len(targets),), float("inf"))
    pick = torch.zeros(len(targets), dtype=torch.long)
    flat = targets.flatten(1)
    for start in range(0, len(train_images), 512):
        chunk = unit_from_uint8(train_images[start:start + 512]).flatten(1)
        d, i = torch.cdist(flat, chunk).min(1)
        better = d < best
        best[better], pick[better] = d[better], i[better] + start
    return unit_from_uint8(train_images[pick])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SHARED / "wikiart64" / "romanticism"))
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--methods", default="modern,fastgan,vae")
    ap.add_argument("--runs", nargs="*", default=[], help="name=RUN_DIR: use these runs, do not train")
    ap.add_argument("--seconds", type=float, default=240, help="training seconds per method")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--width", type=int, default=0, help="model width (0: each preset's own; VAE 64)")
    ap.add_argument("--n", type=int, default=16, help="held-out paintings to reproduce")
    ap.add_argument("--steps", type=int, default=300, help="projection steps per painting")
    ap.add_argument("--distance", default="auto", help="what projection minimises: auto, vgg or pixel")
    add_run_args(ap, "benchmarks/results/projection")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    args.device = str(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.data)
    if not root.is_dir():
        raise SystemExit(f"projection: {root} not found (see shared/data/SOURCES.md)")
    full = load_dataset(str(root), args.res, progress=not args.quiet)
    train, held = full.split(0.1, seed=args.seed)
    targets = unit_from_uint8(held.images[: args.n])
    given = dict(spec.split("=", 1) for spec in args.runs)
    perceptual = Perceptual(device)
    result = {"device": str(device), "data": f"{root} ({len(train)} train / {len(held)} held out)",
              "res": args.res, "paintings": len(targets), "projection_steps": args.steps,
              "perceptual_features": perceptual.weights, "methods": {}}
    columns = [targets, nearest_training(train.images, targets)]
    result["nearest_training_painting"] = scores(columns[1], targets, perceptual, device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = training_folder(Path(tmp), root, train.files)
        for name in args.methods.split(","):
            run_dir = Path(given[name]) if name in given else train_method(name, folder, args, out)
            model = load_model(run_dir, str(device))
            images, start = reproduce(model, targets, args)
            entry = {"run": str(run_dir), "model_hash": model.model_hash[:12], **scores(images, targets, perceptual, device)}
            if start is not None:
                entry["best_of_64_samples"] = scores(start, targets, perceptual, device)
            result["methods"][name] = entry
            columns.append(images)
            print(json.dumps({name: entry}), flush=True)
    # One row per painting: target, nearest training painting, then each method's reproduction.
    save_grid(torch.stack(columns, 1).flatten(0, 1), out / "reproductions.png", len(columns))
    result["grid_columns"] = ["held-out painting", "nearest training painting", *args.methods.split(",")]
    (out / "projection.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
