"""Train, measure and pack brushwork's base model (``builtin:base``) from public-domain paintings.

    python scripts/train_base.py                 # every stage, resuming whatever is done
    python scripts/train_base.py --minutes 30    # one stretch of at most 30 minutes, then stop
    python scripts/train_base.py --stage pack    # write src/brushwork/builtin_models/base from the runs

The data: WikiArt baroque and romanticism at 128 px (``../shared/data/wikiart128``; public domain,
see its SOURCES.md). Every eighth file of each style (by sorted name) is held out for measuring,
the rest (7,000 works) is trained on; ``files.json`` lists them with a hash of the list.

Stages, each resumable from its last checkpoint (a stretch may stop anywhere and a later one, on
this machine or another with the same work folder, goes on; step counts, not minutes, decide when
a stage is done, so the model is the same whatever the machine):
  data         the training folder (links) and the held-out list
  autoencoder  f=4, 4 channels, AE_STEPS steps of batch 16
  diffusion    style-conditional latent diffusion (baroque, romanticism; 10% unconditional),
               LD_STEPS steps of batch 32
  measure      SWD of 1,000 samples against the 1,000 held-out works beside the floor (1,000
               training works against the same held-out ones), per style; the copy check's
               COPY share against the training works
  pack         the shipped folder: config.json, one checkpoint with only the sampling weights
               (EMA denoiser and autoencoder), card.md, grid.png
  index        the copy check's index of the training works beside it (32 px thumbnails: data, so
               git-ignored and built where ../shared/data is, never shipped)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

STYLES = ("baroque", "romanticism")
HELD_OUT_EVERY = 8  # every 8th file of each style is held out (500 of 4,000)
AE_STEPS, AE_BATCH = 2000, 16
LD_STEPS, LD_BATCH = 5500, 32
LD_SETTINGS = ["channel_mult=1,2,2"]  # 32x32 latents: levels at 32, 16 and 8
SHIPPED = ROOT / "src" / "brushwork" / "builtin_models" / "base"
INDEX_SIDE = 32  # the copy check's index of the training works holds 32 px thumbnails (7,000 x 3 KB):
# its checks work at 8-32 px (retrieval thumbnails, verification, region windows)


def split_files(wikiart: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """({style: training files}, {style: held-out files}), names relative to ``wikiart``."""
    train, held = {}, {}
    for style in STYLES:
        files = sorted(p.name for p in (wikiart / style).iterdir() if p.is_file())
        train[style] = [f"{style}/{n}" for i, n in enumerate(files) if i % HELD_OUT_EVERY]
        held[style] = [f"{style}/{n}" for i, n in enumerate(files) if not i % HELD_OUT_EVERY]
    return train, held


def stage_data(args) -> Path:
    train, held = split_files(args.wikiart)
    data = args.work / "data"
    for style, files in train.items():
        (data / style).mkdir(parents=True, exist_ok=True)
        for name in files:
            link = data / name
            if not link.exists():
                link.symlink_to((args.wikiart / name).resolve())
    listing = "\n".join(sum(train.values(), []))
    (args.work / "files.json").write_text(json.dumps({
        "source": "WikiArt via shared/data/wikiart128 (see its SOURCES.md)", "styles": list(STYLES),
        "training_works": {s: len(f) for s, f in train.items()},
        "file_list_sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "held_out": sum(held.values(), []), "training": sum(train.values(), [])}, indent=1))
    return data


def _train(kind: str, model_cfg, data: Path, out: Path, steps: int, batch: int, args) -> bool:
    """Train (or resume) a run to ``steps``; False when the stretch's time ran out first."""
    from brushwork.config import RunConfig, TrainConfig
    from brushwork.runs.checkpoint import latest_checkpoint
    from brushwork.runs.directory import read_run_config
    from brushwork.training.run import train_run

    resume = latest_checkpoint(out) is not None
    if resume:
        model_cfg = read_run_config(out).model
    train = TrainConfig(data=str(data), batch_size=batch, steps=steps, log_every=100, sample_every=1000,
                        ckpt_every=250, keep_checkpoints=2, device=args.device)
    left = args.deadline - time.time() if args.deadline else None
    if left is not None and left < 60:
        return False
    trainer = train_run(RunConfig(kind=kind, model=model_cfg, train=train), out, resume=resume,
                        time_limit=left)
    return trainer.step >= steps


def stage_autoencoder(args, data: Path) -> bool:
    from brushwork.config import AutoencoderConfig

    return _train("autoencoder", AutoencoderConfig(resolution=128, factor=4, channels=4), data,
                  args.work / "ae", args.ae_steps, AE_BATCH, args)


def stage_diffusion(args, data: Path) -> bool:
    from brushwork.config import DiffusionConfig, apply_overrides
    from brushwork.training.latent import attach_autoencoder

    cfg = apply_overrides(DiffusionConfig(resolution=128, conditional=True), LD_SETTINGS)
    return _train("diffusion", attach_autoencoder(cfg, args.work / "ae"), data, args.work / "base",
                  args.ld_steps, LD_BATCH, args)


def _held_out_folder(args) -> Path:
    """Links to the held-out works, by style (what the measurements compare samples with)."""
    held = args.work / "held-out"
    for name in json.loads((args.work / "files.json").read_text())["held_out"]:
        (held / name).parent.mkdir(parents=True, exist_ok=True)
        if not (held / name).exists():
            (held / name).symlink_to((args.wikiart / name).resolve())
    return held


def _samples(run: Path, n: int, device: str, style=None):
    """uint8 [n, 3, 128, 128]: seeds 0..n-1 at the run's default sampling (seed s: style s % 2)."""
    import torch

    from brushwork.imaging import uint8_from_unit
    from brushwork.making.generate import load_model

    model = load_model(run, device)
    return torch.cat([uint8_from_unit(model.generate_seeds(list(range(s, min(n, s + 50))), style=style))
                      for s in range(0, n, 50)])


def measure(args) -> dict:
    """SWD against held-out works of the base's styles (with the floor), precision/recall, and the
    copy check's COPY share against its own training works."""
    import torch
    from diffusion import floor, quality

    from brushwork.data.dataset import load_dataset
    from brushwork.metrics.collection_index import build_index
    from brushwork.metrics.swd import swd

    held = load_dataset(str(_held_out_folder(args)), 128, progress=False)
    train = load_dataset(str(args.work / "data"), 128, progress=False)
    index = build_index(str(args.work / "data"), INDEX_SIDE)  # the index that ships (thumbnails)
    t0 = time.perf_counter()
    samples = _samples(args.work / "base", args.n, args.device)
    seconds = (time.perf_counter() - t0) / args.n
    mixed = held.images[torch.randperm(len(held), generator=torch.Generator().manual_seed(0))]
    row = {"samples": args.n, "held_out": len(held), "training_works": len(train),
           "sampling_s_per_image": round(seconds, 3), "floor": floor(train.images, mixed[:args.n], "cpu"),
           **quality(samples, mixed, train.images, "cpu", index)}
    for k, style in enumerate(held.label_names):  # per style: its seeds against its held-out works
        mine, real = samples[k::len(held.label_names)], held.images[held.labels == k]
        n = min(len(mine), len(real))
        row[f"swd_{style}"] = round(swd(mine[:n], real[:n])["mean"], 3)
        row[f"floor_{style}"] = round(swd(train.images[train.labels == k][:n], real[:n])["mean"], 3)
    (args.work / "measured.json").write_text(json.dumps(row, indent=1))
    return row


def _training_time(run: Path) -> float:
    """Hours of training in a run's log (its rows' image counts over their rates)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("img_per_s")]
    seen = [r["images_seen"] for r in rows]
    return sum((b - a) / r["img_per_s"] for a, b, r in zip([0] + seen, seen, rows)) / 3600


def pack(args) -> None:
    """The shipped folder: the sampling weights in float16 (half the size; loaded into float32),
    the config without local paths, the card, a sample grid. Prints the checkpoint's sha256 for
    runs/builtin.py."""
    import torch

    from brushwork.imaging import save_grid
    from brushwork.runs.checkpoint import read_checkpoint
    from brushwork.runs.directory import read_run_config
    from brushwork.training.shipping import ship

    run = args.work / "base"
    target = ship(run, args.shipped, ("denoiser_ema", "autoencoder"))
    cfg = read_run_config(args.shipped)
    tensors, meta = read_checkpoint(target, prefixes=("model/denoiser_ema/",))
    files = json.loads((args.work / "files.json").read_text())
    measured = json.loads((args.work / "measured.json").read_text())
    grid = _samples(args.work / "base", 16, args.device)
    (args.docs / "img").mkdir(parents=True, exist_ok=True)
    save_grid(grid.float() / 127.5 - 1, args.docs / "img" / "base-grid.png", 8)
    per_style = ", ".join(f"{style} {n:,}" for style, n in files["training_works"].items())
    card = CARD.format(works=sum(files["training_works"].values()), per_style=per_style,
                       list_hash=files["file_list_sha256"], held=len(files["held_out"]), m=measured,
                       ae_steps=args.ae_steps, ld_steps=args.ld_steps, ae_hours=_training_time(args.work / "ae"),
                       ld_hours=_training_time(run), params=sum(v.numel() for k, v in tensors.items()
                                                                 if k.startswith("model/denoiser_ema/")),
                       mib=target.stat().st_size / 2 ** 20, step=meta["step"], last=measured["samples"] - 1,
                       steps=cfg.model.sampling_steps, hardware=args.hardware, torch_version=torch.__version__)
    (args.shipped / "card.md").write_text(card)
    (args.docs / "base.md").write_text(card)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    print(f"packed {target} ({target.stat().st_size / 2**20:.1f} MiB); sha256 {digest}\n"
          f"set checkpoint_sha256 of 'base' in src/brushwork/runs/builtin.py to it")


CARD = """# Model card: `builtin:base`

brushwork's own prior: a style-conditional latent diffusion model at 128 x 128 px, learned only
from public-domain paintings, small enough to sample and adapt on a CPU.

![16 samples of builtin:base, seeds 0-15 (even seeds baroque, odd seeds romanticism)](img/base-grid.png)

**Licence of the data:** every training work is a public-domain painting (WikiArt baroque and
romanticism; see `shared/data/SOURCES.md`); impressionism was left out because its status was not
checked work by work.

## Data
- Folders: `wikiart128/baroque`, `wikiart128/romanticism` (128 px, centre squares).
- {works:,} training works ({per_style}); every eighth file of each style by sorted name ({held:,} works)
  held out for measuring.
- sha256 of the sorted list of training files: `{list_hash}`.

## Model
- Autoencoder: KL-regularised, f=4 (128 x 128 x 3 -> 32 x 32 x 4), L1 + Laplacian-pyramid L1 +
  patch discriminator; {ae_steps:,} steps of batch 16.
- Denoiser: EDM U-Net (channels 64/128/128, attention at 8 x 8), {params:,} parameters, styles
  baroque and romanticism with 10% of images shown without a style (classifier-free guidance);
  {ld_steps:,} steps of batch 32 (step {step:,}).
- Shipped: the EMA denoiser and the autoencoder in float16 ({mib:.1f} MiB), sha256-checked at load.
  The copy check's index of the training works (their 32 px thumbnails, so data) is not shipped:
  `python scripts/train_base.py --stage index` builds it beside the base where `shared/data` is,
  and from then on every image the base or a model adapted from it makes is checked against them.

## How it was trained
`python scripts/train_base.py` (stages resume; `--minutes M` trains in stretches), then
`python scripts/train_base.py --stage pack`. Hardware: {hardware}, torch {torch_version};
autoencoder {ae_hours:.2f} h, diffusion {ld_hours:.2f} h of training.

## Measured quality
{m[samples]:,} samples (seeds 0-{last}, default sampling: {steps} steps; seed s asks for style s mod 2)
against {m[held_out]:,} held-out works of its styles; the floor is {m[samples]:,} of its training works
against the same held-out works (per style: half as many of each).

| measure | samples | floor |
|---|---|---|
| SWD, both styles | {m[swd]} | {m[floor][swd]} |
| SWD, baroque | {m[swd_baroque]} | {m[floor_baroque]} |
| SWD, romanticism | {m[swd_romanticism]} | {m[floor_romanticism]} |
| precision / recall (8x8 thumbnails) | {m[precision_thumb]} / {m[recall_thumb]} | |
| COPY share (the copy check against its own training works) | {m[originality_copy_rate]:.1%} | |

Sampling: {m[sampling_s_per_image]} s per image on the training machine.

## Use
`brushwork sample builtin:base --seeds 0-15 --style baroque --out images`,
`brushwork paint builtin:base --sketch sketch.png --out painted`, and adapting it to a collection:
`brushwork train diffusion --from builtin:base --data my-art --out my-model [--adapter lora]`.
"""
def index(args) -> None:
    """The copy check's index of the base's training works, beside the installed base (git-ignored:
    it holds thumbnails of the paintings, which are data, not shipped)."""
    from brushwork.metrics.collection_index import build_index, write_shipped_index
    from brushwork.runs.builtin import INDEX_FOLDER

    folder = write_shipped_index(build_index(str(args.work / "data"), INDEX_SIDE), args.shipped / INDEX_FOLDER,
                                 "builtin:base training works")
    print(f"indexed the base's training works in {folder}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wikiart", type=Path, default=ROOT.parent / "shared" / "data" / "wikiart128")
    ap.add_argument("--work", type=Path, default=Path("/tmp/brushwork-base"), help="runs and data links")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--minutes", type=float, help="stop this stretch after so many minutes (resume later)")
    ap.add_argument("--stage", choices=["all", "data", "autoencoder", "diffusion", "measure", "pack", "index"],
                    default="all")
    ap.add_argument("--n", type=int, default=1000, help="samples measured")
    ap.add_argument("--ae-steps", type=int, default=AE_STEPS, help="autoencoder steps (more on a GPU)")
    ap.add_argument("--ld-steps", type=int, default=LD_STEPS, help="diffusion steps (more on a GPU)")
    ap.add_argument("--shipped", type=Path, default=SHIPPED, help="where pack writes the built-in model")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs", help="where pack writes base.md and its grid")
    ap.add_argument("--hardware", default="a 2-core CPU (no GPU)", help="what trained it, for the card")
    args = ap.parse_args()
    args.deadline = time.time() + args.minutes * 60 if args.minutes else None
    if not args.wikiart.is_dir():
        sys.exit(f"train_base: {args.wikiart} not found (see shared/data/SOURCES.md)")
    data = stage_data(args)
    if args.stage in ("all", "autoencoder") and not stage_autoencoder(args, data):
        return print("autoencoder: stretch over; run again to go on")
    if args.stage in ("all", "diffusion") and not stage_diffusion(args, data):
        return print("diffusion: stretch over; run again to go on")
    if args.stage in ("all", "measure"):
        print(json.dumps(measure(args), indent=1))
    if args.stage in ("all", "pack"):
        pack(args)
    if args.stage in ("all", "index"):
        index(args)


if __name__ == "__main__":
    main()
