"""File-level style transfer for the CLI (and scripts): read images, stylise, write with provenance."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm.auto import tqdm

from brushwork.provenance.c2pa import optional_credentials
from brushwork.data.images import load_rgb_or_exit
from brushwork.errors import BrushworkError
from brushwork.provenance import make_record, save_image
from brushwork.models.style import load_style_encoder
from brushwork.style.adain_model import load_adain_model
from brushwork.style.transfer import (GatysSettings, StyleRequest, image_path_list, normalise_weights,
                                      stylize)
from brushwork.utils import ensure_dir, ensure_output_file, resolve_device, sha256_file


def _weights(text: str | None, n: int) -> list[float]:
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


def _engine(args, device):
    """(encoder, AdaIN decoder or None, provenance fields of the decoder's run)."""
    chosen = args.vgg_weights or args.encoder  # None: the default for the method
    if args.method != "adain":
        return load_style_encoder(chosen or "imagenet", device, args.reflection_padding), None, {}
    if not args.model:
        raise BrushworkError("--method adain needs --model RUN (a decoder from brushwork train adain)")
    model = load_adain_model(args.model, device, chosen, args.reflection_padding)
    return model.encoder, model.decoder, model.info


def stylize_files(args) -> list[Path]:
    """Stylise every content file named by ``args`` (the ``stylize`` command's arguments)."""
    device = resolve_device(args.device)
    credentials = optional_credentials(args.c2pa_cert, args.c2pa_key)  # checked before any work
    contents = image_path_list(args.content)
    outs = _outputs(contents, Path(args.out), Path(args.content).is_dir())
    styles = [load_rgb_or_exit(p) for p in args.style]
    mask = load_rgb_or_exit(args.mask) if args.mask else None
    weights = _weights(args.style_weights, len(styles))
    request = StyleRequest(method=args.method, size=args.size, strength=args.strength,
                           style_weights=weights, preserve_color=args.preserve_color,
                           gatys=GatysSettings(steps=args.steps, optimizer=args.optimizer,
                                               init=args.init, content_weight=args.content_weight,
                                               style_weight=args.style_weight, tv_weight=args.tv_weight,
                                               scales=args.scales))
    request.validate()
    encoder, decoder, model_info = _engine(args, device)
    written = []
    for content_path, out in zip(contents, outs):
        with tqdm(total=args.steps, desc=f"stylising {content_path.name}", unit="step",
                  file=sys.stderr, disable=args.method != "gatys") as bar:
            def progress(step, total, losses):
                bar.n = step
                bar.set_postfix(loss=f"{losses['total']:.3g}", refresh=False)
                bar.refresh()

            image = stylize(load_rgb_or_exit(content_path), styles, request, encoder, decoder,
                            mask, progress)
        record = None if args.no_metadata else make_record(
            kind="style_transfer", method=args.method, size=args.size, strength=args.strength,
            style_weights=weights, preserve_color=args.preserve_color,
            encoder=encoder.weights_name, encoder_identity=encoder.identity,
            content_sha256=sha256_file(content_path), style_sha256=[sha256_file(p) for p in args.style],
            mask_sha256=sha256_file(args.mask) if args.mask else None,
            **({"steps": args.steps, "optimizer": args.optimizer, "init": args.init,
                "content_weight": args.content_weight, "style_weight": args.style_weight,
                "tv_weight": args.tv_weight, "scales": args.scales} if args.method == "gatys" else {}),
            **model_info)
        if args.watermark:
            from brushwork.provenance.watermark import LABEL, embed_watermark

            image = embed_watermark(image)
            if record is not None:
                record["watermark"] = LABEL
        written.append(save_image(image, out, record, credentials))
    return written
