"""Neural style transfer: a painting's style on any photo.

Two engines behind one function, ``stylize``:

* ``gatys``: Gatys, Ecker & Bethge 2016. Optimise the pixels of the output so that its VGG19
  features match the content image at relu4_2 and the Gram matrices of the style image(s) at
  relu1_1..relu5_1, plus a total-variation term. L-BFGS (default) or Adam; multiscale: optimise a
  small version first, upsample, refine, so large outputs converge fast and fit in memory.
* ``adain``: Huang & Belongie 2017. Encode with VGG19 up to relu4_1, align the content features'
  per-channel mean and std to the style's (adaptive instance normalisation), decode with a trained
  decoder (``brushwork train adain``): one forward pass per image.

Controls for both: strength (0 = the content, 1 = full style), several styles with weights,
colour preservation ("luminance": keep the content's chroma; "coral": recolour the style to the
content's colour statistics first), and a mask (stylise only where it is white).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.imaging import uint8_from_unit, unit_from_uint8
from brushwork.models.style import CONTENT_LAYER, STYLE_LAYERS, adain
from brushwork.models.vgg import VGGFeatures
from brushwork.utils import reuse_freed_memory



# ---- image helpers ------------------------------------------------------------------------------
def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> [1, 3, H, W] in [-1, 1]."""
    return unit_from_uint8(torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)[None]).contiguous()


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(uint8_from_unit(x[0]).permute(1, 2, 0).numpy())


def resize_longest(img: Image.Image, size: int) -> Image.Image:
    """Scale so the longest side is ``size`` (aspect kept, sides rounded to a multiple of 8)."""
    scale = size / max(img.size)
    w, h = (max(8, int(round(s * scale / 8)) * 8) for s in img.size)
    return img.resize((w, h), Image.LANCZOS)


# ---- statistics ---------------------------------------------------------------------------------
def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, C], normalised by C*H*W so layers of any size weigh alike."""
    b, c, h, w = features.shape
    # [B, H*W, C] is a free view of channels_last features (VGGFeatures' layout), so the backward
    # pass hands the gradient back in that layout: no NCHW copy, no mixed-layout gradient sums
    # (this cut aten::add from 10% to 3% of a CPU evaluation).
    f = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
    return f.transpose(1, 2) @ f / (c * h * w)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (smoothness prior)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


# ---- colour ------------------------------------------------------------------------------------
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def luminance_transfer(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Keep the stylised image's luminance (Y) and the content's chroma (I, Q)."""
    to_yiq, to_rgb = _RGB_TO_YIQ.to(content), torch.linalg.inv(_RGB_TO_YIQ).to(content)
    s = torch.einsum("ij,bjhw->bihw", to_yiq, (stylised + 1) / 2)
    c = torch.einsum("ij,bjhw->bihw", to_yiq, (content + 1) / 2)
    yiq = torch.cat([s[:, :1], c[:, 1:]], dim=1)
    return (torch.einsum("ij,bjhw->bihw", to_rgb, yiq) * 2 - 1).clamp(-1, 1)


def coral(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Recolour ``source`` so its RGB mean and covariance match ``target``'s (CORAL, Sun et al.)."""
    def stats(x):
        flat = x[0].flatten(1)  # [3, N]
        mean = flat.mean(1, keepdim=True)
        cov = torch.cov(flat) + eps * torch.eye(3, device=x.device)
        return flat, mean, cov

    def sqrtm(m, inverse=False):
        vals, vecs = torch.linalg.eigh(m)
        vals = vals.clamp_min(eps) ** (-0.5 if inverse else 0.5)
        return vecs @ torch.diag(vals) @ vecs.T

    flat, s_mean, s_cov = stats(source)
    _, t_mean, t_cov = stats(target)
    out = sqrtm(t_cov) @ sqrtm(s_cov, inverse=True) @ (flat - s_mean) + t_mean
    return out.view_as(source[0])[None].clamp(-1, 1)


# ---- engines ----------------------------------------------------------------------------------
@dataclass
class GatysSettings:
    steps: int = 300  # optimiser iterations in total, split over the scales
    optimizer: str = "lbfgs"  # "lbfgs" (Gatys et al.) or "adam"
    init: str = "content"  # start from "content", "style" or "noise"
    # Each loss term is normalised by its target's energy, so these weights mean the same for
    # any encoder (ImageNet or random VGG features differ in scale by orders of magnitude).
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 0.05
    scales: int = 0  # multiscale levels (each halves the size); 0 = auto: one more per doubling
    # above 512 px. Measured: at <= 512 px a single scale reaches a given loss sooner.
    lr: float = 0.02  # Adam only (images live in [-1, 1])
    line_search: str = "none"  # L-BFGS line search: "none" (unit steps) or "strong_wolfe"


def _style_targets(encoder, styles, weights, size):
    """Weighted blend of the style images' Gram matrices at every style layer."""
    grams = {name: 0 for name in STYLE_LAYERS}
    for img, w in zip(styles, weights):
        feats = encoder(pil_to_tensor(resize_longest(img, size)).to(encoder.mean.device))
        for name in STYLE_LAYERS:
            grams[name] = grams[name] + w * gram_matrix(feats[name])
    return grams


def relative_mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE divided by the target's mean square: 1 means 'as far off as predicting zero'."""
    return F.mse_loss(x, target) / target.square().mean().clamp_min(1e-12)


def gatys_losses(encoder, x, content_target, style_grams, s: GatysSettings) -> dict[str, torch.Tensor]:
    feats = encoder(x)
    content = relative_mse(feats[CONTENT_LAYER], content_target)
    style = sum(relative_mse(gram_matrix(feats[n]), style_grams[n]) for n in STYLE_LAYERS) / len(STYLE_LAYERS)
    tv = total_variation(x)
    total = s.content_weight * content + s.style_weight * style + s.tv_weight * tv
    return {"total": total, "content": content, "style": style, "tv": tv}


RESTART_EVERY = 20  # L-BFGS iterations between checks for a restart (the tutorial's max_iter)
# Restart only when a round ends clearly above the best loss: a restart discards L-BFGS's
# curvature pairs. Measured (random VGG19, benchmarks/RESULTS.md): at 512 px, on three photo and
# painting pairs, brushwork reached the tutorial loop's best loss in fewer evaluations than the
# tutorial (128 vs 292, 195 vs 212, 185 vs 212; Tübingen without restarts: 148). At 256 px (Golden
# Gate / Great Wave), where L-BFGS recovered from its spikes by itself, restarts ended 3% higher
# (0.0390 vs 0.0378).
RESTART_MARGIN = 0.02
LBFGS_HISTORY = 50  # curvature pairs L-BFGS keeps


def _new_lbfgs(x: torch.Tensor, s: GatysSettings) -> torch.optim.LBFGS:
    """Unit-step L-BFGS; its iteration and evaluation budgets are set per round by the caller."""
    return torch.optim.LBFGS([x], lr=1.0, history_size=LBFGS_HISTORY, tolerance_grad=0, tolerance_change=0,
                             line_search_fn=None if s.line_search == "none" else s.line_search)


class _Stopped(Exception):
    """Raised inside the L-BFGS closure when ``progress`` asks to stop (its only way out)."""


def _optimise_scale(encoder, x, content, styles, weights, s, steps, progress, done, total_steps):
    """Optimise at one scale; returns (best image, loss history, whether progress asked to stop)."""
    content_target = encoder(content)[CONTENT_LAYER].detach()
    grams = {k: v.detach() for k, v in _style_targets(encoder, styles, weights, max(x.shape[-2:])).items()}
    x = x.detach().clone().requires_grad_(True)
    history: list[dict] = []
    # L-BFGS with unit steps (no line search) and the clamp is not monotone: at 512 px its loss
    # rose again after ~200 evaluations (0.208 -> 0.215). Keep the best image seen, return it, and
    # restart L-BFGS from it when a round of RESTART_EVERY iterations ends above it.
    best = {"total": math.inf, "image": x.detach().clone()}
    opt = _new_lbfgs(x, s) if s.optimizer == "lbfgs" else torch.optim.Adam([x], lr=s.lr)

    def closure():
        with torch.no_grad():  # keep the image a valid image while optimising (as the tutorial)
            x.clamp_(-1, 1)
        x.grad = None
        losses = gatys_losses(encoder, x, content_target, grams, s)
        losses["total"].backward()
        history.append({k: v.item() for k, v in losses.items()})
        if history[-1]["total"] < best["total"]:
            best.update(total=history[-1]["total"], image=x.detach().clone())
        if progress and progress(min(done + len(history), total_steps), total_steps, history[-1],
                                 best["image"]):
            raise _Stopped
        return losses["total"]

    try:
        _run_optimiser(opt, closure, x, best, history, steps, s)
    except _Stopped:
        return best["image"].clamp(-1, 1), history, True
    return best["image"].clamp(-1, 1), history, False


def _run_optimiser(opt, closure, x, best, history, steps, s) -> None:
    if s.optimizer == "adam":
        for _ in range(steps):
            closure()
            opt.step()
        return
    while len(history) < steps:
        evaluations = len(history)
        left = steps - evaluations  # a line search may spend extra evaluations per iteration
        opt.param_groups[0].update(max_iter=min(RESTART_EVERY, left),
                                   max_eval=min(int(RESTART_EVERY * 1.25) + 1, left))
        opt.step(closure)
        if len(history) == evaluations:  # converged exactly; nothing more to do
            break
        if history[-1]["total"] > best["total"] * (1 + RESTART_MARGIN):
            with torch.no_grad():
                x.copy_(best["image"])
            opt = _new_lbfgs(x, s)


def gatys(encoder: VGGFeatures, content: torch.Tensor, styles: list[Image.Image], weights: list[float],
          s: GatysSettings, progress: Callable | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Optimise an image [1, 3, H, W]; returns it and the loss history (one dict per evaluation).

    ``progress(step, total, losses, best_image)`` is called after every evaluation with the best
    image [1, 3, h, w] of the current scale; when it returns True the optimisation stops and the
    best image so far is returned (at full size)."""
    h, w = content.shape[-2:]
    n_scales = s.scales or 1 + max(0, math.ceil(math.log2(max(h, w) / 512)))
    sizes = [(max(8, h >> k), max(8, w >> k)) for k in reversed(range(n_scales))]
    per_scale = [s.steps // len(sizes)] * len(sizes)
    per_scale[-1] += s.steps - sum(per_scale)
    if s.init == "content":
        x = content
    elif s.init == "style":
        x = pil_to_tensor(styles[0].resize((w, h), Image.LANCZOS)).to(content)
    elif s.init == "noise":
        x = torch.randn(content.shape, generator=torch.Generator().manual_seed(0)).to(content) * 0.5
    else:
        raise BrushworkError(f"unknown init {s.init!r} (choose content, style or noise)")
    history, done = [], 0
    with reuse_freed_memory(enabled=content.device.type == "cpu"):
        for size, steps in zip(sizes, per_scale):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            target = F.interpolate(content, size=size, mode="bilinear", align_corners=False, antialias=True)
            x, hist, stopped = _optimise_scale(encoder, x, target, styles, weights, s, steps, progress,
                                               done, s.steps)
            history += hist
            done += steps
            if stopped:
                break
    if x.shape[-2:] != (h, w):  # stopped at a coarser scale
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False).clamp(-1, 1)
    return x, history


# ---- the public function -------------------------------------------------------------------------
@dataclass
class StyleRequest:
    """Everything that decides a stylised image (and goes into its provenance record)."""

    method: str = "gatys"  # "gatys" or "adain"
    size: int = 512  # longest side of the output, in pixels
    strength: float = 1.0  # 0 = the content, 1 = full style
    style_weights: list[float] = field(default_factory=list)  # one per style; normalised to sum 1
    preserve_color: str = "none"  # "none", "luminance" or "coral"
    gatys: GatysSettings = field(default_factory=GatysSettings)

    def validate(self) -> None:
        if not 0 <= self.strength <= 1:
            raise BrushworkError(f"strength must be in [0, 1], got {self.strength}")
        if self.method not in ("gatys", "adain"):
            raise BrushworkError(f"unknown method {self.method!r} (choose gatys or adain)")
        if self.preserve_color not in ("none", "luminance", "coral"):
            raise BrushworkError(f"unknown colour preservation {self.preserve_color!r}")
        if self.size < 16:
            raise BrushworkError(f"size must be at least 16 pixels, got {self.size}")
        if self.gatys.steps < 1:
            raise BrushworkError(f"steps must be at least 1, got {self.gatys.steps}")


def normalise_weights(weights: list[float], n_styles: int) -> list[float]:
    weights = list(weights) or [1.0] * n_styles
    if len(weights) != n_styles:
        raise BrushworkError(f"{n_styles} style image(s) but {len(weights)} style weight(s)")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise BrushworkError("style weights must be >= 0 and not all zero")
    total = sum(weights)
    return [w / total for w in weights]


def stylize(content: Image.Image, styles: list[Image.Image], request: StyleRequest,
            encoder: VGGFeatures, decoder=None, mask: Image.Image | None = None,
            progress: Callable | None = None) -> Image.Image:
    """Put the style(s) onto ``content``; returns a PIL image of the content's aspect ratio."""
    if not styles:
        raise BrushworkError("at least one style image is needed")
    request.validate()
    device = encoder.mean.device
    weights = normalise_weights(request.style_weights, len(styles))
    c = pil_to_tensor(resize_longest(content, request.size)).to(device)
    if request.preserve_color == "coral":  # recolour the styles to the content's palette first
        styles = [tensor_to_pil(coral(pil_to_tensor(s).to(device), c)) for s in styles]
    if request.strength == 0:
        out = c
    elif request.method == "gatys":
        settings = request.gatys
        scaled = GatysSettings(**{**settings.__dict__, "style_weight": settings.style_weight * request.strength})
        out, _ = gatys(encoder, c, styles, weights, scaled, progress)
    else:  # adain
        if decoder is None:
            raise BrushworkError("AdaIN needs a trained decoder: --model RUN (brushwork train adain)")
        out = adain_transfer(encoder, decoder, c, styles, weights, request.strength, request.size)
    if request.preserve_color == "luminance":
        out = luminance_transfer(out, c)
    if mask is not None:
        out = apply_mask(out, c, mask)
    return tensor_to_pil(out)


def apply_mask(stylised: torch.Tensor, content: torch.Tensor, mask: Image.Image) -> torch.Tensor:
    """Stylised where the mask is white, the untouched content where it is black (soft edges kept)."""
    m = mask.convert("L").resize((content.shape[-1], content.shape[-2]), Image.BILINEAR)
    alpha = torch.from_numpy(np.asarray(m, dtype=np.float32) / 255).to(content)[None, None]
    return alpha * stylised + (1 - alpha) * content


@torch.no_grad()
def adain_transfer(encoder: VGGFeatures, decoder, content: torch.Tensor, styles: list[Image.Image],
                   weights: list[float], strength: float, size: int) -> torch.Tensor:
    """One forward pass: t = strength * sum_i w_i AdaIN(f(c), f(s_i)) + (1 - strength) * f(c)."""
    f_c = encoder(content)["relu4_1"]
    target = 0
    for img, w in zip(styles, weights):
        f_s = encoder(pil_to_tensor(resize_longest(img, size)).to(content))["relu4_1"]
        target = target + w * adain(f_c, f_s)
    t = strength * target + (1 - strength) * f_c
    out = decoder(t)
    return F.interpolate(out, size=content.shape[-2:], mode="bilinear", align_corners=False).clamp(-1, 1)


def image_path_list(path: str | Path) -> list[Path]:
    """A single image, or every image in a folder (for batch stylisation)."""
    from brushwork.data.images import list_image_files

    path = Path(path)
    if path.is_dir():
        files = list_image_files(path)
        if not files:
            raise BrushworkError(f"no images in {path}")
        return files
    if not path.is_file():
        raise BrushworkError(f"no such image file: {path}")
    return [path]
