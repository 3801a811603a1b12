"""Start or resume a training run in a run directory (what ``brushwork train`` calls)."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import torch

from brushwork import __version__
from brushwork.config import RunConfig, image_size, size_text, to_dict
from brushwork.data.dataset import ArtDataset, ImageBatcher, empty_style_folders, load_dataset
from brushwork.errors import BrushworkError
from brushwork.models.gan import count_parameters
from brushwork.runs.checkpoint import latest_checkpoint
from brushwork.runs.directory import read_run_config, run_lock
from brushwork.training.distributed import World, barrier, close_world, init_world
from brushwork.training.families import run_family
from brushwork.training.trainer import Trainer
from brushwork.utils import atomic_write


def _say(text: str, quiet: bool) -> None:
    if not quiet:
        print(text, file=sys.stderr)


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse to silently overwrite a run."""
    if latest_checkpoint(run_dir) is not None and not resume:
        raise BrushworkError(f"{run_dir} already holds a training run; add --resume to continue "
                             f"it, or choose another --out")


def refuse_other_size(run_dir: Path, was: tuple[int, int], now: tuple[int, int]) -> None:
    """A run resumes at the (height, width) it was trained at, or is refused in one line."""
    if was != now:
        raise BrushworkError(f"{run_dir} makes {was[1]}x{was[0]} images; it cannot resume at {now[1]}x{now[0]} "
                             f"(resume without --size/--res, or train another size into a new --out)")


def check_same_model(run_dir: Path, run_cfg: RunConfig) -> None:
    """A resumed run must be built as its checkpoints were: refuse other model settings in one
    line (before config.json is rewritten) instead of failing to load the weights."""
    if not (run_dir / "config.json").is_file() or latest_checkpoint(run_dir) is None:
        return
    saved_cfg = read_run_config(run_dir).model
    refuse_other_size(run_dir, image_size(saved_cfg), image_size(run_cfg.model))
    saved = to_dict(saved_cfg)
    changed = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in to_dict(run_cfg.model).items() if saved.get(k) != v]
    if changed:
        raise BrushworkError(f"{run_dir} was trained with other model settings ({'; '.join(changed[:4])}); "
                             f"resume it with its own (brushwork train --out {run_dir} --resume reads them "
                             f"from its config.json) or train into a new --out")


PERCEPTUAL_NAMES = {"vgg": "VGG19 features", "laplacian": "Laplacian-pyramid L1 (no downloaded weights)"}
RECON_NAMES = {"vgg": "perceptual (ImageNet VGG19)", "pixel": "pixel L1 (no ImageNet VGG19 weights on disk)",
               "off": "off"}
FEW_IMAGES_PER_STYLE = 200  # conditional GANs collapse faster below a few hundred per style
# Diffusion copies a small collection shown it many times (benchmarks/RESULTS.md, memorisation):
# 64 works after 3,125 passes: 38% of samples copies (14% with dropout 0.3); 300 works after 1,000: 4%.
COPYING_WORKS, COPYING_PASSES = 300, 1000


def check_styles(ds: ArtDataset, mode: str, quiet: bool) -> int:
    """The number of styles for a conditional or creative run, after checking the data has at
    least two non-empty style folders and nothing outside them; prints the count per style."""
    names = ds.label_names
    empty = empty_style_folders(ds.source)
    if empty:
        raise BrushworkError(f"--{mode}: style folder(s) without a readable image in {ds.source}: "
                             f"{', '.join(empty)}")
    if "" in names:
        loose = int((ds.labels == names.index("")).sum())
        raise BrushworkError(f"--{mode}: {loose} image(s) lie directly in {ds.source}, outside any "
                             f"style folder; move them into one (styles found: "
                             f"{', '.join(n for n in names if n) or 'none'})")
    if len(names) < 2:
        raise BrushworkError(f"--{mode} needs at least two styles (subfolders of --data); found "
                             f"{len(names)}: {', '.join(names) or 'none'}")
    counts = torch.bincount(ds.labels, minlength=len(names)).tolist()
    _say("styles: " + ", ".join(f"{n} {c}" for n, c in zip(names, counts)), quiet)
    for name, count in zip(names, counts):
        if count < FEW_IMAGES_PER_STYLE:
            _say(f"warning: style {name!r} has only {count} images; conditional and creative "
                 f"models overfit small styles first (--balance-styles draws styles evenly)", quiet)
    return len(names)


def copying_warning(run_cfg: RunConfig, works: int) -> str | None:
    """A warning when a diffusion run without dropout is planned to show a small collection to
    itself so often that its samples will be copies of the works; None otherwise."""
    if getattr(run_cfg.model, "dropout", None) != 0 or not works:  # diffusion runs without dropout
        return None
    passes = run_cfg.train.steps * run_cfg.train.batch_size / works
    if works >= COPYING_WORKS or passes < COPYING_PASSES:
        return None
    return (f"warning: {works} works shown {passes:,.0f} times each: a diffusion model trained this "
            f"long on a collection this small paints copies of its works (64 works, 3,125 passes: "
            f"38% of samples); dropout in the U-Net curbs it (0.3: 14%) at some cost in speed")


def _parenting(fam, run_cfg: RunConfig):
    """How this run starts from its parent (--init-from / --from), or None without one."""
    if not run_cfg.train.init_from:
        return None
    if fam.parenting is None:
        raise BrushworkError(f"--from: {run_cfg.kind} runs cannot start from another run")
    return fam.parenting


def _evaluator(run_cfg: RunConfig, ds, task, device, world: World):
    """--eval-every: score samples against the training images at intervals (not AdaIN);
    rank 0 evaluates, the others log nothing of it (but keep the same schedule)."""
    if not run_cfg.train.eval_every or not run_family(run_cfg).evaluated:
        return None
    if not world.main:
        return lambda: {}
    from brushwork.evaluation import SampleEvaluator
    from brushwork.metrics.evaluate import parse_metrics

    tc = run_cfg.train
    evaluate = SampleEvaluator(ds, tc.eval_n, parse_metrics(tc.eval_metrics), device,
                               cache_dir=tc.cache_dir)
    return lambda: evaluate(task.sample_seeds)


def train_run(run_cfg: RunConfig, run_dir: str | Path, resume: bool = False, quiet: bool = False,
              time_limit: float | None = None, clock=time.perf_counter) -> Trainer:
    """Train (or continue) a run of any family; returns the finished Trainer. ``time_limit``
    (seconds of ``clock``) ends training early and cleanly, as Ctrl-C does. The run directory is locked for
    the whole time: a second process training in it is refused.

    Under torchrun every process calls this; rank 0 holds the lock, builds the dataset cache
    first and writes the run directory (see ``training/distributed.py``)."""
    world, device = init_world(run_cfg.train.device)
    created = world.main and not Path(run_dir).exists()
    try:
        with run_lock(run_dir) if world.main else contextlib.nullcontext():
            trainer = _train_locked(run_cfg, Path(run_dir), resume, quiet or not world.main,
                                    time_limit, clock, world, device)
        # every process meets before the group is torn down: one tearing it down while a peer is
        # still in its last collective can abort the peer (seen once with gloo in a test helper)
        barrier(world)
        return trainer
    except BrushworkError:
        if created:
            _remove_if_untouched(Path(run_dir))
        raise
    finally:
        close_world(world)


def _remove_if_untouched(run_dir: Path) -> None:
    """A training refused before it wrote anything leaves no folder behind (only its lock was made)."""
    from brushwork.runs.directory import LOCK_NAME

    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {LOCK_NAME}:
        (run_dir / LOCK_NAME).unlink(missing_ok=True)
        run_dir.rmdir()


def _load_data(run_cfg: RunConfig, quiet: bool, world: World) -> ArtDataset:
    """The training images; under torchrun rank 0 decodes and caches them first."""
    model_cfg, train_cfg = run_cfg.model, run_cfg.train

    def load() -> ArtDataset:
        return load_dataset(train_cfg.data, model_cfg.resolution, train_cfg.crop, train_cfg.cache_dir,
                            progress=not quiet, height=getattr(model_cfg, "height", 0))

    ds = load() if world.main else None
    barrier(world)
    return ds if ds is not None else load()


def _train_locked(run_cfg: RunConfig, run_dir: Path, resume: bool, quiet: bool,
                  time_limit: float | None, clock, world: World, device: torch.device) -> Trainer:
    if world.main:
        check_run_dir(run_dir, resume)
    model_cfg, train_cfg = run_cfg.model, run_cfg.train
    fam = run_family(run_cfg)
    parenting = _parenting(fam, run_cfg)
    if parenting and latest_checkpoint(run_dir) is None:  # an unsuitable parent is refused before anything
        parenting.check(run_cfg)                            # is written
    model_cfg.validate()
    train_cfg.validate()
    ds = _load_data(run_cfg, quiet, world)
    if ds.skipped:
        _say(ds.skipped_summary(), quiet)
    run_cfg.labels = ds.label_names
    run_cfg.version = run_cfg.version or __version__
    if parenting and parenting.adapt:  # the parent's styles and the collection's; the schedule
        ds = parenting.adapt(run_cfg, ds, lambda text: _say(text, quiet))
    elif getattr(model_cfg, "styled", False):
        model_cfg.num_styles = check_styles(ds, "conditional" if model_cfg.conditional else "creative", quiet)
    if world.main and resume:
        check_same_model(run_dir, run_cfg)
    task, train_images = fam.task(run_cfg, ds, device, world, run_dir)
    if world.main:
        atomic_write(run_dir / "config.json", run_cfg.to_json().encode())

    batcher = train_images.batcher(train_cfg, device, world) if hasattr(train_images, "batcher") else \
        ImageBatcher(train_images, train_cfg.batch_size, image_size(model_cfg), device,
                     train_cfg.flip, train_cfg.seed, train_cfg.data_on_device,
                     model_cfg.channels_last, getattr(model_cfg, "balance_styles", False), world)
    trainer = Trainer(task, batcher, run_dir, train_cfg, info={"kind": run_cfg.kind},
                      progress=not quiet, evaluator=_evaluator(run_cfg, ds, task, device, world),
                      world=world)
    barrier(world)  # rank 0 has checked the run directory and written config.json
    start = trainer.resume() if resume else 0
    if start == 0 and parenting and parenting.load:
        train_cfg.init_from_hash = parenting.load(task.modules(), run_cfg)
        _say(f"starting from {train_cfg.init_from} (model {train_cfg.init_from_hash[:10]})"
             + (f", D's first {model_cfg.freeze_d} convolutions frozen" if getattr(model_cfg, "freeze_d", 0) else ""),
             quiet)
        if world.main:
            atomic_write(run_dir / "config.json", run_cfg.to_json().encode())
    params = sum(count_parameters(m) for m in task.modules().values())
    _say(f"{run_cfg.kind}: {len(train_images)} training images "
         f"({', '.join(n or '(no label)' for n in ds.label_names)}) "
         f"at {size_text(*reversed(image_size(model_cfg)))}px | "
         + (f"in the latents of {Path(model_cfg.autoencoder).name} "
            f"({'x'.join(map(str, model_cfg.space))}, scale {model_cfg.latent_scale:.3g}) | "
            if getattr(model_cfg, "autoencoder", "") else "")
         + (f"perceptual term: {PERCEPTUAL_NAMES[model_cfg.perceptual]} | " if hasattr(model_cfg, "perceptual") else "")
         + f"{params:,} params | {device}" + (" | bf16" if task.bf16 else "")
         + (f" | D reconstruction loss: {RECON_NAMES[task.recon_kind]}" if getattr(task, "multi_scale", False)
            else "")
         + (f" | CUDA graphs off: {task.graph_blocker}" if getattr(task, "graph_blocker", None)
            else " | CUDA graphs" if getattr(task, "graphs", None) else "")
         + (f" | {world.size} processes x batch {train_cfg.batch_size} = global batch "
            f"{world.size * train_cfg.batch_size}" if world.distributed else "")
         + (f" | resuming at step {start}" if start else ""), quiet)
    if warning := copying_warning(run_cfg, len(train_images)):
        _say(warning, quiet)
    trainer.fit(time_limit, clock)
    barrier(world)  # every rank leaves once rank 0 has written the last checkpoint
    return trainer

