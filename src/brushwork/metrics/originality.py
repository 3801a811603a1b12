"""Originality: is a generated image new, or a copy of a training image?

Two nearest-neighbour measures between generated and training images:

* tiled L2 (Carlini et al. 2023): split both images into a 4x4 grid of tiles, take the L2
  distance of each pair of corresponding tiles, and keep the *worst* (largest) one. A copy that is
  only near-identical everywhere scores low; two images sharing one region but not the rest do not.
* feature cosine similarity: globally pooled VGG19 features (ImageNet weights when available, the
  random stand-in otherwise), a looser, more perceptual notion of "the same picture".

Both are fooled by the edits a memorising model or a careless user makes (a mirrored work is far
from itself in pixels), so two offline checks (``metrics/copies.py``) run beside them: a work
mirrored, cropped, recoloured, re-compressed, rescaled or rotated a little ("edited copy"), and a
quarter of a work pasted into another picture ("pasted region"). An image is a copy when the
pixel and feature measures both flag it, or either of those checks does; each verdict says which.

Thresholds are calibrated on the training set itself (Somepalli et al. 2023): for each of a sample
of training images, the distance to its nearest *other* training image; a generated image is
flagged when it is closer to a training image than all but ``percentile``% of those pairs are.
Data sets with duplicates (scraped collections have them) make that threshold stricter, not looser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from brushwork.imaging import as_unit, tiles
from brushwork.metrics.copies import EditedCopies

def tiled_l2(a: torch.Tensor, b: torch.Tensor, chunk: int = 256, exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image of ``a``: (smallest worst-tile L2 distance to any image of ``b``, its index).
    ``exclude_self`` (a is b): ignore each image's distance to itself."""
    ta, tb = tiles(a), tiles(b)
    best, index = [], []
    for start in range(0, ta.shape[1], chunk):
        d = torch.cdist(ta[:, start:start + chunk], tb).amax(dim=0)  # [chunk, M]: worst tile
        if exclude_self:
            rows = torch.arange(d.shape[0])
            d[rows, rows + start] = float("inf")
        value, idx = d.min(dim=1)
        best.append(value)
        index.append(idx)
    return torch.cat(best), torch.cat(index)


def cosine_nearest(a: torch.Tensor, b: torch.Tensor, exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest cosine similarity of each row of ``a`` [N, D] to the rows of ``b`` [M, D]."""
    sim = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
    if exclude_self:
        sim.fill_diagonal_(-float("inf"))
    return sim.max(dim=1)


@torch.no_grad()
def pooled_features(encoder, images: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """[N, D]: channel means of the encoder's feature maps, concatenated across its layers."""
    out = []
    for chunk in images.split(batch):
        feats = encoder(as_unit(chunk).to(encoder.mean.device))
        out.append(torch.cat([f.mean(dim=(2, 3)) for f in feats.values()], dim=1).cpu())
    return torch.cat(out)


@dataclass
class OriginalityReport:
    tiled_l2: torch.Tensor  # [N] nearest worst-tile distance of each generated image
    tiled_index: torch.Tensor  # [N] index of that training image
    feature_similarity: torch.Tensor  # [N] nearest cosine similarity
    feature_index: torch.Tensor  # [N]
    l2_threshold: float  # flagged when tiled_l2 < this
    similarity_threshold: float  # flagged when feature_similarity > this
    train_l2: torch.Tensor  # calibration: train-vs-train nearest distances
    train_similarity: torch.Tensor
    train_names: list[str] = field(default_factory=list)  # training file names, by index
    edits: dict[str, torch.Tensor] = field(default_factory=dict)  # metrics/copies.py scores, if run
    edit_threshold: float = 1.0  # flagged as an edited copy when edit_score >= this
    region_threshold: float = 1.0  # flagged as holding a pasted region when region_score >= this

    def train_name(self, j: int) -> str:
        return self.train_names[j] if j < len(self.train_names) else f"training image #{j}"

    def nearest(self, i: int) -> dict:
        """Generated image ``i``'s nearest training works by each measure, and its verdict."""
        near = {"tiled_l2": (self.train_name(int(self.tiled_index[i])), float(self.tiled_l2[i])),
                "features": (self.train_name(int(self.feature_index[i])), float(self.feature_similarity[i]))}
        for name in ("edit", "region"):
            if f"{name}_score" in self.edits:
                near[name] = (self.train_name(int(self.edits[f"{name}_index"][i])),
                              float(self.edits[f"{name}_score"][i]))
        return near | {"copy": bool(self.copies[i]), "flagged_by": self.flagged_by(i)}

    @property
    def flags(self) -> dict[str, torch.Tensor]:
        """[N] bool per way of being a copy: pixel-close *and* feature-close; an edited copy; a
        pasted region."""
        found = {"pixels and features": (self.tiled_l2 <= self.l2_threshold)
                 & (self.feature_similarity >= self.similarity_threshold)}
        if "edit_score" in self.edits:
            found["edited copy"] = self.edits["edit_score"] >= self.edit_threshold
            found["pasted region"] = self.edits["region_score"] >= self.region_threshold
        return found

    @property
    def copies(self) -> torch.Tensor:
        """[N] bool: flagged one way or another."""
        return torch.stack(list(self.flags.values())).any(dim=0)

    def flagged_by(self, i: int) -> list[str]:
        return [name for name, found in self.flags.items() if bool(found[i])]

    def summary(self) -> dict:
        n = len(self.tiled_l2)
        summary = {"images": n, "memorisation_rate": round(self.copies.float().mean().item(), 4),
                   "flagged_tiled_l2": round((self.tiled_l2 <= self.l2_threshold).float().mean().item(), 4),
                   "flagged_features": round((self.feature_similarity >= self.similarity_threshold).float().mean().item(), 4),
                   "l2_threshold": round(self.l2_threshold, 4),
                   "similarity_threshold": round(self.similarity_threshold, 4)}
        if self.edits:
            flags = self.flags
            summary |= {"flagged_edited_copy": round(flags["edited copy"].float().mean().item(), 4),
                        "flagged_pasted_region": round(flags["pasted region"].float().mean().item(), 4),
                        "edit_threshold": round(self.edit_threshold, 4),
                        "region_threshold": round(self.region_threshold, 4)}
        return summary


def check_originality(generated: torch.Tensor, train: torch.Tensor, encoder, percentile: float = 5.0,
                      calibration: int = 2000, seed: int = 0, edits: bool = True,
                      edits_cache=None, edited=None) -> OriginalityReport:
    """Nearest training images of every generated image, and copy flags calibrated on ``train``.

    ``percentile``: a generated image is flagged by a measure when it is closer to its nearest
    training image than ``percentile``% of training images are to theirs (default 5%).
    ``calibration``: how many training images estimate that distribution (all when fewer).
    ``edits``: also run the edited-copy and pasted-region checks (``metrics/copies.py``), their
    thresholds kept in the file ``edits_cache`` when given (keyed by the caller to ``train``), or
    ``edited``: those checks already built on ``train`` (a collection's index, ``EditedCopies``).
    """
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    sample = order[: min(calibration, len(train))]
    train_feats = pooled_features(encoder, train)
    train_l2, _ = tiled_l2(train[sample], train[sample], exclude_self=True)
    train_sim, _ = cosine_nearest(train_feats[sample], train_feats[sample], exclude_self=True)
    gen_l2, gen_l2_idx = tiled_l2(generated, train)
    gen_sim, gen_sim_idx = cosine_nearest(pooled_features(encoder, generated), train_feats)
    q = percentile / 100
    report = OriginalityReport(gen_l2, gen_l2_idx, gen_sim, gen_sim_idx,
                               torch.quantile(train_l2, q).item(), torch.quantile(train_sim, 1 - q).item(),
                               train_l2, train_sim)
    if edits:
        check = edited or EditedCopies.build(train, min(calibration, 1000), seed, edits_cache)
        report.edits = check.scores(generated)
        report.edit_threshold, report.region_threshold = check.whole_threshold, check.region_threshold
    return report


def near_duplicates(images: torch.Tensor, max_distance: float = 0.5) -> list[tuple[int, int, float]]:
    """Pairs (i, j, distance), i < j, of images whose worst-tile L2 distance is at most
    ``max_distance`` (about 0 for byte-identical files; JPEG re-encodes of one picture stay well under 0.5)."""
    dist, idx = tiled_l2(images, images, exclude_self=True)
    pairs = {(min(i, j), max(i, j)): d for i, (j, d) in enumerate(zip(idx.tolist(), dist.tolist()))
             if d <= max_distance}
    return sorted((i, j, round(d, 4)) for (i, j), d in pairs.items())
