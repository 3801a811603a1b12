"""The style judge: brushwork's own style classifier, trained on the real works, used to measure
how well generated images hit a style and how far they stray from all of them.

It is deliberately not the discriminator's style head (a creative GAN's generator is trained
against that head, so it would grade its own exam): a separate small CNN, seeded, trained on 90%
of the real works and scored on the held-out 10%. Trained judges are cached (safetensors + JSON
metadata, written atomically) keyed by the data's fingerprint, the resolution and this file's
recipe version, like the other reference statistics.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from brushwork.data.dataset import ArtDataset, default_cache_dir
from brushwork.errors import BrushworkError
from brushwork.imaging import unit_from_uint8
from brushwork.utils import atomic_write

JUDGE_VERSION = 1  # bump when the network or its training changes: old cached judges are ignored
HELD_OUT = 0.1  # fraction of the real works the judge never trains on
EPOCHS = 12  # passes over the training works (no early stopping: a fixed, seeded recipe)
MIN_STEPS = 400  # small collections still get this many optimiser steps
BATCH = 64


class StyleNet(nn.Module):
    """Four strided conv blocks (32 -> 256 channels), global average pool, linear: any size >= 32."""

    def __init__(self, num_styles: int, width: int = 32):
        super().__init__()
        layers, c_in = [], 3
        for c_out in (width, 2 * width, 4 * width, 8 * width):  # each block halves the map
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.classify = nn.Sequential(nn.Dropout(0.2), nn.Linear(c_in, num_styles))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, R, R] in [-1, 1] -> logits [B, K]
        return self.classify(self.features(x).mean(dim=(2, 3)))


@dataclass
class StyleJudge:
    net: StyleNet
    names: list[str]
    accuracy: float  # on the held-out real works
    per_style_accuracy: dict[str, float]
    real_ambiguity: float  # mean normalised entropy of the judge on held-out real works

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, device, batch: int = 256) -> torch.Tensor:
        """[N, K] style probabilities of uint8 images [N, 3, R, R]."""
        self.net.eval().to(device)
        out = [F.softmax(self.net(unit_from_uint8(c.to(device))).float(), dim=1).cpu()
               for c in images.split(batch)]
        return torch.cat(out)


def normalised_entropy(p: torch.Tensor) -> torch.Tensor:
    """[N] entropy of each row of probabilities [N, K] divided by log K: 0 = sure, 1 = uniform."""
    return -(p * p.clamp_min(1e-12).log()).sum(dim=1) / math.log(p.shape[1])


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips and shifts of up to 1/8 of the side (uint8 in, float [-1, 1] out)."""
    b, _, r, _ = x.shape
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = r // 8
    padded = F.pad(unit_from_uint8(x), (pad, pad, pad, pad), mode="reflect")
    dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy:dy + r, dx:dx + r]


def _accuracy(net: StyleNet, images: torch.Tensor, labels: torch.Tensor, k: int, device) -> tuple[float, list[float], float]:
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(unit_from_uint8(c.to(device))).float().cpu() for c in images.split(256)])
    right = logits.argmax(1) == labels
    per_style = [float(right[labels == i].float().mean()) if (labels == i).any() else float("nan")
                 for i in range(k)]
    ambiguity = float(normalised_entropy(F.softmax(logits, 1)).mean())
    return float(right.float().mean()), per_style, ambiguity


def train_judge(ds: ArtDataset, device, seed: int = 0, epochs: int = EPOCHS, progress: bool = True) -> StyleJudge:
    """Train a judge on ``1 - HELD_OUT`` of the works and score it on the rest."""
    names = ds.label_names
    if len(names) < 2 or "" in names:
        raise BrushworkError("the style judge needs at least two style folders and every image in one")
    train, held = ds.split(HELD_OUT, seed=seed)
    torch.manual_seed(seed)
    net = StyleNet(len(names)).to(device)
    steps = max(MIN_STEPS, epochs * len(train) // BATCH)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for _ in tqdm(range(steps), desc="training the style judge", unit="step", disable=not progress,
                  file=sys.stderr):
        idx = torch.randint(len(train), (BATCH,), generator=generator)
        x = _augment(train.images[idx], generator).to(device)
        loss = F.cross_entropy(net(x), train.labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    accuracy, per_style, ambiguity = _accuracy(net, held.images, held.labels, len(names), device)
    return StyleJudge(net.eval(), names, accuracy, dict(zip(names, per_style)), ambiguity)


def _cache_path(ds: ArtDataset, cache_dir) -> Path:
    res = ds.images.shape[-1]
    return Path(cache_dir or default_cache_dir()) / "style_judges" / f"{ds.fingerprint}-{res}-v{JUDGE_VERSION}.safetensors"


def load_or_train_judge(ds: ArtDataset, device, cache_dir: str | Path = "", progress: bool = True) -> StyleJudge:
    """The cached judge of this data (at its resolution), training one the first time."""
    from safetensors.torch import load_file, save

    path = _cache_path(ds, cache_dir)
    if path.is_file() and ds.fingerprint:
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = json.loads(f.metadata()["judge"])
            net = StyleNet(len(meta["names"]))
            net.load_state_dict(load_file(str(path)))
            return StyleJudge(net.eval(), meta["names"], meta["accuracy"], meta["per_style_accuracy"],
                              meta["real_ambiguity"])
        except Exception:  # a damaged cache is just rebuilt
            pass
    judge = train_judge(ds, device, progress=progress)
    if ds.fingerprint:
        meta = {"names": judge.names, "accuracy": judge.accuracy,
                "per_style_accuracy": judge.per_style_accuracy, "real_ambiguity": judge.real_ambiguity}
        state = {k: v.detach().cpu().contiguous() for k, v in judge.net.state_dict().items()}
        try:
            atomic_write(path, save(state, metadata={"judge": json.dumps(meta)}))
        except BrushworkError as exc:  # an unwritable cache must not stop an evaluation
            print(f"warning: style judge not cached ({exc})", file=sys.stderr)
    return judge
