"""Adapting a trained diffusion model to a collection: ``train diffusion --from RUN`` (``builtin:base``
or any diffusion run), by full fine-tuning or with low-rank adapters (``--adapter lora``).

Starting from a model that has already learned painting, a small collection needs far fewer
steps than training from nothing, and copies less (DDPM-PA, Zhu et al. 2022). The new run:

- takes the parent's model settings (size, U-Net, latent space and its autoencoder); only the
  adapter, dropout and learning rate may differ;
- keeps the parent's styles and adds the collection's: a folder of styles adds each one it has
  not seen, a folder of loose works becomes one new style named after the folder. New style
  vectors start at the parent's "no style" vector (its unconditional model) and are learned;
  seeds are made in the collection's styles unless another is asked for;
- records the parent's model hash; an adapter run, which saves only its adapters, refuses to load
  onto a parent whose weights have changed.

Steps, learning rate and adapter rank scale with the number of works unless given (``plan``);
the log says what was chosen.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from brushwork.config import DiffusionConfig, RunConfig, canvas_of, size_text
from brushwork.data.dataset import ArtDataset
from brushwork.errors import BrushworkError
from brushwork.runs import checkpoint as ckpt
from brushwork.runs.builtin import resolve_run
from brushwork.runs.directory import read_run_config

PARENT_MODULES = ("denoiser_ema",)  # what a child starts from: the parent's sampling weights
AUTOENCODER = "autoencoder"
MIN_WORKS = 4  # fewer works than this teach a style nothing but copies
ADAPTERS = ("lora",)


def parent_config(parent: str) -> RunConfig:
    """The parent run's config, refused in one line unless it is a trained diffusion run of its own."""
    cfg = read_run_config(parent)
    if cfg.kind != "diffusion":
        raise BrushworkError(f"--from {parent}: it is a{'n' if cfg.kind[0] in 'aeiou' else ''} {cfg.kind} run; "
                             f"adapting starts from a diffusion run (builtin:base or one trained with "
                             f"brushwork train diffusion)")
    if cfg.model.adapter:
        raise BrushworkError(f"--from {parent}: it is itself an adapter on {cfg.train.init_from}; adapt "
                             f"that one instead")
    if ckpt.latest_checkpoint(resolve_run(parent)) is None:
        raise BrushworkError(f"--from {parent}: it has no checkpoint yet; train it first")
    return cfg


def child_config(parent: str, width: int, height: int, adapter: str, rank: int,
                 dropout: float | None) -> DiffusionConfig:
    """The model settings of a run adapted from ``parent``: the parent's, at the parent's size, with
    the adapter asked for. The learning rate is left to ``plan`` (0 = choose) unless --set gives it."""
    cfg = parent_config(parent).model
    was, now = canvas_of(cfg.resolution, cfg.height), canvas_of(width, height)
    if was != now:
        raise BrushworkError(f"--from {parent}: it makes {size_text(cfg.resolution, cfg.height)} px works, "
                             f"this run {size_text(width, height)} px; adapting keeps its size (leave out "
                             f"--res/--size)")
    if adapter and adapter not in ADAPTERS:
        raise BrushworkError(f"--adapter {adapter}: unknown (choose {', '.join(ADAPTERS)})")
    if rank and not adapter:
        raise BrushworkError("--rank goes with --adapter lora")
    if rank < 0:
        raise BrushworkError(f"--rank must be at least 1, got {rank}")
    changes = dict(adapter=adapter, adapter_rank=rank, lr=0.0, default_styles=[])
    if dropout is not None:
        changes["dropout"] = dropout
    return dataclasses.replace(cfg, **changes)


@dataclasses.dataclass
class Plan:
    steps: int
    lr: float
    rank: int  # 0: full fine-tuning


# Images shown grow with the square root of the works: a small collection is seen more often
# (30 works: ~460 passes), a larger one fewer times (300: ~140), so the time grows slowly.
# Measured (benchmarks/adapt.py, RESULTS.md): 30k images for 100 works took 10.7 min with LoRA
# on the idle 2-core CPU (52 img/s at 128 px); 25k took 7.9 min in one `train` command, start to end.
IMAGES_PER_ROOT_WORK = 2500
MIN_IMAGES, MAX_IMAGES = 8000, 60000
FULL_LR, LORA_LR = 2e-4, 1e-3  # full fine-tuning moves every weight: a fifth of training's 1e-3


def plan(works: int, batch: int, adapter: str) -> Plan:
    """Default steps, learning rate and adapter rank for adapting to ``works`` works."""
    images = min(MAX_IMAGES, max(MIN_IMAGES, IMAGES_PER_ROOT_WORK * math.sqrt(works)))
    # rank 4 matched rank 8 at 100 works (SWD 64.5 vs 65.3, 100 samples) at half the size: 2.9% of
    # the denoiser's weights (rank 8: 5.8%); rank 8 at 300 works took 16.4 min to SWD 46.3 (500
    # samples, floor 22.8); rank 16 above 300 is not measured
    rank = (4 if works <= 100 else 8 if works <= 300 else 16) if adapter else 0
    return Plan(steps=int(round(images / batch)), lr=LORA_LR if adapter else FULL_LR, rank=rank)


def adapt_to(run_cfg: RunConfig, ds: ArtDataset, say=print) -> ArtDataset:
    """The collection relabelled into the parent's styles plus its own, with the run's steps,
    learning rate and rank chosen where not given; refuses collections too small to learn from."""
    if len(ds) < MIN_WORKS:
        raise BrushworkError(f"{ds.source} holds {len(ds)} readable work(s); adapting needs at least {MIN_WORKS}")
    cfg, tc = run_cfg.model, run_cfg.train
    parent = read_run_config(tc.init_from)
    if cfg.conditional:
        ds = _with_parent_styles(ds, parent.labels, run_cfg)
    chosen = plan(len(ds), tc.batch_size, cfg.adapter)
    picked = []
    if not tc.steps:
        tc.steps = chosen.steps
        picked.append(f"{tc.steps} steps ({tc.steps * tc.batch_size / len(ds):.0f} passes)")
    if not cfg.lr:
        cfg.lr = chosen.lr
        picked.append(f"learning rate {cfg.lr:g}")
    if cfg.adapter and not cfg.adapter_rank:
        cfg.adapter_rank = chosen.rank
        picked.append(f"rank {cfg.adapter_rank}")
    how = f"LoRA adapters of rank {cfg.adapter_rank}" if cfg.adapter else "full fine-tuning"
    say(f"adapting {tc.init_from} to {len(ds)} works by {how}"
        + (f"; chosen for {len(ds)} works: {', '.join(picked)}" if picked else ""))
    return ds


def _with_parent_styles(ds: ArtDataset, parent_styles: list[str], run_cfg: RunConfig) -> ArtDataset:
    """``ds`` with labels indexing the parent's styles followed by the collection's new ones (loose
    works: a style named after the folder); sets the run's labels, style count and default styles."""
    folder = Path(ds.source).name or "collection"
    own = [name or folder for name in ds.label_names]
    names = list(parent_styles) + [n for n in dict.fromkeys(own) if n not in parent_styles]
    mapping = torch.tensor([names.index(n) for n in own], dtype=torch.long)
    run_cfg.labels = names
    run_cfg.model.num_styles = len(names)
    run_cfg.model.default_styles = [n for n in dict.fromkeys(own)]
    return dataclasses.replace(ds, labels=mapping[ds.labels], label_names=names)


def parent_weights(run_cfg: RunConfig, run_dir: Path) -> dict[str, torch.Tensor] | None:
    """The denoiser weights a run adapted from a parent starts from (its style vectors extended to
    the run's styles), or None when a fully fine-tuned run resumes (its own checkpoint holds all,
    unless the pairwise term needs the parent to compare with). Sets the parent's hash in the
    run's config; an adapter run refuses a parent that has changed."""
    cfg, tc = run_cfg.model, run_cfg.train
    if not cfg.adapter and not cfg.pairwise and ckpt.latest_checkpoint(run_dir) is not None:
        return None
    state, found = load_parent(tc.init_from, tc.init_from_hash, run_dir.name)
    tc.init_from_hash = found
    return fit_styles(state, cfg.num_styles if cfg.conditional else 0)


def load_parent(parent: str, expected_hash: str, child: str) -> tuple[dict[str, torch.Tensor], str]:
    """(the parent's denoiser weights, its model hash); refused when the hash is not the one
    recorded (an adapter's base must be exactly the one it was trained on)."""
    folder = resolve_run(parent)
    path = ckpt.latest_checkpoint(folder)
    if path is None:
        raise BrushworkError(f"{child} was adapted from {parent}, which no longer has a checkpoint")
    found = ckpt.model_hash(path, PARENT_MODULES, (AUTOENCODER,))
    if expected_hash and found != expected_hash:
        raise BrushworkError(f"{child} was adapted from {parent} model {expected_hash[:10]}, but {parent} now "
                             f"holds {found[:10]}: its adapters fit only the model they were trained on (use "
                             f"that model, or adapt the new one)")
    tensors, _ = ckpt.read_checkpoint(path, prefixes=ckpt.sampling_prefixes(PARENT_MODULES))
    return ckpt.module_state(tensors, PARENT_MODULES[0]), found


def fit_styles(state: dict[str, torch.Tensor], num_styles: int) -> dict[str, torch.Tensor]:
    """The parent's weights with its style table [K0, E] grown to [num_styles, E]: each new style
    starts as the parent's "no style" vector, i.e. the parent's unconditional model."""
    vectors = state.get("unet.style_vectors")
    if vectors is None or num_styles <= len(vectors):
        return state
    extra = state["unet.no_style"].expand(num_styles - len(vectors), -1)
    return {**state, "unet.style_vectors": torch.cat([vectors, extra.clone()])}


def parent_autoencoder(run_cfg: RunConfig) -> Path | None:
    """The checkpoint that carries the autoencoder of a run adapted from a latent parent."""
    parent = run_cfg.train.init_from
    return ckpt.latest_checkpoint(resolve_run(parent)) if parent else None


def adapted_network(model_cfg: DiffusionConfig, train_cfg, adapter: dict[str, torch.Tensor], network,
                    child: str):
    """An adapter run's denoiser for sampling: its parent's weights with its adapters merged in."""
    from brushwork.training.adapters import add_lora, load_adapter, merge

    state, _ = load_parent(train_cfg.init_from, train_cfg.init_from_hash, child)
    network.load_state_dict(fit_styles(state, model_cfg.num_styles if model_cfg.conditional else 0))
    network = add_lora(network, model_cfg.adapter_rank)
    load_adapter(network, adapter)
    return merge(network)
