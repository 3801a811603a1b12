"""``brushwork evaluate`` and ``train --eval-every``: score a model's samples against real images."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from brushwork.config import index_side
from brushwork.data.dataset import ArtDataset, default_cache_dir, load_dataset
from brushwork.errors import BrushworkError, WeightsUnavailable
from brushwork.making.generate import load_model
from brushwork.imaging import psnr, uint8_from_unit, unit_from_uint8
from brushwork.metrics.collection_index import open_index_for
from brushwork.metrics.evaluate import evaluate_images, make_extractor, parse_metrics
from brushwork.metrics.swd import swd
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
    """Scores a generator's samples (seeds 0..n-1) against a fixed real subset; reusable.
    ``index``: the collection's originality index (``brushwork index``), when there is one: the
    share of samples it calls copies is reported as ``copy_rate``."""

    def __init__(self, ds: ArtDataset, n: int, metrics: set[str], device, features: str = "inception",
                 inception_weights: str | None = None, cache_dir: str | Path = "", index=None):
        self.real = real_subset(ds, n)
        self.n, self.metrics, self.device, self.index = n, metrics, device, index
        self.extractor = feature_extractor_or_none(metrics, features, inception_weights)
        self.cache_dir = Path(cache_dir or default_cache_dir())

    def __call__(self, sample_seeds) -> dict[str, float]:
        """``sample_seeds(list of seeds) -> images [N, 3, R, R] in [-1, 1]``."""
        seeds = list(range(self.n))
        fake = torch.cat([uint8_from_unit(sample_seeds(seeds[i:i + 256]).cpu())  # 8-bit as it comes
                          for i in range(0, self.n, 256)])
        row = evaluate_images(fake, self.real.images, self.metrics, self.device, self.extractor,
                              self.real.fingerprint, self.cache_dir)
        if self.index is not None:
            row["copy_rate"] = sum(v["verdict"] == "COPY" for v in self.index.check(fake)) / len(fake)
        return row


def _novelty(samples: torch.Tensor, ds: ArtDataset, features: str | None, device) -> dict[str, float]:
    """Novelty (median nearest tiled-L2 distance to a training work) and memorisation rate (the
    originality check's copy rate; needs VGG19 ``features``: skipped when None, or with a note
    when they cannot be had)."""
    from brushwork.metrics.originality import check_originality, tiled_l2
    from brushwork.originality_report import originality_encoder

    encoder = None
    if features is not None:
        try:
            encoder = originality_encoder(features, device)
        except BrushworkError as exc:
            if isinstance(exc, WeightsUnavailable):
                exc.option = "--originality-features PATH (or random, a weak stand-in)"
            print(f"note: memorisation rate skipped: {exc}", file=sys.stderr)
    if encoder is None:
        return {"novelty": float(tiled_l2(samples, ds.images)[0].median())}
    # pixel and feature measures only: the edited-copy checks cost ~0.1 s an image (brushwork
    # originality runs them)
    report = check_originality(samples, ds.images, encoder, edits=False)
    return {"novelty": float(report.tiled_l2.median()),
            "memorisation_rate": float(report.copies.float().mean())}


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean RMS pixel distance (0..1 scale) between all pairs of uint8 images [N, 3, R, R]."""
    x = images.float().flatten(1) / 255
    return float(torch.pdist(x).mean() / x.shape[1] ** 0.5)


def style_metrics(model, ds: ArtDataset, n: int, device, features: str | None = "imagenet",
                  cache_dir: str | Path = "") -> dict[str, float]:
    """How the samples relate to the learned styles, judged by brushwork's own style classifier.

    Conditional runs also get ``style_variety``: the mean pairwise distance of a style's samples
    over that of its real works (below 1: the samples of a style look more alike than its works).
    Every run: ``ambiguity`` (mean normalised entropy of the judge on samples, 0 = clearly one
    style, 1 = none) beside ``real_ambiguity`` (the same on held-out real works), ``novelty`` and
    ``memorisation_rate``. Conditional runs also: per style, how often samples asked for it are
    judged to be it (``style_accuracy/<name>``, beside the judge's accuracy on real works of it)
    and the SWD of those samples against that style's works.
    """
    from brushwork.metrics.style_judge import load_or_train_judge, normalised_entropy

    judge = load_or_train_judge(ds, device, cache_dir)
    if model.conditional and judge.names != model.style_names:
        raise BrushworkError(f"the data's styles ({', '.join(judge.names)}) are not the run's "
                             f"({', '.join(model.style_names)})")
    row = {"judge_accuracy": judge.accuracy, "real_ambiguity": judge.real_ambiguity}
    if model.conditional:
        per_style = max(2, n // len(judge.names))
        seeds = list(range(per_style))
        hits, spread = [], []
        for k, name in enumerate(judge.names):
            fake = model.seed_pixels(seeds, style=name)
            hits.append(float((judge.probabilities(fake, device).argmax(1) == k).float().mean()))
            row[f"style_accuracy/{name}"] = hits[-1]
            row[f"judge_accuracy/{name}"] = judge.per_style_accuracy[name]
            real = real_subset(ds.subset((ds.labels == k).nonzero().flatten()), per_style)
            row[f"style_swd/{name}"] = swd(fake, real.images, device=device)["mean"]
            # variety within the style: how different its samples are from one another, over how
            # different its real works are (1 = as varied as the style itself)
            spread.append(mean_pairwise_distance(fake) / max(mean_pairwise_distance(real.images), 1e-8))
            row[f"style_variety/{name}"] = spread[-1]
        row["style_accuracy"] = sum(hits) / len(hits)
        row["style_variety"] = sum(spread) / len(spread)
    samples = model.seed_pixels(list(range(n)))
    row["ambiguity"] = float(normalised_entropy(judge.probabilities(samples, device)).mean())
    row.update(_novelty(samples, ds, features, device))
    return {k: round(v, 5) for k, v in row.items()}


@torch.no_grad()
def reconstruction_metrics(model, ds: ArtDataset, n: int) -> dict[str, float]:
    """How much of n works an encoder-decoder run keeps (posterior means decoded): PSNR and SWD
    of the reconstructions against the works themselves, beside the trivial baseline of the works
    area-reduced to the latent's size and enlarged back by bicubic interpolation."""
    works = real_subset(ds, n, seed=1).images  # uint8 [n, 3, H, W]
    x = unit_from_uint8(works)
    recon = torch.cat([model.decode(model.encode(c)[0]) for c in x.split(64)])
    factor = model.config.model.factor
    small = F.avg_pool2d(x, factor)
    bicubic = F.interpolate(small, scale_factor=factor, mode="bicubic", align_corners=False).clamp(-1, 1)
    row = {}
    for name, made in (("recon", recon), ("bicubic", bicubic)):
        row[f"{name}_psnr"] = round(psnr(made, x).mean().item(), 3)
        row[f"{name}_swd"] = swd(uint8_from_unit(made), works)["mean"]
    return row


def held_out_works(model, data: str, ds: ArtDataset) -> ArtDataset:
    """The works a run never trained on: its own held-out split when ``data`` is what it trained
    on, else all of ``data``."""
    same = data == model.config.train.data or (not data.startswith("builtin:") and
                                                Path(data).resolve() == Path(model.config.train.data))
    if same and hasattr(model.config.model, "val_fraction"):
        return ds.split(model.config.model.val_fraction, seed=model.config.train.seed)[1]
    return ds


def evaluate_run(run: str | Path, data: str, n: int, metrics_text: str, features: str,
                 inception_weights: str | None, device: str,
                 originality_features: str = "imagenet") -> dict:
    """Evaluate a run's newest checkpoint; the row is appended to its metrics.jsonl too. Runs that
    make images from seeds are scored by their samples, encoder-decoder runs that do not (an
    autoencoder) by their reconstructions of held-out works."""
    metrics = parse_metrics(metrics_text)
    model = load_model(run, device)
    cfg = model.config.model
    ds = load_dataset(data, cfg.resolution, progress=False, height=getattr(cfg, "height", 0))
    if not model.can("sample"):
        works = held_out_works(model, data, ds)
        row = {"step": model.step, "eval_n": min(n, len(works)), **reconstruction_metrics(model, works, n)}
        append_jsonl(Path(run) / "metrics.jsonl", row)
        return row
    index = open_index_for(data, index_side(cfg))
    evaluator = SampleEvaluator(ds, n, metrics - {"style"}, model.device, features, inception_weights, index=index)
    row = {"step": model.step, "eval_n": min(n, len(ds))}
    if metrics - {"style"}:
        row.update(evaluator(model.generate_seeds))
    if "style" in metrics:
        row.update({f"eval_{k}": v for k, v in
                    style_metrics(model, ds, n, model.device, originality_features).items()})
    append_jsonl(Path(run) / "metrics.jsonl", row)
    if index is None and metrics - {"style"}:  # said once the row is safely written
        print(f"note: {data} has no originality index, so no copy_rate (brushwork index {data} makes one)",
              file=sys.stderr)
    return row
