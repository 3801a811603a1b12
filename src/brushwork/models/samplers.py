"""Solving the diffusion ODE: EDM's noise schedule and two deterministic second-order solvers.

A denoiser D(x; sigma) defines the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma
(EDM, Karras et al. 2022, with s(t) = 1 and sigma(t) = t). Images are made by starting from
x = sigma_max * z (z standard normal) and integrating down the schedule to sigma = 0:

* ``heun``: EDM's Algorithm 1 without churn: an Euler step corrected by the slope at its end
  (two evaluations per step, one for the last step to 0).
* ``dpm2m``: DPM-Solver++(2M) (Lu et al. 2022): exact in the linear part, a second-order
  multistep estimate of D from the previous step's denoised image (one evaluation per step).

Both are deterministic, so an image depends only on its starting noise, which is what lets a
seed name an image. Training previews and every making verb (sample, paint) use these.
"""

from __future__ import annotations

from typing import Callable

import torch

DenoiseFn = Callable[[torch.Tensor, float], torch.Tensor]  # (x [B, 3, H, W], sigma) -> D(x; sigma)


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0,
                  top: float | None = None) -> list[float]:
    """``steps`` noise levels from ``top`` (default sigma_max) down to sigma_min, evenly spaced in
    sigma^(1/rho) (EDM eq. 5), then 0: [steps + 1] floats."""
    top = sigma_max if top is None else top
    if steps == 1:
        return [float(top), 0.0]
    hi, lo = top ** (1 / rho), sigma_min ** (1 / rho)
    return [float((hi + i / (steps - 1) * (lo - hi)) ** rho) for i in range(steps)] + [0.0]


def sigma_at_strength(strength: float, sigma_min: float, sigma_max: float, rho: float = 7.0) -> float:
    """The noise level a guided edit starts from: strength 1 is sigma_max (the sketch is drowned),
    0 is sigma_min; in between, evenly in sigma^(1/rho), as the schedule's steps are spaced."""
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return float((lo + strength * (hi - lo)) ** rho)


def heun_step(denoise: DenoiseFn, x: torch.Tensor, sigma: float, sigma_next: float,
              denoised: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of Heun's method from sigma to sigma_next: (x at sigma_next, D(x; sigma))."""
    denoised = denoise(x, sigma) if denoised is None else denoised
    slope = (x - denoised) / sigma
    x_next = x + (sigma_next - sigma) * slope
    if sigma_next > 0:  # the correction; the last step to 0 stays an Euler step (EDM)
        slope_next = (x_next - denoise(x_next, sigma_next)) / sigma_next
        x_next = x + (sigma_next - sigma) * (slope + slope_next) / 2
    return x_next, denoised


def dpm2m_step(denoise: DenoiseFn, x: torch.Tensor, sigma: float, sigma_next: float,
               previous: tuple[float, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DPM-Solver++(2M) step; ``previous`` = (sigma, D) of the step before, or None for the
    first (first order). Returns (x at sigma_next, D(x; sigma))."""
    denoised = denoise(x, sigma)
    if sigma_next == 0:
        return denoised, denoised
    t, t_next = -torch.log(torch.tensor(sigma)), -torch.log(torch.tensor(sigma_next))
    h = float(t_next - t)
    estimate = denoised
    if previous is not None:  # second order: extrapolate D along log-sigma from the last step
        sigma_prev, denoised_prev = previous
        r = float(t - (-torch.log(torch.tensor(sigma_prev)))) / h
        estimate = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * denoised_prev
    x_next = (sigma_next / sigma) * x - torch.expm1(torch.tensor(-h)).item() * estimate
    return x_next, denoised


def solve(denoise: DenoiseFn, x: torch.Tensor, sigmas: list[float], sampler: str = "dpm2m",
          callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Integrate from x at sigmas[0] to sigmas[-1] (0: a clean image). ``callback(i, D)`` sees
    each step's denoised estimate (the studio shows the image forming)."""
    previous = None
    for i, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        if sampler == "heun":
            x, denoised = heun_step(denoise, x, sigma, sigma_next)
        else:
            x, denoised = dpm2m_step(denoise, x, sigma, sigma_next, previous)
            previous = (sigma, denoised)
        if callback is not None:
            callback(i, denoised)
    return x


def evaluations(sampler: str, steps: int) -> int:
    """Denoiser evaluations a full solve makes (Heun: two per step but the last)."""
    return 2 * steps - 1 if sampler == "heun" else steps


# Images per denoiser call when sampling, always (the last call padded): on the CPU a batch of
# another size computes slightly different floats (1.5e-8 measured), and an image must not depend
# on how many others were asked for with it, or a seed would not name one image.
SAMPLING_BATCH = 8


def guided(denoiser, style: torch.Tensor | None, guidance: float = 1.0) -> DenoiseFn:
    """The denoiser at one noise level for a batch, with its style weights [B, K] (or None).
    ``guidance`` g != 1 is classifier-free guidance: D_none + g (D_style - D_none), both from one
    call of twice the batch."""
    def denoise(x: torch.Tensor, sigma: float) -> torch.Tensor:
        s = torch.full((len(x),), sigma, device=x.device)
        if style is None or guidance == 1:
            return denoiser(x, s, style)
        both = denoiser(torch.cat([x, x]), torch.cat([s, s]), torch.cat([style, torch.zeros_like(style)]))
        with_style, without = both.chunk(2)
        return without + guidance * (with_style - without)
    return denoise


def in_fixed_batches(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor | None,
                     batch: int = SAMPLING_BATCH) -> torch.Tensor:
    """fn(*chunks) over rows of ``tensors`` in chunks of exactly ``batch`` rows (the last padded
    with zeros, its padding dropped from the result); None passes through as None."""
    n = next(len(t) for t in tensors if t is not None)
    out = []
    for start in range(0, n, batch):
        chunks = []
        for t in tensors:
            if t is None:
                chunks.append(None)
                continue
            chunk = t[start:start + batch]
            pad = batch - len(chunk)
            chunks.append(torch.cat([chunk, chunk.new_zeros((pad, *chunk.shape[1:]))]) if pad else chunk)
        out.append(fn(*chunks)[:min(batch, n - start)])
    return torch.cat(out)


@torch.no_grad()
def sample_images(denoiser, noise: torch.Tensor, sigmas: list[float], sampler: str,
                  style: torch.Tensor | None = None, guidance: float = 1.0,
                  callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Images [N, 3, H, W] (unclamped) from standard-normal noise [N, 3, H, W] started at
    sigmas[0]; style weights [N, K] for conditional models. ``callback(i, D)`` sees each step's
    denoised estimate of the last chunk."""
    def one_batch(z: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        return solve(guided(denoiser, s, guidance), z * sigmas[0], sigmas, sampler, callback)
    return in_fixed_batches(one_batch, noise, style)
