"""Latent diffusion measured on 128 px WikiArt (all three styles, 12,000 works, 1,000 held out).

    python benchmarks/latent.py autoencoder --factor 4 --minutes 20   # reconstructions vs bicubic
    python benchmarks/latent.py versus --ae RUN --minutes 30           # latent vs pixel diffusion
    python benchmarks/latent.py versus --ae RUN --minutes 20 --extend-to 60   # ... the same runs, longer
    python benchmarks/latent.py memory                                 # peak RSS, 128 and 256 px
    python benchmarks/latent.py threeways --minutes 40                 # latent vs GAN vs 32 px + upscaler
    python benchmarks/latent.py specks --ae RUN --ae RUN2              # reconstructions' specks and their cause

autoencoder: an autoencoder trained for wall minutes on the 11,000 training works, then held-out
PSNR and SWD of its reconstructions beside the trivial baseline (the work area-reduced to the
latent's size, enlarged back by bicubic interpolation) and the SWD floor (two disjoint halves of
real works); the log's held-out PSNR at each interval gives the time to reach it.

versus: latent diffusion (in ``--ae``'s latents) against pixel diffusion at 128 px, each for the
same wall minutes alone on the machine: training img/s, SWD against held-out works beside the
floor, precision/recall (thumbnails and a fixed random conv net, as benchmarks/diffusion.py),
the share of samples the collection index's copy check calls COPY, and sampling seconds per
image at 16 steps.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from common import SHARED, peak, report  # noqa: E402  (puts src/ on the path)
from diffusion import floor, gan_config, quality, samples_of, save_images_folder, split_data, train_for  # noqa: E402

from brushwork.config import AutoencoderConfig, DiffusionConfig, UpscalerConfig, apply_overrides  # noqa: E402
from brushwork.evaluation import reconstruction_metrics  # noqa: E402
from brushwork.imaging import save_grid  # noqa: E402
from brushwork.making.generate import load_model  # noqa: E402
from brushwork.making.upscale import load_upscaler, upscale_tensor  # noqa: E402
from brushwork.metrics.collection_index import build_index  # noqa: E402
from brushwork.metrics.swd import swd  # noqa: E402
from brushwork.runs.directory import read_run_config  # noqa: E402
from brushwork.training.latent import attach_autoencoder  # noqa: E402

STYLES = "baroque,romanticism,impressionism"
# U-Nets of equal width for both: pixels go down to 8 px in five levels, latents (32 px) in three
PIXEL_UNET = ["channel_mult=1,1,2,2,2"]
LATENT_UNET = ["channel_mult=1,2,2"]


def real_floor(held_out: torch.Tensor) -> float:
    """SWD between two disjoint halves of the held-out works: what real works score."""
    half = len(held_out) // 2
    return swd(held_out[:half], held_out[half:2 * half])["mean"]


def cmd_autoencoder(args) -> dict:
    out = Path(args.out)
    train, held_out = split_data(args.styles, args.res, args.held_out, Path(args.data_root))
    data = str(save_images_folder(train.images, out / "data" / "train")) if not (out / "data").is_dir() \
        else str(out / "data" / "train")
    cfg = apply_overrides(AutoencoderConfig(resolution=args.res, factor=args.factor, channels=args.channels),
                          args.set)
    run = out / f"ae-f{args.factor}"
    training = train_for("autoencoder", cfg, data, run, args.minutes * 60, args.batch, device=args.device)
    model = load_model(run, args.device)
    t0 = time.perf_counter()
    row = reconstruction_metrics(model, held_out, args.n)
    seconds = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r.get("val_psnr")) for r in rows if "val_psnr" in r]
    x = held_out.images[:8]
    recon = model.decode(model.encode(x.float() / 127.5 - 1)[0]).cpu()
    save_grid(torch.cat([x.float() / 127.5 - 1, recon]), out / f"ae-f{args.factor}-recon.png", 8)
    return {"benchmark": "autoencoder", "factor": args.factor, "channels": cfg.channels, "width": cfg.width,
            "train": len(train), "held_out": len(held_out), "minutes": args.minutes, "training": training,
            "floor_swd": real_floor(held_out.images[:args.n]), **row,
            "encode_decode_ms_per_image": round(1000 * seconds / min(args.n, len(held_out)), 1),
            "val_psnr_by_step": curve}


def cmd_specks(args) -> dict:
    """The specks of an autoencoder's reconstructions, and the feature spikes behind them. Per
    held-out work: pixels turned blue (B - max(R, G) up by over 0.3 of the [-1, 1] range against
    the work: the colour the f=4 GroupNorm decoder's specks took), and the kurtosis of the maps
    entering the decoder's last norm (median over maps and works; 3 for a Gaussian; a map steered
    by a planted spike scores tens)."""
    _, held_out = split_data(args.styles, args.res, args.held_out, Path(args.data_root))
    x = held_out.images[:args.n].float() / 127.5 - 1
    result = {"benchmark": "autoencoder-specks", "n": len(x)}
    for ae in args.ae:
        model = load_model(Path(ae), args.device)
        decoder = model.network.decoder
        maps = []
        hook = decoder.net[-3].register_forward_pre_hook(lambda _, inputs: maps.append(inputs[0].float()))
        with torch.no_grad():
            recon = torch.cat([model.decode(model.encode(c)[0]).cpu() for c in x.split(32)])
        hook.remove()
        h = torch.cat(maps)
        z = (h - h.mean((2, 3), keepdim=True)) / h.std((2, 3), keepdim=True).clamp(min=1e-6)
        blue = (recon[:, 2] - recon[:, :2].amax(1)) - (x[:, 2] - x[:, :2].amax(1))
        name = "/".join(Path(ae).parts[-2:])  # two runs may share a name in two folders
        result[name] = {"norm": model.config.model.norm,
                        "blue_speck_pixels_per_image": round((blue > 0.3).sum().item() / len(x), 1),
                        "works_with_specks": round((blue > 0.3).flatten(1).any(1).float().mean().item(), 3),
                        "last_maps_kurtosis_median": round((z ** 4).mean((2, 3)).median().item(), 1)}
        print(json.dumps(result[name]), flush=True)
    return result


def sampling_seconds(run: Path, device: str, n: int = 8, steps: int = 16) -> float:
    model = load_model(run, device).using(sampling={"steps": steps})
    model.generate_seeds([0])  # warm-up
    t0 = time.perf_counter()
    model.generate_seeds(list(range(n)))
    return round((time.perf_counter() - t0) / n, 3)


def extend(run: Path, data: str, args) -> dict:
    """Resume a run trained for ``--minutes`` to ``--extend-to`` minutes' worth of steps at the
    rate of its first stretch (steps x extend_to / minutes). Steps, not wall time, so the model
    reached is the one the idle machine would have reached even if the machine is shared for a
    while; the img/s reported is the first stretch's, measured alone."""
    first = run / "first_stretch.json"  # the first stretch's steps, kept: an extension may stop and go on
    if not first.is_file():
        done = max(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*.safetensors"))
        first.write_text(json.dumps({"steps": done}))
    done = json.loads(first.read_text())["steps"]
    target = round(done * args.extend_to / args.minutes)
    model_cfg = read_run_config(run).model  # as trained (with the autoencoder's hash and latent scale)
    row = train_for("diffusion", model_cfg, data, run, None, args.batch, steps=target, device=args.device, resume=True)
    return {**row, "from_steps": done, "minutes_equivalent": args.extend_to}


def _collection(args):
    """(training works, held-out works, the training folder, its copy-check index): the split every
    comparison shares, the training works written once as a folder (what ``train --data`` reads)."""
    train, held_out = split_data(args.styles, args.res, args.held_out, Path(args.data_root))
    data = Path(args.out) / "data" / "train"
    if not data.is_dir():
        save_images_folder(train.images, data)
    return train, held_out, data, build_index(str(data), args.res, progress=False)


def cmd_versus(args) -> dict:
    out = Path(args.out)
    train, held_out, data, index = _collection(args)
    result = {"benchmark": "latent-vs-pixel", "res": args.res, "train": len(train), "held_out": len(held_out),
              "minutes": args.minutes, "n": args.n,
              "floor": floor(train.images, held_out.images[:args.n], "cpu")}  # real vs real at the same count
    configs = {"latent": attach_autoencoder(apply_overrides(DiffusionConfig(resolution=args.res),
                                                            LATENT_UNET + args.set), args.ae),
               "pixel": apply_overrides(DiffusionConfig(resolution=args.res), PIXEL_UNET + args.set)}
    for name in args.families.split(","):
        run = out / name
        row = {}
        if not (run / "checkpoints").is_dir():
            row["training"] = train_for("diffusion", configs[name], str(data), run, args.minutes * 60, args.batch,
                                        device=args.device)
            row["img_per_s"] = round(row["training"]["kimg"] * 1000 / row["training"]["wall_seconds"], 2)
        elif args.extend_to:
            row["training"] = extend(run, str(data), args)
        row["params"] = sum(p.numel() for p in load_model(run, "cpu").network.parameters())
        row["sampling_s_per_image_16_steps"] = sampling_seconds(run, args.device)
        samples = samples_of(run, args.n, args.device, steps=16)
        row.update(quality(samples, held_out.images, train.images, "cpu", index))
        save_grid(samples[:64].float() / 127.5 - 1, out / f"{name}-grid.png", 8)
        result[name] = row
        print(json.dumps({name: row}), flush=True)
    return result


def cmd_threeways(args) -> dict:
    """Three ways to a 128 px work at equal total CPU time T (``--minutes``): latent diffusion
    (its autoencoder T/2, then the diffusion model T/2: ``--ae`` and ``--latent-run``, trained by
    ``autoencoder`` and ``versus`` for T/2 each), the modern GAN at 128 px for T, and pixel
    diffusion at 32 px for T/2 enlarged 4x by the collection's upscaler trained for T/2. Each
    route's 128 px samples: SWD against held-out works beside the floor, and the copy check's
    COPY share."""
    out = Path(args.out)
    train, held_out, data, index = _collection(args)
    half = args.minutes * 30  # seconds: half the route's time
    runs = {"pixel32": (out / "three-pixel32", "diffusion", apply_overrides(DiffusionConfig(resolution=32), []),
                        half, 32),
            "upscaler": (out / "three-upscaler", "upscaler", UpscalerConfig(resolution=args.res, scale=4), half, 16),
            "gan": (out / "three-gan", "gan", gan_config(args.res), 2 * half, 32)}
    trained = {}
    for name, (run, kind, cfg, seconds, batch) in runs.items():
        done = run / "benchmark-training.json"  # written at the end: a run stopped half-way is redone
        if not done.is_file():
            shutil.rmtree(run, ignore_errors=True)
            done.write_text(json.dumps(train_for(kind, cfg, str(data), run, seconds, batch, device=args.device)))
        trained[name] = json.loads(done.read_text())
    pixel32 = samples_of(runs["pixel32"][0], args.n, args.device)
    up = load_upscaler(runs["upscaler"][0], None, args.device)
    enlarged = torch.stack([(upscale_tensor(up, img.float() / 255) * 255).round().clamp(0, 255).to(torch.uint8)
                            for img in pixel32])
    routes = {"latent": samples_of(Path(args.latent_run), args.n, args.device),
              "gan": samples_of(runs["gan"][0], args.n, args.device), "pixel32_upscaled": enlarged}
    result = {"benchmark": "three-ways-to-128", "minutes_per_route": args.minutes, "n": args.n, "training": trained,
              "floor": floor(train.images, held_out.images[:args.n], "cpu")}
    for name, samples in routes.items():
        row = quality(samples, held_out.images, train.images, "cpu", index)
        result[name] = {k: row[k] for k in ("swd", "precision_thumb", "recall_thumb", "originality_copy_rate")}
        save_grid(samples[:64].float() / 127.5 - 1, out / f"three-{name}.png", 8)
    return result


def cmd_memory(args) -> dict:
    """Peak RSS of 20 training steps (batch 16) and of sampling 16 images, one process each."""
    out = Path(args.out) / "memory"
    result = {"benchmark": "latent-memory"}
    works = out / "works"  # 256 works: the measure is of the steps, not of encoding a whole collection
    if not works.is_dir():
        works.mkdir(parents=True)
        for path in sorted((SHARED / "wikiart128" / "baroque").iterdir())[:256]:
            (works / path.name).symlink_to(path.resolve())
    for res in (128, 256):
        ae = out / f"ae{res}"
        data = ["--data", str(works), "--batch-size", "16", "--device", "cpu", "--quiet"]
        result[f"ae{res}_train_mib"] = peak(["train", "autoencoder", "--res", str(res), "--out", str(ae),
                                             "--steps", "20", *data])["peak_mib"]
        run = out / f"ld{res}"
        result[f"latent{res}_train_mib"] = peak(["train", "diffusion", "--latent", str(ae), "--out", str(run),
                                                 "--steps", "20", *data])["peak_mib"]
        result[f"latent{res}_sample_mib"] = peak(["sample", str(run), "--seeds", "0-15", "--steps", "16",
                                                  "--out", str(out / f"s{res}"), "--no-originality"])["peak_mib"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("autoencoder", "versus", "memory", "threeways", "specks"):
        p = sub.add_parser(name)
        p.add_argument("--out", default="/tmp/brushwork-bench/latent", help="runs and data (large: keep it outside the repository)")
        p.add_argument("--minutes", type=float, default=20)
        p.add_argument("--batch", type=int, default=32)
        p.add_argument("--held-out", type=int, default=1000)
        p.add_argument("--n", type=int, default=500, help="images scored")
        p.add_argument("--set", action="append", default=[], help="model setting key=value")
        p.add_argument("--json", help="append the result to this JSON-lines file")
        p.add_argument("--device", default="cpu")
        p.add_argument("--data-root", default=str(SHARED / "wikiart128"), help="folder of style subfolders")
        p.add_argument("--styles", default=STYLES)
        p.add_argument("--res", type=int, default=128)
    sub.choices["autoencoder"].add_argument("--factor", type=int, choices=[4, 8], default=4)
    sub.choices["autoencoder"].add_argument("--channels", type=int, default=4)
    sub.choices["versus"].add_argument("--ae", required=True, help="the autoencoder run to learn in")
    sub.choices["specks"].add_argument("--ae", action="append", required=True, help="an autoencoder run (repeat)")
    sub.choices["versus"].add_argument("--families", default="latent,pixel")
    sub.choices["versus"].add_argument("--extend-to", type=float, help="resume runs trained for --minutes to this "
                                       "many minutes' worth of steps at their first stretch's rate")
    sub.choices["threeways"].add_argument("--latent-run", default="/tmp/brushwork-bench/latent/latent-20min",
                                          help="the latent diffusion run of the latent route (trained T/2)")
    args = ap.parse_args()
    result = {"autoencoder": cmd_autoencoder, "versus": cmd_versus, "memory": cmd_memory,
              "threeways": cmd_threeways, "specks": cmd_specks}[args.command](args)
    report(result, args.json)


if __name__ == "__main__":
    main()
