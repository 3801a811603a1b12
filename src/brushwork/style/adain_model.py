"""A trained AdaIN decoder read from its run, with the VGG19 encoder it was trained against.

A decoder only works with the exact encoder whose features it learned to invert, so its run
pins that encoder (weights name and identity hash, in config.json). By default the run's own
encoder is used; an encoder given explicitly must be the same one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from brushwork.errors import BrushworkError
from brushwork.models.style import AdaINDecoder, load_style_encoder
from brushwork.models.vgg import VGGFeatures
from brushwork.runs import checkpoint as ckpt
from brushwork.runs.directory import read_run_config
from brushwork.utils import tensors_hash


@dataclass
class AdaINModel:
    encoder: VGGFeatures
    decoder: AdaINDecoder
    info: dict  # provenance fields: model name, decoder hash, training steps


def load_adain_model(run_dir: str | Path, device, encoder_weights: str | None = None,
                     reflection_padding: bool = False) -> AdaINModel:
    """The run's newest decoder and its encoder; ``encoder_weights`` (imagenet, random or a file),
    when given, must be the encoder the run was trained with."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    if cfg.kind != "adain":
        raise BrushworkError(f"{run_dir} is a {cfg.kind} run, not an AdaIN decoder (brushwork train adain)")
    pinned = cfg.model.encoder_hash
    encoder = load_style_encoder(encoder_weights or cfg.model.encoder, device, reflection_padding)
    if encoder.identity != pinned:
        given = f"the encoder given ({encoder_weights})" if encoder_weights else \
            f"its encoder {cfg.model.encoder!r} now"
        raise BrushworkError(f"{run_dir} was trained with VGG19 encoder {pinned} ({cfg.model.encoder}); "
                             f"{given} is {encoder.identity}"
                             + ("" if encoder_weights else ": the weights file has changed"))
    path = ckpt.latest_checkpoint(run_dir)
    if path is None:
        raise BrushworkError(f"{run_dir} has no checkpoint yet; train it first")
    tensors, meta = ckpt.read_checkpoint(path, prefixes=("model/decoder/",))
    weights = ckpt.module_state(tensors, "decoder")
    decoder = AdaINDecoder(cfg.model.width)
    decoder.load_state_dict(weights)
    info = {"model_name": run_dir.name, "model_hash": tensors_hash(weights), "steps": int(meta["step"])}
    return AdaINModel(encoder, decoder.to(device).eval().requires_grad_(False), info)
