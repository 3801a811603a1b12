"""The AdaIN decoder training task (Huang & Belongie 2017) for the generic Trainer.

Per step: a batch of content photos (the Trainer's batcher) and one of style images (the task's
own batcher, whose state is checkpointed too). With the frozen VGG19 encoder f:
t = AdaIN(f(c), f(s)); g = decoder(t);
L = ||f(g) - t||^2 + lambda * sum over relu1_1..relu4_1 of ||mu(f_i(g)) - mu(f_i(s))||^2 + ||sigma(.) - sigma(.)||^2.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from brushwork.config import AdaINConfig
from brushwork.data.dataset import ImageBatcher
from brushwork.models.style import AdaINDecoder, adain, load_style_encoder, mean_std
from brushwork.training.distributed import SINGLE, World, ddp
from brushwork.training.optim import make_adam

ADAIN_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


class AdaINTask:
    kind = "adain"
    preview_columns = 4
    bf16 = False

    def __init__(self, cfg: AdaINConfig, device: torch.device, style_batcher: ImageBatcher, seed: int = 0,
                 world: World = SINGLE):
        cfg.validate()
        self.cfg, self.device, self.styles, self.world = cfg, device, style_batcher, world
        self.encoder = load_style_encoder(cfg.encoder, device, layers=ADAIN_STYLE_LAYERS)
        torch.manual_seed(seed)
        self.decoder = AdaINDecoder(cfg.width).to(device)
        self.decoder_step = ddp(self.decoder, world, device)  # averages gradients under torchrun
        self.opt = make_adam(self.decoder.parameters(), cfg.lr, 0.9, 0.999, device)
        self.preview_pairs = None  # fixed (content, style) batch, set on the first step

    def modules(self) -> dict[str, nn.Module]:
        return {"decoder": self.decoder}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"decoder": self.opt}

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {f"styles/{k}": v for k, v in self.styles.state_dict().items()}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.styles.load_state_dict({k[len("styles/"):]: v for k, v in state.items()
                                     if k.startswith("styles/")})

    def losses(self, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            f_s = self.encoder(style)
            t = adain(self.encoder(content)["relu4_1"], f_s["relu4_1"])
        f_g = self.encoder(self.decoder_step(t))
        loss_c = F.mse_loss(f_g["relu4_1"], t)
        loss_s = 0
        for name in ADAIN_STYLE_LAYERS:
            (gm, gs), (sm, ss) = mean_std(f_g[name]), mean_std(f_s[name])
            loss_s = loss_s + F.mse_loss(gm, sm) + F.mse_loss(gs, ss)
        return {"loss": loss_c + self.cfg.style_weight * loss_s, "content": loss_c, "style": loss_s}

    def train_step(self, content: torch.Tensor, step: int, labels=None) -> dict[str, torch.Tensor]:
        style, _ = self.styles.next()
        if self.preview_pairs is None:
            self.preview_pairs = (content[:4].detach().clone(), style[:4].detach().clone())
        losses = self.losses(content, style)
        self.opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.opt.step()
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def preview(self) -> torch.Tensor:
        """Rows: content crops, style crops, their stylisations."""
        content, style = self.preview_pairs
        out = self.decoder(adain(self.encoder(content)["relu4_1"], self.encoder(style)["relu4_1"]))
        return torch.cat([content, style, out.clamp(-1, 1)])
