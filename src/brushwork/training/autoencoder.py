"""The autoencoder training task for the generic Trainer (latent diffusion's first stage).

One step: reconstruct the batch through a posterior sample, minimise L1 + perceptual term +
kl_weight * KL; once ``disc_start`` steps have passed, a patch discriminator joins with LDM's
adaptive weight lambda = disc_weight * ||grad L_rec|| / ||grad L_adv|| at the decoder's last
layer (Esser et al. 2021), and is itself trained with the hinge loss on reals vs reconstructions.

Under torchrun every rank draws the global batch's posterior noise and keeps its rows.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from brushwork.config import AutoencoderConfig
from brushwork.imaging import psnr, unit_from_uint8
from brushwork.losses import hinge_discriminator_loss, hinge_generator_loss, kl_divergence, laplacian_l1
from brushwork.models.autoencoder import Autoencoder, PatchDiscriminator
from brushwork.models.vgg import VGGFeatures, perceptual_loss
from brushwork.training.distributed import SINGLE, World, ddp, normal_rows
from brushwork.training.optim import autocast_context, make_adam, use_bf16

PREVIEW_IMAGES = 8  # held-out works shown above their reconstructions in every sample grid
VAL_IMAGES = 64  # held-out works scored in each log row (PSNR, latent spread)


class AutoencoderTask:
    """Holds the autoencoder, its discriminator and their optimisers."""

    kind = "autoencoder"
    preview_columns = PREVIEW_IMAGES

    def __init__(self, cfg: AutoencoderConfig, device: torch.device, seed: int = 0,
                 val_images: torch.Tensor | None = None, world: World = SINGLE):
        cfg.validate()
        self.cfg, self.device, self.world = cfg, device, world
        torch.manual_seed(seed)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format  # as the batches come
        self.ae = Autoencoder(cfg).to(device, memory_format=fmt)
        self.disc = PatchDiscriminator(cfg.disc_width).to(device, memory_format=fmt)
        self.ae_step, self.disc_step = ddp(self.ae, world, device), ddp(self.disc, world, device)
        self.opt = make_adam(self.ae.parameters(), cfg.lr, cfg.beta1, cfg.beta2, device)
        self.disc_opt = make_adam(self.disc.parameters(), cfg.lr, cfg.beta1, cfg.beta2, device)
        self.bf16 = use_bf16(cfg.mixed_precision, device)
        self.val_images = val_images  # uint8 [N, 3, H, W], never trained on
        self.vgg = VGGFeatures(weights=cfg.features).to(device) if cfg.perceptual == "vgg" else None

    def modules(self) -> dict[str, nn.Module]:
        return {"autoencoder": self.ae, "patch_d": self.disc}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"autoencoder": self.opt, "patch_d": self.disc_opt}

    def perceptual(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.vgg is not None:
            return perceptual_loss(self.vgg, x_hat, x)
        return laplacian_l1(x_hat, x)

    def _adaptive_weight(self, rec: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        """LDM's balance: the adversarial gradient at the decoder's last layer scaled to the
        reconstruction's, times disc_weight (clamped, and never differentiated)."""
        last = self.ae.decoder.net[-1].weight
        g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0]
        g_adv = torch.autograd.grad(adv, last, retain_graph=True)[0]
        return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, 1e4).detach() * self.cfg.disc_weight

    def train_step(self, real: torch.Tensor, step: int, labels=None) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        h, w = cfg.latent_size
        noise = normal_rows(self.world, (real.shape[0], cfg.channels, h, w), self.device)
        with autocast_context(self.bf16, self.device):
            x_hat, mean, logvar = self.ae_step(real, noise)
            x_hat = x_hat.float()
            rec = (x_hat - real).abs().mean() + cfg.perceptual_weight * self.perceptual(x_hat, real).float()
        kl = kl_divergence(mean.float().flatten(1), logvar.float().flatten(1))
        loss = rec + cfg.kl_weight * kl
        stats = {"rec": rec.detach(), "kl": kl.detach()}
        adversarial = step >= cfg.disc_start
        if adversarial:
            with autocast_context(self.bf16, self.device):
                adv = hinge_generator_loss(self.disc_step(x_hat).float())
            weight = self._adaptive_weight(rec, adv)
            loss = loss + weight * adv
            stats |= {"g_adv": adv.detach(), "adv_weight": weight}
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if adversarial:
            with autocast_context(self.bf16, self.device):
                d_loss = hinge_discriminator_loss(self.disc_step(real).float(),
                                                  self.disc_step(x_hat.detach()).float())
            self.disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            self.disc_opt.step()
            stats["d_loss"] = d_loss.detach()
        return {"loss": loss.detach(), **stats}

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, batch: int = 32) -> torch.Tensor:
        """Reconstructions [N, 3, H, W] in [-1, 1] from the posterior means of uint8 images."""
        was_training = self.ae.training
        self.ae.eval()
        out = [self.ae.decoder(self.ae.encoder(unit_from_uint8(c).to(self.device))[0]).float().clamp(-1, 1)
               for c in images.split(batch)]
        self.ae.train(was_training)
        return torch.cat(out)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Held-out reconstruction PSNR (dB) and the spread of the latents' means (the scale a
        latent diffusion run divides by, so that its model sees unit variance)."""
        if self.val_images is None or len(self.val_images) == 0:
            return {}
        images = self.val_images[:VAL_IMAGES]
        x = unit_from_uint8(images).to(self.device)
        was_training = self.ae.training
        self.ae.eval()
        means = torch.cat([self.ae.encoder(c)[0].float() for c in x.split(32)])
        recon = torch.cat([self.ae.decoder(m).float().clamp(-1, 1) for m in means.split(32)])
        self.ae.train(was_training)
        return {"val_psnr": round(psnr(recon, x).mean().item(), 3),
                "val_latent_std": round(means.std().item(), 4)}

    def sample_seeds(self, seeds: list[int]) -> torch.Tensor:
        """Held-out works' reconstructions (an autoencoder makes no images from seeds): what
        --eval-every scores against the training works."""
        images = self.val_images if self.val_images is not None else torch.zeros(0, 3, 1, 1)
        picks = torch.tensor(seeds) % max(len(images), 1)
        return self.reconstruct(images[picks])

    @torch.no_grad()
    def preview(self) -> torch.Tensor:
        """Two rows: held-out works, then their reconstructions."""
        if self.val_images is None or len(self.val_images) == 0:
            return torch.zeros(1, 3, *self.cfg.latent_size)
        images = self.val_images[:PREVIEW_IMAGES]
        return torch.cat([unit_from_uint8(images).to(self.device), self.reconstruct(images)])
