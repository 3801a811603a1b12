"""Sample-quality metrics of a trained model against real images: SWD, FID, KID, precision/recall.

* SWD needs no network (see swd.py) and is always computed.
* FID (Heusel et al. 2017), KID (Binkowski et al. 2018) and precision/recall (Kynkaanniemi et
  al. 2019, k-NN manifolds, k = 3) share one feature space: the standard FID Inception-v3 as
  packaged by torchmetrics/torch-fidelity (weights: their download cache, or a local file), or
  ``random``: a small fixed-seed conv net, a stand-in that exercises every code path anywhere but
  whose numbers are not comparable with published ones.
* Real-image features are cached (atomically) under the cache folder, keyed by the data set's
  fingerprint (file names, sizes, dates), the resolution, the extractor and the count.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn as nn

from brushwork.errors import BrushworkError, WeightsUnavailable
from brushwork.imaging import unit_from_uint8
from brushwork.metrics.swd import swd
from brushwork.utils import atomic_write

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"


class RandomFeatures(nn.Module):
    """Fixed-seed random conv net -> 64-d features: a stand-in for Inception (tests, offline)."""

    identity = "random-conv64-v1"

    def __init__(self):
        super().__init__()
        torch.manual_seed(1234)
        self.net = nn.Sequential(nn.Conv2d(3, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # uint8 [N, 3, H, W] -> [N, 64]
        return self.net(unit_from_uint8(images))


def inception_features(weights_path: str | None = None) -> nn.Module:
    """torchmetrics' FID Inception-v3 (2048-d pool features); one clear error when unavailable."""
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError:
        raise BrushworkError("FID/KID/PR need torchmetrics and torch-fidelity "
                             "(pip install 'brushwork[metrics]')") from None
    from brushwork.utils import network_reaches

    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    missing = WeightsUnavailable(f"FID/KID/PR need the FID Inception weights ({INCEPTION_FILE}, from "
                                 f"torch-fidelity's release page, {INCEPTION_URL}) at {cached}",
                                 option="--inception-weights PATH")
    if weights_path is None and not cached.is_file() and not network_reaches(INCEPTION_URL):
        raise missing  # at once, instead of after a failing download
    try:
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                 feature_extractor_weights_path=weights_path)
    except Exception:  # no cached weights and the download failed
        raise missing from None
    net.identity = "inception-v3-compat:" + (Path(weights_path).name if weights_path else "default")
    return net


def make_extractor(name: str, weights_path: str | None = None) -> nn.Module:
    if name == "random":
        return RandomFeatures().eval()
    if name == "inception":
        return inception_features(weights_path).eval()
    raise BrushworkError(f"unknown feature extractor {name!r} (choose inception or random)")


@torch.no_grad()
def extract(extractor: nn.Module, images: torch.Tensor, device, batch: int = 100) -> torch.Tensor:
    """uint8 images [N, 3, H, W] -> float64 features [N, D] on the CPU."""
    extractor = extractor.to(device)
    return torch.cat([extractor(c.to(device)).double().cpu().reshape(len(c), -1) for c in images.split(batch)])


def cached_real_features(extractor, images: torch.Tensor, fingerprint: str, cache_dir: Path, device) -> torch.Tensor:
    """Features of the real images, from the cache when this exact set was seen before."""
    from safetensors.torch import load_file, save

    key = hashlib.sha256(f"{fingerprint}|{tuple(images.shape)}|{extractor.identity}".encode()).hexdigest()[:24]
    path = Path(cache_dir) / "features" / f"{key}.safetensors"
    if path.exists():
        try:
            return load_file(str(path))["features"]
        except Exception:  # a damaged cache file is recomputed
            pass
    feats = extract(extractor, images, device)
    atomic_write(path, save({"features": feats.contiguous()}))
    return feats


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """||mu_r - mu_f||^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2)) of two feature sets [N, D]."""
    mu_r, mu_f = real.mean(0), fake.mean(0)
    s_r, s_f = torch.cov(real.T), torch.cov(fake.T)
    # tr((S_r S_f)^1/2) = sum of sqrt of the eigenvalues of S_r S_f (real and >= 0 in exact maths)
    eig = torch.linalg.eigvals(s_r @ s_f).real.clamp_min(0)
    return float((mu_r - mu_f).square().sum() + s_r.trace() + s_f.trace() - 2 * eig.sqrt().sum())


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y/d + 1)^3: mean and std over subsets."""
    g = torch.Generator().manual_seed(seed)
    m = min(subset_size, len(real), len(fake))
    d = real.shape[1]
    values = []
    for _ in range(subsets):
        x = real[torch.randperm(len(real), generator=g)[:m]]
        y = fake[torch.randperm(len(fake), generator=g)[:m]]
        kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        off = 1 - torch.eye(m, dtype=x.dtype)
        values.append(((kxx * off).sum() + (kyy * off).sum()) / (m * (m - 1)) - 2 * kxy.mean())
    values = torch.stack(values)
    return float(values.mean()), float(values.std()) if len(values) > 1 else 0.0


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Share of fakes inside the real manifold (precision) and of reals inside the fake one (recall);
    each manifold = union of balls around its points reaching their k-th nearest neighbour."""
    def covered(manifold, points):
        radii = torch.cdist(manifold, manifold).kthvalue(k + 1, dim=1).values  # +1: self at 0
        return (torch.cdist(points, manifold) <= radii[None]).any(dim=1).double().mean().item()
    return covered(real, fake), covered(fake, real)


def feature_metrics(real: torch.Tensor, fake: torch.Tensor, wanted: set[str]) -> dict[str, float]:
    out = {}
    if "fid" in wanted:
        out["fid"] = round(fid(real, fake), 4)
    if "kid" in wanted:
        out["kid"], out["kid_std"] = (round(v, 6) for v in kid(real, fake))
    if "pr" in wanted:
        out["precision"], out["recall"] = (round(v, 4) for v in precision_recall(real, fake))
    return out


def evaluate_images(fake: torch.Tensor, real: torch.Tensor, metrics: set[str], device,
                    extractor: nn.Module | None = None, fingerprint: str = "",
                    cache_dir: Path | None = None) -> dict[str, float]:
    """Every requested metric of uint8 fakes against uint8 reals, as {"eval_<name>": value}."""
    out: dict[str, float] = {}
    if "swd" in metrics:
        out["swd"] = swd(fake, real, device=device)["mean"]
    if metrics & {"fid", "kid", "pr"} and extractor is not None:
        real_feats = (cached_real_features(extractor, real, fingerprint, cache_dir, device)
                      if cache_dir is not None and fingerprint else extract(extractor, real, device))
        out.update(feature_metrics(real_feats, extract(extractor, fake, device), metrics))
    return {f"eval_{k}": v for k, v in out.items()}


def parse_metrics(text: str) -> set[str]:
    names = {m.strip() for m in text.split(",") if m.strip()}
    unknown = names - {"swd", "fid", "kid", "pr", "style"}
    if unknown or not names:
        raise BrushworkError(f"unknown metric(s) {', '.join(sorted(unknown)) or '(none)'}: "
                             "choose from swd, fid, kid, pr, style")
    return names
