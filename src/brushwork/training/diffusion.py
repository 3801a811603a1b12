"""The diffusion training task for the generic Trainer (EDM, Karras et al. 2022).

One step: each real image x gets a noise level ln(sigma) ~ N(P_mean, P_std^2) and noise n, and
the denoiser learns D(x + sigma n; sigma) ~ x under EDM's weighting lambda(sigma); conditional runs
drop each image's style with probability ``cond_drop`` so the model also learns the style-free
denoiser that classifier-free guidance contrasts with. Sampling uses an EMA of the weights.

Under torchrun every rank draws the global batch's noise levels, noise and label drops and keeps
its rows (as GAN latents), so N processes x batch B follow one process with batch N x B.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from brushwork.config import DiffusionConfig
from brushwork.latents import latents_for_seeds
from brushwork.losses import pairwise_similarity_loss
from brushwork.models.autoencoder import PixelCodec
from brushwork.models.diffusion import Denoiser, loss_weight
from brushwork.models.samplers import karras_sigmas, sample_images
from brushwork.styles import seed_styles
from brushwork.training.adapters import STYLE_TENSORS, AdapterView, add_lora
from brushwork.training.distributed import SINGLE, World, ddp, normal_rows
from brushwork.training.ema import EMA
from brushwork.training.optim import autocast_context, make_adam, use_bf16

ADAPTED_STYLE_LR = 10.0  # style vectors' learning rate, x the run's, when adapting a parent (textual
# inversion trains a new token's embedding at ~5e-3: alone, a new style barely left "no style" in 150 steps)
PREVIEW_SEEDS = 32  # images in each training sample grid (seeds 0..31; a row of 8 per style)


class DiffusionTask:
    """Holds the denoiser, its EMA and optimiser; ``train_step`` runs one iteration."""

    kind = "diffusion"

    def __init__(self, cfg: DiffusionConfig, device: torch.device, seed: int = 0, world: World = SINGLE,
                 start: dict[str, torch.Tensor] | None = None, adapted: bool = False):
        """``start``: the weights to begin from (a parent run's, when adapting: training/adapt.py);
        with ``cfg.adapter`` they stay frozen and low-rank adapters learn (training/adapters.py).
        ``adapted``: a run adapted from a parent, also when it resumes from its own checkpoint
        without ``start`` (its optimizer must have the same parameter groups)."""
        cfg.validate()
        self.cfg, self.device, self.world = cfg, device, world
        torch.manual_seed(seed)  # the same weights and noise stream on every rank
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        net = Denoiser(cfg)
        self.source = None  # the parent, frozen, for the pairwise term
        if start is not None:
            net.load_state_dict(start)
            if cfg.pairwise:
                self.source = copy.deepcopy(net).to(device).eval().requires_grad_(False)
        if cfg.adapter:
            net = add_lora(net, cfg.adapter_rank)
        self.net = net.to(device, memory_format=fmt)
        self.net_step = ddp(self.net, world, device)  # averages gradients under torchrun
        self.ema = EMA(self.net, cfg.ema_halflife_kimg, cfg.ema_rampup)
        trained = [p for p in self.net.parameters() if p.requires_grad]
        if start is not None or adapted:  # a new style's vector starts at "no style" and has far to go
            styles = [p for n, p in self.net.named_parameters() if p.requires_grad and n in STYLE_TENSORS]
            trained = [{"params": [p for p in trained if all(p is not q for q in styles)]},
                       {"params": styles, "lr_scale": ADAPTED_STYLE_LR}]
        self.opt = make_adam(trained, cfg.lr, cfg.beta1, cfg.beta2, device)
        self.bf16 = use_bf16(cfg.mixed_precision, device)
        self.preview_columns = 8
        self.codec: nn.Module = PixelCodec()  # a latent run's autoencoder (training/latent.py)

    def use_codec(self, codec: nn.Module) -> None:
        """Learn in a codec's latents: batches are latents, previews are decoded through it, and its
        (frozen) autoencoder is saved in every checkpoint beside the denoiser."""
        self.codec = codec

    def modules(self) -> dict[str, nn.Module]:
        if self.cfg.adapter:  # only the adapters: the base weights and autoencoder come from the parent
            return {"denoiser": AdapterView(self.net), "denoiser_ema": AdapterView(self.ema.model)}
        frozen = {"autoencoder": self.codec.autoencoder} if hasattr(self.codec, "autoencoder") else {}
        return {"denoiser": self.net, "denoiser_ema": self.ema.model, **frozen}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"denoiser": self.opt}

    def _rows_uniform(self, n: int) -> torch.Tensor:
        """Uniform [0, 1) numbers for this rank's rows of the global batch."""
        return self.world.rows(torch.rand(n * self.world.size, device=self.device))

    def train_step(self, real: torch.Tensor, step: int, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        cfg, batch = self.cfg, real.shape[0]
        global_batch = batch * self.world.size
        for group in self.opt.param_groups:  # linear warm-up of the learning rate
            group["lr"] = cfg.lr * group.get("lr_scale", 1.0) * min(1.0, step * global_batch /
                                                                   max(cfg.lr_rampup_kimg * 1000, 1e-8))
        sigma = (cfg.p_mean + cfg.p_std * normal_rows(self.world, (batch,), self.device)).exp()  # [B]
        noise = normal_rows(self.world, tuple(real.shape), self.device)
        style = None
        if cfg.conditional:  # one-hot styles, a cond_drop share of them dropped (rows of zeros)
            keep = (self._rows_uniform(batch) >= cfg.cond_drop).to(real.dtype)
            style = F.one_hot(labels, cfg.num_styles).to(real.dtype) * keep[:, None]
        with autocast_context(self.bf16, self.device):
            denoised = self.net_step(real + sigma.view(-1, 1, 1, 1) * noise, sigma, style)
        weight = loss_weight(sigma, cfg.sigma_data).view(-1, 1, 1, 1)
        loss = (weight * (denoised.float() - real).square()).mean()
        terms = {}
        if self.source is not None:  # DDPM-PA: the batch's relative distances as the parent sees them
            with torch.no_grad(), autocast_context(self.bf16, self.device):
                seen = self.source(real + sigma.view(-1, 1, 1, 1) * noise, sigma, style)
            terms["pairwise"] = pairwise_similarity_loss(denoised, seen)
            loss = loss + cfg.pairwise * terms["pairwise"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.world.main:  # rank 0 keeps (and saves) the EMA
            self.ema.set_progress((step + 1) * global_batch, global_batch)
            self.ema.apply(self.net)
        return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

    @torch.no_grad()
    def sample(self, seeds: list[int], style: torch.Tensor | None) -> torch.Tensor:
        """Images [N, 3, R, R] in [-1, 1] of seeds (style weights [N, K] on conditional runs)
        from the current EMA weights, with the run's default sampler and steps: the images
        ``brushwork sample`` makes of them."""
        cfg = self.cfg
        noise = latents_for_seeds(seeds, cfg.z_dim).view(-1, *cfg.space)
        sigmas = karras_sigmas(cfg.sampling_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
        made = sample_images(self.ema.model.eval(), noise.to(self.device), sigmas, cfg.sampler,
                             None if style is None else style.to(self.device), cfg.guidance)
        return self.codec.decode(made).cpu()

    def sample_seeds(self, seeds: list[int]) -> torch.Tensor:
        """Each seed's image (its default style on conditional runs), for --eval-every."""
        return self.sample(seeds, seed_styles(seeds, self.cfg.num_styles) if self.cfg.conditional else None)

    def preview(self) -> torch.Tensor:
        """The sample grid: seeds 0..31; conditional runs: seeds 0..7 in a row per style (at most 4)."""
        if not self.cfg.conditional:
            return self.sample(list(range(PREVIEW_SEEDS)), None)
        rows = min(self.cfg.num_styles, PREVIEW_SEEDS // 8)
        style = torch.eye(self.cfg.num_styles)[torch.arange(rows).repeat_interleave(8)]
        return self.sample(list(range(8)) * rows, style)
