"""A trained run made into a built-in model's folder (``scripts/train_base.py --stage pack``).

What ships is what sampling needs and nothing a user could not check: the newest checkpoint's
sampling networks in float16 (half the bytes; the base's samples are unchanged to the eye and its
measured figures are of these weights) and the run's config without the trainer's local paths.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save

from brushwork.runs.builtin import PREFIX
from brushwork.runs.checkpoint import latest_checkpoint, read_checkpoint, sampling_prefixes
from brushwork.runs.directory import read_run_config
from brushwork.training.latent import autoencoder_hash
from brushwork.utils import atomic_write


def ship(run: Path, folder: Path, modules: tuple[str, ...]) -> Path:
    """Write ``folder`` (named as the model is: builtin:<folder name>) from ``run``: the checkpoint
    ``modules`` (e.g. the EMA denoiser and the autoencoder) in float16 as its only checkpoint, and
    the config, whose autoencoder is now the one in that checkpoint. Returns the checkpoint; its
    sha256 is what runs/builtin.py (or an override folder's hashes.json) must list."""
    cfg = read_run_config(run)
    path = latest_checkpoint(run)
    tensors, meta = read_checkpoint(path, prefixes=sampling_prefixes(modules))
    shipped = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    for old in (folder / "checkpoints").glob("*.safetensors"):
        old.unlink()
    target = folder / "checkpoints" / path.name
    atomic_write(target, save(shipped, metadata={"brushwork": json.dumps({"step": meta["step"], "info": {}})}))
    if getattr(cfg.model, "autoencoder", ""):  # a latent run: its autoencoder travels in the checkpoint
        cfg.model.autoencoder = f"{PREFIX}{folder.name}"
        cfg.model.autoencoder_hash = autoencoder_hash(shipped)
    cfg.train.data, cfg.train.cache_dir, cfg.train.device = "", "", "auto"
    atomic_write(folder / "config.json", cfg.to_json().encode())
    return target
