"""Optional C2PA manifests (c2pa-python): a signed statement that an image is AI-generated.

The manifest declares a ``c2pa.created`` action with IPTC digital source type
``trainedAlgorithmicMedia`` and carries brushwork's provenance record as an assertion. Signing
needs the user's certificate chain and private key (PEM); tests sign with a throw-away test CA,
which readers report as valid but untrusted.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from brushwork import __version__
from brushwork.errors import BrushworkError

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
RECORD_LABEL = "org.brushwork.record"
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def _c2pa():
    try:
        import c2pa
    except ImportError:
        raise BrushworkError("C2PA manifests need the c2pa-python package "
                             "(pip install 'brushwork[c2pa]')") from None
    return c2pa


def load_credentials(cert_path: str, key_path: str) -> tuple[bytes, bytes]:
    """(certificate chain PEM, private key PEM) from files, with one clear error when missing."""
    out = []
    for what, path in (("certificate chain", cert_path), ("private key", key_path)):
        if not path or not Path(path).is_file():
            raise BrushworkError(f"C2PA signing needs a {what} PEM file; not found: {path}")
        out.append(Path(path).read_bytes())
    return out[0], out[1]


def optional_credentials(cert_path: str | None, key_path: str | None) -> tuple[bytes, bytes] | None:
    """None when neither file is given (no manifest wanted), else both files' contents."""
    if not (cert_path or key_path):
        return None
    return load_credentials(cert_path, key_path)


def sign(image_bytes: bytes, suffix: str, record: dict, credentials: tuple[bytes, bytes]) -> bytes:
    """The image with an embedded, signed C2PA manifest (ES256 key expected)."""
    c2pa = _c2pa()
    manifest = {
        "claim_generator_info": [{"name": "brushwork", "version": __version__}],
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                 "softwareAgent": {"name": "brushwork", "version": __version__}}]}},
            {"label": RECORD_LABEL, "data": record},
        ],
    }
    chain, key = credentials
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
        out = io.BytesIO()
        with c2pa.Builder(manifest) as builder:
            builder.sign(signer, MIME[suffix.lower()], io.BytesIO(image_bytes), out)
        return out.getvalue()
    except c2pa.C2paError as exc:
        raise BrushworkError(f"C2PA signing failed: {str(exc)[:200]}") from None


def read(path: str | Path) -> dict | None:
    """Summary of an image's C2PA manifest, or None when it has none (or c2pa is missing)."""
    try:
        import c2pa
    except ImportError:
        return None
    suffix = Path(path).suffix.lower()
    if suffix not in MIME:
        return None
    try:
        with open(path, "rb") as f, c2pa.Reader(MIME[suffix], f) as reader:
            data = json.loads(reader.json())
            state = reader.get_validation_state()
    except Exception:  # no manifest, or not readable as one
        return None
    manifest = data["manifests"][data["active_manifest"]]
    sources = [a.get("digitalSourceType") for assertion in manifest.get("assertions", [])
               if assertion["label"].startswith("c2pa.actions")
               for a in assertion["data"].get("actions", [])]
    return {"validation_state": str(state), "digital_source_type": sources,
            "issues": [s.get("code") for s in data.get("validation_status", []) or []],
            "record": next((a["data"] for a in manifest.get("assertions", [])
                            if a["label"] == RECORD_LABEL), None)}
