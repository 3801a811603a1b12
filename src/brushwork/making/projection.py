"""Projecting a real artwork into a trained GAN: the latent whose image best matches it.

The recipe of StyleGAN2-ADA's projector (Karras et al. 2020), in z space: Adam on the latent,
learning rate warmed up over the first 5% of the steps and ramped down by a half cosine over the
last 25%, noise added to the latent early on (5% of its scale, fading out quadratically by 75%
of the steps) so the search does not settle in the first basin it meets. The start is the best
of 64 seeded latents. Distance: VGG19 features (each layer's squared difference relative to the
target's energy, summed over relu1_2, relu2_2, relu3_4, relu4_2) when weights are available, else pixel L2.

The projected latent becomes a recipe {"z": [...]} in the image's record, so ``sample --from``,
children and crossbreeds work on projected artworks exactly as on seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from brushwork.errors import BrushworkError, WeightsUnavailable
from brushwork.making.generate import TrainedModel
from brushwork.latents import latents_for_seeds

LR = 0.1  # peak Adam learning rate on z (the projector's 0.1)
LR_RAMPUP, LR_RAMPDOWN = 0.05, 0.25  # fractions of the steps
NOISE_START, NOISE_RAMP = 0.05, 0.75  # latent noise: scale at the start, fraction of steps to fade
START_CANDIDATES = 64  # seeds tried for the starting point
FEATURE_LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_2")


@dataclass
class Projection:
    z: torch.Tensor  # [Z] the latent found
    image: torch.Tensor  # [3, R, R] in [-1, 1], what it makes
    distance: float  # the final distance to the target
    kind: str  # "vgg" or "pixel": which distance was minimised
    history: list[float] = field(default_factory=list)  # distance at every step
    frames: list[torch.Tensor] = field(default_factory=list)  # [3, R, R] images along the way


class Distance:
    """Distance between images [N, 3, R, R] and one target [1, 3, R, R] (per image, [N])."""

    def __init__(self, kind: str, features: str, device: torch.device):
        self.kind, self.encoder = kind, None
        if kind == "auto" and features == "imagenet":
            from brushwork.models.vgg import imagenet_weights_cached

            kind = "vgg" if imagenet_weights_cached() else "pixel"  # never download unasked
            self.kind = kind
        if kind in ("auto", "vgg"):
            from brushwork.models.vgg import VGGFeatures

            try:
                self.encoder = VGGFeatures(FEATURE_LAYERS, weights=features).to(device).eval()
                self.encoder.requires_grad_(False)
                self.kind = "vgg"
            except WeightsUnavailable:
                if kind == "vgg":
                    raise
                self.kind = "pixel"  # auto: no ImageNet weights here; say so in the record
        elif kind != "pixel":
            raise BrushworkError(f"unknown distance {kind!r} (choose auto, vgg or pixel)")
        self.target_features = None

    def set_target(self, target: torch.Tensor) -> None:
        self.target = target
        if self.encoder is not None:
            self.target_features = {k: v.detach() for k, v in self.encoder(target).items()}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            return (images - self.target).square().mean(dim=(1, 2, 3))
        feats = self.encoder(images)
        return sum(((feats[k] - t).square().mean(dim=(1, 2, 3)) / t.square().mean().clamp_min(1e-12))
                   for k, t in self.target_features.items())


def _learning_rate(t: float) -> float:
    ramp = min(1.0, (1.0 - t) / LR_RAMPDOWN)
    return LR * (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / LR_RAMPUP)


def _render(model: TrainedModel, z: torch.Tensor, style) -> torch.Tensor:
    """Images [N, 3, R, R] of latents [N, Z], differentiable in z (the model's own weights fixed)."""
    net = model.network if model.kind == "gan" else model.network.decoder
    z = z.to(model.device)
    if model.conditional:
        return net(z, model.style_weights(style, len(z)).to(model.device)).float()
    return net(z).float()


def project(model: TrainedModel, target: torch.Tensor, steps: int = 1000, distance: str = "auto",
            features: str = "imagenet", style=None, seed: int = 0, frame_every: int = 0,
            progress=None) -> Projection:
    """Find z with G(z) close to ``target`` [3, R, R] in [-1, 1] (``progress(step, steps, d)``)."""
    if model.kind != "gan":
        raise BrushworkError(f"{model.run_dir} is a {model.kind} run; projection is for GAN runs "
                             "(a VAE encodes images directly: brushwork reconstruct)")
    if steps < 1:
        raise BrushworkError("--steps must be at least 1")
    if model.conditional and style is None:
        raise BrushworkError(f"{model.run_dir} is style-conditional: give the style to project "
                             f"into (--style {model.style_names[0]})")
    target = target[None].to(model.device)
    dist = Distance(distance, features, model.device)
    dist.set_target(target)
    with torch.no_grad():  # the start: the closest of a few seeded latents
        candidates = latents_for_seeds(list(range(seed, seed + START_CANDIDATES)), model.z_dim)
        scores = torch.cat([dist(_render(model, c, style)) for c in candidates.split(16)])
    z = candidates[int(scores.argmin())].clone().to(model.device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=LR, betas=(0.9, 0.999))
    noise_gen = torch.Generator(device="cpu").manual_seed(seed)
    history, frames = [], []
    for step in range(steps):
        t = step / steps
        for group in opt.param_groups:
            group["lr"] = _learning_rate(t)
        noise_scale = NOISE_START * max(0.0, 1.0 - t / NOISE_RAMP) ** 2
        noise = torch.randn(z.shape, generator=noise_gen).to(model.device) * noise_scale
        image = _render(model, (z + noise)[None], style)
        loss = dist(image)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(loss.item())
        if frame_every and step % frame_every == 0:
            frames.append(image[0].detach().clamp(-1, 1).cpu())
        if progress:
            progress(step + 1, steps, history[-1])
    with torch.no_grad():
        final = _render(model, z.detach()[None], style)
        value = float(dist(final)[0])
    image = final[0].clamp(-1, 1).cpu()
    return Projection(z.detach().cpu(), image, value, dist.kind, history, frames + [image])


def write_projection(model: TrainedModel, source, result: Projection, out_dir: Path, style=None) -> dict[str, Path]:
    """projected.png (its record holds the latent as a recipe), latent.npy, target.png and
    progress.gif in ``out_dir``."""
    from brushwork.imaging import to_pil
    from brushwork.provenance import save_png
    from brushwork.styles import describe
    from brushwork.utils import atomic_writer, ensure_dir
    from brushwork.making.video import write_frames

    ensure_dir(out_dir)
    asked = describe(style, model.style_names) if style is not None else {}
    record = model.record(latent={"z": [float(v) for v in result.z]}, truncation=1.0,  # exact float32
                          operation="project", source_sha256=source.sha256, source_name=source.path.name,
                          distance=round(result.distance, 6), distance_kind=result.kind,
                          projection_steps=len(result.history), **asked)
    paths = {"projected": save_png(to_pil(result.image[None])[0], out_dir / "projected.png", record),
             "target": save_png(to_pil(source.pixels[None])[0], out_dir / "target.png", None)}
    with atomic_writer(out_dir / "latent.npy") as f:
        np.save(f, result.z.numpy())
    paths["latent"] = out_dir / "latent.npy"
    paths["progress"] = write_frames(torch.stack(result.frames), out_dir / "progress.gif", 12.0,
                                     {"operation": "projection progress", "model_hash": model.model_hash})
    return paths
