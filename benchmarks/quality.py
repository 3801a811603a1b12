"""Quality at equal compute: `dcgan` vs `modern` on real paintings, scored by multi-scale SWD.

Both presets train on the same paintings (WikiArt baroque + romanticism at 64 px) for the same
number of images, then 64-seed grids are saved and SWD is measured between generated images and a
held-out split that training never saw. The floor printed beside them is the SWD between two
disjoint sets of *real* paintings of the same size: no model can be expected to beat it.
With ``--seconds``, each preset trains for that much training time instead and SWD is recorded
along the way: the time-to-quality curves (``swd_vs_seconds.png``) and the seconds `modern` needs
to reach the SWD `dcgan` ends at.

    python benchmarks/quality.py --kimg 200 --device cpu          # a small check
    python benchmarks/quality.py --res 32 --kimg 20 --n-eval 800 --presets "dcgan|modern|modern:ada=true"
    python benchmarks/quality.py --kimg 3000 --device cuda        # the real comparison
    python benchmarks/quality.py --seconds 120 --eval-every 10 --device cuda   # time to quality
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

# common puts src/ on the path
from common import (add_data_args, add_run_args, load_styles, plot_curves, sample_swd,  # noqa: E402
                    seconds_to_reach, train_gan, train_with_curve)

from brushwork.config import apply_overrides, gan_preset  # noqa: E402
from brushwork.data.dataset import ArtDataset, ImageBatcher  # noqa: E402
from brushwork.latents import latents_for_seeds  # noqa: E402
from brushwork.imaging import save_grid  # noqa: E402
from brushwork.metrics.swd import swd  # noqa: E402
from brushwork.training.gan import GANTask  # noqa: E402
from brushwork.utils import resolve_device  # noqa: E402


def preset_config(spec: str, res: int):
    """'modern' or 'modern:key=value;key=value' (a preset with --set style overrides)."""
    name, _, sets = spec.partition(":")
    return apply_overrides(gan_preset(name, res), [s for s in sets.split(";") if s])


def train_preset(preset: str, data: ArtDataset, heldout: torch.Tensor, args, device, out: Path) -> dict:
    """Train for ``--kimg`` with the library's Trainer; SWD of the final EMA generator."""
    cfg = preset_config(preset, args.res)
    task, steps, seconds = train_gan(cfg, data, args.kimg, args.batch, device, args.seed, args.quiet)
    return _finish(task, preset, steps, seconds, args, heldout, device, out)


def curve_preset(preset: str, data: ArtDataset, heldout: torch.Tensor, args, device, out: Path) -> dict:
    """Train for ``--seconds`` of training time, with SWD every ``--eval-every`` seconds."""
    cfg = preset_config(preset, args.res)
    task = GANTask(cfg, device, seed=args.seed)
    batcher = ImageBatcher(data, args.batch, args.res, device, flip=True, seed=args.seed,
                           channels_last=cfg.channels_last)
    curve, steps, seconds = train_with_curve(task, batcher, heldout, device, args.seconds, args.kimg,
                                             args.eval_every, label=preset)
    return _finish(task, preset, steps, seconds, args, heldout, device, out) | {"curve": curve}


def _finish(task, preset, steps, seconds, args, heldout, device, out: Path) -> dict:
    save_grid(task.sample(latents_for_seeds(list(range(64)), task.cfg.z_dim)),
              out / f"{preset.replace(':', '_').replace(';', '_')}_grid.png")
    return {"steps": steps, "kimg": steps * args.batch / 1000, "train_seconds": round(seconds, 1),
            "img_per_s": round(steps * args.batch / seconds, 1),
            "swd_vs_heldout": sample_swd(task, heldout, device, chunk=256)}


def _time_to_quality(result: dict, out: Path) -> None:
    """The curves' plot, and the seconds `modern` needs to reach `dcgan`'s final SWD."""
    runs = result["presets"]
    plot_curves({p: r["curve"] for p, r in runs.items()}, result["swd_floor_real_vs_heldout"]["mean"],
                f"training seconds ({result['device']})", f"{result['data']}, {result['res']} px",
                out / "swd_vs_seconds.png")
    if {"dcgan", "modern"} <= set(runs):
        target = runs["dcgan"]["curve"][-1]["swd"]
        result["modern_seconds_to_dcgan_final"] = seconds_to_reach(runs["modern"]["curve"], target)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap)
    ap.add_argument("--kimg", type=float, default=200, help="thousands of images shown per preset")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n-eval", type=int, default=2000, help="held-out reals = generated images")
    ap.add_argument("--presets", default="dcgan|modern", help="'|'-separated presets, each optionally "
                    "with overrides: 'modern:ema_halflife_kimg=2;d_lr=2e-4'")
    ap.add_argument("--seconds", type=float, default=0, help="train each preset for this many seconds "
                    "(training time only) with SWD every --eval-every seconds (0: by --kimg alone)")
    ap.add_argument("--eval-every", type=float, default=30, help="training seconds between SWD points")
    add_run_args(ap, "benchmarks/results/quality")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    full = load_styles(args.data, args.styles, args.res, progress=not args.quiet)
    train_data, held = full.split(args.n_eval / len(full), seed=args.seed, minimum=args.n_eval)
    heldout = held.images
    # Floor: real training paintings vs the held-out ones, same count, same SWD sampling.
    floor = swd(train_data.images[: args.n_eval], heldout, device=device)
    result = {"device": str(device), "data": f"{args.styles} ({len(full)} paintings, "
              f"{len(train_data)} train / {len(heldout)} held out)", "res": args.res,
              "batch": args.batch, "swd_floor_real_vs_heldout": floor, "presets": {}}
    for preset in args.presets.split("|"):
        train = curve_preset if args.seconds else train_preset
        result["presets"][preset] = run = train(preset, train_data, heldout, args, device, out)
        print(json.dumps({preset: {k: v for k, v in run.items() if k != "curve"}}), flush=True)
    if args.seconds:
        _time_to_quality(result, out)
    save_grid(heldout[:64].float() / 127.5 - 1, out / "heldout_real_grid.png")
    (out / "quality.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
