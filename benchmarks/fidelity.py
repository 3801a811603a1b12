"""Fidelity at 128 px: `fastgan` against `modern` on the 1,000 romanticism paintings at 128 px.

A tenth of the paintings is held out and never trained on. Each preset trains for the same wall
time (``--seconds``, training only) or until ``--kimg`` thousand images, whichever comes first;
every ``--eval-every`` seconds of training its EMA generator makes as many images as there are
held-out paintings and SWD is measured against them. The floor beside the curves is the SWD
between as many *training* paintings and the held-out ones: no model can be expected to beat it.
Reported: each curve (seconds, images shown, SWD), the SWD at equal seconds (the end) and at
equal images (the fewest either reached), the seconds `fastgan` needs to reach `modern`'s final
SWD, sample grids and a plot.

    python benchmarks/fidelity.py --device cuda --seconds 1800              # the real comparison
    python benchmarks/fidelity.py --device cpu --seconds 240 --width 16     # a short CPU run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from common import SHARED, add_run_args, plot_curves, seconds_to_reach, train_with_curve  # noqa: E402

from brushwork.config import gan_preset  # noqa: E402
from brushwork.data.dataset import ImageBatcher, load_dataset  # noqa: E402
from brushwork.imaging import save_grid  # noqa: E402
from brushwork.metrics.swd import swd  # noqa: E402
from brushwork.training.cuda_graph import WARMUP_STEPS  # noqa: E402
from brushwork.training.gan import GANTask  # noqa: E402
from brushwork.utils import resolve_device  # noqa: E402


def run_preset(preset: str, train, heldout: torch.Tensor, args, device, out: Path) -> dict:
    cfg = gan_preset(preset, 128)
    if args.width:
        cfg.g_width = cfg.d_width = args.width
    task = GANTask(cfg, device, seed=args.seed)
    batcher = ImageBatcher(train, args.batch, 128, device, seed=args.seed, channels_last=cfg.channels_last)
    curve, steps, seconds = train_with_curve(task, batcher, heldout, device, args.seconds, args.kimg,
                                             args.eval_every, args.steps_per_chunk, label=preset)
    save_grid(task.preview()[:64], out / f"{preset}_grid.png")
    return {"params_G": sum(p.numel() for p in task.G.parameters()),
            "params_D": sum(p.numel() for p in task.D.parameters()),
            "d_reconstruction": getattr(task, "recon_kind", "off"), "img_per_s": round(steps * args.batch / seconds, 1),
            "curve": curve}


def _at_kimg(curve: list[dict], kimg: float) -> float:
    """The SWD of the last evaluation at or before ``kimg``."""
    return [c["swd"] for c in curve if c["kimg"] <= kimg + 1e-9][-1]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_one(res: int, batch: int, device, steps: int = 3, graph: bool = False) -> dict:
    """Peak memory and speed of `fastgan` training steps at paper widths, bf16 where the device
    has it (``graph``: replayed as CUDA graphs). CUDA: peak allocated; CPU: peak resident growth
    from before the models were built (weights, gradients, Adam moments, EMA and activations)."""
    import resource

    before = _rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cfg = gan_preset("fastgan", res)
    cfg.cuda_graph = graph
    task = GANTask(cfg, device)
    real = (torch.rand(batch, 3, res, res, device=device) * 2 - 1).contiguous(memory_format=torch.channels_last)
    row = {"res": res, "batch": batch, "device": str(device), "bf16": task.bf16,
           "cuda_graph": task.graphs is not None}
    untimed = WARMUP_STEPS + 1 if task.graphs is not None else 1  # eager warm-up, then capture
    try:
        for step in range(untimed):  # the first step allocates optimiser state and autotunes
            task.train_step(real, step)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for step in range(untimed, untimed + steps):
            task.train_step(real, step)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        row["img_per_s"] = round(steps * batch / (time.perf_counter() - t0), 2)
    except torch.OutOfMemoryError:
        row["out_of_memory"] = True
    if device.type == "cuda":
        row["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    else:  # ru_maxrss is in KiB on Linux
        row["peak_gib"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before) / 2**30, 2)
    return row


def memory_table(configs: str, device, json_path: str | None, steps: int) -> None:
    """Each RESxBATCH (RESxBATCHg: as CUDA graphs) in its own process (peaks do not carry over);
    one JSON line each."""
    for spec in configs.split(","):
        graph = spec.endswith("g")
        res, batch = spec.rstrip("g").split("x")
        done = subprocess.run([sys.executable, __file__, "--memory-one", res, batch, "--device", str(device),
                               "--memory-steps", str(steps), *(["--memory-graph"] if graph else [])],
                              capture_output=True, text=True)
        line = done.stdout.strip().splitlines()[-1] if done.returncode == 0 else json.dumps(
            {"res": int(res), "batch": int(batch), "error": done.stderr.strip().splitlines()[-1:]})
        print(line, flush=True)
        if json_path:
            with open(json_path, "a") as f:
                f.write(line + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SHARED / "wikiart128" / "romanticism"))
    ap.add_argument("--seconds", type=float, default=1800, help="training seconds per preset")
    ap.add_argument("--kimg", type=float, default=1e9, help="or at most this many thousand images")
    ap.add_argument("--eval-every", type=float, default=120, help="training seconds between SWD points")
    ap.add_argument("--steps-per-chunk", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=0, help="g_width = d_width (0: each preset's own)")
    ap.add_argument("--presets", default="modern,fastgan")
    ap.add_argument("--memory", action="store_true", help="instead: fastgan's peak memory and img/s per "
                    "resolution and batch (--memory-configs)")
    ap.add_argument("--memory-configs", default="256x8,256x8g,256x32,512x16,512x32,1024x8,1024x16",
                    help="RESxBATCH, comma-separated; a trailing g: replayed as CUDA graphs")
    ap.add_argument("--memory-steps", type=int, default=3, help="--memory: timed steps after the first")
    ap.add_argument("--memory-one", nargs=2, type=int, metavar=("RES", "BATCH"), help=argparse.SUPPRESS)
    ap.add_argument("--memory-graph", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="--memory: append each row to this file")
    add_run_args(ap, "benchmarks/results/fidelity")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    if args.memory_one:
        print(json.dumps(memory_one(*args.memory_one, device, args.memory_steps, args.memory_graph)))
        return
    if args.memory:
        memory_table(args.memory_configs, device, args.json, args.memory_steps)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not Path(args.data).is_dir():
        raise SystemExit(f"fidelity: {args.data} not found (see shared/data/SOURCES.md)")
    full = load_dataset(args.data, 128, progress=not args.quiet)
    train, held = full.split(0.1, seed=args.seed)
    floor = swd(train.images[: len(held)], held.images, device=device)["mean"]
    result = {"device": str(device), "data": f"{args.data} ({len(train)} train / {len(held)} held out)",
              "batch": args.batch, "seconds": args.seconds, "width": args.width or "preset",
              "swd_floor": floor, "presets": {}}
    for preset in args.presets.split(","):
        result["presets"][preset] = run_preset(preset, train, held.images, args, device, out)
    runs = result["presets"]
    if {"modern", "fastgan"} <= set(runs):
        fewest = min(run["curve"][-1]["kimg"] for run in runs.values())
        modern_final = runs["modern"]["curve"][-1]["swd"]
        result["comparison"] = {
            "equal_seconds_swd": {p: r["curve"][-1]["swd"] for p, r in runs.items()},
            "equal_images_kimg": fewest,
            "equal_images_swd": {p: _at_kimg(r["curve"], fewest) for p, r in runs.items()},
            "fastgan_seconds_to_modern_final": seconds_to_reach(runs["fastgan"]["curve"], modern_final),
            "closer_to_floor_ratio": round((modern_final - floor) / max(runs["fastgan"]["curve"][-1]["swd"] - floor, 1e-9), 3)}
    save_grid(held.images[:64].float() / 127.5 - 1, out / "heldout_real_grid.png")
    plot_curves({p: r["curve"] for p, r in runs.items()}, floor, f"training seconds ({device})",
                "romanticism, 128 px", out / "swd_vs_seconds.png")
    (out / "fidelity.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "presets"}, indent=2))


if __name__ == "__main__":
    main()
