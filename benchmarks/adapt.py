"""Adapting brushwork's base to a style it never saw (impressionism), against training from scratch.

    python benchmarks/adapt.py adapt --works 30,100,300            # LoRA and full fine-tuning, defaults
    python benchmarks/adapt.py scratch --works 100 --minutes 60    # the same family from nothing
    python benchmarks/adapt.py measure                              # each run's last checkpoint
    python benchmarks/adapt.py measure --runs scratch-100 --curve scratch-100@2710   # one checkpoint

Data: ``wikiart128/impressionism``; every fourth file by sorted name (1,000) is held out, and the
collections of 30, 100 and 300 works are nested draws from the rest. Each run is measured at its
last checkpoint, and the runs named in ``--curve`` at every checkpoint (written every few minutes
of training, so SWD can be plotted against minutes):

- SWD of ``--n`` samples (seeds 0 to n-1, in the new style) against n held-out works, beside the
  floor (n other held-out works against the same n);
- precision/recall (8x8 thumbnails) and a grid of the samples nearest a collection work;
- the copy check's COPY share, against the collection (its index) and against the base's training
  works (the index shipped with it), as ``sample`` checks every image;
- the style judge's share of samples placed in impressionism (a judge trained on the three styles'
  works outside the held-out ones: baroque, romanticism, impressionism).

From scratch: latent diffusion at 128 px in the base's own autoencoder (``--ae``, the
autoencoder run ``scripts/train_base.py`` trained), unconditional, for ``--minutes`` alone on the
machine. Every run's wall time is measured with nothing else running.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
import time
from pathlib import Path

import torch
from safetensors import safe_open

from common import SHARED, plot_curves, report  # noqa: E402  (puts src/ on the path)
from diffusion import floor, quality  # noqa: E402

from brushwork.config import DiffusionConfig, RunConfig, TrainConfig, apply_overrides  # noqa: E402
from brushwork.data.dataset import load_dataset  # noqa: E402
from brushwork.imaging import save_grid, uint8_from_unit  # noqa: E402
from brushwork.making.generate import load_model  # noqa: E402
from brushwork.metrics.collection_index import build_index  # noqa: E402
from brushwork.metrics.style_judge import load_or_train_judge  # noqa: E402
from brushwork.originality_report import inherited_indexes  # noqa: E402
from brushwork.runs.checkpoint import list_checkpoints  # noqa: E402
from brushwork.training.families import ModelOptions, family  # noqa: E402
from brushwork.training.latent import attach_autoencoder  # noqa: E402
from brushwork.training.run import train_run  # noqa: E402

STYLE = "impressionism"
HELD_OUT_EVERY = 4  # every 4th impressionism file (1,000 of 4,000) is held out
BATCH = 32
CHECKPOINT_MINUTES = 2.0  # adapted runs are measured every this many minutes of training (scratch: 10)


def impressionism(wikiart: Path) -> tuple[list[Path], list[Path]]:
    """(the pool collections are drawn from, the held-out works): files by sorted name."""
    files = sorted(p for p in (wikiart / STYLE).iterdir() if p.is_file())
    held = [p for i, p in enumerate(files) if not i % HELD_OUT_EVERY]
    pool = [p for i, p in enumerate(files) if i % HELD_OUT_EVERY]
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0)).tolist()
    return [pool[i] for i in order], held


def collection(out: Path, pool: list[Path], works: int) -> Path:
    """A folder of ``works`` links (the first of the seeded pool order: nested collections) in a
    style folder named impressionism, so the adapted model's new style has that name."""
    folder = out / f"data-{works}"
    if not folder.is_dir():
        (folder / STYLE).mkdir(parents=True)
        for path in pool[:works]:
            (folder / STYLE / path.name).symlink_to(path.resolve())
    return folder


def _links(folder: Path, files: list[Path]) -> Path:
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for path in files:
            (folder / path.name).symlink_to(path.resolve())
    return folder


def _collections(args):
    """(number of works, its folder) of each collection asked for (``--works``)."""
    pool, _ = impressionism(args.wikiart)
    return [(works, collection(args.out, pool, works)) for works in map(int, args.works.split(","))]


def adapt(args) -> dict:
    """The base adapted to each collection with its defaults: LoRA and full fine-tuning."""
    rows = {}
    for (works, data), how in itertools.product(_collections(args), args.ways.split(",")):
        run = args.out / f"{how}{args.tag}-{works}"
        model = family("diffusion").configure(ModelOptions(width=128, parent="builtin:base", settings=args.set,
                                                           adapter="lora" if how == "lora" else ""))
        train = TrainConfig(data=str(data), batch_size=BATCH, steps=0, init_from="builtin:base", log_every=25,
                            sample_every=10**6, ckpt_every=10**6, keep_checkpoints=100, device=args.device)
        rows[run.name] = _timed(RunConfig(kind="diffusion", model=model, train=train), run, CHECKPOINT_MINUTES)
    return rows


def scratch(args) -> dict:
    """Latent diffusion from nothing on each collection, in the base's autoencoder, for --minutes."""
    rows = {}
    for works, data in _collections(args):
        run = args.out / f"scratch-{works}"
        model = attach_autoencoder(apply_overrides(DiffusionConfig(resolution=128), ["channel_mult=1,2,2", *args.set]),
                                   args.ae)
        train = TrainConfig(data=str(data), batch_size=BATCH, steps=10**9, log_every=100, sample_every=10**6,
                            ckpt_every=10**6, keep_checkpoints=100, device=args.device)
        rows[run.name] = _timed(RunConfig(kind="diffusion", model=model, train=train), run, 10.0,
                                limit=args.minutes * 60)
    return rows


def _timed(run_cfg: RunConfig, run: Path, every_minutes: float, limit: float | None = None) -> dict:
    """Train in stretches of ``every_minutes`` (a checkpoint kept after each, for the curve) until
    the run's steps are done or ``limit`` seconds have passed; wall seconds per checkpoint."""
    if run.exists():
        shutil.rmtree(run)
    seconds, marks = 0.0, {}
    while True:
        stretch = every_minutes * 60 if limit is None else min(every_minutes * 60, limit - seconds)
        t0 = time.perf_counter()
        trainer = train_run(run_cfg, run, resume=bool(marks), quiet=True, time_limit=stretch)
        seconds += time.perf_counter() - t0
        marks[trainer.step] = round(seconds, 1)
        run_cfg.train.steps = json.loads((run / "config.json").read_text())["train"]["steps"]  # as chosen
        if trainer.step >= run_cfg.train.steps or (limit is not None and seconds >= limit - 1):
            break
    (run / "wall_seconds.json").write_text(json.dumps(marks))
    return {"steps": trainer.step, "seconds": round(seconds, 1), "checkpoints": marks}


def measure(args) -> dict:
    """Each run's last checkpoint against the held-out works, and every checkpoint of the runs
    named in ``--curve`` (see the module's docstring); the SWD-against-minutes plot."""
    _, held_files = impressionism(args.wikiart)
    held = load_dataset(str(_links(args.out / "held-out" / STYLE, held_files)), 128, progress=False)
    half = len(held) // 2
    reference, other = held.images[:half][:args.n], held.images[half:2 * half][:args.n]
    judge_data = load_dataset(str(_judge_folder(args, held_files)), 128, progress=False)
    judge = load_or_train_judge(judge_data, torch.device(args.device))
    result = {"floor": floor(other, reference, "cpu"), "samples": args.n,
              "judge_accuracy": round(judge.accuracy, 4)}
    for wall in sorted(args.out.glob("*/wall_seconds.json")):
        run = wall.parent
        if args.runs and run.name not in args.runs.split(","):
            continue
        marks = {int(k): v for k, v in json.loads(wall.read_text()).items()}
        checkpoints = list_checkpoints(run)
        chosen = [int(c.split("@")[1]) for c in args.curve.split(",") if c.startswith(run.name + "@")]
        if chosen:  # RUN@STEP: that checkpoint only (e.g. a from-scratch run at its best)
            checkpoints = [(step, path) for step, path in checkpoints if step in chosen]
        elif run.name not in args.curve.split(","):
            checkpoints = checkpoints[-1:]
        rows = [measure_checkpoint(args, run, step, path, marks.get(step), reference,
                                   judge, judge.names.index(STYLE)) for step, path in checkpoints]
        result[run.name] = rows
    curves = {name: rows for name, rows in result.items() if isinstance(rows, list) and len(rows) > 1}
    if curves:
        plot_curves({k: [r | {"seconds": r["seconds"] / 60} for r in v] for k, v in curves.items()},
                    result["floor"]["swd"], "training minutes (idle 2-core CPU)",
                    f"impressionism at 128 px: the base adapted vs from scratch ({args.n} samples)",
                    args.out / "swd-minutes.png")
    return result


def measure_checkpoint(args, run: Path, step: int, path: Path, seconds: float | None, reference, judge,
                       new_style: int) -> dict:
    """One checkpoint: quality and copies against its collection, copies against the base's
    training works, the judge's share in the new style, the saved size; a grid of the samples
    nearest a collection work above it."""
    works = int(run.name.rsplit("-", 1)[1])
    data = str(args.out / f"data-{works}")
    model = load_model(run, args.device, path)
    samples = torch.cat([uint8_from_unit(model.generate_seeds(list(range(s, min(args.n, s + 50)))))
                         for s in range(0, args.n, 50)])
    closest = args.out / f"{run.name}-nearest.png"
    row = {"step": step, "seconds": seconds,
           **quality(samples, reference, load_dataset(data, 128, progress=False).images, "cpu",
                     build_index(data, 128, progress=False), closest)}
    for base_works in inherited_indexes(model):
        verdicts = base_works.check(samples)
        row["copy_rate_base_works"] = round(sum(v["verdict"] == "COPY" for v in verdicts) / len(samples), 4)
    row["judged_new_style"] = round(float((judge.probabilities(samples, args.device).argmax(1)
                                           == new_style).float().mean()), 4)
    row["file_mib"] = round(path.stat().st_size / 2 ** 20, 2)  # with optimizer state, for resuming
    row["weights_mib"] = weights_mib(path)
    save_grid(samples[:32].float() / 127.5 - 1, args.out / f"{run.name}-grid.png", 8)
    print(json.dumps({run.name: row}), flush=True)
    return row


def weights_mib(path: Path) -> float:
    """MiB of the sampling network's tensors in a checkpoint (the EMA denoiser: all of it after full
    fine-tuning, the adapters and style vectors after LoRA), as float32."""
    with safe_open(str(path), framework="pt") as f:
        counts = [math.prod(f.get_slice(k).get_shape()) for k in f.keys() if k.startswith("model/denoiser_ema/")]
    return round(sum(counts) * 4 / 2 ** 20, 3)


def _judge_folder(args, held_files: list[Path]) -> Path:
    """The style judge's works: baroque, romanticism and the impressionism works not held out."""
    folder = args.out / "judge"
    held = {p.name for p in held_files}
    for style in ("baroque", "romanticism", STYLE):
        files = [p for p in sorted((args.wikiart / style).iterdir()) if style != STYLE or p.name not in held]
        _links(folder / style, files[:2000])
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["adapt", "scratch", "measure"])
    ap.add_argument("--wikiart", type=Path, default=SHARED / "wikiart128")
    ap.add_argument("--out", type=Path, default=Path("/tmp/brushwork-bench/adapt"))
    ap.add_argument("--works", default="30,100,300")
    ap.add_argument("--ways", default="lora,full", help="adapt: lora, full or both")
    ap.add_argument("--minutes", type=float, default=60, help="scratch: wall minutes alone on the machine")
    ap.add_argument("--ae", default="/tmp/brushwork-base/ae", help="scratch: the base's autoencoder run")
    ap.add_argument("--n", type=int, default=500, help="samples measured per checkpoint")
    ap.add_argument("--tag", default="", help="adapt: added to the run names (e.g. +pairwise)")
    ap.add_argument("--runs", default="", help="measure: only these runs (default: every run)")
    ap.add_argument("--curve", default="lora-100,scratch-100", help="measure: runs measured at every checkpoint "
                    "(RUN@STEP: at that checkpoint only)")
    ap.add_argument("--set", action="append", default=[], help="model setting key=value (e.g. pairwise=1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="append the result to this JSON-lines file")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"adapt": adapt, "scratch": scratch, "measure": measure}[args.command](args)
    report({"benchmark": f"adapt-{args.command}", **result}, args.json)


if __name__ == "__main__":
    main()
