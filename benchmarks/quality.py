"""Quality at equal compute: `dcgan` vs `modern` on real paintings, scored by multi-scale SWD.

Both presets train on the same paintings (WikiArt baroque + romanticism at 64 px) for the same
number of images, then 64-seed grids are saved and SWD is measured between generated images and a
held-out split that training never saw. The floor printed beside them is the SWD between two
disjoint sets of *real* paintings of the same size: no model can be expected to beat it.

    python benchmarks/quality.py --kimg 200 --device cpu          # a small check
    python benchmarks/quality.py --res 32 --kimg 20 --n-eval 800 --presets "dcgan|modern|modern:ada=true"
    python benchmarks/quality.py --kimg 3000 --device cuda        # the real comparison
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

# common puts src/ on the path
from common import add_data_args, add_run_args, load_styles, train_gan  # noqa: E402

from brushwork.config import apply_overrides, gan_preset  # noqa: E402
from brushwork.data.dataset import ArtDataset  # noqa: E402
from brushwork.latents import latents_for_seeds  # noqa: E402
from brushwork.imaging import save_grid  # noqa: E402
from brushwork.metrics.swd import swd  # noqa: E402
from brushwork.utils import resolve_device  # noqa: E402


def preset_config(spec: str, res: int):
    """'modern' or 'modern:key=value;key=value' (a preset with --set style overrides)."""
    name, _, sets = spec.partition(":")
    return apply_overrides(gan_preset(name, res), [s for s in sets.split(";") if s])


def train_preset(preset: str, data: ArtDataset, args, device, out: Path) -> dict:
    cfg = preset_config(preset, args.res)
    task, steps, seconds = train_gan(cfg, data, args.kimg, args.batch, device, args.seed, args.quiet)
    z = latents_for_seeds(list(range(args.n_eval)), cfg.z_dim)
    fakes = torch.cat([task.sample(chunk) for chunk in z.split(256)]).cpu()
    save_grid(fakes[:64], out / f"{preset.replace(':', '_').replace(';', '_')}_grid.png")
    return {"steps": steps, "kimg": args.kimg, "train_seconds": round(seconds, 1),
            "img_per_s": round(steps * args.batch / seconds, 1), "fakes": fakes}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap)
    ap.add_argument("--kimg", type=float, default=200, help="thousands of images shown per preset")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n-eval", type=int, default=2000, help="held-out reals = generated images")
    ap.add_argument("--presets", default="dcgan|modern", help="'|'-separated presets, each optionally "
                    "with overrides: 'modern:ema_halflife_kimg=2;d_lr=2e-4'")
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
        run = train_preset(preset, train_data, args, device, out)
        run["swd_vs_heldout"] = swd(run.pop("fakes"), heldout, device=device)
        result["presets"][preset] = run
        print(json.dumps({preset: run}), flush=True)
    save_grid(heldout[:64].float() / 127.5 - 1, out / "heldout_real_grid.png")
    (out / "quality.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
