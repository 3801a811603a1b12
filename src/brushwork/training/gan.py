"""The GAN training task: models, optimisers and one training step, for the generic Trainer.

One step = one discriminator update (plus a lazy R1 update every ``r1_interval`` steps) and one
generator update, on the same fake batch (as in DCGAN). Speed-ups over the textbook loop that do
not change the maths: D's weights are frozen during the generator's backward pass (their grads
would be thrown away), reals and fakes share one D forward when D has no BatchNorm, channels_last
layout, and losses stay on the device until a log interval (no per-step host sync).

Styles: a conditional run asks its fakes for the styles of the real batch and D judges each image
against its style (projection); a creative run adds D's style classification of the reals to D's
loss and the style ambiguity of the fakes, times ``creativity``, to G's (CAN).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from brushwork.config import GANConfig
from brushwork.data.augment import diff_augment
from brushwork.latents import latents_for_seeds
from brushwork.losses import DISCRIMINATOR_LOSSES, GENERATOR_LOSSES, r1_penalty, style_ambiguity_loss
from brushwork.models.fastgan import share_noise
from brushwork.models.gan import build_gan, set_growth
from brushwork.styles import seed_styles
from brushwork.training.cuda_graph import StepGraphs, graph_blocker
from brushwork.training.distributed import (SINGLE, World, ddp, normal_rows, sum_over_ranks, sync_batchnorm,
                                            unreached_parameters)
from brushwork.training.ema import EMA
from brushwork.training.finetune import freeze_first_layers
from brushwork.training.optim import autocast_context, make_adam, use_bf16


class AdaptiveAugment:
    """ADA (Karras et al. 2020): the probability p of each augmentation follows D's overfitting.
    Every ``ada_interval`` steps, r = E[sign(D(real))] over those steps (all ranks) and
    p += sign(r - target) x images / (ada_kimg x 1000), never below 0. p is part of every
    checkpoint, so a resumed run continues with exactly the p it stopped at."""

    def __init__(self, cfg: GANConfig, device: torch.device, world: World):
        self.cfg, self.world = cfg, world
        self.p = torch.zeros((), device=device)
        self.signs = torch.zeros(2, device=device)  # [sum of sign(D(real)), how many]

    def observe(self, real_logits: torch.Tensor) -> None:
        count = torch.full((), float(real_logits.numel()), device=self.signs.device)  # no host copy:
        self.signs += torch.stack([real_logits.detach().float().sign().sum(), count])  # graph-safe

    def update(self, step: int, batch: int) -> None:
        """After step ``step`` (0-based) of per-rank batch ``batch``; no host sync on one process."""
        if (step + 1) % self.cfg.ada_interval:
            return
        total = sum_over_ranks(self.world, self.signs.clone())
        overfit = total[0] / total[1].clamp_min(1)
        images = batch * self.world.size * self.cfg.ada_interval
        self.p.add_(torch.sign(overfit - self.cfg.ada_target) * images / (self.cfg.ada_kimg * 1000)).clamp_(min=0)
        self.signs.zero_()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"ada/p": self.p.clone(), "ada/signs": self.signs.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "ada/p" in state:
            self.p.copy_(state["ada/p"])
            self.signs.copy_(state["ada/signs"])


class GANTask:
    """Holds G, D, their optimisers and the EMA generator; ``train_step`` runs one iteration."""

    kind = "gan"

    def __init__(self, cfg: GANConfig, device: torch.device, seed: int = 0, world: World = SINGLE):
        cfg.validate()
        self.cfg, self.device, self.world, self.seed = cfg, device, world, seed
        self._step, self._aug_calls = 0, 0
        torch.manual_seed(seed)  # the same weights and noise stream on every rank
        G, D = build_gan(cfg)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.G = sync_batchnorm(G, world, device, cfg.sync_bn).to(device, memory_format=fmt)
        second_order = cfg.r1_gamma > 0  # R1 differentiates D's gradient
        self.D = sync_batchnorm(D, world, device, cfg.sync_bn, second_order).to(device, memory_format=fmt)
        freeze_first_layers(self.D, cfg.freeze_d)  # before DDP, which averages what is trainable
        share_noise(self.G, world.rank, world.size)  # FastGAN's noise injection (others have none)
        self.d_trainable = [p for p in self.D.parameters() if p.requires_grad]
        self.ema = EMA(self.G, cfg.ema_halflife_kimg, cfg.ema_rampup) if cfg.ema_halflife_kimg > 0 else None
        self.multi_scale = cfg.architecture == "fastgan"  # G makes (image, 128 px image); D reconstructs
        self.graph_blocker = graph_blocker(self) if cfg.cuda_graph else None
        graphed = cfg.cuda_graph and self.graph_blocker is None
        self.opt_g = make_adam(self.G.parameters(), cfg.g_lr, cfg.beta1, cfg.beta2, device, capturable=graphed)
        self.opt_d = make_adam(self.D.parameters(), cfg.d_lr, cfg.beta1, cfg.beta2, device, capturable=graphed)
        self.bf16 = use_bf16(cfg.mixed_precision, device)
        self.d_loss_fn = DISCRIMINATOR_LOSSES[cfg.loss]
        self.g_loss_fn = GENERATOR_LOSSES[cfg.loss]
        # Compiled modules share parameters with the originals, so checkpoints are unaffected.
        # Under torchrun the modules whose gradients are used are wrapped in DDP (G for its step,
        # D for its own and R1); D in the G step is the bare module: frozen, nothing to average.
        compiled = torch.compile if cfg.compile else (lambda m: m)
        self.G_fwd = compiled(ddp(self.G, world, device))
        self.D_step = compiled(ddp(self.D, world, device))
        self.D_fwd = compiled(self.D)
        self.preview_z, self.preview_style = self._preview_inputs()
        self.cond_strength = 1.0  # style conditioning in use (< 1 during a ramp-in)
        self.preview_columns = 8 if cfg.conditional else None
        self.ada = AdaptiveAugment(cfg, device, world) if cfg.ada else None
        self.graphs = StepGraphs(self) if graphed else None
        self.recon_kind, self.recon_vgg = self._reconstruction_loss_kind()
        self._r1_skips: list[nn.Parameter] | None = None  # D's parameters R1 does not reach (DDP)

    def _preview_inputs(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Seeds 0..63; conditional runs: seeds 0..7 in a row per style (at most 8 styles)."""
        if not self.cfg.conditional:
            return latents_for_seeds(list(range(64)), self.cfg.z_dim), None
        rows = min(self.cfg.num_styles, 8)
        z = latents_for_seeds(list(range(8)), self.cfg.z_dim).repeat(rows, 1)
        return z, torch.eye(self.cfg.num_styles)[torch.arange(rows).repeat_interleave(8)]

    # -- what the Trainer checkpoints ---------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        mods = {"G": self.G, "D": self.D}
        if self.ema is not None:
            mods["G_ema"] = self.ema.model
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def extra_state(self) -> dict[str, torch.Tensor]:
        return self.ada.state_dict() if self.ada is not None else {}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        if self.ada is not None:
            self.ada.load_state_dict(state)

    @property
    def sampler(self) -> nn.Module:
        """The generator used for every image shown to people: EMA when enabled."""
        return self.ema.model if self.ema is not None else self.G

    # -- one iteration ------------------------------------------------------------------------
    def _autocast(self):
        # No cache of bf16 weight copies under graph capture: it would outlive the capture.
        return autocast_context(self.bf16, self.device, cache=self.graphs is None)

    def _reconstruction_loss_kind(self) -> tuple[str, nn.Module | None]:
        """FastGAN: how D's reconstructions of reals are scored ("vgg", "pixel" or "off")."""
        kind = self.cfg.d_recon if self.multi_scale else "off"
        if kind == "auto":
            from brushwork.models.vgg import imagenet_weights_cached

            kind = "vgg" if imagenet_weights_cached() else "pixel"
        if kind != "vgg":
            return kind, None
        from brushwork.models.vgg import VGGFeatures

        vgg = VGGFeatures(weights="imagenet")  # relu1_2, relu2_2, relu3_4, relu4_2
        return kind, vgg.to(self.device).eval().requires_grad_(False)

    def reconstruction_loss(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Sum over D's decoders of the distance between decoded and real images [B, 3, T, T]:
        mean |VGG feature differences| (perceptual, the paper uses LPIPS) or mean |pixel
        differences|."""
        total = 0
        for decoded, target in pairs:
            decoded, target = decoded.float(), target.float()
            if self.recon_vgg is None:
                total = total + (decoded - target).abs().mean()
                continue
            fa, fb = self.recon_vgg(decoded), self.recon_vgg(target)
            total = total + sum((fa[k] - fb[k]).abs().mean() for k in fa)
        return total

    def _augment(self, x):
        if isinstance(x, tuple):  # FastGAN's (image, 128 px image)
            return tuple(None if part is None else self._augment(part) for part in x)
        if not self.cfg.diffaugment:
            return x
        p = self.ada.p if self.ada is not None else None
        if not self.world.distributed:
            return diff_augment(x, self.cfg.diffaugment, p)
        # Under torchrun the global RNG stream is shared by the ranks (it draws the global batch's
        # latents), so each rank augments from a stream of its own, seeded by (seed, step, rank,
        # call): images on different ranks get different transforms, and resumes stay exact.
        self._aug_calls += 1
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(hash((self.seed, self._step, self.world.rank, self._aug_calls)) % 2**63)
            return diff_augment(x, self.cfg.diffaugment, p)

    def _d(self, x: torch.Tensor, style: torch.Tensor | None, net: nn.Module | None = None):
        """(real/fake logits [B], style logits [B, K] or None) of augmented images; ``net`` is
        the D forward to use (default: the bare D, for the G step)."""
        net = net or self.D_fwd
        if self.cfg.conditional:
            return net(self._augment(x), style, self.cond_strength)
        if self.cfg.creative:
            return net(self._augment(x))
        return net(self._augment(x)), None

    @staticmethod
    def _paired(style: torch.Tensor) -> torch.Tensor:
        """Styles whose second half repeats the first: fake i and i + B/2 share a style."""
        h = len(style) // 2
        return torch.cat([style[:h], style[:h], style[2 * h:]])

    @staticmethod
    def _mode_seeking(z: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Mode seeking (Mao et al. 2019): 1 / (image distance / latent distance) of pairs of fakes
        of the same style; small when different latents give different images."""
        h = len(z) // 2
        images = (fake[:h].float() - fake[h:2 * h].float()).abs().mean(dim=(1, 2, 3))
        latents = (z[:h] - z[h:2 * h]).abs().mean(dim=1)
        return 1 / ((images / latents).mean() + 1e-5)

    def _growth(self, images: int) -> float:
        """The gate of G's growing upsampling layers after ``images`` images (0 -> 1)."""
        start, ramp = self.cfg.g_grow_start_kimg * 1000, self.cfg.g_grow_kimg * 1000
        return min(1.0, max(0.0, (images - start) / ramp)) if ramp > 0 else float(images >= start)

    def _conditioning(self, step: int, batch: int) -> float:
        """How much of the style conditioning is on at this step (ramp-in over cond_rampup_kimg)."""
        ramp = self.cfg.cond_rampup_kimg * 1000
        return 1.0 if ramp <= 0 else min(1.0, step * batch / ramp)

    def _d_logits(self, real, fake, real_style, fake_style):
        """D on reals and fakes: ((logits, style logits) of each, D's own extra loss on the
        reals or None)."""
        if self.multi_scale and self.recon_kind != "off":  # FastGAN: D also decodes the reals
            logits, pairs = self.D_step(self._augment(real), reconstruct=True)
            return (logits, None), self._d(fake, fake_style, self.D_step), self.reconstruction_loss(pairs)
        return (*self._d_pair(real, fake, real_style, fake_style), None)

    def _d_pair(self, real, fake, real_style, fake_style):
        if self.cfg.d_batchnorm:  # BatchNorm statistics must not mix reals and fakes
            return self._d(real, real_style, self.D_step), self._d(fake, fake_style, self.D_step)
        both = None if real_style is None else torch.cat([real_style, fake_style])
        logits, style_logits = self._d(torch.cat([real, fake]), both, self.D_step)
        n = len(real)
        if style_logits is None:
            return (logits[:n], None), (logits[n:], None)
        return (logits[:n], style_logits[:n]), (logits[n:], style_logits[n:])

    def generator_loss(self, fake_logits: torch.Tensor, fake_style_logits: torch.Tensor | None) -> torch.Tensor:
        """The preset's adversarial loss, plus creativity x style ambiguity in creative runs
        (creativity 0 leaves exactly the adversarial loss)."""
        loss = self.g_loss_fn(fake_logits.float())
        if fake_style_logits is not None and self.cfg.creativity:
            loss = loss + self.cfg.creativity * style_ambiguity_loss(fake_style_logits.float())
        return loss

    def train_step(self, real: torch.Tensor, step: int, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One D update and one G update on a batch of reals [B, 3, R, R] in [-1, 1] with their
        style labels [B] (used by conditional and creative runs). What depends on the step number
        is settled here on the host; the device work (``update``) is the same every step, so a
        CUDA graph can replay it."""
        cfg, batch = self.cfg, real.shape[0]
        self._step, self._aug_calls = step, 0
        self.cond_strength = self._conditioning(step, batch)
        r1_due = cfg.r1_gamma > 0 and step % cfg.r1_interval == 0
        global_batch = batch * self.world.size
        if cfg.g_upsample == "grow":
            set_growth(self.G, self._growth(step * global_batch))
        if self.ema is not None and self.world.main:  # only rank 0 shows or saves it
            self.ema.set_progress((step + 1) * global_batch, global_batch)
        if self.graphs is not None:
            stats = self.graphs.run(real, labels, r1_due)
        else:
            stats = self.update(real, labels, r1_due)
        if self.ada is not None:  # p moves after the step, as StyleGAN2-ADA adjusts it
            self.ada.update(step, batch)
            stats["ada_p"] = self.ada.p.clone()
        if cfg.conditional and cfg.cond_rampup_kimg > 0:
            stats["conditioning"] = torch.tensor(self.cond_strength, device=self.device)
        return stats

    def update(self, real: torch.Tensor, labels: torch.Tensor | None, r1_due: bool) -> dict[str, torch.Tensor]:
        """The step's device work: D update (and R1 when due), G update, EMA; returns its stats."""
        cfg, batch = self.cfg, real.shape[0]
        z = normal_rows(self.world, (batch, cfg.z_dim), self.device)  # this rank's share
        # Fakes are asked for the styles of this batch's reals: the data's own distribution (or a
        # uniform one with balance_styles, which the batcher then draws), as StyleGAN2-ADA does.
        style = F.one_hot(labels, cfg.num_styles).to(real.dtype) if cfg.styled else None
        fake_style = self._paired(style) if cfg.conditional and cfg.mode_seeking else style
        fake, stats = self._discriminator_step(real, z, labels, style, fake_style)
        if r1_due:
            stats["r1"] = self._r1_step(real, style)
        stats.update(self._generator_step(z, fake, fake_style))
        if self.ema is not None and self.world.main:
            self.ema.apply(self.G)
        return stats

    def _discriminator_step(self, real, z, labels, style, fake_style):
        """D's update on reals and G's fakes of z; returns (the fakes, still attached to G's
        graph, for G's step; stats)."""
        with self._autocast():
            fake = self._generate(z, fake_style)
            (real_logits, real_styles), (fake_logits, _), extra = self._d_logits(real, _detach(fake),
                                                                                 style, fake_style)
            loss_d = self.d_loss_fn(real_logits.float(), fake_logits.float())
            if extra is not None:
                loss_d = loss_d + self.cfg.d_recon_weight * extra
            if real_styles is not None:  # CAN: D also learns to name the styles of real works
                loss_style = F.cross_entropy(real_styles.float(), labels)
                loss_d = loss_d + loss_style
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        stats = {"loss_d": loss_d.detach(), "d_real": real_logits.detach().float().mean(),
                 "d_fake": fake_logits.detach().float().mean()}
        if real_styles is not None:
            stats["loss_style"] = loss_style.detach()
        if extra is not None:
            stats["d_recon"] = extra.detach()
        if self.ada is not None:
            self.ada.observe(real_logits)
        return fake, stats

    def _generator_step(self, z, fake, fake_style) -> dict[str, torch.Tensor]:
        cfg, stats = self.cfg, {}
        self.D.requires_grad_(False)  # only input gradients are needed through D now
        with self._autocast():
            fake_logits, fake_styles = self._d(fake, fake_style)
            loss_g = self.generator_loss(fake_logits, fake_styles)
            if cfg.conditional and cfg.mode_seeking:
                seek = self._mode_seeking(z, fake)
                loss_g = loss_g + cfg.mode_seeking * seek
                stats["mode_seeking"] = seek.detach()
        if fake_styles is not None:
            stats["ambiguity"] = style_ambiguity_loss(fake_styles.detach().float())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        for p in self.d_trainable:  # not the layers --freeze-d keeps fixed
            p.requires_grad_(True)
        stats["loss_g"] = loss_g.detach()
        return stats

    def _generate(self, z: torch.Tensor, style: torch.Tensor | None):
        """G's training output: images [B, 3, R, R] (FastGAN: with its 128 px images, a tuple)."""
        if self.cfg.conditional:
            return self.G_fwd(z, style, self.cond_strength)
        return self.G_fwd(z, True) if self.multi_scale else self.G_fwd(z)

    def _r1_step(self, real: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        """Lazy R1 (StyleGAN2): every r1_interval steps, penalty scaled by the interval."""
        real = real.detach().requires_grad_(True)
        with self._autocast():
            logits, _ = self._d(real, style, self.D_step)
        penalty = r1_penalty(logits.float(), real)
        loss = penalty * (self.cfg.r1_gamma / 2) * self.cfg.r1_interval
        # R1 does not reach every parameter of D (a last layer's bias, CAN's style head,
        # FastGAN's decoders): one process leaves their gradients empty, so Adam skips them.
        # DDP expects a gradient for each, so they join with weight 0 and are emptied after.
        skipped = []
        if self.world.distributed:
            if self._r1_skips is None:
                self._r1_skips = unreached_parameters(loss, self.d_trainable)
            skipped = self._r1_skips
            loss = loss + sum(0 * p.sum() for p in skipped)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        for p in skipped:
            p.grad = None
        self.opt_d.step()
        return penalty.detach()

    @torch.no_grad()
    def sample(self, z: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Images [N, 3, R, R] in [-1, 1] from latents [N, Z] (and style weights [N, K] for
        conditional runs), with the sampling generator in eval mode (BatchNorm uses running
        statistics: an image depends on its own latent only)."""
        self.sampler.eval()
        if self.cfg.conditional:
            out = self.sampler(z.to(self.device), style.to(self.device)).float()
        else:
            out = self.sampler(z.to(self.device)).float()
        self.G.train()
        return out

    def sample_seeds(self, seeds: list[int]) -> torch.Tensor:
        """The images ``brushwork sample`` would make of these seeds from the current weights."""
        z = latents_for_seeds(seeds, self.cfg.z_dim)
        return self.sample(z, seed_styles(seeds, self.cfg.num_styles) if self.cfg.conditional else None)

    def preview(self) -> torch.Tensor:
        """The sample grid: the same images ``brushwork sample --seeds`` makes (conditional runs:
        a row per style)."""
        return self.sample(self.preview_z, self.preview_style)


def _detach(images):
    """Fakes cut from G's graph (a tensor, or FastGAN's tuple)."""
    if isinstance(images, tuple):
        return tuple(None if x is None else x.detach() for x in images)
    return images.detach()
