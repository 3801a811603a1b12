"""Fine-tuning a GAN: start from another run's weights (``--init-from RUN``), optionally with the
first layers of the discriminator frozen (``--freeze-d N``; FreezeD, Mo et al. 2020: the lower
layers of a trained D already see generic image features, and keeping them fixed lets a small
new collection train the rest without D overfitting it).

The new run keeps the parent's G, EMA G and D weights (not its optimiser state or step) and
records the parent's model hash, which every image it makes carries, so its lineage is visible.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from brushwork.config import RunConfig, image_size
from brushwork.errors import BrushworkError
from brushwork.runs import checkpoint as ckpt
from brushwork.runs.directory import read_run_config

# Settings that decide the shapes of the weights: parent and child must agree on all of them.
SHAPE_FIELDS = ("architecture", "resolution", "z_dim", "g_width", "d_width", "d_batchnorm",
                "spectral_norm", "conditional", "creative", "num_styles", "style_dim")


def check_same_architecture(parent: RunConfig, child: RunConfig, parent_dir: Path) -> None:
    if parent.kind != "gan":
        raise BrushworkError(f"--init-from {parent_dir}: it is a {parent.kind} run; GAN runs start "
                             "from GAN runs")
    _check_same_size(parent, child, parent_dir)
    differ = [f"{name} {getattr(parent.model, name)} (this run: {getattr(child.model, name)})"
              for name in SHAPE_FIELDS if getattr(parent.model, name) != getattr(child.model, name)]
    if differ:
        raise BrushworkError(f"--init-from {parent_dir}: its model differs from this one in "
                             f"{'; '.join(differ)}; use its preset ({parent.model.preset}) and "
                             f"--res {parent.model.resolution}")


def check_parent_size(run_cfg: RunConfig) -> None:
    """Refuse, before anything is written, a parent run whose images are of another size."""
    parent_dir = Path(run_cfg.train.init_from)
    _check_same_size(read_run_config(parent_dir), run_cfg, parent_dir)


def _check_same_size(parent: RunConfig, child: RunConfig, parent_dir: Path) -> None:
    was, now = image_size(parent.model), image_size(child.model)
    if was != now:
        keep = f"--res {was[0]}" if was[0] == was[1] else f"--size {was[1]}x{was[0]}"
        raise BrushworkError(f"--init-from {parent_dir}: it makes {was[1]}x{was[0]} images, this run "
                             f"{now[1]}x{now[0]}; fine-tuning keeps the size ({keep})")


def load_parent(modules: dict[str, nn.Module], run_cfg: RunConfig) -> str:
    """Copy the parent run's newest G, EMA G and D into ``modules``; returns its model hash."""
    parent_dir = Path(run_cfg.train.init_from)
    parent = read_run_config(parent_dir)
    check_same_architecture(parent, run_cfg, parent_dir)
    path = ckpt.latest_checkpoint(parent_dir)
    if path is None:
        raise BrushworkError(f"--init-from {parent_dir}: it has no checkpoint yet")
    tensors, _ = ckpt.read_checkpoint(path, prefixes=("model/",))
    for name, module in modules.items():
        state = ckpt.module_state(tensors, name)
        if not state and name == "G_ema":
            state = ckpt.module_state(tensors, "G")  # a parent trained without EMA
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise BrushworkError(f"--init-from {parent_dir}: its {name} weights do not fit this model "
                                 f"({str(exc).splitlines()[0][:120]})") from None
    return ckpt.model_hash(path, ("G_ema", "G"))


def freeze_first_layers(D: nn.Module, n: int) -> int:
    """Freeze D's first ``n`` convolutions (in the order they are built, spectral norm and all)
    and the BatchNorm after each; returns how many weights were frozen."""
    if n <= 0:
        return 0
    total = sum(isinstance(m, nn.Conv2d) for m in D.modules())
    if n >= total:
        raise BrushworkError(f"--freeze-d {n}: the discriminator has {total} convolutions; freeze "
                             f"fewer so that some of it still learns")
    convs, frozen = 0, 0
    for module in D.modules():
        if isinstance(module, nn.Conv2d):
            convs += 1
            if convs > n:
                break
        elif not (isinstance(module, nn.BatchNorm2d) and convs):
            continue
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen
