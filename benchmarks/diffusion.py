"""The diffusion family measured: speed, sampling steps, diffusion vs GAN, guided creation,
memorisation and memory. Every figure is reported beside its baseline or floor from the same run.

    python benchmarks/diffusion.py speed                      # img/s vs denoising-diffusion-pytorch
    python benchmarks/diffusion.py versus --minutes 30        # diffusion vs modern GAN, romanticism 32 px
    python benchmarks/diffusion.py steps --run RUN            # SWD at 8-64 steps vs a 256-step reference
    python benchmarks/diffusion.py guided --run RUN           # sketches: composition kept vs style taken
    python benchmarks/diffusion.py memorisation --sizes 300,2000,8000 --minutes 15
    python benchmarks/diffusion.py memory --res 64            # peak resident memory, train and sample

Training budgets are wall seconds on an otherwise idle machine (``--clock cpu`` counts the
process's CPU seconds instead, which a busy machine inflates: torch's threads spin while waiting). Quality is SWD (``metrics/swd.py``) against
held-out paintings beside the floor (SWD between two disjoint sets of real paintings of the same
size); precision/recall (Kynkaanniemi et al. 2019, k = 3) in two feature spaces, since no
Inception weights are on these machines: 8x8 colour thumbnails (composition and palette) and the
fixed random conv net that stands in for Inception (``metrics/evaluate.py``). Memorisation: the
share of samples closer to their nearest training work than 1/3 of the distance to the second
nearest (Yoon et al. 2023; Gu et al. 2023), in pixels; the share the originality check's
tiled L2 flags (closer than 95% of training works are to their nearest other one); and the share
the collection index's edited-copy check (what every written image records) calls COPY.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import SHARED, link_styles  # noqa: E402  (puts src/ on the path)

from brushwork.config import DiffusionConfig, RunConfig, TrainConfig, gan_preset  # noqa: E402
from brushwork.data.dataset import ArtDataset, load_dataset  # noqa: E402
from brushwork.imaging import save_grid, uint8_from_unit  # noqa: E402
from brushwork.making.generate import load_model  # noqa: E402
from brushwork.metrics.collection_index import build_index  # noqa: E402
from brushwork.metrics.evaluate import RandomFeatures, extract, precision_recall  # noqa: E402
from brushwork.metrics.originality import tiled_l2  # noqa: E402
from brushwork.metrics.swd import swd  # noqa: E402
from brushwork.runs.checkpoint import list_checkpoints  # noqa: E402
from brushwork.training.run import train_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# -- data ------------------------------------------------------------------------------------------
def split_data(styles: str, res: int, held_out: int, data_root: Path = SHARED / "wikiart64",
               seed: int = 0) -> tuple[ArtDataset, ArtDataset]:
    """(training works, held-out works) of the chosen WikiArt styles, a fixed seeded split."""
    with tempfile.TemporaryDirectory() as tmp:
        ds = load_dataset(str(link_styles(Path(tmp), data_root, styles)), res, progress=False)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    return ds.subset(order[held_out:]), ds.subset(order[:held_out])


def save_images_folder(images: torch.Tensor, folder: Path) -> Path:
    """uint8 [N, 3, R, R] as PNGs in one flat folder (what ``train --data`` reads)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(img).save(folder / f"{i:05d}.png")
    return folder


# -- quality -----------------------------------------------------------------------------------------
def thumbnails(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, R, R] -> [N, 192] float64: 8x8 colour thumbnails (composition and palette)."""
    return F.adaptive_avg_pool2d(images.float() / 255, 8).flatten(1).double()


def memorisation(samples: torch.Tensor, train: torch.Tensor, closest: Path | None = None) -> dict:
    """Shares of samples that copy a training work, by two criteria (see the module's doc);
    with ``closest``, also a grid there of the samples nearest a work (``closest_pairs``)."""
    a, b = samples.float().flatten(1) / 255, train.float().flatten(1) / 255
    ratios = []
    for chunk in a.split(256):
        two = torch.cdist(chunk, b).topk(2, dim=1, largest=False).values  # [n, 2]
        ratios.append(two[:, 0] / two[:, 1].clamp_min(1e-12))
    ratio = torch.cat(ratios)
    calib = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:1000]]
    threshold = torch.quantile(tiled_l2(calib, calib, exclude_self=True)[0], 0.05).item()
    nearest, which = tiled_l2(samples, train)
    if closest is not None:
        closest_pairs(samples, train, nearest, which, closest)
    return {"memorised_ratio_rate": round((ratio < 1 / 3).float().mean().item(), 4),
            "tiled_l2_copy_rate": round((nearest <= threshold).float().mean().item(), 4),
            "median_nn_ratio": round(ratio.median().item(), 4),
            "median_tiled_l2": round(nearest.median().item(), 4), "tiled_l2_threshold": round(threshold, 4)}


def closest_pairs(samples: torch.Tensor, train: torch.Tensor, nearest: torch.Tensor, which: torch.Tensor,
                  path: Path, k: int = 8) -> None:
    """A grid of the ``k`` samples nearest a training work (``nearest``, ``which``: tiled_l2's
    answer), each above its work: what copying looks like, next to the rates."""
    order = nearest.argsort()[:k]
    pairs = torch.cat([samples[order], train[which[order]]]).float() / 127.5 - 1
    save_grid(pairs, path, k)


def quality(samples: torch.Tensor, held_out: torch.Tensor, train: torch.Tensor, device, index=None,
            closest: Path | None = None) -> dict:
    """SWD, precision/recall (two feature spaces) and memorisation of uint8 samples; with the
    collection's originality ``index``, also the share its check (what ``sample`` records in
    every image) calls COPY."""
    n = min(len(samples), len(held_out))
    row = {"swd": round(swd(samples[:n], held_out[:n], device=device)["mean"], 3)}
    for name, feats in (("thumb", thumbnails), ("randconv", None)):
        if feats is None:
            net = RandomFeatures().eval()
            real_f, fake_f = extract(net, held_out[:n], device), extract(net, samples[:n], device)
        else:
            real_f, fake_f = feats(held_out[:n]), feats(samples[:n])
        p, r = precision_recall(real_f, fake_f)
        row[f"precision_{name}"], row[f"recall_{name}"] = round(p, 4), round(r, 4)
    if index is not None:
        verdicts = index.check(samples)
        row["originality_copy_rate"] = round(sum(v["verdict"] == "COPY" for v in verdicts) / len(samples), 4)
    return row | memorisation(samples, train, closest)


def floor(train: torch.Tensor, held_out: torch.Tensor, device) -> dict:
    """The same measures for real training works against the held-out ones: the floor."""
    n = min(len(train), len(held_out))
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:n]
    return {"swd": round(swd(train[pick], held_out[:n], device=device)["mean"], 3)}


def samples_of(run: Path, n: int, device: str = "cpu", **sampling) -> torch.Tensor:
    """uint8 samples of seeds 0..n-1 of a run (any family), in batches."""
    model = load_model(run, device).using(sampling=sampling or None)
    return torch.cat([uint8_from_unit(model.generate_seeds(list(range(s, min(n, s + 200)))))
                      for s in range(0, n, 200)])


# -- training ----------------------------------------------------------------------------------------
def diffusion_config(res: int, overrides: list[str] = ()) -> DiffusionConfig:
    from brushwork.config import apply_overrides

    return apply_overrides(DiffusionConfig(resolution=res), list(overrides))


def gan_config(res: int, overrides: list[str] = ()):
    from brushwork.config import apply_overrides

    return apply_overrides(gan_preset("modern", res), list(overrides))


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def train_for(kind: str, model_cfg, data: str, out: Path, seconds: float | None, batch: int = 64,
              seed: int = 0, clock: str = "wall", steps: int | None = None, device: str = "cpu",
              resume: bool = False) -> dict:
    """Train a run with the library's Trainer for ``seconds`` of ``clock``: wall time on an
    otherwise idle machine, or this process's CPU time. (CPU time is not a fair budget on a
    shared machine after all: torch's threads spin while waiting for a descheduled partner, so
    a busy machine inflated it 3x, 578 diffusion steps in 60 CPU minutes.) ``steps``: a fixed
    number of steps instead (equal images); ``resume``: continue the run in ``out`` to them."""
    load_dataset(data, model_cfg.resolution, progress=False)  # decoded and cached before the clock starts
    train = TrainConfig(data=data, batch_size=batch, steps=steps or 10**9, log_every=100, sample_every=10**9,
                        ckpt_every=10**9, keep_checkpoints=1, seed=seed, device=device)
    t0, w0 = time.process_time(), time.perf_counter()
    trainer = train_run(RunConfig(kind=kind, model=model_cfg, train=train), out, resume=resume, quiet=True,
                        time_limit=seconds, clock=CLOCKS[clock])
    return {"steps": trainer.step, "kimg": round(trainer.step * batch / 1000, 1),
            "cpu_seconds": round(time.process_time() - t0), "wall_seconds": round(time.perf_counter() - w0)}


def count_parameters(run: Path) -> int:
    return sum(p.numel() for p in load_model(run, "cpu").network.parameters())


# -- commands ----------------------------------------------------------------------------------------
TRAINER_ONLY = ("accelerate", "ema_pytorch", "pytorch_fid", "scipy", "scipy.optimize")


def import_ddpm_pytorch():
    """denoising-diffusion-pytorch's Unet and GaussianDiffusion (the training step measured).
    On a CPU machine it is pip-installed if missing (it is not a brushwork dependency). The GPU
    machine installs nothing: its source and einops come unpacked in .gpudata/pylib, and the
    modules only its Trainer uses (accelerate, ema_pytorch, pytorch_fid, scipy) are stood in
    for by empty ones when absent; the step measured calls none of them."""
    import importlib
    import types

    pylib = ROOT / ".gpudata" / "pylib"
    if pylib.is_dir():
        sys.path.append(str(pylib))
    try:
        importlib.import_module("denoising_diffusion_pytorch")
    except ImportError:
        if not torch.cuda.is_available():
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "denoising-diffusion-pytorch"], check=True)
        for name in TRAINER_ONLY:
            try:
                importlib.import_module(name)
            except ImportError:
                stub = sys.modules[name] = types.ModuleType(name)
                for attr in ("Accelerator", "EMA", "InceptionV3", "linear_sum_assignment"):
                    setattr(stub, attr, None)
        sys.modules["scipy"].optimize = sys.modules["scipy.optimize"]
    from denoising_diffusion_pytorch import GaussianDiffusion, Unet

    return GaussianDiffusion, Unet


def cmd_speed(args) -> dict:
    """Training img/s of brushwork's diffusion step against denoising-diffusion-pytorch's at equal
    parameters and resolution, interleaved rounds in one process."""
    GaussianDiffusion, Unet = import_ddpm_pytorch()

    from brushwork.training.diffusion import DiffusionTask
    from brushwork.training.optim import use_bf16

    res, batch, device = args.res, args.batch, torch.device(args.device)
    ours = DiffusionTask(DiffusionConfig(resolution=res), device)
    ours_params = sum(p.numel() for p in ours.net.parameters())
    # their U-Net widths: the dim whose parameter count is nearest ours, at their (1, 2, 2) levels
    candidates = {dim: sum(p.numel() for p in Unet(dim=dim, dim_mults=(1, 2, 2)).parameters())
                  for dim in range(32, 129, 8)}
    dim = min(candidates, key=lambda d: abs(candidates[d] - ours_params))
    theirs = GaussianDiffusion(Unet(dim=dim, dim_mults=(1, 2, 2)), image_size=res, timesteps=1000).to(device)
    their_opt = torch.optim.Adam(theirs.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, res, res, device=device)

    def their_step(bf16: bool):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = theirs(x)
        their_opt.zero_grad()
        loss.backward()
        their_opt.step()

    def rate(step) -> float:
        for _ in range(2):
            step()
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        sync()
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < args.seconds:
            step()
            n += 1
        sync()
        return round(n * batch / (time.perf_counter() - t0), 1)

    # interleaved rounds, so that both see the same machine state
    rounds = {"brushwork": [], "ddpm_pytorch_fp32": [], "ddpm_pytorch_bf16": []}
    for _ in range(args.rounds):
        rounds["brushwork"].append(rate(lambda: ours.train_step(x * 2 - 1, 10**6)))
        rounds["ddpm_pytorch_fp32"].append(rate(lambda: their_step(False)))
        rounds["ddpm_pytorch_bf16"].append(rate(lambda: their_step(True)))
    best = {k: max(v) for k, v in rounds.items()}
    return {"benchmark": "diffusion-speed", "device": str(device), "res": res, "batch": batch,
            "brushwork_params": ours_params,
            "ddpm_pytorch_params": candidates[dim], "ddpm_pytorch_dim": dim,
            "brushwork_bf16": use_bf16("auto", device), "img_per_s": best, "rounds": rounds,
            "ratio_vs_fp32_default": round(best["brushwork"] / best["ddpm_pytorch_fp32"], 2),
            "ratio_vs_bf16": round(best["brushwork"] / best["ddpm_pytorch_bf16"], 2)}


def cmd_versus(args) -> dict:
    """Diffusion vs the modern GAN on one style at equal time (and, as gan-equal-images, at the
    diffusion run's number of images): quality, coverage, copying."""
    out = Path(args.out)
    train, held_out = split_data(args.styles, args.res, args.held_out)
    data = str(save_images_folder(train.images, out / "data" / "train"))
    result = {"benchmark": "diffusion-vs-gan", "styles": args.styles, "res": args.res, "train": len(train),
              "held_out": len(held_out), "minutes": args.minutes, "clock": args.clock,
              "floor": floor(train.images, held_out.images, "cpu")}
    families = {"diffusion": ("diffusion", diffusion_config(args.res, args.diffusion_set)),
                "gan": ("gan", gan_config(args.res, args.gan_set)),
                "gan-equal-images": ("gan", gan_config(args.res, args.gan_set))}
    for name in args.families.split(","):
        kind, cfg = families[name]
        run = out / name
        if not (run / "checkpoints").is_dir():
            # equal images: the GAN trained for as many steps as the diffusion run took in its time
            steps = int(next((out / "diffusion" / "checkpoints").glob("step-*")).stem[5:]) \
                if name == "gan-equal-images" else None
            result[name] = {"training": train_for(kind, cfg, data, run, None if steps else args.minutes * 60,
                                                  args.batch, args.seed, args.clock, steps)}
        else:
            result[name] = {"training": "reused"}
        t0 = time.perf_counter()
        samples = samples_of(run, args.n)
        result[name]["sampling_seconds"] = round(time.perf_counter() - t0, 1)
        result[name]["params"] = count_parameters(run)
        result[name].update(quality(samples, held_out.images, train.images, "cpu"))
        save_grid(samples[:64].float() / 127.5 - 1, out / f"{name}-grid.png", 8)
        print(json.dumps({name: result[name]}), flush=True)
    return result


def cmd_steps(args) -> dict:
    """SWD of one run's samples at several step counts against a many-step reference."""
    train, held_out = split_data(args.styles, args.res, args.held_out)
    result = {"benchmark": "diffusion-steps", "run": str(args.run), "n": args.n,
              "floor": floor(train.images, held_out.images[:args.n], "cpu"), "reference_steps": args.reference}
    reference = samples_of(args.run, args.n, sampler="dpm2m", steps=args.reference)
    result["reference_swd"] = round(swd(reference, held_out.images[:args.n])["mean"], 3)
    for sampler in args.samplers.split(","):
        for steps in (int(s) for s in args.steps.split(",")):
            t0 = time.perf_counter()
            images = samples_of(args.run, args.n, sampler=sampler, steps=steps)
            row = {"swd": round(swd(images, held_out.images[:args.n])["mean"], 3),
                   "vs_reference": round(swd(images, held_out.images[:args.n])["mean"] / result["reference_swd"], 3),
                   "seconds_per_image": round((time.perf_counter() - t0) / args.n, 4),
                   "pixel_rmse_to_reference": round(((images.float() - reference.float()) / 255)
                                                    .square().mean().sqrt().item(), 4)}
            result[f"{sampler}/{steps}"] = row
            print(json.dumps({f"{sampler}/{steps}": row}), flush=True)
    return result


def crude_sketches(images: torch.Tensor, blocks: int = 4) -> torch.Tensor:
    """uint8 [N, 3, R, R] -> the same reduced to flat colour blocks (a crude sketch of each)."""
    small = F.adaptive_avg_pool2d(images.float(), blocks)
    return F.interpolate(small, size=images.shape[-2:], mode="nearest").round().to(torch.uint8)


NO_MARGINS = {"left": 0, "right": 0, "top": 0, "bottom": 0}


def canvases(images: torch.Tensor, region: np.ndarray | None = None) -> list:
    """uint8 [N, 3, R, R] -> one paint canvas each (with ``region`` [R, R] to repaint, if any)."""
    from brushwork.making.paint import PaintInputs

    return [PaintInputs(i.permute(1, 2, 0).numpy().copy(), region, "", None, NO_MARGINS) for i in images]


def seam_jump(images: torch.Tensor, box: tuple[int, int]) -> float:
    """Mean absolute step (0-255) between each pixel on a square's border and its outside
    neighbour: how visible the edge of a repainted square [lo, hi) x [lo, hi) is."""
    x, (lo, hi) = images.float(), box
    steps = [x[..., lo - 1, lo:hi] - x[..., lo, lo:hi], x[..., hi, lo:hi] - x[..., hi - 1, lo:hi],
             x[..., lo:hi, lo - 1] - x[..., lo:hi, lo], x[..., lo:hi, hi] - x[..., lo:hi, hi - 1]]
    return round(torch.cat([d.flatten() for d in steps]).abs().mean().item(), 2)


def cmd_guided(args) -> dict:
    """Held-out paintings reduced to colour-block sketches, painted at strengths 0.2-0.9: how much
    composition survives (8x8 RMSE to the sketch) and how like the collection the result is (SWD
    to training works, against the sketches' own). Then their centre squares repainted with 1, 2
    and 4 RePaint repeats: how visible the seam is, beside the same lines in the paintings."""
    from brushwork.making.paint import paint

    train, held_out = split_data(args.styles, args.res, args.held_out)
    model = load_model(args.run, "cpu")
    works = held_out.images[:args.n]
    sketches = crude_sketches(works)
    reference = train.images[:2000]
    seeds = list(range(args.n))

    def composition(images: torch.Tensor) -> float:  # RMSE (0..1 scale) of 8x8 thumbnails
        return round((thumbnails(images) - thumbnails(sketches)).square().mean().sqrt().item(), 4)

    result = {"benchmark": "diffusion-guided", "run": str(args.run), "n": args.n,
              "sketch": {"composition_rmse": 0.0, "swd_to_training": round(swd(sketches, reference)["mean"], 3)},
              "held_out_paintings": {"composition_rmse": composition(works),
                                     "swd_to_training": round(swd(works, reference)["mean"], 3)}}
    for strength in (float(s) for s in args.strengths.split(",")):
        painted = torch.from_numpy(paint(model, canvases(sketches), seeds, strength)).permute(0, 3, 1, 2)
        row = {"composition_rmse": composition(painted), "swd_to_training": round(swd(painted, reference)["mean"], 3)}
        result[f"strength {strength}"] = row
        save_grid(torch.cat([sketches[:8], painted[:8]]).float() / 127.5 - 1,
                  Path(args.out) / f"guided-{strength}.png", 8)
        print(json.dumps({strength: row}), flush=True)
    plot_guided(result, Path(args.out) / "guided.png")
    box = (args.res // 4, args.res * 3 // 4)
    square = np.zeros((args.res, args.res), bool)
    square[box[0]:box[1], box[0]:box[1]] = True
    result["seam"] = {"paintings_themselves": seam_jump(works, box)}
    for resample in (1, 2, 4):
        t0 = time.perf_counter()
        painted = torch.from_numpy(paint(model, canvases(works, square), seeds, 1.0, resample=resample))
        painted = painted.permute(0, 3, 1, 2)
        result["seam"][f"resample {resample}"] = {
            "seam_jump": seam_jump(painted, box), "seconds_per_image": round((time.perf_counter() - t0) / args.n, 3),
            "swd_to_training": round(swd(painted, reference)["mean"], 3)}
        save_grid(torch.cat([works[:8], painted[:8]]).float() / 127.5 - 1,
                  Path(args.out) / f"guided-repaint-{resample}.png", 8)
        print(json.dumps({f"resample {resample}": result["seam"][f"resample {resample}"]}), flush=True)
    return result


def plot_guided(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from brushwork.imaging import save_figure

    rows = [(float(k.split()[1]), v) for k, v in result.items() if k.startswith("strength ")]
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=120)
    ax.plot([s for s, _ in rows], [r["swd_to_training"] for _, r in rows], "o-", label="SWD to the collection")
    ax.axhline(result["sketch"]["swd_to_training"], color="grey", ls=":", label="the sketches' own SWD")
    ax.axhline(result["held_out_paintings"]["swd_to_training"], color="k", ls="--", label="held-out paintings")
    ax2 = ax.twinx()
    ax2.plot([s for s, _ in rows], [r["composition_rmse"] for _, r in rows], "s-", color="C3",
             label="composition change (8x8 RMSE to the sketch)")
    ax.set_xlabel("strength")
    ax.set_ylabel("SWD to training works")
    ax2.set_ylabel("8x8 RMSE to the sketch", color="C3")
    fig.legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    save_figure(fig, path)


def cmd_memorisation(args) -> dict:
    """Diffusion and the modern GAN at several collection sizes, equal time or equal images
    (``--kimg``) each: how often their samples copy a training work, beside their quality."""
    out = Path(args.out)
    everything, held_out = split_data(args.styles, args.res, args.held_out, Path(args.data_root))
    order = torch.randperm(len(everything), generator=torch.Generator().manual_seed(2))
    result = {"benchmark": "diffusion-memorisation", "styles": args.styles, "res": args.res,
              "minutes": args.minutes, "clock": args.clock,
              "floor": floor(everything.images, held_out.images[:args.n], "cpu")}  # as many as the samples
    for size in (int(s) for s in args.sizes.split(",")):
        train = everything.subset(order[:size])  # nested: each smaller set inside the larger ones
        data = str(save_images_folder(train.images, out / "data" / str(size)))
        index = build_index(data, args.res, progress=False)
        for name in args.families.split(","):
            kind, overrides = {"diffusion": ("diffusion", args.diffusion_set), "gan": ("gan", args.gan_set),
                               "diffusion-mitigated": ("diffusion", args.mitigation_set)}[name]
            cfg = diffusion_config(args.res, overrides) if kind == "diffusion" else gan_config(args.res, overrides)
            run = out / f"{name}-{size}"
            budget = (None, int(args.kimg * 1000 // args.batch)) if args.kimg else (args.minutes * 60, None)
            done = max((step for step, _ in list_checkpoints(run)), default=0)
            # a run already there is reused, or continued to a larger --kimg (memorisation grows
            # with training: the same run measured at two lengths)
            row = {"training": train_for(kind, cfg, data, run, budget[0], args.batch, clock=args.clock,
                                         steps=budget[1], device=args.device, resume=done > 0)
                   if not done or (budget[1] or 0) > done else "reused"}
            steps = {"steps": args.sample_steps} if args.sample_steps else {}
            samples = samples_of(run, args.n, args.device, **steps)
            key, stem = f"{name}/{size}", f"{name}-{size}"
            if steps:
                key, stem = f"{key}/{args.sample_steps} steps", f"{stem}-{args.sample_steps}steps"
            row.update(quality(samples, held_out.images, train.images, "cpu", index, out / f"{stem}-closest.png"))
            save_grid(samples[:32].float() / 127.5 - 1, out / f"{stem}-grid.png", 8)
            result[key] = row
            print(json.dumps({key: row}), flush=True)
    return result


def cmd_memory(args) -> dict:
    """Peak resident memory of a training step loop and of sampling at --res, each in a fresh process."""
    code = {
        "train": ("from brushwork.config import DiffusionConfig; from brushwork.training.diffusion import DiffusionTask;"
                  "import torch; t = DiffusionTask(DiffusionConfig(resolution={res}), torch.device('cpu'));"
                  "x = torch.randn({batch}, 3, {res}, {res})\nfor i in range(3): t.train_step(x, i)"),
        "sample": ("from brushwork.config import DiffusionConfig; from brushwork.training.diffusion import DiffusionTask;"
                   "import torch; t = DiffusionTask(DiffusionConfig(resolution={res}, sampling_steps=4), "
                   "torch.device('cpu')); t.sample(list(range(64)), None)"),
        "baseline": "import torch, brushwork.training.diffusion",
    }
    result = {"benchmark": "diffusion-memory", "res": args.res, "batch": args.batch}
    for name, text in code.items():
        script = text.format(res=args.res, batch=args.batch) + \
            "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
        result[f"{name}_peak_mib"] = round(int(done.stdout.split()[-1]) / 1024)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="benchmarks/results/diffusion-misc")
    for name, styles in (("versus", "romanticism"), ("memorisation", "baroque,romanticism,impressionism")):
        p = sub.add_parser(name)
        p.add_argument("--styles", default=styles)
        p.add_argument("--res", type=int, default=32)
        p.add_argument("--held-out", type=int, default=1000)
        p.add_argument("--minutes", type=float, default=30 if name == "versus" else 15,
                       help="training budget of each run")
        p.add_argument("--clock", choices=list(CLOCKS), default="wall",
                       help="wall: seconds on an otherwise idle machine; cpu: the process's CPU seconds")
        p.add_argument("--batch", type=int, default=64)
        p.add_argument("--n", type=int, default=1000, help="samples evaluated per run")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--diffusion-set", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--gan-set", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--out", default=f"benchmarks/results/diffusion-{name}")
    p.add_argument("--sizes", default="300,2000,8000")
    p.add_argument("--families", default="diffusion,gan")
    p.add_argument("--mitigation-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--kimg", type=float, default=0, help="thousands of images per run instead of --minutes")
    p.add_argument("--sample-steps", type=int, default=0, help="diffusion sampling steps (default: the run's)")
    p.add_argument("--data-root", default=str(SHARED / "wikiart64"), help="folder of the style subfolders")
    p.add_argument("--device", default="cpu")
    sub.choices["versus"].add_argument("--families", default="diffusion,gan")
    for name in ("steps", "guided"):
        p = sub.add_parser(name)
        p.add_argument("--run", type=Path, required=True)
        p.add_argument("--styles", default="romanticism")
        p.add_argument("--res", type=int, default=32)
        p.add_argument("--held-out", type=int, default=1000)
        p.add_argument("--n", type=int, default=500 if name == "steps" else 64)
        p.add_argument("--out", default="benchmarks/results/diffusion-versus")
    sub.choices["steps"].add_argument("--steps", default="8,16,32,64")
    sub.choices["steps"].add_argument("--samplers", default="dpm2m,heun")
    sub.choices["steps"].add_argument("--reference", type=int, default=256)
    sub.choices["guided"].add_argument("--strengths", default="0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    p = sub.add_parser("memory")
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", default="benchmarks/results/diffusion-misc")
    args = ap.parse_args()
    torch.manual_seed(0)
    result = globals()[f"cmd_{args.command}"](args)
    print(json.dumps(result, indent=2))
    out = Path(getattr(args, "out", "") or "benchmarks/results/diffusion-misc")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{args.command}.json", "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
