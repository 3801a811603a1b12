"""Guided creation with a diffusion run: the artist's sketch, region or canvas leads, the model paints.

* Sketch (SDEdit, Meng et al. 2022): the sketch is noised to the level ``strength`` picks and the
  ODE is solved from there, so its composition and colours survive and its surface becomes the
  collection's. Strength 0 returns the sketch, 1 ignores it (the seed's plain sample).
* Mask (inpainting): only the white region is painted. At every step the rest is replaced by the
  sketch noised to that step's level, and each step is repeated ``resample`` times, noised back up
  between repeats, so the painted region and the kept one agree along the seam (RePaint,
  Lugmayr et al. 2022). Pixels outside the mask are returned exactly as they came in.
* Extend (outpainting): the canvas grows by margins, which are painted as a mask is, so a model
  trained on squares makes works of any proportion.

The model paints at its own scale: the sketch is resized so that its shorter side is the run's
resolution (the U-Net is convolutional, so the working canvas may be any shape), and the painting
is resized back to the sketch's size. Every output records how (``working_size``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from brushwork.config import index_side
from brushwork.errors import BrushworkError
from brushwork.latents import latent_for_seed
from brushwork.making.generate import TrainedModel, enlarged, judged
from brushwork.models.samplers import guided, heun_step, in_fixed_batches, karras_sigmas, sigma_at_strength, solve

MAX_CANVAS_PIXELS = 50_000_000  # largest output (sketch plus margins), as the studio's uploads
MAX_WORK_AREA = 64  # the working canvas may hold at most this many times the run's R x R pixels
# RePaint repeats of each step when painting a region: the seam's step is +37% / +16% / +2% over
# the paintings' own at 1 / 2 / 4 (benchmarks/diffusion.py guided); 2 keeps the studio quick on CPUs
DEFAULT_RESAMPLE = 2


@dataclass
class PaintInputs:
    """What the artist brought, decoded: the canvas (sketch plus any margins) and what to paint."""

    canvas: np.ndarray  # uint8 [H, W, 3]: the sketch, margins filled with its edge colours
    repaint: np.ndarray | None  # bool [H, W]: True = paint here (mask and margins); None = all
    sketch_sha256: str
    mask_sha256: str | None
    extend: dict[str, int]  # margins added to the sketch, in its pixels

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the output."""
        return self.canvas.shape[1], self.canvas.shape[0]


def parse_extend(text: str | dict | None) -> dict[str, int]:
    """'left=32,right=32,top=0,bottom=0' (any subset) -> margins in pixels, each >= 0."""
    sides = {"left": 0, "right": 0, "top": 0, "bottom": 0}
    if not text:
        return sides
    items = text.items() if isinstance(text, dict) else (p.partition("=")[::2] for p in str(text).split(","))
    for side, value in items:
        side = str(side).strip()
        try:
            if side not in sides:
                raise ValueError
            sides[side] = int(str(value).strip())
            if sides[side] < 0:
                raise ValueError
        except ValueError:
            raise BrushworkError(f"bad --extend {text!r}: use side=pixels pairs with sides left, right, "
                                 f"top, bottom and pixels >= 0, e.g. left=32,right=32") from None
    return sides


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_inputs(sketch: str | Path, mask: str | Path | None = None, extend=None,
                max_pixels: int = MAX_CANVAS_PIXELS) -> PaintInputs:
    """Decode and check the sketch, the mask (white = paint; the sketch's size) and the margins."""
    from brushwork.data.images import load_rgb_or_exit

    image = np.array(load_rgb_or_exit(sketch))  # a writable copy
    h, w = image.shape[:2]
    margins = parse_extend(extend)
    height, width = h + margins["top"] + margins["bottom"], w + margins["left"] + margins["right"]
    if width * height > max_pixels:
        raise BrushworkError(f"the canvas would be {width} x {height} = {width * height:,} pixels, more "
                             f"than the limit of {max_pixels:,}; extend it less")
    repaint = None
    if mask is not None:
        painted = np.asarray(load_rgb_or_exit(mask).convert("L")) >= 128
        if painted.shape != (h, w):
            raise BrushworkError(f"the mask is {painted.shape[1]} x {painted.shape[0]} but the sketch is "
                                 f"{w} x {h}; they must be the same size")
        if not painted.any():
            raise BrushworkError(f"the mask {mask} has no white pixels: nothing to paint (white = "
                                 f"repaint, black = keep)")
        repaint = painted
    if any(margins.values()):
        pad = ((margins["top"], margins["bottom"]), (margins["left"], margins["right"]))
        image = np.pad(image, pad + ((0, 0),), mode="edge")  # margins start from the edge colours
        inside = repaint if repaint is not None else np.zeros((h, w), bool)
        repaint = np.pad(inside, pad, constant_values=True)
    return PaintInputs(np.ascontiguousarray(image), repaint, _sha256(Path(sketch)),
                       _sha256(Path(mask)) if mask is not None else None, margins)


def working_size(inputs: PaintInputs, model: TrainedModel) -> tuple[int, int]:
    """(width, height) the model paints at: the sketch's shorter side at the run's resolution
    (margins scaled alike), each side a multiple of the U-Net's coarsest stride (in pixels: times
    the autoencoder's factor for a latent run)."""
    cfg = model.config.model
    stride = 2 ** (len(cfg.multipliers) - 1) * model.codec.factor
    sketch_h = inputs.canvas.shape[0] - inputs.extend["top"] - inputs.extend["bottom"]
    sketch_w = inputs.canvas.shape[1] - inputs.extend["left"] - inputs.extend["right"]
    side_px = index_side(cfg)  # the run's scale: its images' shorter side
    scale = side_px / min(sketch_h, sketch_w)
    w, h = (max(stride, round(side * scale / stride) * stride) for side in inputs.size)
    if w * h > MAX_WORK_AREA * side_px ** 2:
        raise BrushworkError(f"the canvas is {inputs.size[0]} x {inputs.size[1]}, which this "
                             f"{side_px} px model would paint at {w} x {h}: more than "
                             f"{MAX_WORK_AREA}x its own area; extend it less")
    return w, h


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, h, w] for size (w, h): antialiased bicubic (area-faithful both ways)."""
    if tuple(x.shape[-2:]) == (size[1], size[0]):
        return x
    return F.interpolate(x, size=(size[1], size[0]), mode="bicubic", antialias=True, align_corners=False)


def _noise(seed: int, shape: tuple[int, ...], stream: int = 0) -> torch.Tensor:
    """Standard-normal noise of a seed: stream 0 is the seed's latent (the noise ``sample``
    starts from at the run's own size), further streams feed the repaint steps."""
    if stream == 0:
        return latent_for_seed(seed, math.prod(shape)).view(shape)
    return torch.from_numpy(np.random.RandomState([seed % 2**32, stream]).randn(*shape)).float()


class Painter:
    """One guided request at the working size: the known images, what to paint, how. Several
    canvases of one size (each with or each without a region) are painted in the same batches."""

    def __init__(self, model: TrainedModel, inputs: list[PaintInputs], strength: float, resample: int,
                 callback=None):
        self.model, self.strength, self.resample = model, strength, resample
        self.codec = model.codec  # pixels, or a latent run's autoencoder: the model paints in its space
        self.callback = callback and (lambda i, estimate: callback(i, self.codec.decode(estimate)))
        self.size = working_size(inputs[0], model)
        factor = self.codec.factor
        self.space_size = (self.size[0] // factor, self.size[1] // factor)  # (w, h) of what is painted
        with torch.no_grad():  # [K, C, h, w]: the canvases as the model sees them
            self.known = torch.cat([self.codec.encode(self._known(i).to(model.device)).cpu() for i in inputs])
        self.region = None  # [K, 1, h, w] in {0, 1}: 1 = paint
        if inputs[0].repaint is not None:
            regions = [torch.from_numpy(i.repaint.astype(np.float32))[None, None] for i in inputs]
            self.region = torch.cat([(_resize(r, self.space_size) > 0.01).float() for r in regions])  # any share
        cfg = model.config.model
        self.top = cfg.sigma_max if strength >= 1 else sigma_at_strength(strength, cfg.sigma_min,
                                                                         cfg.sigma_max, cfg.rho)
        steps = max(1, round(model.sampling.steps * strength))
        self.sigmas = karras_sigmas(steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, self.top)

    def _known(self, inputs: PaintInputs) -> torch.Tensor:
        canvas = torch.from_numpy(inputs.canvas).permute(2, 0, 1)[None].float() / 127.5 - 1
        return _resize(canvas, self.size).clamp(-1, 1)  # [1, 3, h, w]

    def paint(self, seeds: list[int], weights: torch.Tensor | None) -> torch.Tensor:
        """Paintings [N, 3, h, w] in [-1, 1] at the working size, one per seed (row i of a several
        canvases' request paints canvas i). A latent run paints latents and decodes them; outside
        a region, ``compose`` puts back the input's own pixels."""
        device, n = self.model.device, len(seeds)

        def rows(t: torch.Tensor | None) -> torch.Tensor | None:
            return t if t is None or len(t) == n else t.expand(n, *t.shape[1:])

        def one_batch(seed_rows, style, known, region) -> torch.Tensor:
            seeds_here = [int(s) for s in seed_rows]
            denoise = guided(self.model.network, None if style is None else style.to(device),
                             self.model.sampling.guidance)
            known = known.to(device)
            z = torch.stack([_noise(s, tuple(known.shape[1:])) for s in seeds_here]).to(device)
            start = z * self.top if self.strength >= 1 else known + z * self.top
            if region is None:
                return solve(denoise, start, self.sigmas, self.model.sampling.sampler, self.callback)
            return self._repaint(denoise, start, seeds_here, known, region.to(device))

        with torch.no_grad():
            painted = in_fixed_batches(one_batch, torch.tensor(seeds, dtype=torch.int64), weights,
                                       rows(self.known), rows(self.region))
            return self.codec.decode(painted).cpu()

    def _repaint(self, denoise, x: torch.Tensor, seeds: list[int], known: torch.Tensor,
                 m: torch.Tensor) -> torch.Tensor:
        """RePaint on the ODE: each step from sigma to sigma_next is taken ``resample`` times;
        before each, the kept region (m = 0) is set to the known image at sigma (fresh noise), and
        between repeats the result is noised from sigma_next back up to sigma."""
        shape, draws = tuple(known.shape[1:]), 0

        def fresh() -> torch.Tensor:
            nonlocal draws
            draws += 1
            return torch.stack([_noise(s, shape, draws) for s in seeds]).to(known.device)

        for i, (sigma, sigma_next) in enumerate(zip(self.sigmas[:-1], self.sigmas[1:])):
            for repeat in range(self.resample):
                x = m * x + (1 - m) * (known + sigma * fresh())
                x_next, denoised = heun_step(denoise, x, sigma, sigma_next)
                if repeat < self.resample - 1:
                    x = x_next + math.sqrt(sigma ** 2 - sigma_next ** 2) * fresh()
            x = x_next
            if self.callback is not None:
                self.callback(i, m * denoised + (1 - m) * known)
        return m * x + (1 - m) * known


def compose(inputs: PaintInputs, painted: torch.Tensor) -> np.ndarray:
    """Paintings [N, 3, h, w] in [-1, 1] resized to the canvas and laid into it: uint8
    [N, H, W, 3]. Outside what was to be painted every pixel is the input's own, bit for bit; at
    the seam inside the painted region the painting fades in over about one working pixel."""
    width, height = inputs.size
    full = _resize(painted, (width, height)).clamp(-1, 1)
    full = full.add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if inputs.repaint is None:
        return full
    region = torch.from_numpy(inputs.repaint.astype(np.float32))[None, None]
    radius = max(1, round(max(width, height) / max(painted.shape[-2:]) / 2))
    soft = F.avg_pool2d(region, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    alpha = (region * soft)[0, 0].numpy()[None, :, :, None]  # 0 wherever the input is kept
    blended = np.rint(alpha * full + (1 - alpha) * inputs.canvas[None]).astype(np.uint8)
    return np.where(inputs.repaint[None, :, :, None], blended, inputs.canvas[None])


def paint(model: TrainedModel, inputs: PaintInputs | list[PaintInputs], seeds: list[int], strength: float,
          style=None, resample: int = DEFAULT_RESAMPLE, callback=None) -> np.ndarray:
    """Paintings of the inputs, one per seed: uint8 [N, H, W, 3] at the canvas size. ``style``:
    a conditional run's style or mix for all (default: seed s gets style s % K). A list of
    inputs (one per seed, all of one size, each with a region or none with one) is painted in
    shared batches: seed i paints inputs[i]."""
    check_request(model, strength, resample)
    canvases = _same_kind(inputs, len(seeds))
    if strength == 0 and canvases[0].repaint is None:  # nothing to paint: the sketches themselves
        return np.stack([c.canvas for c in (canvases * len(seeds) if len(canvases) == 1 else canvases)])
    styles = model.seed_styles(seeds, style)
    weights = None if styles is None else model.style_weights(styles, len(seeds))
    painted = Painter(model, canvases, strength, resample, callback).paint(seeds, weights)
    if len(canvases) == 1:
        return compose(canvases[0], painted)
    return np.concatenate([compose(c, painted[i:i + 1]) for i, c in enumerate(canvases)])


def _same_kind(inputs: PaintInputs | list[PaintInputs], n: int) -> list[PaintInputs]:
    """The inputs as a list: one canvas for all seeds, or one per seed, all alike in size and in
    having a region to paint (so that they share batches)."""
    if isinstance(inputs, PaintInputs):
        return [inputs]
    if len(inputs) != n:
        raise BrushworkError(f"{len(inputs)} canvases for {n} seeds: give one canvas per seed")
    if len({(i.size, i.repaint is None) for i in inputs}) > 1:
        raise BrushworkError("canvases painted together must share their size and all have (or all "
                             "lack) a region to paint")
    return list(inputs)


def check_request(model: TrainedModel, strength: float, resample: int = DEFAULT_RESAMPLE) -> None:
    model.require("paint")
    if not 0 <= strength <= 1:
        raise BrushworkError(f"--strength must be in [0, 1] (0 = the sketch as it is, 1 = ignore it), "
                             f"got {strength}")
    if resample < 1:
        raise BrushworkError(f"resample must be >= 1, got {resample}")
    model.sampling.check(model.conditional)


def paint_record(inputs: PaintInputs, strength: float, resample: int, model: TrainedModel) -> dict:
    """What a painting records of its inputs (hashes, not paths) and how it was painted."""
    w, h = working_size(inputs, model)
    record = {"sketch_sha256": inputs.sketch_sha256, "strength": strength, "size": list(inputs.size),
              "working_size": [w, h]}
    if inputs.mask_sha256:
        record["mask_sha256"] = inputs.mask_sha256
    if any(inputs.extend.values()):
        record["extend"] = inputs.extend
    if inputs.repaint is not None:
        record["resample"] = resample
    return record


def how_it_was_handled(inputs: PaintInputs, model: TrainedModel) -> str:
    """One line for the terminal: the sizes involved and what was resized."""
    (w, h), (cw, ch) = working_size(inputs, model), inputs.size
    what = "painted" if inputs.repaint is None else "painted the white region and margins" \
        if any(inputs.extend.values()) else "painted the white region"
    if (w, h) == (cw, ch):
        return f"{what} at {w} x {h} (the canvas's own size)"
    return (f"{what} at {w} x {h} (the canvas of {cw} x {ch} resized so that the sketch's shorter side "
            f"is the run's {index_side(model.config.model)} px), then resized back to {cw} x {ch}")


def write_paintings(model: TrainedModel, inputs: PaintInputs, seeds: list[int], out_dir: Path,
                    strength: float, style=None, resample: int = DEFAULT_RESAMPLE, metadata: bool = True,
                    ext: str = "png", names: list[str] | None = None, callback=None) -> list[Path]:
    """``paint`` written as ``paint0007.png`` per seed, each with its provenance record (the
    sketch's and mask's hashes, strength, margins, seed, sampling, style): ``sample --from`` with
    the same sketch (and mask) remakes it exactly."""
    check_request(model, strength, resample)
    model.seed_styles(seeds, style)  # a wrong style is refused before the work
    how = paint_record(inputs, strength, resample, model)
    images = paint(model, inputs, seeds, strength, style, resample, callback)
    return _write(model, seeds, images, out_dir, how, style, metadata, ext, names)


def write_estimates(model: TrainedModel, inputs: PaintInputs, seeds: list[int], estimate: torch.Tensor,
                    step: int, out_dir: Path, strength: float, style=None,
                    resample: int = DEFAULT_RESAMPLE) -> list[Path]:
    """A painting stopped early: the denoised estimates [>= N, 3, h, w] of its last step, laid
    into the canvas and written like paintings, their records saying at which step they stopped
    (``sample --from`` would paint them to the end)."""
    how = paint_record(inputs, strength, resample, model) | {"stopped_at_step": step + 1}
    images = compose(inputs, estimate[:len(seeds)].float().clamp(-1, 1).cpu())
    return _write(model, seeds, images, out_dir, how, style)


def _write(model: TrainedModel, seeds: list[int], images: np.ndarray, out_dir: Path, how: dict, style,
           metadata: bool = True, ext: str = "png", names: list[str] | None = None) -> list[Path]:
    """uint8 paintings [N, H, W, 3] as files with their records."""
    from brushwork.provenance import save_image
    from brushwork.styles import describe
    from brushwork.utils import ensure_dir

    styles, prior = model.seed_styles(seeds, style), model.prior_record(1.0)
    names = names or [f"paint{seed:04d}" for seed in seeds]
    verdicts = [{} for _ in seeds]
    if model.judge is not None:  # the index brings any canvas to its works' square itself
        verdicts = judged(model, torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), names)
    ensure_dir(out_dir)
    paths = []
    for i, (seed, pixels) in enumerate(zip(seeds, images)):
        asked = describe(styles[i], model.style_names) if styles else {}
        record = model.record(seed=seed, **prior, paint=how, **asked, **verdicts[i]) if metadata else None
        img, record = enlarged(model, Image.fromarray(pixels), record)
        paths.append(save_image(img, Path(out_dir) / f"{names[i]}.{ext}", record))
    return paths


def repaint_from_record(image: str | Path, sketch: str | Path | None, mask: str | Path | None,
                        out_dir: Path, run=None, runs_dir="runs", device: str = "auto",
                        record_paths: bool = False, upscale: str | None = None) -> list[Path]:
    """Remake a painting exactly from its record, given the same sketch (and mask) files (and
    ``upscale``, the upscaler run, when it was written enlarged)."""
    from brushwork.making.generate import load_for_regeneration
    from brushwork.making.upscale import enlarger, upscaler_for
    from brushwork.provenance import read_record

    record = read_record(image).get("brushwork") or {}
    how = record.get("paint") or {}
    if sketch is None:
        raise BrushworkError(f"{image} was painted from a sketch; give it again with --sketch FILE"
                             + (" and its --mask FILE" if how.get("mask_sha256") else ""))
    if how.get("mask_sha256") and mask is None:
        raise BrushworkError(f"{image} was painted through a mask; give it again with --mask FILE")
    inputs = load_inputs(sketch, mask, how.get("extend"))
    for name, given, recorded in (("sketch", inputs.sketch_sha256, how.get("sketch_sha256")),
                                  ("mask", inputs.mask_sha256, how.get("mask_sha256"))):
        if given != recorded:
            raise BrushworkError(f"that {name} is not the one {image} was painted from (its record holds "
                                 f"{name} sha256 {str(recorded)[:12]}, the file given has {str(given)[:12]})")
    up = upscaler_for(record, upscale, device)  # checked before anything is painted
    model, recipe, _, style = load_for_regeneration(image, run, runs_dir, device, painted=True)
    model = model.using(record_paths=record_paths, enlarge=enlarger(up) if up is not None else None)
    return write_paintings(model, inputs, [int(recipe["seed"])], out_dir, float(how["strength"]), style,
                           int(how.get("resample", DEFAULT_RESAMPLE)), ext=Path(image).suffix.lstrip(".") or "png",
                           names=[Path(image).stem])
