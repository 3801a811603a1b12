"""``brushwork evaluate`` and ``train --eval-every``: score a model's samples against real images."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from brushwork.data.dataset import ArtDataset, default_cache_dir, load_dataset
from brushwork.errors import BrushworkError
from brushwork.generate import load_model
from brushwork.imaging import uint8_from_unit
from brushwork.metrics.evaluate import evaluate_images, make_extractor, parse_metrics
from brushwork.runs.directory import append_jsonl


def real_subset(ds: ArtDataset, n: int, seed: int = 0) -> ArtDataset:
    """A fixed random subset of n images (all of them when there are fewer)."""
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    return ds.subset(order[: min(n, len(ds))])


def feature_extractor_or_none(metrics: set[str], features: str, weights: str | None):
    """The extractor for FID/KID/PR, or None (with a one-line note) when it can't be had."""
    if not metrics & {"fid", "kid", "pr"}:
        return None
    try:
        return make_extractor(features, weights)
    except BrushworkError as exc:
        print(f"note: {exc}; computing the other metrics", file=sys.stderr)
        return None


class SampleEvaluator:
    """Scores a generator's samples (seeds 0..n-1) against a fixed real subset; reusable."""

    def __init__(self, ds: ArtDataset, n: int, metrics: set[str], device, features: str = "inception",
                 inception_weights: str | None = None, cache_dir: str | Path = ""):
        self.real = real_subset(ds, n)
        self.n, self.metrics, self.device = n, metrics, device
        self.extractor = feature_extractor_or_none(metrics, features, inception_weights)
        self.cache_dir = Path(cache_dir or default_cache_dir())

    def __call__(self, sample_seeds) -> dict[str, float]:
        """``sample_seeds(list of seeds) -> images [N, 3, R, R] in [-1, 1]``."""
        seeds = list(range(self.n))
        fake = uint8_from_unit(torch.cat([sample_seeds(seeds[i:i + 256]).cpu()
                                          for i in range(0, self.n, 256)]))
        return evaluate_images(fake, self.real.images, self.metrics, self.device, self.extractor,
                               self.real.fingerprint, self.cache_dir)


def evaluate_run(run: str | Path, data: str, n: int, metrics_text: str, features: str,
                 inception_weights: str | None, device: str) -> dict:
    """Evaluate a run's newest checkpoint; the row is appended to its metrics.jsonl too."""
    metrics = parse_metrics(metrics_text)
    model = load_model(run, device)
    ds = load_dataset(data, model.config.model.resolution, progress=False)
    evaluator = SampleEvaluator(ds, n, metrics, model.device, features, inception_weights)
    row = {"step": model.step, "eval_n": min(n, len(ds)), **evaluator(model.generate_seeds)}
    append_jsonl(Path(run) / "metrics.jsonl", row)
    return row
