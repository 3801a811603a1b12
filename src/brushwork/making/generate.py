"""Making images from a trained run: per-seed latents, truncation, interpolation walks.

Latents come from NumPy's seeded Mersenne Twister (as StyleGAN does), so a seed means the same
latent on every machine and device; the generator runs in eval mode, so an image depends only on
its own seed, never on which other seeds share its batch.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from brushwork.config import RunConfig, config_hash
from brushwork.errors import BrushworkError
from brushwork.imaging import grid_image, to_pil
from brushwork.latents import (LATENT_METHOD, child_recipe, cross_recipe, latents_for_recipes,
                               latents_for_seeds, root_seed)
from brushwork.models.autoencoder import codec_for
from brushwork.provenance import make_record, save_image, save_png
from brushwork.runs import checkpoint as ckpt
from brushwork.runs.builtin import is_builtin, resolve_run
from brushwork.runs.directory import read_run_config
from brushwork.training.adapt import adapted_network, parent_autoencoder
from brushwork.training.families import Family, family, require
from brushwork.styles import describe, style_from_record, style_weights
from brushwork.utils import ensure_dir, resolve_device, tensors_hash


@dataclass
class DiffusionSampling:
    """How a diffusion run turns noise into images; every image records it."""

    sampler: str = "dpm2m"  # "heun" or "dpm2m" (models/samplers.py)
    steps: int = 32  # noise levels visited
    guidance: float = 1.0  # classifier-free guidance of conditional runs (1 = none)

    def check(self, conditional: bool) -> None:
        from brushwork.config import SAMPLERS

        if self.sampler not in SAMPLERS:
            raise BrushworkError(f"unknown sampler {self.sampler!r} (choose {' or '.join(SAMPLERS)})")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise BrushworkError(f"--steps must be at least 1, got {self.steps}")
        if not 0 <= self.guidance <= 50:
            raise BrushworkError(f"--guidance must be in [0, 50], got {self.guidance}")
        if self.guidance != 1 and not conditional:
            raise BrushworkError("--guidance needs a style-conditional run (brushwork train diffusion "
                                 "--conditional); this run learned no styles")


@dataclass
class TrainedModel:
    """A trained GAN generator, VAE or diffusion denoiser loaded from a run directory, with what
    provenance needs.

    All families share the ideas of a latent size, sampling by seed and turning latents into
    images (a diffusion model's latent is its starting noise, integrated by ``sampling``); only
    VAEs can also encode images (``encode``).
    """

    network: nn.Module  # the GAN's sampling generator, the whole VAE or autoencoder, or the EMA denoiser
    config: RunConfig
    run_dir: Path
    step: int
    model_hash: str  # sha256 of the weights used for sampling
    device: torch.device
    record_paths: bool = False  # put the run's absolute path into records (off: it names the author's folders)
    sampling: DiffusionSampling | None = None  # diffusion runs: sampler, steps, guidance
    # checks each image it makes against the training collection: images [N, 3, R, R] -> one
    # verdict dict each (None: not checked), recorded in the image's provenance (set by the
    # caller, who can reach the collection's index: originality_report.run_judge)
    judge: Callable[[torch.Tensor], list[dict | None]] | None = None
    # enlarges each image before it is written: PIL image -> (larger image, what the record says
    # of it); set by the caller (making.upscale.enlarger)
    enlarge: Callable | None = None
    # diffusion runs: what the denoiser works in and how its results become images (pixels, or a
    # latent run's autoencoder: models/autoencoder.py)
    codec: nn.Module | None = None
    label: str = ""  # what the run is called when not by its folder's name (a built-in model: builtin:base)

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def family(self) -> Family:
        return family(self.config.kind)

    def can(self, capability: str) -> bool:
        return capability in self.family.can

    def require(self, capability: str) -> None:
        """Refuse, in one line saying which runs can, what this run's family cannot do."""
        require(self.kind, capability, self.name)

    def using(self, sampling: dict | None = None, judge=None, enlarge=None, record_paths: bool | None = None
              ) -> "TrainedModel":
        """A copy of this model with these making options (the original, which may be shared by
        other requests, is unchanged): ``sampling`` {sampler, steps, guidance} of a diffusion
        run (refused for others), a judge of its images, an enlarger, whether records hold paths."""
        changes: dict = {}
        if sampling:
            if self.sampling is None:
                raise BrushworkError(f"{'/'.join(sampling)}: for diffusion runs; {self.name} is a {self.kind} run")
            changes["sampling"] = dataclasses.replace(self.sampling, **sampling)
            changes["sampling"].check(self.conditional)
        if judge is not None:
            changes["judge"] = judge
        if enlarge is not None:
            changes["enlarge"] = enlarge
        if record_paths is not None:
            changes["record_paths"] = record_paths
        return dataclasses.replace(self, **changes)

    @property
    def name(self) -> str:
        return self.label or self.run_dir.name

    @property
    def z_dim(self) -> int:
        """The size of the latent a seed draws (refused for runs that make nothing from seeds)."""
        self.require("sample")
        return self.config.model.z_dim

    @property
    def scale_name(self) -> str:
        """What scaling the prior is called: truncation (GAN) or temperature (VAE)."""
        return self.family.scale_name

    def prior_record(self, scale: float) -> dict:
        """What an image records of how its latent was drawn: the truncation or temperature, or
        a diffusion run's sampler, steps and guidance (its noise is never scaled)."""
        if self.sampling is None:
            return {self.scale_name: scale}
        if scale != 1:
            raise BrushworkError("diffusion runs take no --truncation or --temperature (their "
                                 "starting noise is never scaled); --steps and --guidance shape them")
        return {"sampler": self.sampling.sampler, "sampling_steps": self.sampling.steps,
                **({"guidance": self.sampling.guidance} if self.conditional else {})}

    @property
    def conditional(self) -> bool:
        """A style-conditional GAN or diffusion run: every image is asked for a style (or a mix)."""
        return bool(getattr(self.config.model, "conditional", False))

    @property
    def style_names(self) -> list[str]:
        """The styles the run learned from (its data's first-level folders)."""
        return [n for n in self.config.labels if n]

    def _decoder(self) -> nn.Module:
        return self.family.decoder(self.network)

    def style_weights(self, style, n: int) -> torch.Tensor:
        """[n, K] weights for a style request (name, 'a:0.6,b:0.4', {name: w}, K weights, n names
        or an [n, K] tensor); see ``brushwork.styles``."""
        if not self.conditional:
            raise BrushworkError(f"{self.run_dir} is not style-conditional (trained without "
                                 f"--conditional); it takes no style")
        weights = style_weights(style, self.style_names)
        weights = weights.expand(n, -1) if weights.dim() == 1 else weights
        if len(weights) != n:
            raise BrushworkError(f"{len(weights)} styles given for {n} images")
        return weights

    @torch.no_grad()
    def generate(self, z: torch.Tensor, style=None, batch_size: int = 64) -> torch.Tensor:
        """Images [N, 3, R, R] in [-1, 1] for latents [N, Z]; conditional runs also take a style
        request for all N images (a name, a mix or weights, see ``style_weights``)."""
        if style is None and self.conditional:
            raise BrushworkError(f"{self.run_dir} is style-conditional: ask for a style "
                                 f"({', '.join(self.style_names)}) or a mix")
        self.require("sample")
        if self.sampling is not None:
            weights = None if style is None else self.style_weights(style, len(z))
            return self.codec.decode(self.denoise_from(self.noise(z), weights)).cpu()
        decoder = self._decoder()
        if style is None:
            out = [decoder(c.to(self.device)) for c in z.split(batch_size)]
        else:
            weights = self.style_weights(style, len(z))
            out = [decoder(c.to(self.device), w.to(self.device))
                   for c, w in zip(z.split(batch_size), weights.split(batch_size))]
        return torch.cat([o.float().clamp(-1, 1).cpu() for o in out])

    def noise(self, z: torch.Tensor) -> torch.Tensor:
        """A diffusion run's latents [N, C*H*W] as the noise they are [N, C, H, W] (pixels, or an
        autoencoder's latent positions)."""
        return z.reshape(len(z), *self.config.model.space)

    def sigmas(self, top: float | None = None) -> list[float]:
        """The noise levels this model's sampling visits (from ``top``, default sigma_max)."""
        from brushwork.models.samplers import karras_sigmas

        cfg = self.config.model
        return karras_sigmas(self.sampling.steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, top)

    def denoise_from(self, noise: torch.Tensor, weights: torch.Tensor | None = None,
                     callback=None) -> torch.Tensor:
        """Diffusion: what the denoiser works in [N, C, H, W] (images in [-1, 1], or scaled latents)
        integrated from standard-normal noise of that shape with this model's sampler, steps and
        guidance (style weights [N, K]); ``codec.decode`` makes images of it."""
        from brushwork.models.samplers import sample_images

        self.sampling.check(self.conditional)
        images = sample_images(self.network, noise.to(self.device), self.sigmas(), self.sampling.sampler,
                               None if weights is None else weights.to(self.device),
                               self.sampling.guidance, callback)
        return images.float()

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Decoder images [N, 3, H, W] in [-1, 1] for latents (a VAE's [N, Z], an autoencoder's
        [N, C, h, w])."""
        self.require("encode")
        return torch.cat([self._decoder()(c.to(self.device)).float().clamp(-1, 1).cpu()
                          for c in z.split(batch_size)])

    def generate_seeds(self, seeds: list[int], truncation: float = 1.0, style=None) -> torch.Tensor:
        """Images [N, 3, R, R] of seeds (each seed's default style on conditional runs)."""
        return self.generate(latents_for_seeds(seeds, self.z_dim, truncation), self.seed_styles(seeds, style))

    def seed_pixels(self, seeds: list[int], truncation: float = 1.0, style=None,
                    batch: int = 256) -> torch.Tensor:
        """uint8 images [N, 3, R, R] of seeds, made ``batch`` at a time: for measuring many
        samples, only the 8-bit images are ever held."""
        from brushwork.imaging import uint8_from_unit

        return torch.cat([uint8_from_unit(self.generate_seeds(seeds[i:i + batch], truncation, style))
                          for i in range(0, len(seeds), batch)])

    def seed_styles(self, seeds: list[int], style=None) -> list | None:
        """Each seed's style request: ``style`` for all, or by default seed s gets style s % K
        (None for runs without styles)."""
        if not self.conditional:
            if style is not None:
                self.style_weights(style, 1)  # says why a style is refused
            return None
        names = getattr(self.config.model, "default_styles", None) or self.style_names  # an adapted run: its own
        return [style if style is not None else names[s % len(names)] for s in seeds]

    @torch.no_grad()
    def encode(self, images: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mu, logvar) of a VAE ([N, Z] each) or an autoencoder ([N, C, h, w]) for
        images [N, 3, H, W] in [-1, 1]."""
        self.require("encode")
        stats = [self.network.encoder(c.to(self.device)) for c in images.split(batch_size)]
        return torch.cat([m.float().cpu() for m, _ in stats]), torch.cat([v.float().cpu() for _, v in stats])

    def record(self, **fields) -> dict:
        """The provenance record of an image this model made: run name and model hash, never a
        local path unless ``record_paths`` asks for it."""
        where = {"run": str(self.run_dir.resolve())} if self.record_paths else {}
        parent = self.config.train.init_from_hash
        if getattr(self.config.model, "autoencoder_hash", ""):  # latent diffusion: its latent space too
            where["autoencoder_hash"] = self.config.model.autoencoder_hash
        if parent:  # fine-tuned from another run: its lineage
            where["parent_model_hash"] = parent
            where["parent_run"] = Path(self.config.train.init_from).name
        return make_record(kind=self.kind, model_name=self.name, model_hash=self.model_hash,
                           steps=self.step, **where, config_hash=config_hash(self.config.model),
                           latent_method=LATENT_METHOD, **fields)


def load_model(run_dir: str | Path, device: str = "auto", checkpoint: Path | None = None,
               record_paths: bool = False) -> TrainedModel:
    """The network a run makes images with (EMA generator for GANs; a diffusion run's EMA
    denoiser with its codec) from its newest checkpoint (or the given one). ``record_paths`` puts
    the run's absolute path into every image's record."""
    label = str(run_dir) if is_builtin(run_dir) else ""
    run_dir = resolve_run(run_dir)
    cfg = read_run_config(run_dir)
    fam = family(cfg.kind)
    if fam.network is None or not fam.can & MAKING:
        raise BrushworkError(f"{run_dir} is an {cfg.kind} run; it makes no images of its own"
                             + (" (use it with brushwork stylize --method adain --model RUN)"
                                if "stylize" in fam.can else ""))
    path = checkpoint or ckpt.latest_checkpoint(run_dir)
    if path is None:
        raise BrushworkError(f"{run_dir} has no checkpoint yet; train it first")
    tensors, meta = ckpt.read_checkpoint(path, prefixes=ckpt.sampling_prefixes(fam.sampling + fam.companions))
    weights = ckpt.sampling_weights(tensors, fam.sampling)
    model_hash = tensors_hash(ckpt.sampling_weights(tensors, fam.sampling, fam.companions))  # as the file holds
    network = fam.network(cfg.model)
    if getattr(cfg.model, "adapter", ""):  # adapters only: its parent's weights with them merged in
        network = adapted_network(cfg.model, cfg.train, weights, network, run_dir.name)
        tensors |= ckpt.read_checkpoint(parent_autoencoder(cfg), ckpt.sampling_prefixes(fam.companions))[0]
    else:
        network.load_state_dict(weights)
    dev = resolve_device(device)
    sampling, codec = None, None
    if "paint" in fam.can:  # a diffusion run: how it samples, and what its denoiser works in
        sampling = DiffusionSampling(cfg.model.sampler, cfg.model.sampling_steps, cfg.model.guidance)
        codec = codec_for(cfg.model, ckpt.module_state(tensors, "autoencoder")).to(dev)
    return TrainedModel(network.to(dev).eval().requires_grad_(False), cfg, run_dir, int(meta["step"]),
                        model_hash, dev, record_paths, sampling, codec=codec, label=label)


MAKING = frozenset({"sample", "encode"})  # capabilities of runs that make images of their own


def checkpoint_with_hash(run_dir: Path, model_hash: str) -> Path | None:
    """The checkpoint of a run whose sampling weights hash to ``model_hash`` (newest first)."""
    try:
        run_dir = resolve_run(run_dir)
        kind = read_run_config(run_dir).kind
    except BrushworkError:
        return None
    fam = family(kind)
    if not fam.can & MAKING:
        return None
    for _, path in reversed(ckpt.list_checkpoints(run_dir)):
        if ckpt.model_hash(path, fam.sampling, fam.companions) == model_hash:
            return path
    return None


def find_model(model_hash: str, runs_dir: str | Path, name: str = "") -> tuple[Path, Path] | None:
    """(run, checkpoint) under ``runs_dir`` holding the model with this hash; runs named ``name``
    are tried first."""
    runs = sorted(p.parent for p in Path(runs_dir).rglob("config.json"))
    runs.sort(key=lambda run: run.name != name)  # stable: the recorded name first
    for run in runs:
        path = checkpoint_with_hash(run, model_hash)
        if path is not None:
            return run, path
    return None


def load_for_regeneration(image: str | Path, run: str | Path | None = None, runs_dir: str | Path = "runs",
                          device: str = "auto", painted: bool = False) -> tuple[TrainedModel, dict, float, object]:
    """(model, latent recipe, truncation or temperature, style request or None) recorded in an
    image brushwork made; the recipe is {"seed": s} or a child's or crossbreed's lineage.

    The model is found by its hash: in ``run`` when given (any of its checkpoints), else in the
    run path the record holds (``--record-paths``), else in any run under ``runs_dir``.
    A painting's record is refused unless ``painted`` (its sketch is needed too: ``making.paint``).
    """
    from brushwork.provenance import read_record

    record = read_record(image).get("brushwork") or {}
    if "paint" in record and not painted:  # a seed alone would make another image
        raise BrushworkError(f"{image} was painted from a sketch; remake it with brushwork sample --from "
                             f"{image} --sketch FILE{' --mask FILE' if 'mask_sha256' in record['paint'] else ''}")
    scale = record.get("truncation", record.get("temperature", 1.0 if "sampler" in record else None))
    model_hash = record.get("model_hash")
    recipe = record.get("latent") or ({"seed": record["seed"]} if "seed" in record else None)
    if recipe is None or scale is None or not model_hash:
        raise BrushworkError(f"{image} carries no brushwork seed record to regenerate from")
    found = _locate(model_hash, record, run, runs_dir, image)
    model = load_model(found[0], device, found[1])
    if model.sampling is not None:  # a diffusion image: the sampling it was made with
        model = dataclasses.replace(model, sampling=DiffusionSampling(
            record.get("sampler", model.sampling.sampler), int(record.get("sampling_steps", model.sampling.steps)),
            float(record.get("guidance", model.sampling.guidance))))
    return model, recipe, float(scale), style_from_record(record)


def _locate(model_hash: str, record: dict, run, runs_dir, image) -> tuple[Path, Path]:
    if run is not None:
        path = checkpoint_with_hash(Path(run), model_hash)
        if path is None:
            read_run_config(run)  # "not a brushwork run" when it is not one
            raise BrushworkError(f"{run} no longer holds the model that made {image} "
                                 f"(hash {model_hash[:10]}): none of its checkpoints matches")
        return Path(run), path
    recorded = Path(record["run"]) if record.get("run") else None
    if is_builtin(record.get("model_name", "")):  # made by a model that ships with brushwork
        recorded = Path(record["model_name"])
    if recorded is not None and (path := checkpoint_with_hash(recorded, model_hash)) is not None:
        return recorded, path
    if not Path(runs_dir).is_dir():
        raise BrushworkError(f"to find the model that made {image} (run {record.get('model_name')!r}, "
                             f"hash {model_hash[:10]}), pass --run RUN or --runs DIR "
                             f"({runs_dir} is not a folder)")
    found = find_model(model_hash, runs_dir, record.get("model_name", ""))
    if found is None:
        raise BrushworkError(f"no run under {runs_dir} holds the model that made {image} (run "
                             f"{record.get('model_name')!r}, hash {model_hash[:10]}); pass --run RUN "
                             f"or --runs DIR")
    return found


WRITE_BATCH = 64  # images made, written and freed at a time: memory stays flat for any count
GRID_MAX = 256  # grid.png shows at most this many (the first) images


def write_images(model: TrainedModel, recipes: list[dict], names: list[str], out_dir: Path,
                 truncation: float = 1.0, metadata: bool = True, ext: str = "png",
                 watermark: bool = False, c2pa_credentials=None, style=None,
                 keep: int = 0, progress: bool = True) -> tuple[list[Path], torch.Tensor]:
    """One image per latent recipe (``names[i].ext``) carrying its provenance record: the seed, or
    the whole lineage of a child or crossbreed; returns (paths, the first ``keep`` images
    [keep, 3, R, R]). Images are made and written WRITE_BATCH at a time, with a progress bar for
    long requests. ``style``: a conditional run's style or mix for all (default: each recipe's
    first seed's)."""
    from tqdm.auto import tqdm

    prior = model.prior_record(truncation)  # mistakes are refused before anything is written
    styles = model.seed_styles([root_seed(r) for r in recipes], style)
    latents_for_recipes(recipes[:1], model.z_dim, truncation)  # a bad truncation, before the folder
    ensure_dir(out_dir)
    paths, kept = [], []
    with tqdm(total=len(recipes), unit="img", desc="making", file=sys.stderr,
              disable=not progress or len(recipes) <= WRITE_BATCH) as bar:
        for start in range(0, len(recipes), WRITE_BATCH):
            part = slice(start, start + WRITE_BATCH)
            images = model.generate(latents_for_recipes(recipes[part], model.z_dim, truncation),
                                    styles[part] if styles else None)
            verdicts = judged(model, images, names[part], bar.write)
            for i, img in enumerate(to_pil(images), start):
                asked = describe(styles[i], model.style_names) if styles else {}
                recipe = recipes[i]
                latent = {"seed": recipe["seed"]} if set(recipe) == {"seed"} else {"latent": recipe}
                record = model.record(**latent, **prior, **asked, **verdicts[i - start]) if metadata else None
                img, record = enlarged(model, img, record)
                paths.append(_save(img, Path(out_dir) / f"{names[i]}.{ext}", record, watermark, c2pa_credentials))
            if len(kept) * WRITE_BATCH < keep:
                kept.append(images[:max(0, keep - start)])
            bar.update(len(images))
    return paths, torch.cat(kept) if kept else torch.zeros(0)


def enlarged(model: TrainedModel, img, record: dict | None):
    """(image, record) as written: enlarged by the model's upscaler (``--upscale RUN``) when it
    has one, the record then holding both sizes and the upscaler's hash."""
    if model.enlarge is None:
        return img, record
    img, grown = model.enlarge(img)
    return img, (record | {"upscale": grown} if record is not None else None)


def judged(model: TrainedModel, images: torch.Tensor, names: list[str], say=print) -> list[dict]:
    """``{"originality": verdict}`` per image when the model has a judge (else ``{}``); a copy
    is said at once (``say``), not only written into its file."""
    if model.judge is None:
        return [{} for _ in images]
    verdicts = model.judge(images)
    for name, verdict in zip(names, verdicts):
        if verdict and verdict["verdict"] == "COPY":
            work = verdict["nearest"]["edit" if "edited copy" in verdict["flagged_by"] else "region"]["work"]
            say(f"COPY: {name} looks like the training work {work} ({', '.join(verdict['flagged_by'])})",
                file=sys.stderr)
    return [{"originality": v} if v else {} for v in verdicts]


def _save(img, path: Path, record: dict | None, watermark: bool, c2pa_credentials) -> Path:
    if watermark:
        from brushwork.provenance.watermark import LABEL, embed_watermark

        img = embed_watermark(img)
        if record is not None:
            record["watermark"] = LABEL
    return save_image(img, path, record, c2pa_credentials)


def write_seed_images(model: TrainedModel, seeds: list[int], out_dir: Path, truncation: float = 1.0,
                      metadata: bool = True, grid: bool = False, ext: str = "png",
                      watermark: bool = False, c2pa_credentials=None, style=None,
                      progress: bool = True, avoid_copies: bool = False) -> list[Path]:
    """One image per seed (``seed0007.png``) carrying its provenance record; optional grid.png of
    the first GRID_MAX. ``truncation`` scales the latents: the GAN truncation psi, or a VAE's
    temperature. ``style``: a conditional run's style or mix for every seed (default: seed s gets
    style s % K). ``avoid_copies``: a seed whose image the model's judge calls a copy is replaced
    by the next unused seed (said on stderr)."""
    if avoid_copies:
        seeds = original_seeds(model, seeds, truncation, style)
    paths, images = write_images(model, [{"seed": s} for s in seeds], [f"seed{s:04d}" for s in seeds],
                                 out_dir, truncation, metadata, ext, watermark, c2pa_credentials, style,
                                 keep=GRID_MAX if grid else 0, progress=progress)
    if grid:
        asked = describe(style, model.style_names) if style is not None else {}
        shown = seeds[:GRID_MAX]
        record = model.record(seeds=shown, **model.prior_record(truncation), **asked) if metadata else None
        paths.append(save_png(grid_image(images), Path(out_dir) / "grid.png", record))
    return paths


MAX_REPLACEMENTS = 10  # --avoid-copies tries at most this many seeds per seed asked for


def original_seeds(model: TrainedModel, seeds: list[int], truncation: float = 1.0, style=None) -> list[int]:
    """``seeds`` with each one whose image is judged a copy replaced by the next seed not asked
    for and not tried; says which were replaced. (The judge remembers these verdicts, so the
    images are not checked twice when they are written.)"""
    if not getattr(model.judge, "indexes", None):
        raise BrushworkError("--avoid-copies needs the training collection's originality index "
                             f"(build it once: brushwork index {model.config.train.data})")
    chosen, tried, spare = list(seeds), set(seeds), max(seeds) + 1
    pending = list(range(len(seeds)))  # positions whose seed is not yet judged original
    while pending:
        batch, pending = pending[:WRITE_BATCH], pending[WRITE_BATCH:]
        batch_seeds = [chosen[i] for i in batch]
        for i, verdict in zip(batch, model.judge(model.generate_seeds(batch_seeds, truncation, style))):
            if verdict["verdict"] != "COPY":
                continue
            if len(tried) >= (MAX_REPLACEMENTS + 1) * len(seeds):
                raise BrushworkError(f"--avoid-copies gave up after {len(tried) - len(seeds)} replacement "
                                     "seeds: this run has memorised its collection")
            while spare in tried:
                spare += 1
            print(f"seed {chosen[i]} makes a copy of a training work: replaced by seed {spare}", file=sys.stderr)
            chosen[i] = spare
            tried.add(spare)
            pending.append(i)  # judged again
    return chosen


def breed_from_images(images: list[str | Path], out_dir: Path, n: int = 8, strength: float = 0.3,
                      first_seed: int = 0, run=None, runs_dir: str | Path = "runs", device: str = "auto",
                      record_paths: bool = False, prepare: Callable[[TrainedModel], TrainedModel] | None = None
                      ) -> list[Path]:
    """Children of one image or crossbreeds of two, from the seeds or lineages their records hold
    (both parents must come from the same model); the first parent's truncation and style.
    ``prepare``: the parents' model -> the model that makes them (e.g. one with a judge)."""
    parents = [load_for_regeneration(image, run, runs_dir, device) for image in images]
    model, _, truncation, style = parents[0]
    if any(p[0].model_hash != model.model_hash for p in parents):
        raise BrushworkError("the two parents were made by different models; crossbreeds need one model")
    model = model.using(record_paths=record_paths)
    if prepare is not None:
        model = prepare(model)
    return write_offspring(model, [p[1] for p in parents], out_dir, n, strength, first_seed,
                           truncation, style)


def write_offspring(model: TrainedModel, parents: list[dict], out_dir: Path, n: int = 8,
                    strength: float = 0.3, first_seed: int = 0, truncation: float = 1.0,
                    style=None, metadata: bool = True) -> list[Path]:
    """Artbreeder's two moves on latent recipes: one parent gives ``n`` children (its latent
    nudged by ``strength`` towards seeds first_seed..), two parents give ``n`` crossbreeds from
    one to the other. Every image records its lineage, so ``sample --from`` remakes it."""
    if len(parents) == 1:
        recipes = [child_recipe(parents[0], first_seed + i, strength) for i in range(n)]
        names = [f"child{first_seed + i:04d}" for i in range(n)]
    elif len(parents) == 2:
        recipes = [cross_recipe(parents[0], parents[1], t) for t in torch.linspace(0, 1, n + 2)[1:-1].tolist()]
        names = [f"cross{i:02d}" for i in range(n)]
    else:
        raise BrushworkError("children need one parent, crossbreeds two")
    return write_images(model, recipes, names, out_dir, truncation, metadata, style=style)[0]
