"""The upscaler's training task for the generic Trainer: pairs made from the collection itself.

Each step: a batch of works at the run's resolution (random crops and flips as for every
family), area-downscaled by ``scale`` (what a smaller picture of the same work looks like, with
no aliasing), enlarged by the network, and compared with the works by L1 (sharper than L2 for
super-resolution, Lim et al. 2017), plus, with ``texture_weight``, a sliced patch distance on
each octave the enlargement invents (``losses.sliced_patch_distance``; 4x: the finest two): L1
alone restores structure but averages texture away. Validation: PSNR of the network and of
bicubic on held-out works, so every run says how much it adds over the baseline.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from brushwork.config import UpscalerConfig
from brushwork.imaging import psnr, unit_from_uint8
from brushwork.losses import sliced_patch_distance
from brushwork.models.upscaler import Upscaler
from brushwork.training.distributed import SINGLE, World, ddp
from brushwork.training.optim import make_adam

PREVIEW_IMAGES = 8  # held-out works in each preview: input, bicubic, network, the work


def downscale(images: torch.Tensor, scale: int) -> torch.Tensor:
    """[B, 3, H, W] -> [B, 3, H/s, W/s] by area averaging (the low-resolution input)."""
    return F.avg_pool2d(images, scale)


def detail(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] less its 2x area-averaged, bilinear-enlarged self: the finest band, the texture."""
    blur = F.interpolate(F.avg_pool2d(images, 2), scale_factor=2, mode="bilinear", align_corners=False)
    return images - blur


def invented_bands(images: torch.Tensor, scale: int) -> list[torch.Tensor]:
    """[B, 3, H, W] -> the log2(scale) finest bands ([B, 3, H, W], [B, 3, H/2, W/2], ...): the
    octaves a ``scale``x enlargement has to invent (4x: two; the input holds none of either)."""
    bands = []
    while scale > 1:
        bands.append(detail(images))
        images, scale = F.avg_pool2d(images, 2), scale // 2
    return bands


class UpscalerTask:
    kind = "upscaler"
    preview_columns = PREVIEW_IMAGES

    def __init__(self, cfg: UpscalerConfig, device: torch.device, seed: int = 0,
                 val_images: torch.Tensor | None = None, world: World = SINGLE):
        cfg.validate()
        self.cfg, self.device, self.world = cfg, device, world
        torch.manual_seed(seed)
        self.net = Upscaler(cfg).to(device)
        self.net_step = ddp(self.net, world, device)
        self.opt = make_adam(self.net.parameters(), cfg.lr, cfg.beta1, cfg.beta2, device)
        self.bf16 = False  # fp32 (see UpscalerConfig.mixed_precision)
        self.val_images = val_images  # uint8 [N, 3, R, R], never trained on

    def modules(self) -> dict[str, nn.Module]:
        return {"upscaler": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"upscaler": self.opt}

    def train_step(self, real: torch.Tensor, step: int, labels=None) -> dict[str, torch.Tensor]:
        made = self.net_step(downscale(real, self.cfg.scale))
        l1 = F.l1_loss(made, real)
        loss = l1
        if self.cfg.texture_weight:  # on the detail the network adds, every octave of it
            texture = sum(sliced_patch_distance(ours, theirs) for ours, theirs
                          in zip(invented_bands(made, self.cfg.scale), invented_bands(real, self.cfg.scale)))
            loss = l1 + self.cfg.texture_weight * texture
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), "l1": l1.detach()} | \
            ({"texture": texture.detach()} if self.cfg.texture_weight else {})

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if self.val_images is None or len(self.val_images) == 0:
            return {}
        self.net.eval()
        ours, bicubic = [], []
        for chunk in self.val_images.split(64):
            x = unit_from_uint8(chunk).to(self.device)
            small = downscale(x, self.cfg.scale)
            ours.append(psnr(self.net(small).clamp(-1, 1), x).cpu())
            base = F.interpolate(small, scale_factor=self.cfg.scale, mode="bicubic", align_corners=False)
            bicubic.append(psnr(base.clamp(-1, 1), x).cpu())
        self.net.train()
        return {"val_psnr": round(torch.cat(ours).mean().item(), 3),
                "val_psnr_bicubic": round(torch.cat(bicubic).mean().item(), 3)}

    @torch.no_grad()
    def preview(self) -> torch.Tensor:
        """Rows of 8 held-out works: the input (enlarged by repeating pixels), bicubic, the
        network, the work itself."""
        if self.val_images is None or len(self.val_images) == 0:
            return torch.zeros(0, 3, self.cfg.resolution, self.cfg.resolution)
        x = unit_from_uint8(self.val_images[:PREVIEW_IMAGES]).to(self.device)
        small = downscale(x, self.cfg.scale)
        self.net.eval()
        rows = [F.interpolate(small, scale_factor=self.cfg.scale, mode="nearest"),
                F.interpolate(small, scale_factor=self.cfg.scale, mode="bicubic", align_corners=False),
                self.net(small), x]
        self.net.train()
        return torch.cat(rows).clamp(-1, 1)
