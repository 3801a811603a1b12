"""File-level style transfer: read images, stylise, attach provenance (``stylize_file``, what the
CLI and the studio share), and the ``stylize`` command's loop over files (``stylize_files``)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from brushwork.data.images import load_rgb_or_exit
from brushwork.errors import BrushworkError
from brushwork.models.style import AdaINDecoder, load_style_encoder
from brushwork.models.vgg import VGGFeatures
from brushwork.provenance import make_record, save_image
from brushwork.provenance.c2pa import optional_credentials
from brushwork.style.adain_model import load_adain_model
from brushwork.style.transfer import (GatysSettings, StyleRequest, image_path_list, normalise_weights,
                                      stylize)
from brushwork.utils import ensure_dir, ensure_output_file, resolve_device, sha256_file


def parse_style_weights(text: str | None, n: int) -> list[float]:
    if not text:
        return [1.0 / n] * n
    try:
        return normalise_weights([float(w) for w in text.split(",")], n)
    except ValueError:
        raise BrushworkError(f"--style-weights {text!r}: expected numbers like 0.7,0.3") from None


def _outputs(contents: list[Path], out: Path, batch: bool) -> list[Path]:
    if not batch:
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
            raise BrushworkError(f"--out must be a .png, .jpg or .webp file, got {out.name}")
        return [ensure_output_file(out)]
    ensure_dir(out)
    return [out / f"{c.stem}_stylized.png" for c in contents]


@dataclass
class StyleEngine:
    """What stylises: the VGG19 encoder, and for AdaIN the decoder and its run's provenance."""

    encoder: VGGFeatures
    decoder: AdaINDecoder | None = None
    model_info: dict = field(default_factory=dict)


def load_engine(method: str, device, model: str | None = None, encoder: str | None = None,
                reflection_padding: bool = False) -> StyleEngine:
    """The engine for ``method``: Gatys uses ``encoder`` (default imagenet); AdaIN the decoder of
    run ``model`` with the encoder it was trained with (``encoder``, if given, must match)."""
    if method != "adain":
        return StyleEngine(load_style_encoder(encoder or "imagenet", device, reflection_padding))
    if not model:
        raise BrushworkError("--method adain needs --model RUN (a decoder from brushwork train adain)")
    run = load_adain_model(model, device, encoder, reflection_padding)
    return StyleEngine(run.encoder, run.decoder, run.info)


def style_record(request: StyleRequest, engine: StyleEngine, content: Path, styles: list[Path],
                 mask: Path | None = None) -> dict:
    """The provenance record of one stylised image: settings, encoder identity, files' sha256."""
    g = request.gatys
    return make_record(
        kind="style_transfer", method=request.method, size=request.size, strength=request.strength,
        style_weights=request.style_weights, preserve_color=request.preserve_color,
        encoder=engine.encoder.weights_name, encoder_identity=engine.encoder.identity,
        content_sha256=sha256_file(content), style_sha256=[sha256_file(p) for p in styles],
        mask_sha256=sha256_file(mask) if mask else None,
        **({"steps": g.steps, "optimizer": g.optimizer, "init": g.init, "content_weight": g.content_weight,
            "style_weight": g.style_weight, "tv_weight": g.tv_weight, "scales": g.scales}
           if request.method == "gatys" else {}),
        **engine.model_info)


def stylize_file(content: Path, styles: list[Path], request: StyleRequest, engine: StyleEngine,
                 mask: Path | None = None, metadata: bool = True, watermark: bool = False,
                 progress=None) -> tuple[Image.Image, dict | None]:
    """One content file stylised: (image, its provenance record or None); nothing is written.
    ``progress(step, total, losses, best_image)`` is called as Gatys optimises; returning True
    stops it with the best image so far (see ``transfer.gatys``)."""
    image = stylize(load_rgb_or_exit(content), [load_rgb_or_exit(p) for p in styles], request,
                    engine.encoder, engine.decoder, load_rgb_or_exit(mask) if mask else None, progress)
    record = style_record(request, engine, content, styles, mask) if metadata else None
    if watermark:
        from brushwork.provenance.watermark import LABEL, embed_watermark

        image = embed_watermark(image)
        if record is not None:
            record["watermark"] = LABEL
    return image, record


def _request(args) -> StyleRequest:
    styles = len(args.style)
    request = StyleRequest(method=args.method, size=args.size, strength=args.strength,
                           style_weights=parse_style_weights(args.style_weights, styles),
                           preserve_color=args.preserve_color,
                           gatys=GatysSettings(steps=args.steps, optimizer=args.optimizer,
                                               init=args.init, content_weight=args.content_weight,
                                               style_weight=args.style_weight, tv_weight=args.tv_weight,
                                               scales=args.scales))
    request.validate()
    return request


def stylize_files(args) -> list[Path]:
    """Stylise every content file named by ``args`` (the ``stylize`` command's arguments)."""
    device = resolve_device(args.device)
    credentials = optional_credentials(args.c2pa_cert, args.c2pa_key)  # checked before any work
    contents = image_path_list(args.content)
    outs = _outputs(contents, Path(args.out), Path(args.content).is_dir())
    styles, mask = [Path(p) for p in args.style], Path(args.mask) if args.mask else None
    for path in styles + ([mask] if mask else []):
        load_rgb_or_exit(path)  # unreadable inputs fail before any work
    request = _request(args)
    engine = load_engine(args.method, device, args.model, args.vgg_weights or args.encoder,
                         args.reflection_padding)
    written = []
    for content_path, out in zip(contents, outs):
        with tqdm(total=args.steps, desc=f"stylising {content_path.name}", unit="step",
                  file=sys.stderr, disable=args.method != "gatys") as bar:
            def progress(step, total, losses, _image):
                bar.n = step
                bar.set_postfix(loss=f"{losses['total']:.3g}", refresh=False)
                bar.refresh()

            image, record = stylize_file(content_path, styles, request, engine, mask,
                                         not args.no_metadata, args.watermark, progress)
        written.append(save_image(image, out, record, credentials))
    return written
