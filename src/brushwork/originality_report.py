"""``brushwork originality``: generate (or take) images, find their nearest training images,
flag copies, and write an HTML report with the closest pairs and the similarity distributions."""

from __future__ import annotations

import hashlib
import html
import sys
from pathlib import Path

import torch

from brushwork.data.dataset import default_cache_dir, load_dataset
from brushwork.imaging import as_unit, grid_image, png_bytes, save_figure, unit_from_uint8
from brushwork.metrics.originality import OriginalityReport, check_originality
from brushwork.models.vgg import VGGFeatures
from brushwork.utils import atomic_write, ensure_dir, ensure_output_file


def originality_encoder(weights: str, device) -> VGGFeatures:
    return VGGFeatures(("relu2_1", "relu3_1", "relu4_1"), weights=weights).to(device)


def _plot(report: OriginalityReport, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=110)
    for ax, gen, train, thr, title in [
            (axes[0], report.tiled_l2, report.train_l2, report.l2_threshold, "nearest tiled L2 (lower = closer)"),
            (axes[1], report.feature_similarity, report.train_similarity, report.similarity_threshold,
             "nearest feature cosine (higher = closer)")]:
        ax.hist(train.numpy(), bins=40, alpha=0.6, density=True, label="training vs training")
        ax.hist(gen.numpy(), bins=40, alpha=0.6, density=True, label="generated vs training")
        ax.axvline(thr, color="k", linestyle="--", label="copy threshold")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out)


def _the_work_it_copies(report: OriginalityReport, i: int) -> int:
    """The training work to show beside image i: the one the measure that flagged it found."""
    flagged = report.flagged_by(i)
    for measure, key in (("edited copy", "edit_index"), ("pasted region", "region_index")):
        if measure in flagged and "pixels and features" not in flagged:
            return int(report.edits[key][i])
    return int(report.tiled_index[i])


def write_report(report: OriginalityReport, generated: torch.Tensor, train: torch.Tensor,
                 path: Path, top: int = 12) -> Path:
    """HTML page: summary, distribution plot, and the ``top`` closest generated/training pairs."""
    folder = path.parent / (path.stem + "_files")
    ensure_dir(folder)
    _plot(report, folder / "distributions.png")
    copies = report.copies.tolist()  # flagged images first, then the closest in pixels
    order = sorted(range(len(copies)), key=lambda i: (not copies[i], float(report.tiled_l2[i])))[:top]
    rows = []
    for rank, i in enumerate(order):
        j = _the_work_it_copies(report, i)
        pair = torch.stack([as_unit(generated[i]), unit_from_uint8(train[j])])
        atomic_write(folder / f"pair{rank:02d}.png", png_bytes(grid_image(pair, columns=2)))
        flag = f"COPY ({', '.join(report.flagged_by(i))})" if bool(report.copies[i]) else ""
        name = report.train_name(j)
        scores = "".join(f"<td>{float(report.edits[k][i]):.3f}</td>" for k in ("edit_score", "region_score")
                         if k in report.edits)
        rows.append(f"<tr><td><img src='{folder.name}/pair{rank:02d}.png'></td><td>#{i}</td>"
                    f"<td>{html.escape(name)}</td><td>{report.tiled_l2[i]:.3f}</td>"
                    f"<td>{report.feature_similarity[i]:.3f}</td>{scores}<td><b>{html.escape(flag)}</b></td></tr>")
    summary = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in report.summary().items())
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>brushwork originality</title>"
            "<style>body{font-family:sans-serif;margin:2em}img{image-rendering:pixelated;height:96px}"
            "td,th{padding:4px 10px;text-align:left}</style></head><body><h1>Originality report</h1>"
            f"<table>{summary}</table><h2>Nearest-neighbour distributions</h2>"
            f"<img style='height:auto' src='{folder.name}/distributions.png'>"
            "<h2>Closest pairs (generated | training)</h2><table><tr><th>pair</th><th>generated</th>"
            "<th>training image</th><th>tiled L2</th><th>feature cos</th>"
            + ("<th>edited copy</th><th>region</th>" if report.edits else "") + "<th></th></tr>"
            + "".join(rows) + "</table></body></html>")
    atomic_write(path, page.encode())
    return path


def images_to_check(run: str | None, image: str | None, n: int, resolution: int, device: str) -> torch.Tensor:
    """uint8 [N, 3, R, R]: one user image (at ``resolution``), or seeds 0..n-1 of a run."""
    from brushwork.data.images import load_rgb_or_exit, square_crop_resize, to_uint8_chw
    from brushwork.errors import BrushworkError
    from brushwork.making.generate import load_model

    if image:
        img = square_crop_resize(load_rgb_or_exit(image), resolution)
        return torch.from_numpy(to_uint8_chw(img))[None]
    if not run:
        raise BrushworkError("originality needs RUN (to generate --n images), --image FILE or --images DIR")
    model = load_model(run, device)
    return model.seed_pixels(list(range(n)))


def folder_to_check(folder: str | Path, resolution: int) -> tuple[torch.Tensor, list[str]]:
    """Every readable image under ``folder`` as uint8 [N, 3, R, R] (centre square, resized), with
    its path relative to the folder; unreadable ones are skipped and named on stderr."""

    from brushwork.data.images import decode_square, list_image_files
    from brushwork.errors import BrushworkError

    root = Path(folder)
    if not root.is_dir():
        raise BrushworkError(f"--images {folder}: no such folder")
    images, names = [], []
    for path in list_image_files(root):
        pixels = decode_square(path, resolution)
        if isinstance(pixels, str):
            print(f"skipped {path.relative_to(root)}: {pixels}", file=sys.stderr)
            continue
        images.append(torch.from_numpy(pixels))
        names.append(str(path.relative_to(root)))
    if not images:
        raise BrushworkError(f"--images {folder}: no readable images in it")
    return torch.stack(images), names


def verdicts(report: OriginalityReport, names: list[str]) -> list[dict]:
    """One plain record per checked image (what ``--json`` prints): its verdict, the measures
    that flagged it, and its nearest work by each measure."""
    out = []
    for i, name in enumerate(names):
        near = report.nearest(i)
        nearest = {"tiled_l2": {"work": near["tiled_l2"][0], "distance": round(near["tiled_l2"][1], 4)},
                   "features": {"work": near["features"][0], "cosine": round(near["features"][1], 4)}}
        for key in ("edit", "region"):
            if key in near:
                nearest[key] = {"work": near[key][0], "score": round(near[key][1], 4)}
        out.append({"file": name, "verdict": "COPY" if near["copy"] else "original",
                    "flagged_by": near["flagged_by"], "nearest": nearest})
    return out


def _indexed_checks(data: str, resolution: int, ds):
    """The edited-copy checks of the collection's index when it holds exactly ``ds``'s works
    (built with ``brushwork index``, not changed since), else None (they are built here)."""
    from brushwork.metrics.collection_index import open_index

    if tuple(ds.images.shape[-2:]) != (resolution, resolution):  # the index holds square works
        return None
    index = open_index(data, resolution)
    if index is None or len(index.names) != len(ds) or (ds.files and index.names != list(ds.files)):
        return None
    return index.copies


def originality(generated: torch.Tensor, data: str, resolution: int, features: str, device,
                report_path: Path | None = None, percentile: float = 5.0) -> OriginalityReport:
    """Check uint8 images [N, 3, R, R] against a data folder; optionally write the HTML report.
    Images that are not square ([N, 3, H, W], a run's canvas) are compared with the works cropped
    to the same canvas."""
    if report_path is not None:
        ensure_output_file(report_path)
    h, w = generated.shape[-2:]
    if h != w:
        resolution = w
    ds = load_dataset(data, resolution, progress=False, height=0 if h == w else h)
    cache = None  # the edited-copy thresholds of this collection, calibrated once
    if ds.fingerprint:
        key = hashlib.sha256(f"{ds.fingerprint}-{resolution}".encode()).hexdigest()[:24]
        cache = default_cache_dir() / "originality" / f"{key}.json"
    report = check_originality(generated, ds.images, originality_encoder(features, device), percentile,
                               edits_cache=cache, edited=_indexed_checks(data, resolution, ds))
    report.train_names = list(ds.files)
    if report_path is not None:
        write_report(report, generated, ds.images, Path(report_path))
    return report


class RunJudge:
    """Checks images a run makes against its training collection's index (``TrainedModel.judge``)
    and, for a built-in model or a run adapted from one, against that model's training works too
    (the index shipped with it): an image is a COPY when it copies a work of any of them. Each
    verdict lists the collections it was checked against (``checked``).

    Remembers the verdicts of the images it has seen, by their pixels: ``--avoid-copies`` judges
    seeds before they are written, and writing them does not check them again. Without any index
    every verdict is None; what could not be checked (``missing``) is said once, when images are
    first made: a mistake found before that still gets its one line."""

    def __init__(self, index, missing: str = "", remember: int = 4096, inherited: tuple = ()):
        self.index, self.missing, self.remember, self.seen = index, missing, remember, {}
        self.inherited = list(inherited)  # indexes of the models it descends from

    @property
    def indexes(self) -> list:
        return [i for i in [self.index, *self.inherited] if i is not None]

    def __call__(self, images: torch.Tensor) -> list[dict | None]:
        from brushwork.imaging import uint8_from_unit

        if self.missing and self.missing not in _TOLD:
            _TOLD.add(self.missing)
            print(self.missing, file=sys.stderr)
        if not self.indexes:
            return [None] * len(images)
        pixels = images if images.dtype == torch.uint8 else uint8_from_unit(images.float().cpu())
        keys = [hashlib.sha1(p.numpy().tobytes()).hexdigest() for p in pixels]
        new = [i for i, key in enumerate(keys) if key not in self.seen]
        if new:
            found = [index.check(pixels[new]) for index in self.indexes]
            for i, verdicts in zip(new, zip(*found)):
                self.seen[keys[i]] = merged(list(verdicts))
            while len(self.seen) > self.remember:  # oldest first (dicts keep insertion order)
                self.seen.pop(next(iter(self.seen)))
        return [dict(self.seen[key]) for key in keys]


def merged(verdicts: list[dict]) -> dict:
    """One verdict from each collection's: the first that calls the image a COPY, else the one
    whose nearest work is most alike; with the list of every collection checked."""
    chosen = next((v for v in verdicts if v["verdict"] == "COPY"),
                  max(verdicts, key=lambda v: v["nearest"]["edit"]["score"]))
    return {**chosen, "checked": [{"collection": v["collection"], "verdict": v["verdict"], "index": v["index"]}
                                  for v in verdicts]}


_TOLD: set[str] = set()  # what was said about missing indexes (once per process)


def builtin_lineage(model) -> list[str]:
    """The built-in models a run is or descends from (its parent): ``builtin:base``."""
    from brushwork.runs.builtin import is_builtin

    return list(dict.fromkeys(n for n in (model.name, model.config.train.init_from) if is_builtin(n)))


def inherited_indexes(model) -> list:
    """The indexes of the training works of the built-in models a run is or descends from, where
    they are installed (``scripts/train_base.py --stage index``)."""
    from brushwork.metrics.collection_index import open_shipped_index
    from brushwork.runs.builtin import INDEX_FOLDER, resolve_run

    found = [open_shipped_index(resolve_run(n) / INDEX_FOLDER) for n in builtin_lineage(model)]
    return [index for index in found if index is not None]


def run_judge(model, enabled: bool = True, cache_dir: str | Path = "") -> RunJudge | None:
    """The judge of a run's images: its training collection's originality index, if one was built
    (``brushwork index DATA``), and the training works of the built-in model it is or descends
    from, where their index is installed; what is missing is said once. None when ``enabled`` is off."""
    from brushwork.metrics.collection_index import open_index_for

    if not enabled:
        return None
    from brushwork.config import index_side

    data, resolution = model.config.train.data, index_side(model.config.model)
    index = open_index_for(data, resolution, cache_dir) if data else None
    inherited = inherited_indexes(model)
    missing = []
    if data and index is None:
        missing.append(f"originality not checked against {data}: it has no originality index (build it once: "
                       f"brushwork index {data}; or pass --no-originality)")
    if len(inherited) < len(builtin_lineage(model)):
        missing.append(f"originality not checked against the training works of {', '.join(builtin_lineage(model))}: "
                       f"their index is not installed (it holds thumbnails of the paintings, so it is not shipped; "
                       f"python scripts/train_base.py --stage index builds it where shared/data is)")
    if not data and not builtin_lineage(model):
        missing.append("originality not checked: no training collection is known for this model "
                       "(pass --no-originality)")
    return RunJudge(index, "; ".join(missing), inherited=inherited)
