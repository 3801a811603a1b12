"""Provenance: every image brushwork writes says how it was made.

JPEG and WebP files carry the same record: the parameters line as EXIF ImageDescription and the
full JSON in an XMP packet (``brushwork:record``). PNG files get two text chunks:

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
                   ("sampler", "Sampler"), ("sampling_steps", "Sampling steps"), ("guidance", "Guidance"),
                   ("style", "Style"), ("style_mix", "Style mix"), ("model_name", "Model"),
                   ("model_hash", "Model hash"), ("steps", "Steps")]


def make_record(**fields) -> dict:
    """A provenance record: the given fields plus the tool name and version."""
    return {"software": "brushwork", "version": __version__, **fields}


def parameters_line(record: dict) -> str:
    parts = []
    for key, label in _PARAMETER_KEYS:
        if record.get(key) is not None:
            value = record[key][:10] if key == "model_hash" else record[key]
            if key == "style_mix":  # {"a": 0.6, "b": 0.4} -> "a 0.6 b 0.4" (no commas: one field)
                value = " ".join(f"{name} {weight:g}" for name, weight in value.items())
            parts.append(f"{label}: {value}")
    return ", ".join(parts)


def save_png(img: Image.Image, path: str | Path, record: dict | None, c2pa_credentials=None) -> Path:
    """Write a PNG atomically, with the provenance chunks unless ``record`` is None."""
    info = None
    if record is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", parameters_line(record))
        info.add_text("brushwork", json.dumps(record, sort_keys=True))
    atomic_write(path, _maybe_signed(png_bytes(img, info), path, record, c2pa_credentials))
    return Path(path)


def _maybe_signed(data: bytes, path, record: dict | None, credentials) -> bytes:
    """Add a signed C2PA manifest when credentials are given (and metadata is wanted)."""
    if credentials is None or record is None:
        return data
    from brushwork.provenance import c2pa

    return c2pa.sign(data, Path(path).suffix, record, credentials)


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_XMP = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:brushwork="https://brushwork.invalid/ns/1.0/" '
        'brushwork:record="{record}"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def save_image(img: Image.Image, path: str | Path, record: dict | None, c2pa_credentials=None) -> Path:
    """Write PNG, JPEG or WebP (by suffix) atomically, with the provenance record embedded;
    ``c2pa_credentials`` (chain PEM, key PEM) adds a signed C2PA manifest too."""
    import html
    import io

    path = Path(path)
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BrushworkError(f"unsupported output format {path.suffix!r} (use .png, .jpg or .webp)")
    if fmt == "PNG":
        return save_png(img, path, record, c2pa_credentials)
    options: dict = {"quality": 95}
    if record is not None:
        exif = Image.Exif()
        exif[0x010E] = parameters_line(record)  # ImageDescription
        exif[0x0131] = f"brushwork {__version__}"  # Software
        options["exif"] = exif.tobytes()
        options["xmp"] = _XMP.format(record=html.escape(json.dumps(record, sort_keys=True))).encode()
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    atomic_write(path, _maybe_signed(buf.getvalue(), path, record, c2pa_credentials))
    return path


def _record_from_xmp(xmp) -> dict | None:
    import html
    import re

    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)
    match = re.search(r'brushwork:record="([^"]*)"', text)
    return json.loads(html.unescape(match.group(1))) if match else None


def read_record(path: str | Path) -> dict:
    """The text metadata of an image: {'parameters': str, 'brushwork': dict} where present."""
    try:
        with Image.open(path) as img:
            text = dict(getattr(img, "text", {}) or img.info)
            description = img.getexif().get(0x010E)
            xmp = img.info.get("xmp")
    except FileNotFoundError:
        raise BrushworkError(f"no such image file: {path}") from None
    except OSError as exc:
        raise BrushworkError(f"cannot read image {path}: {exc}") from None
    out = {}
    if xmp:
        try:
            record = _record_from_xmp(xmp)
        except json.JSONDecodeError:
            record = None
        if record is not None:
            out["brushwork"] = record
            if isinstance(description, str):
                out["parameters"] = description
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
