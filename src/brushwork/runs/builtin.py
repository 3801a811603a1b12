"""Models that ship with brushwork, used by name (``builtin:base``) wherever a run is asked for.

A built-in model is an ordinary run directory (config.json, one checkpoint, a model card) kept in
the package under ``brushwork/builtin_models/<name>/``. The sha256 of its checkpoint file is
written here, in the source, so a damaged or swapped file is refused at load in one line instead
of silently making other images. A slim install may lack the files: naming the model then says
so in one line and nothing else is affected.

``BRUSHWORK_BUILTIN_MODELS`` points at another folder of built-in models (tests use small
stand-ins there; a packager may keep the weights outside the wheel); its ``hashes.json``
({name: sha256}) then gives the expected hashes, since whoever set the variable vouches for it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from brushwork.errors import BrushworkError

PREFIX = "builtin:"
CARD = "card.md"  # each built-in model's card, beside its config.json
INDEX_FOLDER = "index"  # beside it where built (never shipped: its thumbnails are data): the copy
# check's index of the model's training works


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    summary: str  # one line for `brushwork models`
    checkpoint_sha256: str  # of its checkpoint file ("" while none ships: refused as not installed)
    licence: str  # of the data it learned from


BUILTIN_MODELS: dict[str, BuiltinModel] = {m.name: m for m in (
    BuiltinModel("base", "latent diffusion at 128 px learned from 8,000 public-domain baroque and "
                 "romantic paintings (WikiArt); adapt it with: brushwork train diffusion --from builtin:base",
                 checkpoint_sha256="43e792a1278b6e34691cbb0e8d9a2071b58a6d67cc3adf3cd1efd16ead13e654",
                 licence="training works: public-domain paintings (WikiArt baroque and romanticism; no living artist's work)"),
)}


def models_root() -> Path:
    override = os.environ.get("BRUSHWORK_BUILTIN_MODELS")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "builtin_models"


def expected_sha256(model: BuiltinModel) -> str:
    """The checkpoint hash a built-in model must have: the source's, or the override folder's."""
    if os.environ.get("BRUSHWORK_BUILTIN_MODELS"):
        listed = models_root() / "hashes.json"
        return json.loads(listed.read_text()).get(model.name, "") if listed.is_file() else ""
    return model.checkpoint_sha256


def is_builtin(name: str | Path) -> bool:
    return str(name).startswith(PREFIX)


def builtin_model(name: str) -> BuiltinModel:
    short = str(name)[len(PREFIX):] if is_builtin(name) else str(name)
    if short not in BUILTIN_MODELS:
        raise BrushworkError(f"{PREFIX}{short}: no such built-in model (there is "
                             f"{', '.join(PREFIX + n for n in BUILTIN_MODELS)}; brushwork models lists them)")
    return BUILTIN_MODELS[short]


def checkpoint_file(folder: Path) -> Path | None:
    found = sorted((folder / "checkpoints").glob("step-*.safetensors"))
    return found[-1] if found else None


_VERIFIED: dict[tuple[str, float], bool] = {}  # (path, mtime) of checkpoints whose hash matched


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed(name: str) -> bool:
    model = builtin_model(name)
    return bool(expected_sha256(model)) and checkpoint_file(models_root() / model.name) is not None


def resolve_run(run: str | Path) -> Path:
    """The run directory ``run`` names: a path as it is, or a built-in model's folder after
    checking its checkpoint's hash (once per process and file)."""
    if not is_builtin(run):
        return Path(run)
    model = builtin_model(str(run))
    folder = models_root() / model.name
    path, expected = checkpoint_file(folder), expected_sha256(model)
    if path is None or not expected:
        raise BrushworkError(f"{PREFIX}{model.name} is not installed here (a slim install without its "
                             f"weights; reinstall brushwork from its repository to get them)")
    key = (str(path), path.stat().st_mtime)
    if key not in _VERIFIED:
        found = _file_sha256(path)
        if found != expected:
            raise BrushworkError(f"{PREFIX}{model.name}: {path.name} is damaged or replaced (sha256 "
                                 f"{found[:12]}, expected {expected[:12]}); reinstall brushwork")
        _VERIFIED[key] = True
    return folder


def card(name: str) -> str:
    """A built-in model's card (markdown), or a line saying it is not installed."""
    model = builtin_model(name)
    path = models_root() / model.name / CARD
    return path.read_text() if path.is_file() else f"({PREFIX}{model.name}: no model card installed)"
