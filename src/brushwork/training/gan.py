"""The GAN training task: models, optimisers and one training step, for the generic Trainer.

One step = one discriminator update (plus a lazy R1 update every ``r1_interval`` steps) and one
generator update, on the same fake batch (as in DCGAN). Speed-ups over the textbook loop that do
not change the maths: D's weights are frozen during the generator's backward pass (their grads
would be thrown away), reals and fakes share one D forward when D has no BatchNorm, channels_last
layout, and losses stay on the device until a log interval (no per-step host sync).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from brushwork.config import GANConfig
from brushwork.data.augment import diff_augment
from brushwork.latents import latents_for_seeds
from brushwork.losses import DISCRIMINATOR_LOSSES, GENERATOR_LOSSES, r1_penalty
from brushwork.models.gan import build_gan
from brushwork.training.ema import EMA
from brushwork.training.optim import autocast_context, make_adam, use_bf16


class GANTask:
    """Holds G, D, their optimisers and the EMA generator; ``train_step`` runs one iteration."""

    kind = "gan"

    def __init__(self, cfg: GANConfig, device: torch.device, seed: int = 0):
        cfg.validate()
        self.cfg, self.device = cfg, device
        torch.manual_seed(seed)
        G, D = build_gan(cfg)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.G = G.to(device, memory_format=fmt)
        self.D = D.to(device, memory_format=fmt)
        self.ema = EMA(self.G, cfg.ema_halflife_kimg, cfg.ema_rampup) if cfg.ema_halflife_kimg > 0 else None
        self.opt_g = make_adam(self.G.parameters(), cfg.g_lr, cfg.beta1, cfg.beta2, device)
        self.opt_d = make_adam(self.D.parameters(), cfg.d_lr, cfg.beta1, cfg.beta2, device)
        self.bf16 = use_bf16(cfg.mixed_precision, device)
        self.d_loss_fn = DISCRIMINATOR_LOSSES[cfg.loss]
        self.g_loss_fn = GENERATOR_LOSSES[cfg.loss]
        # Compiled modules share parameters with the originals, so checkpoints are unaffected.
        self.G_fwd = torch.compile(self.G) if cfg.compile else self.G
        self.D_fwd = torch.compile(self.D) if cfg.compile else self.D
        self.preview_z = latents_for_seeds(list(range(64)), cfg.z_dim)

    # -- what the Trainer checkpoints ---------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        mods = {"G": self.G, "D": self.D}
        if self.ema is not None:
            mods["G_ema"] = self.ema.model
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    @property
    def sampler(self) -> nn.Module:
        """The generator used for every image shown to people: EMA when enabled."""
        return self.ema.model if self.ema is not None else self.G

    # -- one iteration ------------------------------------------------------------------------
    def _autocast(self):
        return autocast_context(self.bf16, self.device)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.cfg.diffaugment) if self.cfg.diffaugment else x

    def _d_logits(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cfg.d_batchnorm:  # BatchNorm statistics must not mix reals and fakes
            return self.D_fwd(self._augment(real)), self.D_fwd(self._augment(fake))
        logits = self.D_fwd(self._augment(torch.cat([real, fake])))
        return logits[: len(real)], logits[len(real):]

    def train_step(self, real: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One D update and one G update on a batch of reals [B, 3, R, R] in [-1, 1]."""
        cfg, batch = self.cfg, real.shape[0]
        z = torch.randn(batch, cfg.z_dim, device=self.device)
        with self._autocast():
            fake = self.G_fwd(z)  # [B, 3, R, R]; graph kept for the generator step
            real_logits, fake_logits = self._d_logits(real, fake.detach())
            loss_d = self.d_loss_fn(real_logits.float(), fake_logits.float())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        stats = {"loss_d": loss_d.detach(), "d_real": real_logits.detach().float().mean(),
                 "d_fake": fake_logits.detach().float().mean()}
        if cfg.r1_gamma > 0 and step % cfg.r1_interval == 0:
            stats["r1"] = self._r1_step(real)

        self.D.requires_grad_(False)  # only input gradients are needed through D now
        with self._autocast():
            loss_g = self.g_loss_fn(self.D_fwd(self._augment(fake)).float())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        if self.ema is not None:
            self.ema.update(self.G, (step + 1) * batch, batch)
        stats["loss_g"] = loss_g.detach()
        return stats

    def _r1_step(self, real: torch.Tensor) -> torch.Tensor:
        """Lazy R1 (StyleGAN2): every r1_interval steps, penalty scaled by the interval."""
        real = real.detach().requires_grad_(True)
        with self._autocast():
            logits = self.D_fwd(self._augment(real))
        penalty = r1_penalty(logits.float(), real)
        self.opt_d.zero_grad(set_to_none=True)
        (penalty * (self.cfg.r1_gamma / 2) * self.cfg.r1_interval).backward()
        self.opt_d.step()
        return penalty.detach()

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Images [N, 3, R, R] in [-1, 1] from latents [N, Z], with the sampling generator
        in eval mode (BatchNorm uses running statistics: an image depends on its latent only)."""
        self.sampler.eval()
        out = self.sampler(z.to(self.device)).float()
        self.G.train()
        return out

    def preview(self) -> torch.Tensor:
        """The sample grid: seeds 0..n-1, the same images ``brushwork sample --seeds`` makes."""
        return self.sample(self.preview_z)
