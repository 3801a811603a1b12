"""Provenance: every image brushwork writes says how it was made.

PNG files get two text chunks:

* ``parameters``: one human line in the style of AUTOMATIC1111's web UI, which many image viewers
  and art sites already display: ``Seed: 7, Truncation: 0.7, Model: run, Model hash: 1a2b3c4d5e, Steps: 5000``.
* ``brushwork``: the full JSON record (model and config hashes, seed, truncation, latent method,
  version), enough for ``brushwork sample --from IMAGE`` to regenerate the exact image.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, PngImagePlugin

from brushwork import __version__
from brushwork.errors import BrushworkError
from brushwork.imaging import png_bytes
from brushwork.utils import atomic_write

_PARAMETER_KEYS = [("seed", "Seed"), ("truncation", "Truncation"), ("temperature", "Temperature"),
                   ("model_name", "Model"),
                   ("model_hash", "Model hash"), ("steps", "Steps")]


def make_record(**fields) -> dict:
    """A provenance record: the given fields plus the tool name and version."""
    return {"software": "brushwork", "version": __version__, **fields}


def parameters_line(record: dict) -> str:
    parts = []
    for key, label in _PARAMETER_KEYS:
        if record.get(key) is not None:
            value = record[key][:10] if key == "model_hash" else record[key]
            parts.append(f"{label}: {value}")
    return ", ".join(parts)


def save_png(img: Image.Image, path: str | Path, record: dict | None) -> Path:
    """Write a PNG atomically, with the provenance chunks unless ``record`` is None."""
    info = None
    if record is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", parameters_line(record))
        info.add_text("brushwork", json.dumps(record, sort_keys=True))
    atomic_write(path, png_bytes(img, info))
    return Path(path)


def read_record(path: str | Path) -> dict:
    """The text metadata of an image: {'parameters': str, 'brushwork': dict} where present."""
    try:
        with Image.open(path) as img:
            text = dict(getattr(img, "text", {}) or img.info)
    except FileNotFoundError:
        raise BrushworkError(f"no such image file: {path}") from None
    except OSError as exc:
        raise BrushworkError(f"cannot read image {path}: {exc}") from None
    out = {}
    if isinstance(text.get("parameters"), str):
        out["parameters"] = text["parameters"]
    if isinstance(text.get("brushwork"), str):
        try:
            out["brushwork"] = json.loads(text["brushwork"])
        except json.JSONDecodeError:
            out["brushwork_raw"] = text["brushwork"]
    comment = text.get("comment")
    if isinstance(comment, (bytes, str)) and "brushwork" not in out:  # GIF comment block
        try:
            out["brushwork"] = json.loads(comment)
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    return out
