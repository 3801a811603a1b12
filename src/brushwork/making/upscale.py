"""Enlarging images: an upscaler run trained on the collection (``brushwork train upscaler``) or a
user's own pretrained weights in the formats painting tools share (ESRGAN, Real-ESRGAN, SwinIR and
the rest, read by spandrel, the loader those tools use), applied tile by tile so that memory stays
bounded for any image size.

Tiles overlap by the network's reach (the input pixels an output pixel depends on), and each
tile contributes only its own square: the result is the untiled one, pixel for pixel, for a
network whose reach is known (ours); for other architectures the overlap is a generous default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from brushwork.errors import BrushworkError
from brushwork.imaging import to_pil
from brushwork.provenance import make_record, read_record, save_image
from brushwork.runs import checkpoint as ckpt
from brushwork.runs.directory import read_run_config
from brushwork.training.families import require
from brushwork.utils import ensure_dir, resolve_device, sha256_file, tensors_hash

TILE = 256  # input pixels per tile side
DEFAULT_REACH = 32  # overlap for networks whose reach is unknown (spandrel's)
MAX_OUTPUT_PIXELS = 64_000_000  # default limit on an enlarged image (8000 x 8000)


@dataclass
class LoadedUpscaler:
    network: torch.nn.Module  # [B, 3, h, w] in [0, 1] -> [B, 3, s*h, s*w] in [0, 1]
    scale: int
    reach: int  # input pixels of context each output pixel needs
    name: str  # the run's name or the weights file's
    model_hash: str
    architecture: str
    device: torch.device

    def record(self) -> dict:
        return {"upscaler": self.name, "upscaler_hash": self.model_hash, "architecture": self.architecture,
                "scale": self.scale}


class _UnitRange(torch.nn.Module):
    """Our networks work in [-1, 1]; spandrel's in [0, 1]: one convention outside."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x * 2 - 1) + 1) / 2


def load_upscaler(run: str | Path | None = None, weights: str | Path | None = None,
                  device: str = "auto") -> LoadedUpscaler:
    """An upscaler run's network, or a pretrained upscaler file read by spandrel."""
    if (run is None) == (weights is None):
        raise BrushworkError("upscale needs --run UPSCALER_RUN or --weights FILE (one of them)")
    dev = resolve_device(device)
    if run is not None:
        return _from_run(Path(run), dev)
    return _from_file(Path(weights), dev)


def _from_run(run: Path, device: torch.device) -> LoadedUpscaler:
    cfg = read_run_config(run)
    fam = require(cfg.kind, "upscale", run)
    path = ckpt.latest_checkpoint(run)
    if path is None:
        raise BrushworkError(f"{run} has no checkpoint yet; train it first")
    tensors, _ = ckpt.read_checkpoint(path, prefixes=ckpt.sampling_prefixes(fam.sampling))
    weights = ckpt.sampling_weights(tensors, fam.sampling)
    net = fam.network(cfg.model)
    net.load_state_dict(weights)
    return LoadedUpscaler(_UnitRange(net).to(device).eval(), cfg.model.scale, net.reach, run.name,
                          tensors_hash(weights), "brushwork-upscaler", device)


def _from_file(path: Path, device: torch.device) -> LoadedUpscaler:
    """A pretrained upscaler: .safetensors, or a .pth/.pt read with weights_only (tensors only:
    a pickle that holds code is refused, never run)."""
    import pickle
    import warnings

    if not path.is_file():
        raise BrushworkError(f"no such upscaler weights file: {path}")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif path.suffix.lower() in (".pth", ".pt", ".ckpt"):
            with warnings.catch_warnings():  # torch warns about old pickle protocols: the refusal says it
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise BrushworkError(f"{path.name}: upscaler weights must be .safetensors or .pth "
                                 f"(weights only), not {path.suffix or 'no extension'}")
    except pickle.UnpicklingError:
        raise BrushworkError(f"{path.name}: refused: it holds more than weights (pickled objects, which "
                             "could run code); save its state dict as .safetensors") from None
    except (RuntimeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BrushworkError(f"{path.name}: cannot read these weights ({first[:120]})") from None
    return _spandrel_model(path, state, device)


def _spandrel_model(path: Path, state, device: torch.device) -> LoadedUpscaler:
    try:
        import spandrel
    except ImportError:
        raise BrushworkError("pretrained upscalers are read by spandrel: pip install 'brushwork[upscale]'") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in _flat(state)):
        raise BrushworkError(f"{path.name}: no upscaler weights in it")
    try:
        model = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise BrushworkError(f"{path.name}: not an upscaler architecture spandrel knows "
                             "(ESRGAN, Real-ESRGAN, SwinIR, HAT, ...)") from None
    if not isinstance(model, spandrel.ImageModelDescriptor) or model.input_channels != 3 or model.scale < 2:
        raise BrushworkError(f"{path.name}: a {model.architecture.name} model, but not an RGB upscaler")
    weights = {k: v for k, v in model.model.state_dict().items()}
    return LoadedUpscaler(model.model.to(device).eval(), int(model.scale), DEFAULT_REACH, path.name,
                          tensors_hash(weights), model.architecture.name, device)


def _flat(state: dict):
    for value in state.values():
        if isinstance(value, dict):
            yield from _flat(value)
        else:
            yield value


@torch.no_grad()
def upscale_tensor(up: LoadedUpscaler, image: torch.Tensor, tile: int = TILE) -> torch.Tensor:
    """[3, H, W] in [0, 1] -> [3, s*H, s*W] in [0, 1], ``tile`` x ``tile`` input pixels at a time,
    each with ``up.reach`` pixels of context on every side."""
    _, h, w = image.shape
    s, r = up.scale, up.reach
    out = torch.zeros(3, h * s, w * s)
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            y0, x0, y1, x1 = max(0, y - r), max(0, x - r), min(h, y + tile + r), min(w, x + tile + r)
            piece = up.network(image[None, :, y0:y1, x0:x1].to(up.device))[0].float().cpu()
            ty, tx = (y - y0) * s, (x - x0) * s
            th, tw = (min(h, y + tile) - y) * s, (min(w, x + tile) - x) * s
            out[:, y * s:y * s + th, x * s:x * s + tw] = piece[:, ty:ty + th, tx:tx + tw]
    return out.clamp(0, 1)


def enlarger(up: LoadedUpscaler, tile: int = TILE):
    """For ``TrainedModel.enlarge``: a made image -> (it enlarged, the record's ``upscale`` entry)."""
    def enlarge(img):
        pixels = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
        big = upscale_tensor(up, pixels, tile)
        return to_pil(big[None] * 2 - 1)[0], up.record() | {"from_size": [img.width, img.height],
                                                              "to_size": [big.shape[2], big.shape[1]]}
    return enlarge


def upscaler_for(record: dict, run: str | Path | None, device: str = "auto") -> LoadedUpscaler | None:
    """The upscaler that enlarged a recorded image (``run``, checked against the recorded hash),
    None when it was not enlarged; refuses when it was and ``run`` is missing or another one."""
    grown = record.get("upscale")
    if not grown:
        return load_upscaler(run, None, device) if run else None
    if run is None:
        raise BrushworkError(f"this image was enlarged by the upscaler {grown['upscaler']} (hash "
                             f"{grown['upscaler_hash'][:10]}): give --upscale RUN to remake it at that size")
    up = load_upscaler(run, None, device)
    if up.model_hash != grown["upscaler_hash"]:
        raise BrushworkError(f"{run} is not the upscaler this image records ({grown['upscaler']}, hash "
                             f"{grown['upscaler_hash'][:10]}; {run}'s newest is {up.model_hash[:10]})")
    return up


def upscale_files(images: list[str | Path], up: LoadedUpscaler, out_dir: Path, tile: int = TILE,
                  max_pixels: int = MAX_OUTPUT_PIXELS) -> list[Path]:
    """Enlarge each image into ``out_dir`` (same name, .png) with a provenance record: a brushwork
    image keeps its own record, with the enlargement added (both sizes, the upscaler's hash)."""
    from brushwork.data.images import load_rgb_or_exit

    sources = []
    for path in images:  # every mistake found before anything is written
        img = load_rgb_or_exit(path)
        if img.width * img.height * up.scale ** 2 > max_pixels:
            raise BrushworkError(f"{path}: enlarged {up.scale}x it would be {img.width * up.scale} x "
                                 f"{img.height * up.scale} px, more than --max-pixels {max_pixels:,}")
        sources.append((Path(path), img))
    ensure_dir(out_dir)
    enlarge, written = enlarger(up, tile), []
    for path, img in sources:
        big, grown = enlarge(img)
        record = (read_record(path).get("brushwork") or make_record(kind="upscaled", source=path.name,
                                                                    source_sha256=sha256_file(path)))
        written.append(save_image(big, out_dir / f"{path.stem}.png", record | {"upscale": grown}))
    return written
