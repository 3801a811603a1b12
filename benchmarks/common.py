"""Helpers the benchmarks share: where the shared art lives, style subsets, loader loops."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = ROOT.parent / "shared" / "data"


def add_data_args(ap, styles: str = "baroque,romanticism") -> None:
    ap.add_argument("--data", default=str(SHARED / "wikiart64"), help="folder of style subfolders")
    ap.add_argument("--styles", default=styles, help="comma list of subfolders to use")
    ap.add_argument("--res", type=int, default=64)


def link_styles(tmp: Path, data_root: Path, styles: str) -> Path:
    """A folder in ``tmp`` holding just the chosen style subfolders (as links)."""
    if not data_root.is_dir():
        sys.exit(f"benchmark: data folder {data_root} not found (see shared/data/SOURCES.md)")
    for style in styles.split(","):
        (Path(tmp) / style).symlink_to((data_root / style).resolve())
    return Path(tmp)


def load_styles(data_root: str, styles: str, resolution: int, progress: bool = True):
    """The chosen style subfolders of ``data_root`` as one brushwork dataset."""
    import tempfile

    from brushwork.data.dataset import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        return load_dataset(str(link_styles(Path(tmp), Path(data_root), styles)), resolution,
                            progress=progress)


def add_run_args(ap, out: str) -> None:
    """--device, --seed, --out and --quiet, as the training benchmarks share them."""
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=out)
    ap.add_argument("--quiet", action="store_true")


def train_gan(cfg, data, kimg: float, batch: int, device, seed: int = 0, quiet: bool = False):
    """Train a GAN config on a dataset for ``kimg`` thousand images with the library's Trainer
    (in a throw-away run directory); returns (task, steps, seconds)."""
    import tempfile
    import time

    from brushwork.config import TrainConfig
    from brushwork.data.dataset import ImageBatcher
    from brushwork.training.gan import GANTask
    from brushwork.training.trainer import Trainer

    steps = int(kimg * 1000 / batch)
    train_cfg = TrainConfig(batch_size=batch, steps=steps, log_every=max(1, steps // 20),
                            sample_every=steps, ckpt_every=steps, device=str(device))
    task = GANTask(cfg, device, seed=seed)
    batcher = ImageBatcher(data, batch, cfg.resolution, device, flip=True, seed=seed,
                           channels_last=cfg.channels_last)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(task, batcher, Path(run_dir), train_cfg, progress=not quiet)
        t0 = time.perf_counter()
        trainer.fit()
        return task, steps, time.perf_counter() - t0


def sample_swd(task, heldout, device, chunk: int = 64) -> dict:
    """SWD (dict with "mean" and per-level values) between as many samples of the task's sampling
    generator (seeds 0..N-1) as there are held-out images [N, 3, R, R] uint8, and those images."""
    import torch

    from brushwork.latents import latents_for_seeds
    from brushwork.metrics.swd import swd

    z = latents_for_seeds(list(range(len(heldout))), task.cfg.z_dim)
    fakes = torch.cat([task.sample(part) for part in z.split(chunk)]).cpu()
    return swd(fakes, heldout, device=device)


def train_with_curve(task, batcher, heldout, device, seconds: float, kimg: float = 1e9,
                     eval_every: float = 60, steps_per_chunk: int = 10, label: str = "") -> tuple[list, int, float]:
    """Train ``task`` for ``seconds`` of training time (or ``kimg`` thousand images); at the start,
    every ``eval_every`` training seconds and at the end, record SWD against ``heldout`` (the time
    spent evaluating is not counted). Returns (curve of {seconds, kimg, swd}, steps, seconds)."""
    import time

    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    curve, step, trained, next_eval = [], 0, 0.0, 0.0
    batch = batcher.batch_size

    def record():
        curve.append({"seconds": round(trained, 1), "kimg": step * batch / 1000,
                      "swd": sample_swd(task, heldout, device)["mean"]})
        print(json.dumps({label: curve[-1]}), flush=True)

    while trained < seconds and step * batch < kimg * 1000:
        if trained >= next_eval:
            record()
            next_eval += eval_every
        sync()
        t0 = time.perf_counter()
        for _ in range(steps_per_chunk):
            real, labels = batcher.next()
            task.train_step(real, step, labels)
            step += 1
        sync()
        trained += time.perf_counter() - t0
    record()
    return curve, step, trained


def seconds_to_reach(curve: list[dict], target: float) -> float | None:
    """Training seconds of the first evaluation at or below ``target`` SWD (None: never)."""
    reached = [c["seconds"] for c in curve if c["swd"] <= target]
    return reached[0] if reached else None


def plot_curves(curves: dict[str, list[dict]], floor: float, xlabel: str, title: str, path: Path) -> None:
    """SWD against training seconds, one line per preset, the floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from brushwork.imaging import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for name, curve in curves.items():
        ax.plot([c["seconds"] for c in curve], [c["swd"] for c in curve], marker="o", markersize=3, label=name)
    ax.axhline(floor, color="k", linestyle="--", label="floor (real vs held-out)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("SWD vs held-out paintings")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def loader_stepper(loader, fn, device):
    """A step function: the next batch from a DataLoader (cycling), moved to device, into fn."""
    state = {"it": iter(loader)}

    def step():
        try:
            x, _ = next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            x, _ = next(state["it"])
        fn(x.to(device, non_blocking=True))
    return step


def report(result: dict, json_path: str | None) -> None:
    """Print the result; append it as one JSON line to ``json_path`` when given."""
    print(json.dumps(result, indent=2))
    if json_path:
        with open(json_path, "a") as f:
            f.write(json.dumps(result) + "\n")


def peak(argv: list[str]) -> dict:
    """Peak resident MiB and seconds of one brushwork command (``argv``: its arguments) in a fresh
    process: a peak read from a parent's RUSAGE_CHILDREN is the largest of every child so far."""
    script = ("import resource, sys; from brushwork.cli import main; code = main(sys.argv[1:]); "
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    return {"peak_mib": round(int(done.stdout.split()[-1]) / 1024), "seconds": round(time.perf_counter() - t0, 1)}
