"""Imitation vs innovation at equal images shown: unconditional, conditional and creative GANs.

All models train on the same WikiArt paintings (baroque, romanticism, impressionism; a seeded
tenth of each style held out) for the same number of images. Each is then scored on samples:

* quality: SWD against the held-out paintings, beside the floor (SWD of real training paintings
  against the same held-out ones);
* style accuracy (conditional): how often brushwork's style judge places a sample asked for a
  style in that style, beside the judge's own accuracy on held-out real works;
* ambiguity: mean normalised entropy of the judge on samples (real works: ``real_ambiguity``);
* novelty: median nearest tiled-L2 distance to a training painting; memorisation rate.

    python benchmarks/creative.py --kimg 128 --device cpu          # small, about 15 minutes
    python benchmarks/creative.py --kimg 2000 --res 64 --device cuda
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# common puts src/ on the path
from common import SHARED, add_data_args, add_run_args, load_styles, train_gan  # noqa: E402

from brushwork.config import RunConfig, gan_preset  # noqa: E402
from brushwork.data.dataset import ArtDataset  # noqa: E402
from brushwork.evaluation import style_metrics  # noqa: E402
from brushwork.making.generate import TrainedModel  # noqa: E402
from brushwork.imaging import save_figure, save_grid, uint8_from_unit  # noqa: E402
from brushwork.metrics.swd import swd  # noqa: E402
from brushwork.utils import resolve_device  # noqa: E402

MODELS = {  # name: GANConfig changes
    "unconditional": {},
    "conditional": {"conditional": True},
    "conditional ms0.05": {"conditional": True, "mode_seeking": 0.05},  # as in the demo
    "creative 0.5": {"creative": True, "creativity": 0.5},
    "creative 1.0 (default)": {"creative": True, "creativity": 1.0},
    "creative 2.0": {"creative": True, "creativity": 2.0},
}


def train(name: str, data: ArtDataset, args, device) -> tuple[TrainedModel, float]:
    cfg = gan_preset("modern", args.res)
    cfg.g_width = cfg.d_width = args.width
    cfg.num_styles = len(data.label_names)
    for key, value in MODELS[name].items():
        setattr(cfg, key, value)
    task, steps, seconds = train_gan(cfg, data, args.kimg, args.batch, device, args.seed, args.quiet)
    config = RunConfig(kind="gan", model=cfg, labels=data.label_names)
    model = TrainedModel(task.sampler.eval(), config, Path(name), steps, "", device)
    return model, seconds


def plot(rows: dict, floor: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for name, r in rows.items():
        axes[0].scatter(r["swd"], r["novelty"], s=40)
        axes[0].annotate(name, (r["swd"], r["novelty"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
        axes[1].scatter(r["swd"], r["ambiguity"], s=40)
        axes[1].annotate(name, (r["swd"], r["ambiguity"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    for ax, label in zip(axes, ["novelty (median nearest tiled L2, higher = newer)",
                                "style ambiguity (judge entropy, higher = less placeable)"]):
        ax.axvline(floor, color="k", linestyle="--", linewidth=1, label="SWD floor (real vs real)")
        ax.set_xlabel("SWD vs held-out paintings (lower = better quality)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Novelty and ambiguity against quality, equal images shown", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    save_figure(fig, out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap, styles="baroque,romanticism,impressionism")
    ap.set_defaults(res=32)
    ap.add_argument("--kimg", type=float, default=128, help="thousands of images shown per model")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=32, help="g_width = d_width")
    ap.add_argument("--n-eval", type=int, default=1000, help="samples scored per model")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--originality-features", default="imagenet",
                    help="VGG19 weights for the memorisation rate (random: a weak stand-in)")
    add_run_args(ap, "benchmarks/results/creative")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    full = load_styles(args.data, args.styles, args.res, progress=not args.quiet)
    train_data, held = full.split(0.1, seed=args.seed)
    floor = swd(train_data.images[: len(held)], held.images, device=device)["mean"]
    result = {"device": str(device), "res": args.res, "width": args.width, "batch": args.batch,
              "kimg": args.kimg, "data": f"{args.styles}: {len(train_data)} train / {len(held)} held out",
              "swd_floor": round(floor, 3), "models": {}}
    for name in args.models.split(","):
        model, seconds = train(name, train_data, args, device)
        row = style_metrics(model, train_data, args.n_eval, device, args.originality_features)
        fakes = uint8_from_unit(model.generate_seeds(list(range(args.n_eval))))
        row.update(swd=round(swd(fakes, held.images, device=device)["mean"], 3),
                   train_seconds=round(seconds, 1))
        slug = name.replace(" (default)", "").replace(" ", "-")
        save_grid(model.generate_seeds(list(range(24))), out / f"{slug}_grid.png", 8)
        result["models"][name] = row
        print(json.dumps({name: row}), flush=True)
    plot(result["models"], floor, out / "novelty_vs_quality.png")
    (out / "creative.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    if not SHARED.is_dir():
        raise SystemExit(f"benchmark: {SHARED} not found (see shared/data/SOURCES.md)")
    main()
