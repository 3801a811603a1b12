"""The VAE training task for the generic Trainer, and its held-out metrics.

Loss per step: ||x - x_hat||^2 + beta_t * KL, with beta_t ramped from 0 over ``kl_warmup_steps``.

Validation reports a proper bound on the data's likelihood. The training loss is a Gaussian
decoder with a fixed variance in disguise; for the report the decoder variance is set to the one
that maximises the validation ELBO, sigma^2 = mean squared error per dimension (the "calibrated
decoder" of Rybkin et al. 2021), which gives, per image of D = 3*R*R values in [-1, 1]:

    -ELBO = D/2 * log(2*pi*sigma^2) + D/2 + KL               (nats, continuous density)
    bits/dim = (-ELBO + D * log(127.5)) / (D * ln 2)          (rescaled to 0..255 pixel units)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from brushwork.config import VAEConfig
from brushwork.latents import latents_for_seeds
from brushwork.imaging import psnr as image_psnr
from brushwork.imaging import unit_from_uint8
from brushwork.losses import kl_divergence, reconstruction_loss
from brushwork.models.vae import VAE
from brushwork.training.distributed import SINGLE, World, ddp, normal_rows, sync_batchnorm
from brushwork.training.optim import autocast_context, make_adam, use_bf16

PREVIEW_IMAGES = 8  # validation images shown (with reconstructions) in every sample grid


@torch.no_grad()
def validation_metrics(vae: VAE, images: torch.Tensor, device: torch.device, batch: int = 256,
                       seed: int = 0) -> dict[str, float]:
    """Held-out negative ELBO (nats/image), bits/dim, reconstruction PSNR (dB) and KL (nats)."""
    was_training = vae.training
    vae.eval()
    noise_gen = torch.Generator().manual_seed(seed)  # same posterior samples at every evaluation
    sse, kl, psnr = [], [], []
    for chunk in images.split(batch):
        x = unit_from_uint8(chunk).to(device)
        mu, logvar = vae.encoder(x)
        noise = torch.randn(mu.shape, generator=noise_gen).to(device)
        x_hat = vae.decoder(VAE.reparameterise(mu, logvar, noise)).float()
        sse.append((x_hat - x).square().flatten(1).sum(1).cpu())
        kl.append((-0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)).float().cpu())
        psnr.append(image_psnr(vae.decoder(mu), x).cpu())
    vae.train(was_training)
    sse, kl, psnr = torch.cat(sse).double(), torch.cat(kl).double(), torch.cat(psnr)
    dims = images[0].numel()
    sigma2 = max(sse.mean().item() / dims, 1e-12)
    neg_elbo = (dims / 2 * math.log(2 * math.pi * sigma2) + sse / (2 * sigma2) + kl).mean().item()
    bits = (neg_elbo + dims * math.log(127.5)) / (dims * math.log(2))
    return {"val_neg_elbo_nats": round(neg_elbo, 2), "val_bits_per_dim": round(bits, 4),
            "val_psnr": round(psnr.mean().item(), 3), "val_kl": round(kl.mean().item(), 3)}


class VAETask:
    """Holds the VAE and its optimiser; ``train_step`` runs one iteration."""

    kind = "vae"
    preview_columns = PREVIEW_IMAGES

    def __init__(self, cfg: VAEConfig, device: torch.device, seed: int = 0,
                 val_images: torch.Tensor | None = None, world: World = SINGLE):
        cfg.validate()
        self.cfg, self.device, self.world = cfg, device, world
        torch.manual_seed(seed)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.vae = sync_batchnorm(VAE(cfg), world, device, cfg.sync_bn).to(device, memory_format=fmt)
        self.vae_step = ddp(self.vae, world, device)  # averages gradients under torchrun
        self.opt = make_adam(self.vae.parameters(), cfg.lr, cfg.beta1, cfg.beta2, device)
        self.bf16 = use_bf16(cfg.mixed_precision, device)
        self.val_images = val_images  # uint8 [N, 3, R, R], never trained on
        self.preview_z = latents_for_seeds(list(range(16)), cfg.latent_dim)
        self.vgg = None
        if cfg.perceptual_weight > 0:
            from brushwork.models.vgg import VGGFeatures

            self.vgg = VGGFeatures(weights=cfg.vgg_weights).to(device)

    def modules(self) -> dict[str, nn.Module]:
        return {"vae": self.vae}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": self.opt}

    def beta_at(self, step: int) -> float:
        warm = self.cfg.kl_warmup_steps
        return self.cfg.beta * (min(1.0, step / warm) if warm > 0 else 1.0)

    def train_step(self, real: torch.Tensor, step: int, labels=None) -> dict[str, torch.Tensor]:
        # Under torchrun each process keeps its rows of the global batch's noise (as GAN latents).
        noise = normal_rows(self.world, (real.shape[0], self.cfg.latent_dim), self.device)
        with autocast_context(self.bf16, self.device):
            x_hat, mu, logvar = self.vae_step(real, noise)
        recon = reconstruction_loss(x_hat.float(), real, self.cfg.recon)
        kl = kl_divergence(mu.float(), logvar.float())
        loss = recon + self.beta_at(step) * kl
        stats = {"recon": recon.detach(), "kl": kl.detach()}
        if self.vgg is not None:
            from brushwork.models.vgg import perceptual_loss

            with autocast_context(self.bf16, self.device):
                perceptual = perceptual_loss(self.vgg, x_hat, real).float()
            loss = loss + self.cfg.perceptual_weight * perceptual
            stats["perceptual"] = perceptual.detach()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), **stats}

    def validate(self) -> dict[str, float]:
        if self.val_images is None or len(self.val_images) == 0:
            return {}
        return validation_metrics(self.vae, self.val_images, self.device)

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        self.vae.eval()
        out = self.vae.decoder(z.to(self.device)).float().clamp(-1, 1)
        self.vae.train()
        return out

    def sample_seeds(self, seeds: list[int]) -> torch.Tensor:
        """Prior samples of these seeds (temperature 1), as ``brushwork sample`` makes them."""
        return self.sample(latents_for_seeds(seeds, self.cfg.latent_dim))

    @torch.no_grad()
    def preview(self) -> torch.Tensor:
        """Rows of 8: validation images, their reconstructions, then 16 prior samples (seeds 0-15)."""
        rows = []
        if self.val_images is not None and len(self.val_images):
            x = unit_from_uint8(self.val_images[:PREVIEW_IMAGES]).to(self.device)
            self.vae.eval()
            recon = self.vae.decoder(self.vae.encoder(x)[0]).float().clamp(-1, 1)
            rows += [x, recon]
        rows.append(self.sample(self.preview_z))
        self.vae.train()
        return torch.cat(rows)
