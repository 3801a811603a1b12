"""Reproduce and vary real artworks: with a VAE (encode: reconstruct, variations, blends) or a
GAN (project into its latent space, then children and crossbreeds of the projection).

Any image the data pipeline accepts (format, mode, orientation) is centre-cropped and resized to
the model's resolution, encoded to its posterior q(z|x) = N(mu, sigma^2), and decoded.
Every output records the sha256 of the source file(s) it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from brushwork.config import image_size
from brushwork.data.images import crop_resize, load_rgb_or_exit, to_uint8_chw
from brushwork.errors import BrushworkError
from brushwork.making.generate import TrainedModel
from brushwork.latents import latents_for_seeds
from brushwork.imaging import grid_image, psnr, to_pil, unit_from_uint8
from brushwork.provenance import save_png
from brushwork.utils import ensure_dir, ensure_output_file, sha256_file
from brushwork.making.video import write_frames


@dataclass
class SourceImage:
    path: Path
    pixels: torch.Tensor  # [3, H, W] in [-1, 1] at the model's size
    sha256: str


def load_source(path: str | Path, size: int | tuple[int, int]) -> SourceImage:
    """An artwork centre-cropped to the aspect of ``size`` ((height, width), or a square's side)."""
    img = crop_resize(load_rgb_or_exit(path), size)
    pixels = unit_from_uint8(torch.from_numpy(to_uint8_chw(img)))
    return SourceImage(Path(path), pixels, sha256_file(path))


def reconstruct(model: TrainedModel, paths: list[str | Path], out_dir: Path,
                metadata: bool = True) -> list[tuple[Path, float]]:
    """Encode + decode (posterior mean) each image; write ``<name>_recon.png``; return PSNRs."""
    ensure_dir(out_dir)
    sources = [load_source(p, image_size(model.config.model)) for p in paths]
    mu, _ = model.encode(torch.stack([s.pixels for s in sources]))
    recons = model.decode(mu)
    results = []
    for src, recon, img in zip(sources, recons, to_pil(recons)):
        value = psnr(recon[None], src.pixels[None]).item()
        record = model.record(operation="reconstruct", source_sha256=src.sha256,
                              source_name=src.path.name, psnr=round(value, 3)) if metadata else None
        results.append((save_png(img, Path(out_dir) / f"{src.path.stem}_recon.png", record), value))
    return results


def variation_latents(mu: torch.Tensor, logvar: torch.Tensor, seeds: list[int],
                      temperature: float) -> torch.Tensor:
    """[N, Z] samples of the posterior around one artwork: mu + temperature * sigma * eps(seed).
    Temperature 0 gives the reconstruction itself; 1 samples the full posterior."""
    eps = latents_for_seeds(seeds, mu.numel())
    return mu + temperature * torch.exp(0.5 * logvar) * eps


def variations(model: TrainedModel, path: str | Path, n: int, temperature: float, out_dir: Path,
               first_seed: int = 0, metadata: bool = True) -> list[Path]:
    """``n`` variations of one artwork (``<name>_var<seed>.png``) plus a grid with the original."""
    if n < 1:
        raise BrushworkError("--n must be at least 1")
    ensure_dir(out_dir)
    src = load_source(path, image_size(model.config.model))
    mu, logvar = model.encode(src.pixels[None])
    seeds = list(range(first_seed, first_seed + n))
    images = model.decode(variation_latents(mu[0], logvar[0], seeds, temperature))
    paths = []
    for seed, img in zip(seeds, to_pil(images)):
        record = model.record(operation="variation", seed=seed, temperature=temperature,
                              source_sha256=src.sha256, source_name=src.path.name) if metadata else None
        paths.append(save_png(img, Path(out_dir) / f"{src.path.stem}_var{seed:04d}.png", record))
    grid = grid_image(torch.cat([src.pixels[None], images]), columns=min(n + 1, 9))
    record = model.record(operation="variations", seeds=seeds, temperature=temperature,
                          source_sha256=src.sha256) if metadata else None
    paths.append(save_png(grid, Path(out_dir) / f"{src.path.stem}_variations.png", record))
    return paths


def blend_latents(mu_a: torch.Tensor, mu_b: torch.Tensor, frames: int) -> torch.Tensor:
    """[frames, Z] on the straight line between two posterior means, endpoints included
    (posterior means are not on the prior's shell, so linear, not spherical)."""
    t = torch.linspace(0, 1, frames)[:, None]
    return torch.lerp(mu_a[None], mu_b[None], t)


def blend(model: TrainedModel, path_a: str | Path, path_b: str | Path, frames: int, out: Path,
          fps: float = 12.0, metadata: bool = True) -> Path:
    """A crossbreed of two artworks: frames from A's reconstruction to B's, as GIF/MP4 or PNG strip."""
    if frames < 2:
        raise BrushworkError("--frames must be at least 2")
    ensure_output_file(out)
    size = image_size(model.config.model)
    a, b = load_source(path_a, size), load_source(path_b, size)
    mu, _ = model.encode(torch.stack([a.pixels, b.pixels]))
    images = model.decode(blend_latents(mu[0], mu[1], frames))
    record = model.record(operation="blend", frames=frames, source_sha256=[a.sha256, b.sha256],
                          source_names=[a.path.name, b.path.name]) if metadata else None
    if out.suffix.lower() == ".png":  # a contact strip of every frame
        return save_png(grid_image(images, columns=frames), out, record)
    return write_frames(images, out, fps, record)


# ---- GAN runs: projection, then the latent moves of ``generate`` ---------------------------------
@dataclass
class ProjectionOptions:
    """How an artwork is projected into a GAN (see ``brushwork.making.projection``)."""

    steps: int = 500
    distance: str = "auto"  # "auto", "vgg" or "pixel"
    features: str = "imagenet"  # VGG19 weights for the vgg distance
    style: str | None = None  # conditional runs: the style to project into
    progress: object = None  # progress(step, steps, distance)


def _project(model: TrainedModel, path, options: ProjectionOptions, frame_every: int = 0):
    """(the source artwork, its projection into the GAN run)."""
    from brushwork.making.projection import project

    src = load_source(path, image_size(model.config.model))
    return src, project(model, src.pixels, options.steps, options.distance, options.features,
                        options.style, frame_every=frame_every, progress=options.progress)


def project_file(model: TrainedModel, path: str | Path, out_dir: Path,
                 options: ProjectionOptions) -> tuple[dict[str, Path], float, str]:
    """Project one artwork: (written files, distance reached, which distance)."""
    from brushwork.making.projection import write_projection

    src, result = _project(model, path, options, frame_every=max(1, options.steps // 48))
    return write_projection(model, src, result, out_dir, options.style), result.distance, result.kind


def _projected_recipe(model: TrainedModel, path, options: ProjectionOptions) -> dict:
    _, result = _project(model, path, options)
    return {"z": [float(v) for v in result.z]}


def gan_variations(model: TrainedModel, path: str | Path, n: int, strength: float, out_dir: Path,
                   first_seed: int = 0, options: ProjectionOptions | None = None) -> list[Path]:
    """Children of an artwork's projection (its latent nudged towards new seeds by ``strength``)."""
    from brushwork.making.generate import write_offspring

    options = options or ProjectionOptions()
    recipe = _projected_recipe(model, path, options)
    return write_offspring(model, [recipe], out_dir, n, strength, first_seed, 1.0, options.style)


def gan_blend(model: TrainedModel, path_a, path_b, frames: int, out: Path, fps: float = 12.0,
              options: ProjectionOptions | None = None) -> Path:
    """Crossbreeds of two artworks' projections, from A to B (GIF/MP4, or a PNG strip)."""
    from brushwork.latents import cross_recipe, latents_for_recipes

    if frames < 2:
        raise BrushworkError("--frames must be at least 2")
    ensure_output_file(out)
    options = options or ProjectionOptions()
    a, b = (_projected_recipe(model, p, options) for p in (path_a, path_b))
    recipes = [cross_recipe(a, b, t) for t in torch.linspace(0, 1, frames).tolist()]
    style = None if options.style is None else [options.style] * frames
    images = model.generate(latents_for_recipes(recipes, model.z_dim), style)
    record = model.record(operation="blend", frames=frames, latent=recipes[frames // 2],
                          source_sha256=[sha256_file(path_a), sha256_file(path_b)])
    if out.suffix.lower() == ".png":
        return save_png(grid_image(images, columns=frames), out, record)
    return write_frames(images, out, fps, record)
