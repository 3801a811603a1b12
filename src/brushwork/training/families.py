"""Every model family, declared once: its config, how its training task and sampling network are
built, which checkpoint modules hold the weights its images are made with, and what it can do.

The CLI, the studio, ``training/run.py`` and ``making/`` read these declarations instead of
branching on family names, so a new family is one module of its own plus one entry in FAMILIES,
and a command asks for a capability (``require(family, "paint", ...)``) rather than a name.

A task builder takes (run config, dataset, device, world, run directory) and returns
(task, the data it trains on); a network builder takes the model config and returns the module
images are made with (its weights come from the ``sampling`` modules of a checkpoint).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from brushwork.config import (MODEL_CONFIGS, AdaINConfig, AutoencoderConfig, DiffusionConfig, GANConfig,
                              RunConfig, UpscalerConfig, VAEConfig, apply_overrides, gan_preset)
from brushwork.data.dataset import ImageBatcher, load_dataset
from brushwork.errors import BrushworkError
from brushwork.runs.directory import read_run_config
from brushwork.models.autoencoder import Autoencoder
from brushwork.models.diffusion import Denoiser
from brushwork.models.gan import build_gan
from brushwork.models.vae import VAE
from brushwork.training import adapt, finetune
from brushwork.training.adain import AdaINTask
from brushwork.training.autoencoder import AutoencoderTask
from brushwork.training.diffusion import DiffusionTask
from brushwork.training.gan import GANTask
from brushwork.training.latent import attach_autoencoder, prepare_latent_task
from brushwork.training.upscaler import UpscalerTask
from brushwork.training.vae import VAETask

# What a family's runs can be used for; commands and studio tabs ask for these by name. Each says
# what asks for it, as refusals name it ("... not a diffusion run (paint needs one)").
CAPABILITIES = {
    "sample": "making images from seeds",
    "paint": "paint",
    "encode": "encoding an artwork",
    "project": "projecting an artwork",
    "latent-space": "--latent",
    "upscale": "enlarging images",
    "stylize": "AdaIN style transfer",
}


@dataclass
class ModelOptions:
    """What a person chooses when starting a run, by the command line's flags or the studio's
    fields; each family's ``configure`` reads the ones that concern it and ignores the rest."""

    width: int = 64  # canvas width (the size of a square)
    height: int = 0  # canvas height when not square (0: square)
    settings: list[str] = field(default_factory=list)  # key=value overrides of any model setting (--set)
    # GAN
    preset: str = "modern"
    conditional: bool = False  # also diffusion
    creative: bool = False
    creativity: float | None = None
    balance_styles: bool = False
    augment: str = "fixed"  # "fixed" or "ada"
    freeze_d: int = 0
    # VAE
    latent_dim: int = 128
    beta: float = 1.0
    kl_warmup: int = 0
    recon: str = "mse"
    # diffusion
    dropout: float | None = None
    latent: str = ""  # the autoencoder run to learn in ("" = pixels)
    parent: str = ""  # the diffusion run to adapt (--from RUN or builtin:base): its settings are taken
    adapter: str = ""  # "lora": adapt with low-rank adapters ("" = fine-tune every weight)
    rank: int = 0  # their rank (0 = chosen by the number of works)
    # autoencoder
    factor: int = 4
    channels: int = 4
    features: str = ""  # VGG19 weights for its perceptual term ("" = Laplacian-pyramid L1)
    # upscaler
    scale: int = 2
    # AdaIN
    style_data: str = ""
    encoder: str = "imagenet"

    @property
    def sized(self) -> dict:
        return {"resolution": self.width, "height": 0 if self.height == self.width else self.height}


def _gan_config(o: ModelOptions) -> GANConfig:
    cfg = dataclasses.replace(gan_preset(o.preset, min(o.width, o.height or o.width)), **o.sized,
                              conditional=o.conditional, creative=o.creative, balance_styles=o.balance_styles,
                              ada=o.augment == "ada", freeze_d=o.freeze_d)
    if o.creativity is not None:
        if not o.creative:
            raise BrushworkError("--creativity goes with --creative")
        cfg.creativity = o.creativity
    return cfg


def _diffusion_config(o: ModelOptions) -> DiffusionConfig:
    if o.parent:
        if o.latent:
            raise BrushworkError(f"--latent goes without --from: a run adapted from {o.parent} learns in its latent space")
        return adapt.child_config(o.parent, o.width, o.height or o.width, o.adapter, o.rank, o.dropout)
    if o.adapter or o.rank:
        raise BrushworkError("--adapter and --rank go with --from RUN (adapting a trained diffusion run)")
    cfg = DiffusionConfig(**o.sized, conditional=o.conditional)
    if o.dropout is not None:
        cfg.dropout = o.dropout
    if not o.latent:
        return cfg
    require(read_run_config(Path(o.latent).expanduser()).kind, "latent-space", Path(o.latent).name)
    return attach_autoencoder(cfg, o.latent)


def _autoencoder_config(o: ModelOptions) -> AutoencoderConfig:
    vgg = {"perceptual": "vgg", "features": o.features} if o.features else {}
    return AutoencoderConfig(**o.sized, factor=o.factor, channels=o.channels, **vgg)


def _configured(build: Callable[[ModelOptions], Any]) -> Callable[[ModelOptions], Any]:
    """A family's builder from options to its config, with the options' overrides applied last."""
    return lambda options: apply_overrides(build(options), options.settings)


@dataclass(frozen=True)
class Parenting:
    """How a family's runs start from a trained run (--init-from / --from RUN)."""

    check: Callable[[RunConfig], None]  # refuse an unsuitable parent before anything is written
    # the collection as the run learns it (styles relabelled, schedule chosen), or None: unchanged
    adapt: Callable[..., Any] | None = None  # (run_cfg, dataset, say) -> dataset
    # copy the parent's weights into a fresh task's modules, returning the parent's hash; None when
    # the task builder starts from the parent itself
    load: Callable[[dict, RunConfig], str] | None = None


@dataclass(frozen=True)
class Family:
    name: str
    config: type  # its model config dataclass (config.py)
    configure: Callable[[ModelOptions], Any]  # options -> its model config
    task: Callable[..., tuple[Any, Any]]  # (run_cfg, ds, device, world, run_dir) -> (task, training data)
    network: Callable[[Any], nn.Module] | None  # model config -> the module images are made with
    sampling: tuple[str, ...]  # checkpoint modules holding its weights (the first one present is used)
    can: frozenset[str]  # capabilities (CAPABILITIES)
    hint: str  # what to do with a finished run; {run} is its folder
    scale_name: str = ""  # what scales its prior latents: "truncation", "temperature" or "" (nothing)
    companions: tuple[str, ...] = ()  # frozen modules its images also depend on (a latent run's autoencoder)
    evaluated: bool = False  # --eval-every scores its samples during training
    parenting: Parenting | None = None  # how it starts from a trained run (None: it cannot)

    @property
    def adapts(self) -> bool:
        """Its runs adapt a parent to a new collection (``--from``), taking the parent's settings."""
        return self.parenting is not None and self.parenting.adapt is not None

    def decoder(self, network: nn.Module) -> nn.Module:
        """The part of the network that turns latents into images (an encoder-decoder's decoder)."""
        return getattr(network, "decoder", network) if "encode" in self.can else network


# ---- task builders: (run_cfg, ds, device, world, run_dir) -> (task, what it trains on) ----------
def _gan_task(run_cfg, ds, device, world, run_dir):
    return GANTask(run_cfg.model, device, seed=run_cfg.train.seed, world=world), ds


def _held_out_task(task_cls):
    """A task that scores held-out works in each log row (VAE, autoencoder, upscaler)."""
    def build(run_cfg, ds, device, world, run_dir):
        train, held_out = ds.split(run_cfg.model.val_fraction, seed=run_cfg.train.seed)
        return task_cls(run_cfg.model, device, seed=run_cfg.train.seed, val_images=held_out.images,
                        world=world), train
    return build


def _diffusion_task(run_cfg, ds, device, world, run_dir):
    start = adapt.parent_weights(run_cfg, run_dir) if run_cfg.train.init_from else None
    task = DiffusionTask(run_cfg.model, device, seed=run_cfg.train.seed, world=world, start=start,
                         adapted=bool(run_cfg.train.init_from))
    if run_cfg.model.autoencoder:  # latent diffusion: the works' latents, encoded once
        return task, prepare_latent_task(task, run_cfg, ds, run_dir)
    return task, ds


def _adain_task(run_cfg, ds, device, world, run_dir):
    cfg, tc, seed = run_cfg.model, run_cfg.train, run_cfg.train.seed
    styles = load_dataset(cfg.style_data, cfg.resolution, tc.crop, tc.cache_dir, progress=False)
    style_batcher = ImageBatcher(styles, tc.batch_size, cfg.resolution, device, tc.flip,
                                 seed + 1, tc.data_on_device, world=world)
    task = AdaINTask(cfg, device, style_batcher, seed=seed, world=world)
    if cfg.encoder_hash and cfg.encoder_hash != task.encoder.identity:
        raise BrushworkError(f"this run's decoder was trained with VGG19 encoder {cfg.encoder_hash}, "
                             f"but {cfg.encoder!r} is {task.encoder.identity}")
    cfg.encoder_hash = task.encoder.identity  # pinned in config.json
    return task, ds


def _upscaler_network(cfg: UpscalerConfig) -> nn.Module:
    from brushwork.models.upscaler import Upscaler

    return Upscaler(cfg)


_SAMPLE_IT = "sample it with: brushwork sample {run} --seeds 0-15 --out {run}/images"
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("gan", GANConfig, _configured(_gan_config), _gan_task, lambda cfg: build_gan(cfg)[0], ("G_ema", "G"),
           frozenset({"sample", "project"}), _SAMPLE_IT, scale_name="truncation", evaluated=True,
           parenting=Parenting(finetune.check_parent_size, load=finetune.load_parent)),
    Family("vae", VAEConfig, _configured(lambda o: VAEConfig(**o.sized, latent_dim=o.latent_dim, beta=o.beta,
                                                             kl_warmup_steps=o.kl_warmup, recon=o.recon)),
           _held_out_task(VAETask), VAE, ("vae",), frozenset({"sample", "encode"}),
           "reproduce an artwork with: brushwork reconstruct {run} painting.jpg --out {run}/recon (or sample "
           "it: brushwork sample {run} --seeds 0-15 --temperature 0.8 --out {run}/images)",
           scale_name="temperature", evaluated=True),
    Family("diffusion", DiffusionConfig, _configured(_diffusion_config), _diffusion_task, Denoiser, ("denoiser_ema",),
           frozenset({"sample", "paint"}), _SAMPLE_IT + " (or paint a sketch: brushwork paint {run} "
           "--sketch sketch.png --out painted)", companions=("autoencoder",), evaluated=True,
           parenting=Parenting(lambda run_cfg: adapt.parent_config(run_cfg.train.init_from), adapt=adapt.adapt_to)),
    Family("autoencoder", AutoencoderConfig, _configured(_autoencoder_config), _held_out_task(AutoencoderTask), Autoencoder, ("autoencoder",),
           frozenset({"encode", "latent-space"}), "see what its latents keep: brushwork reconstruct {run} "
           "painting.jpg --out {run}/recon; learn in its latents: brushwork train diffusion --latent {run} "
           "--data DIR --out RUN", evaluated=True),
    Family("upscaler", UpscalerConfig, _configured(lambda o: UpscalerConfig(resolution=o.width, scale=o.scale)),
           _held_out_task(UpscalerTask), _upscaler_network, ("upscaler",),
           frozenset({"upscale"}), "enlarge images with: brushwork upscale image.png --run {run} --out enlarged"),
    Family("adain", AdaINConfig,
           _configured(lambda o: AdaINConfig(resolution=o.width, style_data=o.style_data, encoder=o.encoder)),
           _adain_task, None, ("decoder",), frozenset({"stylize"}),
           "stylise a photo with: brushwork stylize photo.jpg --style painting.jpg --method adain "
           "--model {run} --out stylised.png"),
)}
assert set(FAMILIES) == set(MODEL_CONFIGS), "every config family needs a declaration here"


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise BrushworkError(f"unknown model family {name!r} (choose {', '.join(FAMILIES)})")
    return FAMILIES[name]


def families_that(capability: str) -> list[str]:
    return [f.name for f in FAMILIES.values() if capability in f.can]


def require(kind: str, capability: str, who: str | Path = "this run") -> Family:
    """The family of ``kind`` if it can do ``capability``; else one line saying which runs can."""
    fam = family(kind)
    if capability not in fam.can:
        names = families_that(capability) or ["no"]
        able = " or ".join(filter(None, [", ".join(names[:-1]), names[-1]]))
        article = "an" if able[0] in "aeiou" else "a"
        raise BrushworkError(f"{who} is {a_run(kind)}, not {article} {able} run ({CAPABILITIES[capability]} needs one)")
    return fam


def a_run(kind: str) -> str:
    """'a gan run', 'an autoencoder run'."""
    return f"a{'n' if kind[0] in 'aeiou' else ''} {kind} run"


def run_family(run_cfg: RunConfig) -> Family:
    return family(run_cfg.kind)


def next_step_hint(kind: str, run_dir: Path) -> str:
    """What to do with a finished run of each family: the command that applies to it."""
    return family(kind).hint.format(run=run_dir)
