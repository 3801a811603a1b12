"""Seeds and latents: a seed means the same standard-normal latent on every machine and device.

Latents come from NumPy's seeded Mersenne Twister (as StyleGAN does). Training previews, sampling,
walks, evaluation and reproduction all draw their latents here.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from brushwork.errors import BrushworkError

LATENT_METHOD = "numpy-randomstate-randn"  # recorded in provenance; change only with a new name


def parse_seeds(text: str, max_count: int | None = None) -> list[int]:
    """'0-63' -> 0..63; '3,7,11' -> [3, 7, 11]; mixtures like '1,5-8' work too. More than
    ``max_count`` seeds is refused before any list is built."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise BrushworkError(f"seed range {part!r} runs backwards")
            if max_count is not None and len(seeds) + hi - lo + 1 > max_count:
                raise BrushworkError(f"{text!r} is more than {max_count} seeds at once")
            seeds.extend(range(lo, hi + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise BrushworkError(f"bad seed list {text!r}: use numbers like 0-63 or 3,7,11")
    if not seeds:
        raise BrushworkError("no seeds given")
    if max_count is not None and len(seeds) > max_count:
        raise BrushworkError(f"{text!r} is more than {max_count} seeds at once")
    return seeds


def latent_for_seed(seed: int, z_dim: int) -> torch.Tensor:
    """The standard-normal latent [Z] of a seed, identical on every platform."""
    return torch.from_numpy(np.random.RandomState(seed % 2**32).randn(z_dim)).float()


def latents_for_seeds(seeds: list[int], z_dim: int, truncation: float = 1.0) -> torch.Tensor:
    """[N, Z] latents. Truncation psi < 1 scales them towards the origin: less variety, fewer
    failures (the z-space form of the truncation trick; psi = 1 leaves them untouched)."""
    return latents_for_recipes([{"seed": s} for s in seeds], z_dim, truncation)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latents; keeps intermediate norms typical of the prior."""
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:
        return torch.lerp(a, b, t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def walk(keys: torch.Tensor, frames: int, loop: bool = False, blend=slerp) -> torch.Tensor:
    """[frames, D] points along ``blend`` segments (slerp for latents) through keys [K, D]."""
    if len(keys) < 2:
        raise BrushworkError("an interpolation needs at least two keys (seeds or styles)")
    if frames < 2:
        raise BrushworkError("--frames must be at least 2")
    points = torch.cat([keys, keys[:1]]) if loop else keys
    segments = len(points) - 1
    # A loop must not repeat its first frame at the end; an open walk ends exactly on the last key.
    positions = np.linspace(0, segments, frames, endpoint=not loop)
    out = []
    for pos in positions:
        i = min(int(pos), segments - 1)
        out.append(blend(points[i], points[i + 1], float(pos - i)))
    return torch.stack(out)


def walk_latents(keys: torch.Tensor, frames: int, loop: bool = False) -> torch.Tensor:
    """[frames, Z] latents along slerp segments through the key latents [K, Z]."""
    return walk(keys, frames, loop, slerp)


# ---- lineage: latents made from other latents (children and crossbreeds, as Artbreeder does) --
# A *recipe* is plain JSON that rebuilds a latent exactly, so an image's record carries its
# whole lineage:  {"seed": 7}  |  {"child": RECIPE, "seed": 3, "strength": 0.3}
#                 |  {"cross": [RECIPE_A, RECIPE_B], "t": 0.5}  |  {"z": [...]} (a projected artwork)


def child_recipe(parent: dict, seed: int, strength: float) -> dict:
    """A child of ``parent``: its latent nudged towards seed's noise by ``strength`` in [0, 1]."""
    if not 0 <= strength <= 1:
        raise BrushworkError(f"child strength must be in [0, 1], got {strength}")
    return {"child": parent, "seed": int(seed), "strength": float(strength)}


def cross_recipe(a: dict, b: dict, t: float = 0.5) -> dict:
    """A crossbreed of two latents: the point ``t`` of the way from a to b (spherically)."""
    if not 0 <= t <= 1:
        raise BrushworkError(f"crossbreed position must be in [0, 1], got {t}")
    return {"cross": [a, b], "t": float(t)}


def root_seed(recipe: dict) -> int:
    """The first seed a recipe grows from (a child's parent's, a crossbreed's first parent's;
    0 for a projected latent)."""
    while "seed" not in recipe or "child" in recipe:
        if "z" in recipe:
            return 0
        recipe = recipe["child"] if "child" in recipe else recipe["cross"][0]
    return int(recipe["seed"])


def latent_from_recipe(recipe: dict, z_dim: int) -> torch.Tensor:
    """The latent [Z] a recipe describes (children keep the prior's scale:
    sqrt(1 - s^2) * parent + s * noise has unit variance when both have)."""
    try:
        if "child" in recipe:
            s = float(recipe["strength"])
            return (1 - s * s) ** 0.5 * latent_from_recipe(recipe["child"], z_dim) + \
                s * latent_for_seed(int(recipe["seed"]), z_dim)
        if "cross" in recipe:
            a, b = (latent_from_recipe(r, z_dim) for r in recipe["cross"])
            return slerp(a, b, float(recipe["t"]))
        if "z" in recipe:
            z = torch.tensor([float(v) for v in recipe["z"]], dtype=torch.float32)
            if z.shape != (z_dim,):
                raise ValueError
            return z
        return latent_for_seed(int(recipe["seed"]), z_dim)
    except (KeyError, TypeError, ValueError):
        raise BrushworkError(f"not a latent recipe: {str(recipe)[:120]}") from None


def latents_for_recipes(recipes: list[dict], z_dim: int, truncation: float = 1.0) -> torch.Tensor:
    """[N, Z] latents of recipes (seeds, children, crossbreeds), scaled by the truncation."""
    if not 0 <= truncation <= 2:
        raise BrushworkError(f"truncation/temperature must be in [0, 2], got {truncation}")
    return torch.stack([latent_from_recipe(r, z_dim) for r in recipes]) * truncation
