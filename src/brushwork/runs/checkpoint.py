"""Checkpoints: one safetensors file per save, holding everything a run needs to continue.

Layout of the tensors in a checkpoint file (names are ``/``-separated):

    model/<name>/<param or buffer>         weights of each module (G, G_ema, D, ...)
    optim/<name>/<param index>/<key>       optimiser state tensors (Adam moments, step)
    state/<key>                            RNG states, data order, anything else as tensors

plus a JSON string in the safetensors metadata with the step, optimiser hyperparameters and any
other plain values. Nothing is pickled, so loading a checkpoint can never run code. Files are
written atomically (temp file + rename): after a crash the newest complete file is the one used.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from brushwork.errors import BrushworkError
from brushwork.utils import atomic_write, tensors_hash

_NAME = re.compile(r"^step-(\d{8})\.safetensors$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}.safetensors"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of complete checkpoints, oldest first; temp files never match the pattern."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def _flatten_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    sd = opt.state_dict()
    plain_state = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{name}/{pid}/{key}"] = value.detach().cpu().contiguous()
            else:
                plain_state.setdefault(str(pid), {})[key] = value
    meta[f"optim/{name}"] = {"param_groups": sd["param_groups"], "plain_state": plain_state}


# How an optimiser runs on this machine, not part of its state: a checkpoint keeps the optimiser's
# own choice (e.g. a capturable Adam for CUDA graphs resuming a run saved without them).
IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable", "differentiable")


def _unflatten_optimizer(name: str, tensors: dict, meta: dict, live: torch.optim.Optimizer) -> dict:
    info = meta[f"optim/{name}"]
    state: dict[int, dict] = {int(pid): dict(v) for pid, v in info["plain_state"].items()}
    prefix = f"optim/{name}/"
    for key, value in tensors.items():
        if key.startswith(prefix):
            pid, field = key[len(prefix):].split("/", 1)
            state.setdefault(int(pid), {})[field] = value
    # JSON turned tuples such as Adam's betas into lists; restore them.
    groups = [{k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
              for g in info["param_groups"]]
    for group, current in zip(groups, live.param_groups):
        group.update({k: current[k] for k in IMPLEMENTATION_FLAGS if k in current})
    return {"state": state, "param_groups": groups}


def _match_param_layout(opt: torch.optim.Optimizer) -> None:
    """Give per-parameter state the memory layout of its parameter (e.g. channels_last).

    Checkpoints store plain contiguous tensors; fused optimisers walk state and parameter
    storage in lockstep, so a layout mismatch would silently pair the wrong elements.
    """
    for param, state in opt.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape:
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def save_checkpoint(path: Path, step: int, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], state: dict[str, torch.Tensor],
                    info: dict | None = None) -> None:
    """Write a complete checkpoint atomically."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict = {"step": step, "info": info or {}}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"model/{name}/{key}"] = value.detach().cpu().contiguous()
    for name, opt in optimizers.items():
        _flatten_optimizer(name, opt, tensors, meta)
    for key, value in state.items():
        tensors[f"state/{key}"] = value.detach().cpu().contiguous()
    atomic_write(path, save(tensors, metadata={"brushwork": json.dumps(meta)}))


def read_checkpoint(path: Path, prefixes: tuple[str, ...] = ()) -> tuple[dict[str, torch.Tensor], dict]:
    """All tensors (or those under ``prefixes``) and the JSON metadata of a checkpoint file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("brushwork", "{}"))
            keys = [k for k in f.keys() if not prefixes or k.startswith(prefixes)]
            return {k: f.get_tensor(k) for k in keys}, meta
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise BrushworkError(f"cannot read checkpoint {path}: {exc}") from None


def sampling_prefixes(modules: tuple[str, ...]) -> tuple[str, ...]:
    """The checkpoint keys under these modules (what ``read_checkpoint`` needs to sample)."""
    return tuple(f"model/{name}/" for name in modules)


def sampling_weights(tensors: dict, modules: tuple[str, ...], companions: tuple[str, ...] = ()) -> dict:
    """The weights a run makes images with: the first of ``modules`` the checkpoint holds (a GAN:
    its EMA generator, else G), plus each companion it holds under the companion's name (a latent
    diffusion run's frozen autoencoder: ``autoencoder.<key>``). A run without companions hashes
    exactly as before companions existed."""
    name = next((m for m in modules if any(k.startswith(f"model/{m}/") for k in tensors)), modules[0])
    weights = module_state(tensors, name)
    for companion in companions:
        weights |= {f"{companion}.{k}": v for k, v in module_state(tensors, companion).items()}
    return weights


def model_hash(path: Path, modules: tuple[str, ...], companions: tuple[str, ...] = ()) -> str:
    """The model hash images record: sha256 of a checkpoint's sampling weights."""
    tensors, _ = read_checkpoint(path, prefixes=sampling_prefixes(modules + companions))
    return tensors_hash(sampling_weights(tensors, modules, companions))


def module_state(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    prefix = f"model/{name}/"
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_checkpoint(path: Path, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer]) -> tuple[int, dict[str, torch.Tensor], dict]:
    """Restore modules and optimisers in place; returns (step, state tensors, info)."""
    tensors, meta = read_checkpoint(path)
    for name, module in modules.items():
        module.load_state_dict(module_state(tensors, name))
    for name, opt in optimizers.items():
        opt.load_state_dict(_unflatten_optimizer(name, tensors, meta, opt))
        _match_param_layout(opt)
    state = {k[len("state/"):]: v for k, v in tensors.items() if k.startswith("state/")}
    return int(meta["step"]), state, meta.get("info", {})


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints; also remove temp files a killed run left behind."""
    for _, path in list_checkpoints(run_dir)[:-keep]:
        path.unlink(missing_ok=True)
    for stale in (Path(run_dir) / "checkpoints").glob(".step-*.tmp"):
        stale.unlink(missing_ok=True)
