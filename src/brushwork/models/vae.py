"""Convolutional variational autoencoder (Kingma & Welling 2014) for images of 32..256 px.

encoder: strided 4x4 convs halve the image down to 4x4, then one linear layer gives (mu, log var);
decoder: a linear layer back to a 4x4 map, then transposed convs double it up to the image.
Channel widths follow the same DCGAN schedule as the GAN (width at R/2, doubling, capped at 8x).
No normalisation layers, so an image's code never depends on the rest of its batch.

Shapes: B batch, L latent size, R resolution, C4 = channels of the 4x4 map. Not square
(``config.check_canvas``): the smallest map is h0 x w0 (64x80: 5 x 4), the rest the same.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from brushwork.config import VAEConfig, base_map, canvas_of
from brushwork.models.gan import dcgan_channels


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        res = min(canvas_of(cfg.resolution, cfg.height))  # sizes count along the shorter side
        ch = lambda size: dcgan_channels(cfg.width, res, size)  # noqa: E731
        layers, size, c_in = [], res, 3
        while size > 4:  # [B, c, s, s] -> [B, ch(s/2), s/2, s/2]
            layers += [nn.Conv2d(c_in, ch(size // 2), 4, 2, 1), nn.LeakyReLU(0.2, True)]
            c_in, size = ch(size // 2), size // 2
        self.features = nn.Sequential(*layers)  # [B, C4, 4, 4]
        h0, w0 = base_map(cfg.resolution, cfg.height)
        self.to_stats = nn.Linear(c_in * h0 * w0, 2 * cfg.latent_dim)  # -> [B, 2L]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_stats(self.features(x).flatten(1)).chunk(2, dim=1)  # [B, L] each
        return mu, logvar


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        res = min(canvas_of(cfg.resolution, cfg.height))  # sizes count along the shorter side
        ch = lambda size: dcgan_channels(cfg.width, res, size)  # noqa: E731
        self.c4, self.base = ch(4), base_map(cfg.resolution, cfg.height)
        self.from_latent = nn.Linear(cfg.latent_dim, self.c4 * self.base[0] * self.base[1])  # [B, L] -> [B, C4*16]
        layers, size = [nn.LeakyReLU(0.2, True)], 4
        while size < res // 2:  # [B, ch(s), s, s] -> [B, ch(2s), 2s, 2s]
            layers += [nn.ConvTranspose2d(ch(size), ch(2 * size), 4, 2, 1), nn.LeakyReLU(0.2, True)]
            size *= 2
        # Linear output: the mean of a Gaussian decoder, in the data's [-1, 1] scale.
        layers.append(nn.ConvTranspose2d(ch(size), 3, 4, 2, 1))  # [B, 3, R, R]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.from_latent(z).view(-1, self.c4, *self.base))


class VAE(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        cfg.validate()
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """z = mu + sigma * eps: a sample of q(z|x) that gradients flow through."""
        eps = torch.randn_like(mu) if noise is None else noise
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: torch.Tensor,
                noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, 3, R, R] (and the posterior sample's noise [B, L], default fresh) ->
        (reconstruction [B, 3, R, R], mu [B, L], logvar [B, L])."""
        mu, logvar = self.encoder(x)
        return self.decoder(self.reparameterise(mu, logvar, noise)), mu, logvar
