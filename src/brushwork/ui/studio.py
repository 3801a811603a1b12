"""What each control of the studio (``brushwork serve``) does, as plain library functions.

Nothing here imports Gradio: every action takes names, numbers and file paths, calls the library
functions the CLI calls (so an image made here is the file the CLI would write, with the same
provenance record), writes under the studio's output folder, and raises ``BrushworkError`` with
one readable line for anything a user can cause. ``ui/app.py`` only wires these to widgets, so
they are tested without a browser (tests/test_studio.py).

Trust boundary: every path that comes from the page goes through ``Studio.readable`` (it must lie
in the runs, data, output or upload folder, links and '..' resolved) and every uploaded image
through ``Studio.upload`` (size, pixel count and the training data's safe decoder).
"""

from __future__ import annotations

import json
import math
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator

from PIL import Image

from brushwork.config import image_size
from brushwork.data.images import UnreadableImage, load_rgb
from brushwork.errors import BrushworkError
from brushwork.making.generate import (MAKING, TrainedModel, breed_from_images, load_for_regeneration, load_model,
                                write_images, write_seed_images)
from brushwork.imaging import to_pil
from brushwork.jobs import JobStatus, TrainingJobs
from brushwork.latents import parse_seeds
from brushwork.originality_report import run_judge
from brushwork.provenance import read_record
from brushwork.runs.builtin import BUILTIN_MODELS, PREFIX, installed, is_builtin, resolve_run
from brushwork.runs.checkpoint import latest_checkpoint
from brushwork.runs.directory import read_run_config
from brushwork.styles import parse_style_mix, style_request
from brushwork.training.families import a_run, family
from brushwork.utils import confined, ensure_dir, resolve_device


@dataclass
class StudioSettings:
    """Where the studio reads and writes, and how much one request may ask for."""

    runs: Path  # trained runs (listed, sampled, and where the Train tab writes)
    data: Path  # the only place training data and originality references come from
    outputs: Path  # everything the studio makes; never beside the server's code
    uploads: Path | None = None  # the page's upload folder (Gradio's cache); default outputs/.uploads
    device: str = "auto"
    features: str = "imagenet"  # VGG19 weights for Gatys and originality: imagenet, random or a file
    max_upload_mb: float = 25.0  # an upload larger than this is refused
    max_pixels: int = 50_000_000  # ~7k x 7k; refused from the header, before decoding
    max_images: int = 64  # images per request (seeds, children, variations)
    max_frames: int = 240  # frames per walk or blend
    max_style_size: int = 1024  # longest side of a stylised image
    max_training_jobs: int = 1  # training jobs running at once
    projection_steps: int = 300  # Reproduce with a GAN run: steps of the projection

    def __post_init__(self):
        self.runs, self.data, self.outputs = (Path(p).expanduser().resolve()
                                              for p in (self.runs, self.data, self.outputs))
        self.uploads = Path(self.uploads or self.outputs / ".uploads").expanduser().resolve()


@dataclass
class Made:
    """One file the studio wrote, with what the page shows beside it."""

    path: Path
    caption: str  # short: "seed 7", "child 3"
    parameters: str = ""  # the record's one-line summary (as A1111's "parameters")
    record: dict = field(default_factory=dict)  # the brushwork record itself


@dataclass
class StyleUpdate:
    """One step of a running style transfer, for the page: the image so far and a status line;
    ``path`` is set on the last update (the written file)."""

    image: Image.Image | None
    message: str
    path: Path | None = None

    @property
    def done(self) -> bool:
        return self.path is not None


@dataclass
class PaintUpdate:
    """One step of a running painting: the first image as it forms, a status line, and on the
    last update the written paintings."""

    image: Image.Image | None
    message: str
    items: list[Made] | None = None

    @property
    def done(self) -> bool:
        return self.items is not None


@dataclass
class Neighbour:
    label: str  # "nearest by tiled L2", by features, as an edited copy, by a region
    name: str  # the training file's name
    score: float
    image: Image.Image  # the training work at the comparison size


def made(path: Path, caption: str = "") -> Made:
    """A written file and its caption, with its originality badge when its record holds a verdict."""
    record = read_record(path)
    ours = record.get("brushwork", {})
    verdict = (ours.get("originality") or {}).get("verdict")
    badge = f" · {verdict}" if verdict else ""
    return Made(Path(path), (caption or Path(path).stem) + badge, record.get("parameters", ""), ours)


class Studio:
    """The studio's state (settings, loaded models, training jobs, running style transfers)."""

    def __init__(self, settings: StudioSettings):
        self.settings = settings
        for folder in (settings.runs, settings.outputs, settings.uploads):
            ensure_dir(folder)
        self.jobs = TrainingJobs(settings.runs, settings.data, settings.max_training_jobs)
        self.device = resolve_device(settings.device)
        self._models: dict[tuple[Path, Path], TrainedModel] = {}
        self._engines: dict[tuple, object] = {}
        self._stops: dict[str, threading.Event] = {}  # page session -> its style transfer's stop
        self._lock = threading.Lock()

    # ---- paths and uploads --------------------------------------------------------------------
    def readable(self, path: str | Path) -> Path:
        """A path from the page, if it lies in a folder the studio may read; else one line."""
        s = self.settings
        for root in (s.uploads, s.outputs, s.runs, s.data):
            try:
                return confined(root, path)
            except BrushworkError:
                continue
        raise BrushworkError(f"{Path(str(path)).name}: not a file this studio may read")

    def upload(self, path: str | Path | None, what: str = "image") -> Path:
        """An image from the page, checked: where it is, its size, its pixel count, and that the
        training data's decoder reads it (bombs, truncated files, SVG or HTML are refused)."""
        if not path:
            raise BrushworkError(f"no {what}: drop an image file first")
        path = self.readable(path)
        if not path.is_file():
            raise BrushworkError(f"{what} {path.name}: no such file")
        limit = self.settings.max_upload_mb
        if path.stat().st_size > limit * 2**20:
            raise BrushworkError(f"{what} {path.name} is {path.stat().st_size / 2**20:.1f} MB; "
                                 f"the limit here is {limit:g} MB")
        try:
            load_rgb(path, self.settings.max_pixels)
        except UnreadableImage as exc:
            raise BrushworkError(f"{what} {path.name}: {exc}") from None
        return path

    def output_path(self, action: str) -> Path:
        """A new folder for one request, outputs/ACTION/YYYYmmdd-HHMMSS-xxxx, not yet created:
        the library's writers make it when they write, so a refused request leaves nothing."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return self.settings.outputs / action / f"{stamp}-{secrets.token_hex(2)}"

    # ---- runs ---------------------------------------------------------------------------------
    def run_names(self, able: tuple[str, ...] = tuple(MAKING)) -> list[str]:
        """Runs under the runs folder that can do any of these (``training.families``) and have a
        checkpoint to use; by default those that make images of their own."""
        names = [f"{PREFIX}{name}" for name in BUILTIN_MODELS if installed(name)  # usable before any training
                 and family(read_run_config(f"{PREFIX}{name}").kind).can & set(able)]
        for config in sorted(self.settings.runs.glob("*/config.json")):
            try:
                can = family(read_run_config(config.parent).kind).can
            except BrushworkError:
                continue
            if can & set(able) and latest_checkpoint(config.parent) is not None:
                names.append(config.parent.name)
        return names

    def run_dir(self, name: str | None) -> Path:
        if not name:
            raise BrushworkError("choose a run first")
        if is_builtin(name):
            return resolve_run(name)
        run = confined(self.settings.runs, name, "the run")
        if not (run / "config.json").is_file():
            raise BrushworkError(f"{name} is not a run in {self.settings.runs}")
        return run

    def model(self, name: str | None) -> TrainedModel:
        """The run's newest model (loaded once per checkpoint)."""
        run = self.run_dir(name)
        newest = latest_checkpoint(run)
        key = (run, newest)
        with self._lock:
            if key not in self._models:
                if len(self._models) >= 4:
                    self._models.pop(next(iter(self._models)))
                self._models[key] = load_model(name if is_builtin(name) else run, str(self.device), newest)
            model = self._models[key]
            if getattr(model.judge, "index", None) is None:  # the collection may have been indexed since
                model = self._models[key] = model.using(judge=run_judge(model))
            return model

    def describe_run(self, name: str | None) -> dict:
        """What the page needs to offer the right controls for a run."""
        model = self.model(name)
        cfg = model.config.model
        return {"kind": model.kind, "can": sorted(model.family.can), "step": model.step,
                "resolution": cfg.resolution,
                "size": list(reversed(image_size(cfg))),  # [width, height]
                "sampling_steps": model.sampling.steps if model.sampling else None,
                "scale_name": model.scale_name, "conditional": model.conditional,
                "styles": model.style_names if model.conditional else [],
                "creative": bool(getattr(cfg, "creative", False)),
                "creativity": getattr(cfg, "creativity", None)}

    # ---- Generate -----------------------------------------------------------------------------
    def generate(self, run: str, seeds: str, scale: float = 1.0, style: str | None = None,
                 mix: str | None = None, upscale: str | None = None) -> list[Made]:
        """One image per seed, written as ``brushwork sample`` writes them (``upscale``: an
        upscaler run of the runs folder that enlarges each, as ``sample --upscale``)."""
        from brushwork.making.upscale import enlarger

        model = self.model(run)
        model.require("sample")
        if model.sampling is not None:  # a diffusion run's noise is never scaled
            scale = 1.0
        seed_list = parse_seeds(seeds, self.settings.max_images)
        request = style_request(style or None, mix or None)
        if upscale:  # a copy: the cached model is shared with other requests
            model = model.using(enlarge=enlarger(self.upscaler(upscale)))
        paths = write_seed_images(model, seed_list, self.output_path("generate"), float(scale), style=request)
        return [made(p, f"seed {s}") for p, s in zip(paths, seed_list)]

    def upscaler_runs(self) -> list[str]:
        return self.run_names(("upscale",))

    def upscaler(self, name: str):
        """An upscaler run of the runs folder, loaded once per checkpoint."""
        from brushwork.making.upscale import load_upscaler

        run = self.run_dir(name)
        key = ("upscaler", run, latest_checkpoint(run))
        with self._lock:
            if key not in self._models:
                self._models[key] = load_upscaler(run, None, str(self.device))
            return self._models[key]

    @staticmethod
    def random_seed() -> int:
        return secrets.randbelow(2**31)

    def seed_of(self, image: str | Path) -> int:
        """The seed an image brushwork made records (for 'reuse this seed')."""
        record = read_record(self.readable(image)).get("brushwork") or {}
        if "seed" not in record:
            raise BrushworkError("this image records no seed (children and crossbreeds record "
                                 "their lineage: use Info, 'send to Generate')")
        return int(record["seed"])

    # ---- Explore ------------------------------------------------------------------------------
    def interpolate(self, run: str, seeds: str, frames: int, scale: float = 1.0, styles: str = "",
                    loop: bool = True, fmt: str = "gif") -> Path:
        from brushwork.making.video import write_walk

        model = self.model(run)
        frames = self._frames(frames)
        key_styles = [s.strip() for s in styles.split(",") if s.strip()] if styles else None
        out = self.output_path("interpolate") / f"walk.{'mp4' if fmt == 'mp4' else 'gif'}"
        return write_walk(model, parse_seeds(seeds, 16), frames, out, float(scale), loop=loop,
                          styles=key_styles)

    def children(self, image: str | Path, n: int, strength: float, first_seed: int = 0) -> list[Made]:
        """Children of one image brushwork made (its latent nudged towards new seeds)."""
        parent = self.readable(image)
        paths = breed_from_images([parent], self.output_path("children"), self._count(n),
                                  float(strength), int(first_seed), runs_dir=self.settings.runs,
                                  device=str(self.device), prepare=_give_judge)
        return [made(p, f"child {i}") for i, p in enumerate(paths)]

    def crossbreed(self, image_a: str | Path, image_b: str | Path, n: int) -> list[Made]:
        """Crossbreeds of two images one model made (a latent blend, lineage recorded)."""
        parents = [self.readable(image_a), self.readable(image_b)]
        paths = breed_from_images(parents, self.output_path("crossbreed"), self._count(n),
                                  runs_dir=self.settings.runs, device=str(self.device), prepare=_give_judge)
        return [made(p, f"cross {i}") for i, p in enumerate(paths)]

    def crossbreed_note(self, image_a, image_b) -> str:
        """What the page says about the style crossbreeds get, when the parents asked for two."""
        styles = []
        for image in (image_a, image_b):
            record = read_record(self.readable(image)).get("brushwork") or {}
            styles.append(record.get("style") or _mix_text(record.get("style_mix")))
        if styles[0] == styles[1] or not any(styles):
            return ""
        return (f"The parents were made in different styles (A: {styles[0]}, B: {styles[1]}); the "
                f"crossbreeds blend their latents and keep parent A's style ({styles[0]}).")

    def _count(self, n) -> int:
        n = int(n)
        if not 1 <= n <= self.settings.max_images:
            raise BrushworkError(f"ask for 1 to {self.settings.max_images} images, not {n}")
        return n

    def _frames(self, frames) -> int:
        frames = int(frames)
        if not 2 <= frames <= self.settings.max_frames:
            raise BrushworkError(f"ask for 2 to {self.settings.max_frames} frames, not {frames}")
        return frames

    # ---- Reproduce (VAE runs encode; GAN runs project) -----------------------------------------
    def _projection(self, model: TrainedModel, style: str | None = None):
        """How this page projects into a GAN run; what it cannot do is said in the page's terms."""
        from brushwork.making.reproduce import ProjectionOptions

        if not (model.can("project") or model.can("encode")):
            raise BrushworkError(f"{a_run(model.kind)} has no latent to project an artwork into: use the "
                                 "Paint tab with the artwork as the sketch and a low strength (0.3 keeps most of it)")
        if model.conditional and not style:
            raise BrushworkError(f"{model.name} is style-conditional: choose the style to project into "
                                 f"({', '.join(model.style_names)})")
        return ProjectionOptions(steps=self.settings.projection_steps, features=self.settings.features,
                                 style=style or None)

    def reconstruct(self, run: str, image, style: str | None = None) -> tuple[Made, str]:
        """(the reconstruction or projection, a line saying how close it came)."""
        from brushwork.making.reproduce import project_file, reconstruct

        model, source = self.model(run), self.upload(image)
        options = self._projection(model, style)
        if model.can("project"):
            paths, value, kind = project_file(model, source, self.output_path("project"), options)
            return made(paths["projected"], "projection"), f"projection: {kind} distance {value:.4f}"
        (path, value), = reconstruct(model, [source], self.output_path("reconstruct"))
        return made(path, "reconstruction"), f"reconstruction: PSNR {value:.2f} dB"

    def variations(self, run: str, image, n: int, temperature: float, first_seed: int = 0,
                   style: str | None = None) -> list[Made]:
        """VAE: posterior samples; GAN: children of the projection (temperature = strength)."""
        from brushwork.making.reproduce import gan_variations, variations

        model, source, n = self.model(run), self.upload(image), self._count(n)
        out, options = self.output_path("variations"), self._projection(model, style)
        if model.can("project"):
            return [made(p) for p in gan_variations(model, source, n, float(temperature), out,
                                                    int(first_seed), options)]
        model.require("sample")  # posterior samples need a prior to vary around (a VAE's)
        return [made(p) for p in variations(model, source, n, float(temperature), out, int(first_seed))[:-1]]

    def blend(self, run: str, image_a, image_b, frames: int, style: str | None = None) -> Path:
        from brushwork.making.reproduce import blend, gan_blend

        model = self.model(run)
        a, b = self.upload(image_a, "first image"), self.upload(image_b, "second image")
        out, options, frames = self.output_path("blend") / "blend.gif", self._projection(model, style), self._frames(frames)
        if model.can("project"):
            return gan_blend(model, a, b, frames, out, options=options)
        model.require("sample")
        return blend(model, a, b, frames, out)

    # ---- Style transfer -----------------------------------------------------------------------
    def adain_runs(self) -> list[str]:
        return self.run_names(("stylize",))

    def _engine(self, method: str, adain_run: str | None):
        from brushwork.style.files import load_engine

        model = str(self.run_dir(adain_run)) if method == "adain" else None
        key = (method, model, self.settings.features)
        with self._lock:
            if key not in self._engines:
                encoder = None if method == "adain" else self.settings.features
                self._engines[key] = load_engine(method, self.device, model, encoder)
            return self._engines[key]

    def stop_style(self, session: str) -> bool:
        """Ask the session's running Gatys optimisation to stop (it returns its best image)."""
        return self._stop(session, "style")

    def stop_paint(self, session: str) -> bool:
        """Ask the session's running painting to stop (it returns its latest estimate)."""
        return self._stop(session, "paint")

    def _stop(self, session: str, work: str) -> bool:
        stop = self._stops.get(f"{work}:{session}")
        if stop is None:
            return False
        stop.set()
        return True

    def stylize(self, content, styles: list, weights: str = "", method: str = "adain",
                adain_run: str | None = None, strength: float = 1.0, preserve_color: str = "none",
                mask=None, steps: int = 100, size: int = 384, session: str = "",
                preview_every: float = 1.0) -> Iterator[StyleUpdate]:
        """Stylise ``content``; yields the best image so far about every ``preview_every``
        seconds while Gatys optimises, then the final image and its file (with provenance)."""
        from brushwork.provenance import save_image
        from brushwork.style.files import parse_style_weights, stylize_file
        from brushwork.style.transfer import GatysSettings, StyleRequest

        content = self.upload(content, "content image")
        style_paths = [self.upload(p, "style image") for p in (styles or []) if p]
        if not style_paths:
            raise BrushworkError("add at least one style image")
        mask_path = self.upload(mask, "mask") if mask else None
        if not 16 <= int(size) <= self.settings.max_style_size:
            raise BrushworkError(f"size must be 16 to {self.settings.max_style_size} pixels")
        request = StyleRequest(method=method, size=int(size), strength=float(strength),
                               style_weights=parse_style_weights(weights, len(style_paths)),
                               preserve_color=preserve_color, gatys=GatysSettings(steps=int(steps)))
        request.validate()
        engine = self._engine(method, adain_run)
        stop = self._stops[f"style:{session}"] = threading.Event()
        updates: queue.Queue = queue.Queue()
        state = {"last": 0.0, "step": 0}

        def progress(step, total, losses, best):
            state["step"] = step
            if time.monotonic() - state["last"] >= preview_every:
                state["last"] = time.monotonic()
                updates.put(StyleUpdate(to_pil(best)[0], f"step {step}/{total}, loss {losses['total']:.4g}"))
            return stop.is_set()

        def work():
            image, record = stylize_file(content, style_paths, request, engine, mask_path, progress=progress)
            if stop.is_set() and record is not None:
                record["stopped_at_step"] = state["step"]
            out = self.output_path("stylize") / f"{content.stem}_stylized.png"
            updates.put(StyleUpdate(image, self._style_done(method, stop, state), save_image(image, out, record)))

        yield from self._stream("stylize", work, updates, stop, f"style:{session}")

    def _stream(self, name: str, work, updates: queue.Queue, stop: threading.Event, key: str) -> Iterator:
        """Run ``work`` (which puts its updates on ``updates``) in a thread and yield them until
        one is ``done``; an error in the thread is raised here, in the page's thread. When the
        page goes away, ``stop`` lets the work end."""
        def run():
            try:
                work()
            except BaseException as exc:
                updates.put(exc)

        threading.Thread(target=run, daemon=True, name=name).start()
        try:
            while True:
                update = updates.get()
                if isinstance(update, BaseException):
                    raise update
                yield update
                if update.done:
                    return
        finally:
            stop.set()
            self._stops.pop(key, None)

    @staticmethod
    def _style_done(method: str, stop: threading.Event, state: dict) -> str:
        if method == "gatys" and stop.is_set():
            return f"stopped at step {state['step']}: the best image so far"
        return "done" if method == "adain" else f"done ({state['step']} steps)"

    # ---- Paint (diffusion runs) ---------------------------------------------------------------
    def paint(self, run: str, sketch, mask=None, strength: float | None = None, seeds: str = "0-3",
              style: str | None = None, mix: str | None = None, extend: str = "", steps: int | None = None,
              session: str = "", preview_every: float = 0.5) -> Iterator[PaintUpdate]:
        """Paint ``sketch`` with a diffusion run as ``brushwork paint`` does; yields the first
        painting as it forms about every ``preview_every`` seconds, then the written files.
        Stop (``stop_paint``) ends it early and writes the latest estimates instead."""
        from brushwork.making.paint import check_request, load_inputs, write_estimates, write_paintings
        from brushwork.models.samplers import SAMPLING_BATCH

        model = self.model(run)
        if not model.can("paint"):  # say which runs can, before anything else is asked of this one
            able = ", ".join(self.run_names(("paint",))) or "none yet: train one with brushwork train diffusion"
            raise BrushworkError(f"{model.name} is {a_run(model.kind)}; painting needs a diffusion run "
                                 f"(in the run list: {able})")
        if steps:  # a copy: the cached model keeps its own sampling for other requests
            model = model.using(sampling={"steps": int(steps)})
        sketch = self.upload(sketch, "sketch")
        mask = self.upload(mask, "mask") if mask else None
        seed_list = parse_seeds(seeds, SAMPLING_BATCH)  # one batch: the preview shows all of it
        inputs = load_inputs(sketch, mask, extend or None, self.settings.max_pixels)
        if strength is None:
            strength = 1.0 if inputs.repaint is not None else 0.6
        request = style_request(style or None, mix or None)
        check_request(model, float(strength))
        stop = self._stops[f"paint:{session}"] = threading.Event()
        updates: queue.Queue = queue.Queue()
        state = {"shown": 0.0, "step": -1, "estimate": None}
        total = max(1, round(model.sampling.steps * float(strength)))

        class Stopped(Exception):
            pass

        def progress(step, estimate):
            state["step"], state["estimate"] = step, estimate
            if stop.is_set():
                raise Stopped
            if time.monotonic() - state["shown"] >= preview_every:
                state["shown"] = time.monotonic()
                updates.put(PaintUpdate(to_pil(estimate[:1].float().clamp(-1, 1).cpu())[0],
                                        f"step {step + 1}/{total}"))

        def work():
            out = self.output_path("paint")
            try:
                paths = write_paintings(model, inputs, seed_list, out, float(strength), request, callback=progress)
                line = f"done ({total} steps)"
            except Stopped:
                paths = write_estimates(model, inputs, seed_list, state["estimate"], state["step"], out,
                                        float(strength), request)
                line = f"stopped at step {state['step'] + 1}/{total}: the latest estimate"
            items = [made(p, f"seed {s}") for p, s in zip(paths, seed_list)]
            updates.put(PaintUpdate(Image.open(paths[0]).convert("RGB"), line, items))

        yield from self._stream("paint", work, updates, stop, f"paint:{session}")

    def mask_from_strokes(self, strokes, sketch) -> Path:
        """A mask file (white where anything was painted on the page's mask layer, black elsewhere)
        at the sketch's size, written in the upload folder."""
        import numpy as np

        strokes, sketch = self.upload(strokes, "mask layer"), self.upload(sketch, "sketch")
        with Image.open(strokes) as layer, Image.open(sketch) as image:
            alpha = layer.convert("RGBA").getchannel("A")
            if alpha.size != image.size:
                alpha = alpha.resize(image.size, Image.NEAREST)
        painted = np.asarray(alpha) > 0
        if not painted.any():
            raise BrushworkError("the mask is empty: paint over the region to repaint (or choose No mask)")
        path = ensure_dir(self.settings.uploads / "masks") / f"mask-{secrets.token_hex(6)}.png"
        Image.fromarray(np.where(painted, 255, 0).astype(np.uint8)).save(path)
        return path

    # ---- Originality --------------------------------------------------------------------------
    def originality(self, image, run: str | None = None, data: str | None = None) -> tuple[str, list[Neighbour]]:
        """(verdict line, nearest training works by both measures) for one image, checked against
        the run's training data (or ``data`` under the data root)."""
        from brushwork.data.dataset import load_dataset
        from brushwork.imaging import unit_from_uint8
        from brushwork.originality_report import images_to_check, originality

        path = self.upload(image)
        spec, resolution = self._reference_data(run, data)
        query = images_to_check(None, str(path), 1, resolution, str(self.device))
        report = originality(query, spec, resolution, self.settings.features, self.device)
        train = load_dataset(spec, resolution, progress=False).images  # cached by originality()
        near = report.nearest(0)
        neighbours = [
            Neighbour("nearest by tiled L2 (lower = closer)", near["tiled_l2"][0], near["tiled_l2"][1],
                      to_pil(unit_from_uint8(train[int(report.tiled_index[0])])[None])[0]),
            Neighbour("nearest by VGG features (cosine, higher = closer)", near["features"][0],
                      near["features"][1],
                      to_pil(unit_from_uint8(train[int(report.feature_index[0])])[None])[0])]
        if "edit" in near:  # the offline edited-copy checks, when they ran
            for key, label in (("edit", "nearest as an edited copy (score, higher = closer)"),
                               ("region", "nearest by a region (score, higher = closer)")):
                j = int(report.edits[f"{key}_index"][0])
                neighbours.append(Neighbour(label, near[key][0], near[key][1],
                                            to_pil(unit_from_uint8(train[j])[None])[0]))
        verdict = (f"COPY, flagged as: {', '.join(near['flagged_by'])}" if near["copy"]
                   else "original: not flagged as a copy")
        thresholds = (f"copy thresholds: tiled L2 < {report.l2_threshold:.4f} and cosine > "
                      f"{report.similarity_threshold:.4f}; edited copy >= {report.edit_threshold:.4f}; "
                      f"region >= {report.region_threshold:.4f} ({len(train)} training works at {resolution} px)")
        return f"{verdict}\n{thresholds}", neighbours

    def nearest_work(self, image: str | Path) -> tuple[Image.Image, str] | None:
        """The training work an image's record names as its nearest (from the collection's index),
        enlarged, with a caption; None when the image records no verdict."""
        from brushwork.metrics.collection_index import open_index

        verdict = (read_record(self.readable(image)).get("brushwork") or {}).get("originality")
        if not verdict:
            return None
        spec = verdict["collection"]
        if not spec.startswith("builtin:"):  # a record names a folder: only the data root's are shown
            spec = str(confined(self.settings.data, spec, "the training data"))
        index = open_index(spec, int(verdict["resolution"]))
        if index is None:
            raise BrushworkError("the index this image was checked against is gone (brushwork index rebuilds it)")
        flagged = verdict.get("flagged_by", [])
        near = verdict["nearest"]["region" if flagged == ["pasted region"] else "edit"]
        work = Image.fromarray(index.work(near["work"]))
        caption = (f"{verdict['verdict']}{' (' + ', '.join(flagged) + ')' if flagged else ''}: nearest training "
                   f"work {near['work']}, score {near['score']:.3f}")
        return work.resize((256, 256), Image.NEAREST), caption

    def _reference_data(self, run: str | None, data: str | None) -> tuple[str, int]:
        """(the data to compare with: ``data``, else the run's training data; the run's size, else 64)."""
        cfg = read_run_config(self.run_dir(run)) if run else None
        spec = data or (cfg.train.data if cfg is not None else None)
        if not spec:
            raise BrushworkError("choose a run (its training data) or a data folder to compare with")
        resolution = cfg.model.resolution if cfg is not None else 64
        if not spec.startswith("builtin:"):
            spec = str(confined(self.settings.data, spec, "the training data"))
        return spec, resolution

    # ---- Train --------------------------------------------------------------------------------
    def data_choices(self) -> list[str]:
        """Training data the page may offer: the built-in set and the data root's folders."""
        root = self.settings.data
        folders = sorted(p.relative_to(root).as_posix() for p in root.glob("*/") if p.is_dir()
                         and not p.name.startswith(".")) if root.is_dir() else []
        return ["builtin:abstract", *folders]

    def start_training(self, name: str, family_name: str, data: str, steps: int, preset: str = "modern",
                       resolution: int = 64, conditional: bool = False, batch_size: int = 64,
                       model_settings: str = "", canvas: str = "") -> JobStatus:
        """Start training a run as a job, from a RunConfig built by the family's own builder (as
        ``brushwork train`` builds it); ``model_settings`` is 'key=value ...' (the CLI's --set),
        ``canvas`` 'WxH' for images that are not square. Mistakes are said before anything starts."""
        from brushwork.config import RunConfig, TrainConfig, parse_size
        from brushwork.training.families import ModelOptions

        self._check_new_name(name)
        if family_name not in STUDIO_FAMILIES:
            raise BrushworkError(f"the studio trains {', '.join(STUDIO_FAMILIES)} runs, not {family_name!r}")
        canvas = (canvas or "").strip()
        width, height = parse_size(canvas) if canvas else (int(resolution), 0)
        options = ModelOptions(width=width, height=height, preset=preset, conditional=bool(conditional),
                               settings=_model_settings(model_settings))
        model = family(family_name).configure(options)
        model.validate()
        train = TrainConfig(data=data, steps=int(steps), batch_size=int(batch_size), **STUDIO_TRAIN_SCHEDULE)
        train.validate()
        self.jobs.start(name, RunConfig(kind=family_name, model=model, train=train))
        return self.jobs.status(name)

    def _check_new_name(self, name: str) -> None:
        """A new run's name: given, and not one of the runs folder's."""
        if not name:
            raise BrushworkError("name the run first")
        if (self.settings.runs / name / "config.json").exists():
            raise BrushworkError(f"a run named {name} exists; resume it or choose another name")

    def adapt_base(self, name: str, data: str, batch_size: int = 32) -> JobStatus:
        """Adapt the built-in base to a data folder with LoRA adapters, as ``brushwork train
        diffusion --from builtin:base --adapter lora`` does: its steps, learning rate and rank
        chosen by the number of works (the job's log says what)."""
        from brushwork.config import RunConfig, TrainConfig
        from brushwork.training.families import ModelOptions

        self._check_new_name(name)
        if not data or data.startswith("builtin:"):
            raise BrushworkError("choose a folder of your own works to adapt the base to")
        base = f"{PREFIX}base"
        width = read_run_config(base).model.resolution  # says in one line when the base is not installed
        model = family("diffusion").configure(ModelOptions(width=width, parent=base, adapter="lora"))
        train = TrainConfig(data=data, steps=0, batch_size=int(batch_size), init_from=base, **STUDIO_TRAIN_SCHEDULE)
        self.jobs.start(name, RunConfig(kind="diffusion", model=model, train=train))
        return self.jobs.status(name)

    def fitting_canvas(self, data: str, resolution: int) -> tuple[str, str]:
        """('WxH' or '' for a square, what it crops): the canvas the collection's own proportions
        ask for at ``resolution`` (its shorter side), as ``train --aspect auto`` chooses it."""
        from brushwork.data.aspect import auto_canvas

        if not data:
            raise BrushworkError("choose the data first")
        if data.startswith("builtin:"):
            return "", "the built-in set is square"
        choice = auto_canvas(str(confined(self.settings.data, data, "the training data")), int(resolution))
        return choice.canvas, choice.summary()

    def resume_training(self, name: str, steps: int) -> JobStatus:
        self.run_dir(name)  # an existing run of the runs folder
        self.jobs.start(name, steps=int(steps), resume=True)
        return self.jobs.status(name)

    def stop_training(self, name: str) -> bool:
        return self.jobs.stop(name)

    def training_runs(self) -> list[str]:
        """Runs the Train tab shows: every run directory, running ones first."""
        running = {p.name for p in self.jobs.running()}
        names = sorted(p.parent.name for p in self.settings.runs.glob("*/config.json"))
        names += sorted(p.parent.name for p in self.settings.runs.glob("*/train.log")
                        if p.parent.name not in names)  # started, config not written yet
        return sorted(names, key=lambda n: n not in running)

    def training_status(self, name: str) -> tuple[JobStatus, str]:
        status = self.jobs.status(name)
        state = "running" if status.running else "stopped"
        line = f"{name}: {state}, step {status.step}/{status.total_steps or '?'}"
        if status.rows:
            last = status.rows[-1]
            line += "; " + ", ".join(f"{k} {v:.3g}" for k, v in last.items()
                                     if isinstance(v, float) and k not in ("step",))[:160]
        if not status.running and status.last_line:  # in the page's words, not the command line's
            last = status.last_line.replace("continue with --resume", "press Resume to continue")
            line += f"\nlast output: {self.public(last)[:300]}"
        return status, line

    def public(self, text: str) -> str:
        """A message for the page: the studio's absolute folders named by their last part only."""
        s = self.settings
        for root in sorted((s.uploads, s.outputs, s.runs, s.data), key=lambda p: -len(str(p))):
            text = text.replace(str(root), root.name)
        return text

    # ---- Info ---------------------------------------------------------------------------------
    def info(self, image) -> tuple[str, str, bool]:
        """(the record as text, the watermark finding, whether it can be regenerated)."""
        path = self.upload(image)
        record = read_record(path)
        text = record.get("parameters", "")
        if "brushwork" in record:
            text += ("\n\n" if text else "") + json.dumps(record["brushwork"], indent=2, sort_keys=True)
        text = text or "no brushwork or generation record in this file"
        body = record.get("brushwork") or {}
        regenerable = bool(body.get("model_hash")) and ("seed" in body or "latent" in body)
        return text, self._watermark(path), regenerable

    @staticmethod
    def _watermark(path: Path) -> str:
        try:
            from brushwork.provenance.watermark import detect_watermark

            found = detect_watermark(load_rgb(path))
        except (BrushworkError, ImportError) as exc:
            return f"watermark not checked ({exc})"
        return ("invisible watermark: found" if found else "invisible watermark: not found") + \
            " (a weak signal: resizing, cropping or re-compression remove it)"

    def regenerate(self, image) -> tuple[dict, Made]:
        """Remake an image from its record (the model found by hash under the runs folder);
        returns the Generate settings that make it and the new file."""
        path = self.upload(image)
        model, recipe, scale, style = load_for_regeneration(path, None, self.settings.runs,
                                                            str(self.device))
        model = _give_judge(model)
        paths, _ = write_images(model, [recipe], [path.stem], self.output_path("regenerate"),
                                scale, style=style)
        settings = {"run": model.run_dir.name, "scale": scale, "recipe": recipe,
                    "seed": recipe.get("seed") if set(recipe) == {"seed"} else None,
                    "style": style if isinstance(style, str) and ":" not in style else None,
                    "mix": _mix_text(style)}
        return settings, made(paths[0], "regenerated")


# Jobs started from the page log often enough for its loss curve and grid to move while watched.
STUDIO_TRAIN_SCHEDULE = {"log_every": 10, "sample_every": 100}  # a loss curve and a grid the page can follow
STUDIO_FAMILIES = ("gan", "vae", "diffusion")  # what the Train tab offers
SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^\s=]+$")


def _model_settings(text: str) -> list[str]:
    """'g_width=32 d_width=32' (or comma separated) -> ['g_width=32', 'd_width=32'] (the CLI's --set)."""
    settings = []
    for item in re.split(r"[\s,]+", (text or "").strip()):
        if not item:
            continue
        if not SETTING.match(item):
            raise BrushworkError(f"model setting {item!r}: expected key=value, e.g. g_width=32")
        settings.append(item)
    return settings


def _mix_text(style) -> str | None:
    if isinstance(style, str) and ":" in style:
        style = parse_style_mix(style)
    if isinstance(style, dict):
        return ",".join(f"{name}:{weight:g}" for name, weight in style.items())
    return None


def loss_rows(status: JobStatus) -> list[dict]:
    """Long-format loss curve rows {step, term, value} of a job (what a line plot wants)."""
    rows = []
    for row in status.rows:
        for key, value in row.items():
            if key.startswith("loss"):
                if isinstance(value, (int, float)) and math.isfinite(value):
                    rows.append({"step": row.get("step", 0), "term": key, "value": float(value)})
    return rows


def _give_judge(model: TrainedModel) -> TrainedModel:
    """The model, checking what it makes against its collection's index (breed loads its own)."""
    return model.using(judge=run_judge(model))
