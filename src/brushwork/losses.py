"""GAN losses as plain functions of discriminator logits (pre-sigmoid scores).

D(x) = sigmoid(logit). Every function returns a scalar to *minimise*.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))]: the seed's discriminator objective, as a minimisation.

    The seed article writes L_disc = E[log D(x)] + E[log(1 - D(G(z)))] to be *maximised*; this is
    its negation, computed stably with softplus: -log sigmoid(l) = softplus(-l).
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))]: the seed article's generator loss, exactly (Goodfellow et al. 2014).

    It saturates: when D confidently rejects fakes, its gradient vanishes. Kept for reference and
    tests; training uses the non-saturating form below, as the original GAN paper recommends.
    """
    return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(l)) = -softplus(l)


def bce_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss -E[log D(G(z))] (DCGAN, Keras' BCE with label 1)."""
    return F.softplus(-fake_logits).mean()


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017; SAGAN, BigGAN)."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]."""
    return -fake_logits.mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 on real images (Mescheder et al. 2018); reals must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.float().square().sum(dim=(1, 2, 3)).mean()


def style_ambiguity_loss(style_logits: torch.Tensor) -> torch.Tensor:
    """CAN's style ambiguity (Elgammal et al. 2017): cross-entropy between the uniform distribution
    over the K styles and the style classifier's posterior, -1/K sum_k log p_k, mean over batch.
    Smallest (log K) when the classifier cannot place the work in any one style."""
    return -F.log_softmax(style_logits, dim=1).mean(dim=1).mean()


DISCRIMINATOR_LOSSES = {"bce": bce_discriminator_loss, "hinge": hinge_discriminator_loss}
GENERATOR_LOSSES = {"bce": bce_generator_loss, "hinge": hinge_generator_loss}


# ---- VAE ---------------------------------------------------------------------------------------
def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) = -1/2 sum(1 + log s^2 - mu^2 - s^2), summed over z, mean over batch."""
    return (-0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(dim=1)).mean()


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """||x - x_hat||^2 (or the L1 norm), summed over pixels, mean over batch."""
    diff = x_hat - x
    per_image = diff.square() if kind == "mse" else diff.abs()
    return per_image.flatten(1).sum(dim=1).mean()


def sliced_patch_distance(fake: torch.Tensor, real: torch.Tensor, patch: int = 5, samples: int = 4096,
                          directions: int = 64) -> torch.Tensor:
    """How unlike the small-patch statistics of two batches [B, 3, H, W] are: the sliced
    Wasserstein-1 distance between ``samples`` random patch x patch patches of each, along
    ``directions`` random unit directions (differentiable in ``fake``). A texture loss: it asks
    for patches like the real ones wherever they are, where L1 asks each pixel for its own value
    and so settles on their average, the blur super-resolution nets are known for (Heitz et al.
    2021 slice deep features the same way; here, pixels)."""
    a, b = (F.unfold(x, patch).transpose(1, 2).reshape(-1, 3 * patch * patch) for x in (fake, real))
    pick = lambda x: x[torch.randint(len(x), (samples,), device=x.device)]  # noqa: E731
    dirs = F.normalize(torch.randn(a.shape[1], directions, device=fake.device), dim=0)
    return ((pick(a) @ dirs).sort(dim=0).values - (pick(b) @ dirs).sort(dim=0).values).abs().mean()


# ---- autoencoder ------------------------------------------------------------------------------
def laplacian_l1(x_hat: torch.Tensor, x: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Lap1 (Bojanowski et al. 2018): the L1 distance of each band of two Laplacian pyramids,
    each band's mean weighted alike (the paper's 2^2j on sums). It asks for edges and texture at
    every octave, where plain L1 settles for their average, and needs no downloaded weights."""
    total = x_hat.new_zeros(())
    for _ in range(levels):
        if min(x.shape[-2:]) < 2:
            break
        small_hat, small = F.avg_pool2d(x_hat, 2), F.avg_pool2d(x, 2)  # an odd side loses its last row
        band_hat = x_hat - F.interpolate(small_hat, size=x.shape[-2:], mode="nearest")
        band = x - F.interpolate(small, size=x.shape[-2:], mode="nearest")
        total = total + (band_hat - band).abs().mean()
        x_hat, x = small_hat, small
    return total + (x_hat - x).abs().mean()


def pairwise_similarity_loss(adapted: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """DDPM-PA's pairwise term (Zhu et al. 2022): KL(p_source || p_adapted) between each image's
    softmax distribution of cosine similarities to the other images of the batch, as the frozen
    source model and the model being adapted see them ([B, ...] each, B >= 2). Adapting to few
    works pulls every sample towards them; keeping the source's relative distances keeps variety."""
    b = len(adapted)
    others = ~torch.eye(b, dtype=torch.bool, device=adapted.device)
    a = F.normalize(adapted.flatten(1).float(), dim=1)
    s = F.normalize(source.flatten(1).float(), dim=1)
    log_p_adapted = F.log_softmax((a @ a.T)[others].view(b, b - 1), dim=1)
    p_source = F.softmax((s @ s.T)[others].view(b, b - 1), dim=1)
    return F.kl_div(log_p_adapted, p_source, reduction="batchmean")
