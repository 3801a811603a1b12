"""Making images from a trained run: per-seed latents, truncation, interpolation walks.

Latents come from NumPy's seeded Mersenne Twister (as StyleGAN does), so a seed means the same
latent on every machine and device; the generator runs in eval mode, so an image depends only on
its own seed, never on which other seeds share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from brushwork.config import RunConfig, config_hash
from brushwork.errors import BrushworkError
from brushwork.imaging import grid_image, to_pil
from brushwork.latents import (LATENT_METHOD, latent_for_seed, latents_for_seeds,  # noqa: F401 (API)
                               parse_seeds, slerp, walk_latents)
from brushwork.models.gan import build_gan
from brushwork.provenance import make_record, save_image, save_png
from brushwork.runs import checkpoint as ckpt
from brushwork.runs.directory import read_run_config
from brushwork.utils import resolve_device, tensors_hash


@dataclass
class TrainedModel:
    """A trained GAN generator or VAE loaded from a run directory, with what provenance needs.

    Both families share the ideas of a latent size, sampling by seed and decoding latents to
    images; only VAEs can also encode images (``encode``).
    """

    network: nn.Module  # the GAN's sampling generator, or the whole VAE
    config: RunConfig
    run_dir: Path
    step: int
    model_hash: str  # sha256 of the weights used for sampling
    device: torch.device

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def z_dim(self) -> int:
        return self.config.model.z_dim

    @property
    def scale_name(self) -> str:
        """What scaling the prior is called: truncation (GAN) or temperature (VAE)."""
        return "truncation" if self.kind == "gan" else "temperature"

    def _decoder(self) -> nn.Module:
        return self.network if self.kind == "gan" else self.network.decoder

    @torch.no_grad()
    def generate(self, z: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Images [N, 3, R, R] in [-1, 1] for latents [N, Z]."""
        decoder = self._decoder()
        out = [decoder(c.to(self.device)).float().clamp(-1, 1).cpu() for c in z.split(batch_size)]
        return torch.cat(out)

    decode = generate

    @torch.no_grad()
    def encode(self, images: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """VAE posterior (mu, logvar), each [N, Z], for images [N, 3, R, R] in [-1, 1]."""
        if self.kind != "vae":
            raise BrushworkError(f"{self.run_dir} is a {self.kind} run; only VAE runs can encode "
                                 "images")
        stats = [self.network.encoder(c.to(self.device)) for c in images.split(batch_size)]
        return torch.cat([m.float().cpu() for m, _ in stats]), torch.cat([v.float().cpu() for _, v in stats])

    def record(self, **fields) -> dict:
        return make_record(kind=self.kind, model_name=self.name, model_hash=self.model_hash,
                           steps=self.step, run=str(self.run_dir.resolve()),
                           config_hash=config_hash(self.config.model), latent_method=LATENT_METHOD,
                           **fields)


def _build_sampling_network(cfg: RunConfig, tensors: dict) -> tuple[nn.Module, dict]:
    """(network with weights loaded, those weights) for a run's kind."""
    if cfg.kind == "gan":
        name = "G_ema" if any(k.startswith("model/G_ema/") for k in tensors) else "G"
        weights = ckpt.module_state(tensors, name)
        network, _ = build_gan(cfg.model)
    else:
        from brushwork.models.vae import VAE

        weights = ckpt.module_state(tensors, "vae")
        network = VAE(cfg.model)
    network.load_state_dict(weights)
    return network, weights


def load_model(run_dir: str | Path, device: str = "auto") -> TrainedModel:
    """The sampling network (EMA generator for GANs) from a run's newest checkpoint."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    path = ckpt.latest_checkpoint(run_dir)
    if path is None:
        raise BrushworkError(f"{run_dir} has no checkpoint yet; train it first")
    tensors, meta = ckpt.read_checkpoint(path, prefixes=("model/G/", "model/G_ema/", "model/vae/"))
    network, weights = _build_sampling_network(cfg, tensors)
    dev = resolve_device(device)
    return TrainedModel(network.to(dev).eval().requires_grad_(False), cfg, run_dir,
                        int(meta["step"]), tensors_hash(weights), dev)


def load_for_regeneration(image: str | Path, run: str | Path | None = None,
                          device: str = "auto") -> tuple[TrainedModel, list[int], float]:
    """(model, [seed], truncation or temperature) recorded in an image brushwork made, checking that
    the run (the recorded one unless ``run`` is given) still holds the model that made it."""
    from brushwork.provenance import read_record

    record = read_record(image).get("brushwork") or {}
    scale = record.get("truncation", record.get("temperature"))
    if "seed" not in record or scale is None or "run" not in record:
        raise BrushworkError(f"{image} carries no brushwork seed record to regenerate from")
    run = run or record["run"]
    model = load_model(run, device)
    if model.model_hash != record.get("model_hash"):
        raise BrushworkError(f"{run} now holds a different model (hash {model.model_hash[:10]}) than "
                             f"the one that made {image} ({str(record.get('model_hash'))[:10]})")
    return model, [int(record["seed"])], float(scale)


def write_seed_images(model: TrainedModel, seeds: list[int], out_dir: Path, truncation: float = 1.0,
                      metadata: bool = True, grid: bool = False, ext: str = "png",
                      watermark: bool = False, c2pa_credentials=None) -> list[Path]:
    """One PNG per seed (``seed0007.png``) carrying its provenance record; optional grid.png.
    ``truncation`` scales the latents: the GAN truncation psi, or a VAE's temperature."""
    images = model.generate(latents_for_seeds(seeds, model.z_dim, truncation))
    paths = []
    for seed, img in zip(seeds, to_pil(images)):
        record = model.record(seed=seed, **{model.scale_name: truncation}) if metadata else None
        if watermark:
            from brushwork.watermark import LABEL, embed_watermark

            img = embed_watermark(img)
            if record is not None:
                record["watermark"] = LABEL
        paths.append(save_image(img, Path(out_dir) / f"seed{seed:04d}.{ext}", record, c2pa_credentials))
    if grid:
        record = model.record(seeds=seeds, **{model.scale_name: truncation}) if metadata else None
        paths.append(save_png(grid_image(images), Path(out_dir) / "grid.png", record))
    return paths
