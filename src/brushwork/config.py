"""Dataclass configs: every hyperparameter is declared and explained here, once.

A run directory's ``config.json`` holds these dataclasses as plain JSON, which is all
that is needed to rebuild the models (no pickles, no executable config files).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from brushwork.errors import BrushworkError


def check_resolution(res: int, highest: int = 256, who: str = "") -> None:
    if res < 32 or res > highest or res & (res - 1):
        raise BrushworkError(f"resolution must be a power of two from 32 to {highest}"
                             f"{' for ' + who if who else ''}, got {res}")


# -- canvases: images that are not square ------------------------------------------------------
# A canvas is (height, width). Configs keep ``resolution`` (the width) and ``height`` (0: square).
# The shorter side is a power of two, as square sizes are; the longer side a multiple of a quarter
# of it, so that every model starts from a map 4 px on its shorter side and k px on its longer
# (k = 4..16) and doubles both: 64x80 starts from 4 x 5. Ratios beyond 1:4 are refused.
MAX_RATIO = 4


def canvas_of(resolution: int, height: int = 0) -> tuple[int, int]:
    """(height, width) of a config's images."""
    return (height or resolution), resolution


def base_map(resolution: int, height: int = 0) -> tuple[int, int]:
    """(h0, w0): the map a model grows from (4 x 4 for squares), doubling to the canvas."""
    h, w = canvas_of(resolution, height)
    unit = min(h, w) // 4
    return h // unit, w // unit


def sizes_that_work(short: int) -> str:
    """A readable list of the canvases with this shorter side, e.g. '64x80, 64x96, ...'."""
    longs = [short * k // 4 for k in range(5, 4 * MAX_RATIO + 1)]
    return ", ".join(f"{short}x{n}" for n in longs[:6]) + f", ... {short}x{longs[-1]} (and the same turned)"


def check_canvas(resolution: int, height: int = 0, highest: int = 256, who: str = "") -> None:
    """Refuse a canvas no model can be built for, saying which sizes work."""
    h, w = canvas_of(resolution, height)
    if h == w:
        return check_resolution(w, highest, who)
    short, long = min(h, w), max(h, w)
    if long > MAX_RATIO * short:
        raise BrushworkError(f"size {w}x{h}: a ratio beyond 1:{MAX_RATIO} is not supported")
    try:
        check_resolution(short, highest, who)
    except BrushworkError:
        raise BrushworkError(f"size {w}x{h}: the shorter side must be a power of two from 32 to {highest}"
                             f"{' for ' + who if who else ''}") from None
    if long % (short // 4):
        raise BrushworkError(f"size {w}x{h}: the longer side must be a multiple of {short // 4} "
                             f"(a quarter of the shorter); sizes that work: {sizes_that_work(short)}")


def parse_size(text: str) -> tuple[int, int]:
    """'64x80' -> (resolution 64, height 80): width x height, as image sizes are written."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BrushworkError(f"--size {text!r}: write it as WIDTHxHEIGHT, e.g. 64x80") from None
    if w < 1 or h < 1:
        raise BrushworkError(f"--size {text!r}: both sides must be positive")
    return w, (0 if h == w else h)


def image_size(model_cfg) -> tuple[int, int]:
    """(height, width) of the images a model config makes (families without ``height``: square)."""
    return canvas_of(model_cfg.resolution, getattr(model_cfg, "height", 0))


def index_side(model_cfg) -> int:
    """The resolution of the originality index a run's images are judged by: its shorter side (a
    canvas that is not square is judged by its centre square, as the index holds the works)."""
    return min(image_size(model_cfg))


def size_text(resolution: int, height: int = 0) -> str:
    """'64' for squares, '64x80' otherwise (width x height)."""
    return f"{resolution}x{height}" if height and height != resolution else str(resolution)


@dataclass
class GANConfig:
    """Architecture and optimisation of a GAN. Presets below fill it in."""

    preset: str = "modern"  # name of the preset this config started from (informational)
    architecture: str = "dcgan"  # "seed" (the project's original Keras design), "dcgan" (Radford
    # et al.) or "fastgan" (Liu et al. 2021: skip-layer excitation, self-supervised D)
    resolution: int = 64  # output width in pixels (square: the size), a power of two in 32..256 (fastgan: ..1024)
    height: int = 0  # output height when not square (0: square); see check_canvas for the sizes that work
    z_dim: int = 100  # latent size; 100 in both the seed design and DCGAN
    g_width: int = 64  # generator channels at the highest resolution (DCGAN's ngf)
    g_upsample: str = "transpose"  # dcgan G's 2x layers: "transpose" (4x4 stride-2 transposed conv,
    # DCGAN), "resize" (nearest 2x + 3x3 conv: no checkerboard artefacts early in training) or
    # "transpose-as-resize" (transposed convs initialised to equal a resize conv) or "grow" (resize
    # convs that become transposed convs between g_grow_start_kimg and + g_grow_kimg images)
    g_grow_start_kimg: float = 20.0  # "grow": thousands of images trained as pure resize convs
    g_grow_kimg: float = 20.0  # "grow": thousands of images over which the transposed part fades in
    d_width: int = 64  # discriminator channels at the highest resolution (DCGAN's ndf)
    d_batchnorm: bool = True  # BatchNorm in D (DCGAN); off when spectral norm is used
    spectral_norm: bool = False  # spectral-normalise every D layer (Miyato et al. 2018)
    loss: str = "bce"  # "bce" (non-saturating, DCGAN) or "hinge" (Lim & Ye 2017, SAGAN, BigGAN)
    g_lr: float = 2e-4  # Adam learning rate of G; DCGAN's 2e-4
    d_lr: float = 2e-4  # Adam learning rate of D
    beta1: float = 0.5  # Adam beta1; 0.5 as in DCGAN (momentum hurts adversarial games)
    beta2: float = 0.999  # Adam beta2
    ema_halflife_kimg: float = 0.0  # EMA of G: weight halves every this many thousand images; 0 = no EMA
    ema_rampup: float = 0.05  # early on, half-life is at most this fraction of images seen (StyleGAN2-ADA)
    diffaugment: str = ""  # comma list of "color", "translation", "cutout" (Zhao et al. 2020); "" = none
    ada: bool = False  # adaptive augmentation (Karras et al. 2020): apply those ops with a probability
    # p that rises while D overfits the reals and falls when it does not (--augment ada)
    ada_target: float = 0.6  # ADA's target for E[sign(D(real))] (the paper's 0.6)
    ada_interval: int = 4  # steps between adjustments of p
    ada_kimg: float = 500.0  # p can move from 0 to 1 in this many thousand images (the paper's 500)
    r1_gamma: float = 0.0  # R1 gradient penalty weight on reals (Mescheder et al. 2018); 0 = off
    r1_interval: int = 16  # lazy regularisation: apply R1 every this many steps, scaled up to match
    mixed_precision: str = "auto"  # "bf16", "no", or "auto" (bf16 on capable CUDA GPUs and on CPUs with native bf16)
    sync_bn: bool = True  # under torchrun: BatchNorm statistics over the global batch (SyncBatchNorm)
    channels_last: bool = True  # NHWC memory layout; faster convolutions on GPUs and oneDNN CPUs
    compile: bool = False  # torch.compile the G and D modules (not the whole step); GPU only pays off
    cuda_graph: bool = False  # replay each whole step as a CUDA graph (one CUDA process; not fastgan):
    # removes the launch overhead that bounds small batches on large GPUs
    # -- styles (first-level subfolders of the data) ------------------------------------------
    conditional: bool = False  # one G for all styles: style embedding joined to z, projection D
    creative: bool = False  # CAN (Elgammal et al. 2017): D gets a style head, G a style-ambiguity loss
    creativity: float = 1.0  # weight of the style-ambiguity term in G's loss (0 = the plain GAN loss)
    num_styles: int = 0  # K, set from the data's style folders when a conditional/creative run starts
    style_dim: int = 64  # size of the style embedding joined to z (conditional G)
    balance_styles: bool = False  # draw styles uniformly for reals and fakes (default: as the data has them)
    mode_seeking: float = 0.0  # weight of the mode-seeking term for conditional G (Mao et al. 2019); 0 = off
    cond_rampup_kimg: float = 0.0  # conditioning fades in over this many thousand images (0 = at once);
    # small data collapses within each style when conditioned from the start (Shahbazi et al. 2023)
    freeze_d: int = 0  # fine-tuning: keep D's first N convolutions fixed (FreezeD, Mo et al. 2020)
    # -- fastgan: D reconstructs real images from its own features --------------------------------
    d_recon: str = "auto"  # that loss: "vgg" (perceptual, ImageNet VGG19), "pixel" (L1), "auto" (vgg
    # when the ImageNet weights are on disk, else pixel), "off"
    d_recon_weight: float = 1.0  # its weight in D's loss (the paper: 1)

    def validate(self) -> None:
        if self.architecture not in ("seed", "dcgan", "fastgan"):
            raise BrushworkError(f"unknown architecture {self.architecture!r} (choose seed, dcgan or fastgan)")
        fastgan = self.architecture == "fastgan"
        if self.height and self.height != self.resolution and self.architecture == "seed":
            raise BrushworkError(f"the {self.preset} preset makes square images only for now; the dcgan, "
                                 f"modern and fastgan presets take --size {size_text(self.resolution, self.height)}")
        check_canvas(self.resolution, self.height, 1024 if fastgan else 256,
                     "the fastgan preset" if fastgan else "this preset (fastgan goes to 1024)")
        if fastgan and self.styled:
            raise BrushworkError("the fastgan preset has no conditional or creative mode yet; use "
                                 "--preset modern for --conditional or --creative")
        if self.ada and not self.diffaugment:
            raise BrushworkError("--augment ada needs augmentation ops (--set diffaugment=color,translation)")
        if self.ada_interval < 1 or self.ada_kimg <= 0:
            raise BrushworkError("ada_interval must be >= 1 and ada_kimg > 0")
        if self.g_upsample not in ("transpose", "resize", "transpose-as-resize", "grow"):
            raise BrushworkError(f"g_upsample must be transpose, resize, transpose-as-resize or grow, got "
                                 f"{self.g_upsample!r}")
        if self.d_recon not in ("auto", "vgg", "pixel", "off"):
            raise BrushworkError(f"d_recon must be auto, vgg, pixel or off, got {self.d_recon!r}")
        if self.loss not in ("bce", "hinge"):
            raise BrushworkError(f"unknown GAN loss {self.loss!r} (choose bce or hinge)")
        if self.mixed_precision not in ("auto", "bf16", "no"):
            raise BrushworkError("mixed_precision must be auto, bf16 or no")
        parse_policy(self.diffaugment)
        if self.z_dim < 1 or self.g_width < 1 or self.d_width < 1:
            raise BrushworkError("z_dim, g_width and d_width must be positive")
        if self.conditional and self.creative:
            raise BrushworkError("--creative and --conditional cannot be combined: creative mode "
                                 "rewards works no style explains, conditioning asks for one style")
        if self.creativity < 0 or self.style_dim < 1:
            raise BrushworkError("creativity must be >= 0 and style_dim >= 1")

    @property
    def styled(self) -> bool:
        """Whether the models know about styles (labels matter in training)."""
        return self.conditional or self.creative


AUGMENTATION_OPS = ("color", "translation", "cutout")  # DiffAugment's ops (data/augment.py implements them)


def parse_policy(policy: str) -> list[str]:
    """'color,translation' -> the DiffAugment ops it names, each checked."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    for name in names:
        if name not in AUGMENTATION_OPS:
            raise BrushworkError(f"unknown DiffAugment op {name!r} (choose from {', '.join(AUGMENTATION_OPS)})")
    return names


# The fastgan preset's batch unless --batch-size is given: the FastGAN paper's at every resolution.
# Memory grows with batch x resolution (benchmarks/RESULTS.md, "fastgan memory"): the general
# default of 64 would not fit 1024 px on a 24 GB GPU.
FASTGAN_BATCH = 8


def gan_preset(name: str, resolution: int = 64) -> GANConfig:
    """The three supported starting points; see README for what each is for."""
    if name == "seed":
        # The painting-assistant design the project grew from: Dense -> 8x8x128 -> transposed
        # convs; D of plain strided convs -> Dense -> sigmoid; BCE. Original learning rates kept.
        return GANConfig(preset="seed", architecture="seed", resolution=resolution, g_width=128,
                         d_width=64, d_batchnorm=False, loss="bce", channels_last=False,
                         mixed_precision="no")
    if name == "dcgan":
        # Textbook DCGAN maths: BatchNorm in G and D, BCE, Adam 2e-4 (0.5, 0.999), no tricks.
        # (bf16 and channels_last are speed settings, not part of the recipe.)
        return GANConfig(preset="dcgan", architecture="dcgan", resolution=resolution)
    if name == "modern":
        # Small-data art recipe: SN discriminator + hinge loss, EMA generator for sampling,
        # DiffAugment on reals and fakes, bf16 where the hardware has it. D learns faster than G
        # (TTUR, Heusel et al. 2017) which SN discriminators tolerate well.
        # G's 2x layers train as resize convs for the first 20k images (no checkerboard while
        # their kernels are young), then grow into transposed convs over the next 20k; DiffAugment
        # colour + translation (cutout slowed early training and did not help by 100k images).
        # Measured at 32 px (benchmarks/RESULTS.md, "Early training"), SWD after 20k images 0.53x
        # the textbook DCGAN's on two seeds, after 100k 34.0 / 29.6 vs 40.4 / 42.8 for the
        # previous recipe (transposed convs initialised as resize convs, with cutout).
        return GANConfig(preset="modern", architecture="dcgan", resolution=resolution,
                         d_batchnorm=False, spectral_norm=True, loss="hinge", g_lr=2e-4, d_lr=4e-4,
                         beta1=0.0, beta2=0.99, ema_halflife_kimg=10.0,
                         diffaugment="color,translation", g_upsample="grow")
    if name == "fastgan":
        # FastGAN (Liu et al. 2021) as published: z 256, BatchNorm + GLU generator with skip-layer
        # excitation, spectral-norm D with reconstruction decoders, hinge loss, Adam 2e-4
        # (0.5, 0.999), EMA of G (the paper's 0.999 per step at batch 8: half-life ~5.5k images),
        # DiffAugment colour + translation (no cutout, nothing that would leak into samples).
        return GANConfig(preset="fastgan", architecture="fastgan", resolution=resolution, z_dim=256,
                         d_batchnorm=True, spectral_norm=True, loss="hinge", g_lr=2e-4, d_lr=2e-4,
                         beta1=0.5, beta2=0.999, ema_halflife_kimg=5.5, diffaugment="color,translation")
    raise BrushworkError(f"unknown preset {name!r} (choose seed, dcgan, modern or fastgan)")


@dataclass
class VAEConfig:
    """Convolutional VAE. Loss = ||x - x_hat||^2 + beta * KL (the project's design)."""

    resolution: int = 64  # image width (square: the size), a power of two in 32..256
    height: int = 0  # image height when not square (0: square); see check_canvas
    latent_dim: int = 128  # size of z
    width: int = 64  # encoder channels at the highest resolution (decoder mirrors it)
    beta: float = 1.0  # weight of KL (lambda in the design; beta-VAE, Higgins et al. 2017)
    kl_warmup_steps: int = 0  # ramp beta linearly from 0 over this many steps (Bowman et al. 2016)
    recon: str = "mse"  # reconstruction term: "mse" (sum of squared errors) or "l1" (sum of |errors|)
    perceptual_weight: float = 0.0  # weight of a VGG19 feature loss added to the reconstruction; 0 = off
    vgg_weights: str = "imagenet"  # for it: "imagenet" (torchvision cache), a local file, or "random"
    lr: float = 1e-3  # Adam learning rate
    beta1: float = 0.9  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    val_fraction: float = 0.05  # held out for validation (fixed, seeded); at least 16 images
    mixed_precision: str = "auto"  # "bf16", "no", or "auto" (bf16 on capable CUDA GPUs and CPUs)
    sync_bn: bool = True  # under torchrun: BatchNorm statistics over the global batch (SyncBatchNorm)
    channels_last: bool = True  # NHWC memory layout

    def validate(self) -> None:
        check_canvas(self.resolution, self.height)
        if self.recon not in ("mse", "l1"):
            raise BrushworkError(f"unknown reconstruction term {self.recon!r} (choose mse or l1)")
        if self.latent_dim < 1 or self.width < 1 or self.beta < 0:
            raise BrushworkError("latent_dim and width must be positive, beta >= 0")
        if not 0 < self.val_fraction < 0.5:
            raise BrushworkError("val_fraction must be between 0 and 0.5")

    @property
    def z_dim(self) -> int:  # the name sampling code shares with GANConfig
        return self.latent_dim


@dataclass
class AutoencoderConfig:
    """A KL-regularised convolutional autoencoder (the first stage of latent diffusion, Rombach et al.
    2022): it compresses each painting ``factor`` times along each side into ``channels`` maps, and a
    diffusion model then learns in that small space (``DiffusionConfig.autoencoder``).

    Loss (LDM's): L1 + perceptual term + kl_weight * KL, and after ``disc_start`` steps a patch
    discriminator's hinge loss, weighted adaptively (Esser et al. 2021) so that it never outweighs
    the reconstruction."""

    resolution: int = 128  # image width (square: the size), a power of two in 32..256
    height: int = 0  # image height when not square (0: square); see check_canvas
    factor: int = 4  # downsampling per side: 4 (128 px -> 32 x 32 latents) or 8 (-> 16 x 16)
    channels: int = 4  # latent channels (LDM's f=4 and f=8 KL autoencoders use 3 and 4)
    width: int = 32  # channels at full resolution; each halving doubles them, up to 4x
    blocks: int = 1  # residual blocks per level (LDM: 2; 1 keeps a 128 px step affordable on CPUs)
    norm: str = "channel"  # normalisation in the blocks: "channel" (each pixel's channels, as ConvNeXt's
    # LayerNorm) or "group" (LDM's GroupNorm, 32 groups). GroupNorm's statistics span the whole map,
    # so a network can steer a map by planting one huge activation in it; at width 32 each group is
    # one map, and our f=4 decoder did just that: saturated blue specks where its features spiked
    # (the maps' kurtosis 31, a Gaussian's 3), StyleGAN2's "droplets". No statistic of "channel" spans space, so nothing
    # is gained by a spike, and a pixel's decoding depends on its neighbourhood only.
    kl_weight: float = 1e-6  # the KL term is only a leash on the latents' scale (LDM's 1e-6)
    perceptual: str = "laplacian"  # "laplacian": L1 on a Laplacian pyramid's bands (Bojanowski et al.
    # 2018; needs no downloaded weights), or "vgg" (ImageNet VGG19 features; --features FILE)
    features: str = ""  # "vgg": the VGG19 weights ("imagenet" from torchvision's cache, or a file)
    perceptual_weight: float = 1.0  # its weight beside L1
    disc_start: int = 50_000  # steps of reconstruction only before the patch discriminator joins
    # (LDM's 50k: the autoencoder converged first). Joining at 2,000 in a 20-minute CPU run cost
    # 2 dB of held-out PSNR in 466 steps (28.1 -> 26.0) while the discriminator stayed at chance
    # (hinge loss 2.000) and its adaptive weight climbed to 410: an untrained D only adds noise.
    disc_weight: float = 0.5  # scale of the adaptive adversarial weight (LDM's 0.5)
    disc_width: int = 64  # channels of the patch discriminator's first layer (pix2pix's 64)
    lr: float = 4.5e-6 * 64  # Adam learning rate (LDM's base 4.5e-6 x its batch of 64)
    beta1: float = 0.5  # Adam betas (LDM's, for both networks)
    beta2: float = 0.9
    val_fraction: float = 0.05  # held out for validation (fixed, seeded); at least 16 images
    mixed_precision: str = "auto"  # "bf16", "no", or "auto" (bf16 on capable CUDA GPUs and CPUs)
    channels_last: bool = True  # NHWC networks and batches: the channel norm then needs no copies;
    # a bf16 step at 128 px, batch 16, on 2 CPU cores: 0.48 s against 0.91 (GroupNorm, NCHW) and
    # 1.09 (channel norm, NCHW)

    # what a key absent from a saved config means: the behaviour before the key existed
    ABSENT_MEANS: ClassVar[dict] = {"norm": "group"}

    def validate(self) -> None:
        check_canvas(self.resolution, self.height, 256, "the autoencoder")
        if self.norm not in ("channel", "group"):
            raise BrushworkError(f"norm must be channel or group, got {self.norm!r}")
        if self.factor not in (4, 8):
            raise BrushworkError(f"--factor must be 4 or 8, got {self.factor}")
        if self.channels < 1 or self.width < 1 or self.blocks < 1 or self.disc_width < 1:
            raise BrushworkError("channels, width, blocks and disc_width must be >= 1")
        if self.perceptual not in ("laplacian", "vgg"):
            raise BrushworkError(f"perceptual must be laplacian or vgg, got {self.perceptual!r}")
        if self.perceptual == "vgg" and not self.features:
            raise BrushworkError("the vgg perceptual term needs VGG19 weights (--features FILE)")
        if min(self.kl_weight, self.perceptual_weight, self.disc_weight, self.disc_start) < 0:
            raise BrushworkError("kl_weight, perceptual_weight, disc_weight and disc_start must be >= 0")
        if not 0 < self.val_fraction < 0.5:
            raise BrushworkError("val_fraction must be between 0 and 0.5")
        if self.mixed_precision not in ("auto", "bf16", "no"):
            raise BrushworkError("mixed_precision must be auto, bf16 or no")

    @property
    def multipliers(self) -> list[int]:
        """Channel multiples of each level, finest first: one level per halving, plus the latent's."""
        levels = self.factor.bit_length()  # f=4: 3 levels (R, R/2, R/4); f=8: 4
        return [min(2 ** i, 4) for i in range(levels)]

    @property
    def latent_size(self) -> tuple[int, int]:
        """(height, width) of a latent."""
        h, w = canvas_of(self.resolution, self.height)
        return h // self.factor, w // self.factor


@dataclass
class DiffusionConfig:
    """A pixel-space diffusion model in the EDM formulation (Karras et al. 2022) with a small U-Net.

    The defaults are EDM's where they carry over (sigma_data, P_mean/P_std, the sampling
    schedule); the network and schedule are sized for CPUs and small collections.
    """

    resolution: int = 32  # image width (square: the size), a power of two in 32..128 (the U-Net is convolutional)
    height: int = 0  # image height when not square (0: square); see check_canvas
    width: int = 64  # U-Net channels at full resolution (DDPM++ uses 128 at 32 px)
    channel_mult: str = "1,2,2"  # channels of each level as multiples of width, finest first;
    # every further level halves the image (32 px, "1,2,2": 32, 16 and 8 px levels)
    blocks: int = 2  # residual blocks per level on the way down (one more on the way up)
    attention_levels: int = 1  # self-attention in this many of the coarsest levels (and the middle)
    dropout: float = 0.0  # in every residual block (EDM: 0.13 on CIFAR-10); curbs memorisation
    sigma_data: float = 0.5  # standard deviation of the data in [-1, 1] (EDM's 0.5)
    p_mean: float = -1.2  # training noise levels: ln(sigma) ~ N(p_mean, p_std^2) (EDM's values)
    p_std: float = 1.2
    sigma_min: float = 0.002  # sampling schedule: from sigma_max down to sigma_min, then 0
    sigma_max: float = 80.0
    rho: float = 7.0  # schedule curvature: steps crowd towards low noise as rho grows (EDM's 7)
    lr: float = 1e-3  # Adam learning rate, reached after lr_rampup_kimg thousand images (EDM's;
    # 32 px romanticism, 12k images: SWD 87 vs 123 with 2e-4)
    lr_rampup_kimg: float = 2.0  # linear warm-up (EDM: 10M images at its scale)
    beta1: float = 0.9  # Adam betas (EDM's)
    beta2: float = 0.999
    ema_halflife_kimg: float = 10.0  # EMA of the weights used for sampling (EDM: 500 at 200M images)
    ema_rampup: float = 0.05  # early on, the half-life is at most this fraction of images seen
    conditional: bool = False  # learn the styles (first-level subfolders): --style at sampling
    num_styles: int = 0  # K, set from the data's style folders when a conditional run starts
    cond_drop: float = 0.1  # conditional runs: fraction of images trained without their style,
    # so the same model also denoises without one (classifier-free guidance, Ho & Salimans 2022)
    sampler: str = "dpm2m"  # default for sampling: "heun" (EDM's 2nd-order) or "dpm2m" (DPM-Solver++(2M))
    sampling_steps: int = 32  # default number of noise levels visited when sampling
    guidance: float = 1.0  # default classifier-free guidance of conditional runs (1 = none)
    mixed_precision: str = "auto"  # "bf16", "no", or "auto" (bf16 on capable CUDA GPUs and CPUs)
    channels_last: bool = False  # NHWC memory layout: slower here (CPU step 51 vs 64 img/s at 32 px)
    # -- latent diffusion (Rombach et al. 2022): learn in an autoencoder's latents, not in pixels ---
    autoencoder: str = ""  # the autoencoder run (--latent AE, absolute path) whose latents it learns; "" = pixels
    autoencoder_hash: str = ""  # that autoencoder's model hash (set at start; its weights travel in every checkpoint)
    autoencoder_config: dict = field(default_factory=dict)  # its AutoencoderConfig (set at start)
    latent_scale: float = 0.0  # latents are multiplied by this so that their spread is sigma_data (set at start)
    # -- adapted from another diffusion run (--from RUN, training/adapt.py) ---------------------------
    adapter: str = ""  # "lora": low-rank adapters on the parent's frozen weights; "" = every weight trains
    adapter_rank: int = 0  # LoRA rank r (0 = chosen by the number of works when adapting)
    default_styles: list = field(default_factory=list)  # the styles seeds are made in by default (an
    # adapted run: its own collection's; empty = every style in turn)
    pairwise: float = 0.0  # adapted runs: weight of DDPM-PA's pairwise-similarity term, which keeps the
    # parent's relative distances between images (costs one more forward pass of the parent per step)

    def validate(self) -> None:
        check_canvas(self.resolution, self.height, 256 if self.autoencoder else 128,
                     "latent diffusion" if self.autoencoder else "pixel diffusion (latent diffusion, --latent AE, goes to 256)")
        if self.width < 1 or self.blocks < 1 or not self.multipliers or min(self.multipliers) < 1:
            raise BrushworkError("width and blocks must be >= 1; channel_mult a comma list of "
                                 "positive integers, e.g. 1,2,2")
        if min(self.space[1:]) >> (len(self.multipliers) - 1) < 4:
            raise BrushworkError(f"channel_mult {self.channel_mult!r} has too many levels for "
                                 f"{size_text(self.resolution, self.height)} px"
                                 f"{' (latents ' + size_text(self.space[2], self.space[1]) + ')' if self.autoencoder else ''}"
                                 f" (the coarsest must be at least 4 px)")
        if not 0 <= self.attention_levels <= len(self.multipliers):
            raise BrushworkError(f"attention_levels must be in 0..{len(self.multipliers)}")
        if not 0 <= self.dropout < 1 or not 0 <= self.cond_drop < 1:
            raise BrushworkError("dropout and cond_drop must be in [0, 1)")
        if not 0 < self.sigma_min < self.sigma_max or self.sigma_data <= 0 or self.rho <= 0:
            raise BrushworkError("need 0 < sigma_min < sigma_max, sigma_data > 0 and rho > 0")
        if self.sampler not in SAMPLERS:
            raise BrushworkError(f"unknown sampler {self.sampler!r} (choose {' or '.join(SAMPLERS)})")
        if self.sampling_steps < 1 or self.guidance < 0:
            raise BrushworkError("sampling_steps must be >= 1 and guidance >= 0")
        if self.mixed_precision not in ("auto", "bf16", "no"):
            raise BrushworkError("mixed_precision must be auto, bf16 or no")
        if self.adapter not in ("", "lora") or self.adapter_rank < 0 or self.pairwise < 0:
            raise BrushworkError("adapter must be lora or empty, adapter_rank and pairwise >= 0")

    @property
    def multipliers(self) -> list[int]:
        try:
            return [int(m) for m in str(self.channel_mult).split(",") if m.strip()]
        except ValueError:
            raise BrushworkError(f"channel_mult must be a comma list of integers, got "
                                 f"{self.channel_mult!r}") from None

    @property
    def styled(self) -> bool:
        return self.conditional

    @property
    def latent_autoencoder(self) -> AutoencoderConfig | None:
        """The config of the autoencoder a latent run learns in (None: pixel diffusion)."""
        return from_dict(AutoencoderConfig, self.autoencoder_config) if self.autoencoder_config else None

    @property
    def space(self) -> tuple[int, int, int]:
        """(channels, height, width) of what the denoiser sees: pixels, or the autoencoder's latents."""
        ae = self.latent_autoencoder
        h, w = canvas_of(self.resolution, self.height)
        return (3, h, w) if ae is None else (ae.channels, h // ae.factor, w // ae.factor)

    @property
    def z_dim(self) -> int:
        """A diffusion model's latent is its starting noise: one value per channel and position."""
        c, h, w = self.space
        return c * h * w


SAMPLERS = ("heun", "dpm2m")


@dataclass
class AdaINConfig:
    """Training an AdaIN decoder for fast arbitrary style transfer (Huang & Belongie 2017)."""

    resolution: int = 256  # training crops (the paper: 256 from images resized to 512)
    width: int = 64  # decoder channels at full resolution (the paper's 64)
    style_data: str = ""  # folder of style images (paintings); content comes from TrainConfig.data
    style_weight: float = 10.0  # lambda in L = L_content + lambda * L_style (the paper uses 10)
    lr: float = 1e-4  # Adam learning rate (the paper's)
    encoder: str = "imagenet"  # VGG19 weights: "imagenet", a local file, or "random" (weak stand-in)
    encoder_hash: str = ""  # identity of the encoder the decoder was trained with (set at start)
    mixed_precision: str = "no"  # kept fp32: VGG statistics are sensitive to bf16 rounding
    channels_last: bool = False

    def validate(self) -> None:
        if self.resolution < 32 or self.resolution % 8:
            raise BrushworkError(f"AdaIN resolution must be a multiple of 8, >= 32; got {self.resolution}")
        if not self.style_data:
            raise BrushworkError("AdaIN training needs --style DIR (a folder of style images)")
        if self.width < 1 or self.style_weight < 0:
            raise BrushworkError("width must be >= 1 and style_weight >= 0")


@dataclass
class TrainConfig:
    """How a run is driven: data, schedule, logging, checkpoints."""

    data: str = "builtin:abstract"  # image folder (subfolders = style labels) or builtin:abstract
    batch_size: int = 64  # images per step
    steps: int = 5000  # optimisation steps in total (a resumed run continues to this count)
    log_every: int = 50  # steps between metrics.jsonl rows / TensorBoard points
    sample_every: int = 500  # steps between sample grids (fixed latents, EMA generator)
    ckpt_every: int = 1000  # steps between checkpoints (also written at the end and on Ctrl-C)
    keep_checkpoints: int = 3  # older checkpoints beyond this many are deleted
    seed: int = 0  # seeds weight init, data order and augmentation
    device: str = "auto"  # "auto", "cpu", "cuda" or "cuda:N"
    crop: str = "center"  # "center" or "random" (random crops of a slightly larger cached image)
    flip: bool = True  # random horizontal flips of the training images
    cache_dir: str = ""  # decoded-image cache; "" = $BRUSHWORK_CACHE or the platform's (data/dataset.py)
    data_on_device: bool = True  # keep the decoded dataset on the GPU when it fits (4 GiB cap)
    n_sample: int = 64  # images in each sample grid
    eval_every: int = 0  # steps between quality evaluations (metrics.jsonl, TensorBoard); 0 = off
    eval_n: int = 1000  # generated and real images per evaluation
    eval_metrics: str = "swd"  # comma list of swd, fid, kid, pr (FID/KID/PR need Inception weights)
    init_from: str = ""  # fine-tuning: the run whose weights this run started from (--init-from)
    init_from_hash: str = ""  # that run's model hash, recorded in every image this run makes

    def validate(self) -> None:
        if self.batch_size < 1:
            raise BrushworkError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.steps < 0:
            raise BrushworkError(f"steps must be at least 0, got {self.steps}")
        for name in ("log_every", "sample_every", "ckpt_every", "keep_checkpoints", "n_sample"):
            if getattr(self, name) < 1:
                raise BrushworkError(f"{name} must be >= 1")
        if self.eval_every < 0 or self.eval_n < 2:
            raise BrushworkError("eval_every must be >= 0 and eval_n >= 2")
        if self.crop not in ("center", "random"):
            raise BrushworkError(f"crop must be center or random, got {self.crop!r}")
        if "style" in self.eval_metrics.split(","):
            raise BrushworkError("the style metric runs with brushwork evaluate, not during training")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild a config dataclass; unknown keys are an error so typos never pass silently, and a key
    the config was saved without takes the class's ``ABSENT_MEANS`` value where it has one (a
    saved model keeps computing what it was trained to), else its default."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise BrushworkError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**{**getattr(cls, "ABSENT_MEANS", {}), **data})


def config_hash(cfg: Any) -> str:
    """Stable hash of a config's canonical JSON, for provenance records."""
    text = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _coerce(value: str, annotation: Any, key: str) -> Any:
    kind = annotation if isinstance(annotation, type) else {"int": int, "float": float,
                                                            "bool": bool, "str": str}.get(str(annotation))
    try:
        if kind is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
    except ValueError:
        raise BrushworkError(f"--set {key}={value}: expected {kind.__name__}") from None
    return value


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Apply ``key=value`` strings (the CLI's ``--set``) to a config dataclass, type-checked."""
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in hints:
            valid = ", ".join(f.name for f in dataclasses.fields(cfg))
            raise BrushworkError(f"--set {item!r}: expected key=value with key one of: {valid}")
        changes[key] = _coerce(value.strip(), hints[key], key)
    return dataclasses.replace(cfg, **changes)


TEXTURE_WEIGHT = 0.0  # the upscaler's texture term by default (benchmarks/RESULTS.md, "Upscaling")


@dataclass
class UpscalerConfig:
    """A small super-resolution network learned from the collection's own works (``models/upscaler.py``):
    inputs are the works area-downscaled by ``scale``, targets the works themselves, so the detail
    it adds is the collection's brushwork, not a photo model's."""

    resolution: int = 128  # the works' training size (high resolution): the collection's stored size
    scale: int = 2  # enlargement, 2 or 4
    width: int = 32  # channels of the residual blocks
    blocks: int = 6  # residual blocks: each widens the receptive field by 2 input pixels
    texture_weight: float = TEXTURE_WEIGHT  # weight of the texture term beside L1 (0 = L1 only)
    lr: float = 2e-4  # Adam learning rate (EDSR's 1e-4, doubled for short CPU runs)
    beta1: float = 0.9  # Adam beta1
    beta2: float = 0.99  # Adam beta2
    val_fraction: float = 0.05  # held out for validation (fixed, seeded); at least 16 images
    mixed_precision: str = "no"  # fp32: small nets gain little from bf16, and PSNR is sensitive to it
    channels_last: bool = False

    def validate(self) -> None:
        if self.scale not in (2, 4):
            raise BrushworkError(f"upscaler scale must be 2 or 4, got {self.scale}")
        if self.resolution < 8 * self.scale or self.resolution % self.scale:
            raise BrushworkError(f"upscaler resolution must be a multiple of {self.scale} and at least "
                                 f"{8 * self.scale}; got {self.resolution}")
        if self.width < 1 or self.blocks < 0 or self.texture_weight < 0:
            raise BrushworkError("width must be >= 1, blocks >= 0 and texture_weight >= 0")
        if not 0 < self.val_fraction < 0.5:
            raise BrushworkError("val_fraction must be between 0 and 0.5")


@dataclass
class RunConfig:
    """Everything ``config.json`` in a run directory holds."""

    kind: str = "gan"  # model family of the run: "gan", "vae", "diffusion", "adain" or "upscaler"
    model: Any = field(default_factory=GANConfig)  # GANConfig, VAEConfig, DiffusionConfig or AdaINConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    labels: list = field(default_factory=list)  # style label names, index = label id
    version: str = ""  # brushwork version that created the run

    def to_json(self) -> str:
        return json.dumps(to_dict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        data = json.loads(text)
        model_cls = MODEL_CONFIGS.get(data["kind"])
        if model_cls is None:
            raise BrushworkError(f"unknown run kind {data['kind']!r}")
        return cls(kind=data["kind"], model=from_dict(model_cls, data["model"]),
                   train=from_dict(TrainConfig, data["train"]), labels=list(data.get("labels", [])),
                   version=data.get("version", ""))


MODEL_CONFIGS = {"gan": GANConfig, "vae": VAEConfig, "diffusion": DiffusionConfig, "adain": AdaINConfig,
                 "upscaler": UpscalerConfig, "autoencoder": AutoencoderConfig}
