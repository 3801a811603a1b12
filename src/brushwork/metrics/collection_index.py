"""A collection's originality index: what the copy checks (``metrics/copies.py``) need of every
work, built once and kept beside the data cache, so that checking a new image costs a search, not
a pass over the collection.

    <cache>/index/<key>/current                 the name of the current build (written last)
    <cache>/index/<key>/<build>/manifest.json   collection, resolution, files in row order (name,
                                                size, date), unreadable files, thresholds
    <cache>/index/<key>/<build>/pixels.npy      uint8 [M, 3, R, R], the works as checked
    <cache>/index/<key>/<build>/whole.npy       float32 [M * len(INDEXED), D] edited-copy descriptors
    <cache>/index/<key>/<build>/region.npy      float32 [M * P * P, D] window descriptors
    <cache>/index/<key>/parts/<hash>.npz        finished chunks of a build not yet finished

``key`` names the collection (its folder's absolute path, or a built-in set) and the resolution,
not the folder's contents: when files change, the next build keeps the rows of unchanged files
(same name, size and date), decodes only new or changed ones and drops removed ones. Rows are
written chunk by chunk into memory-mapped files, so a build never holds the collection's pixels.
Plain ``.npy``/``.npz`` arrays and JSON: nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from brushwork.errors import BrushworkError
from brushwork.metrics.copies import CopyIndex, EditedCopies, RegionIndex, calibrate
from brushwork.utils import atomic_write, ensure_dir

INDEX_FORMAT = 3  # bump when what is stored changes: older indexes are rebuilt
CHUNK = 256  # works decoded and described per resumable piece of a build
ASSEMBLED = "assembled.json"  # in a build: its arrays are complete (the manifest without thresholds)
CALIBRATED = "thresholds.json"  # in a build: its calibrated thresholds
RECALIBRATE = 0.05  # thresholds are recalibrated when more than this share of works changed
# (calibration is the costly part, and a few added works barely move a 1% quantile)


@dataclass
class CollectionIndex:
    """A built index, memory-mapped: ``check`` judges images against the collection."""

    spec: str  # the collection: a folder's absolute path or a built-in set
    resolution: int
    fingerprint: str  # changes whenever a work is added, removed or changed
    names: list[str]  # works by row
    pixels: np.ndarray  # uint8 [M, 3, R, R]
    whole: np.ndarray | None  # edited-copy descriptors, len(INDEXED) rows per work (None: computed from pixels)
    region: np.ndarray | None  # window descriptors, P * P rows per work (None: computed from pixels)
    thresholds: tuple[float, float]  # (edited copy, pasted region)
    decoded: int = 0  # files the build that produced this read (the rest were kept)
    resumed: int = 0  # files it took from an interrupted build's finished chunks
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable file -> why
    build: Path | None = None  # the build's folder (trained search indexes are kept there)

    @cached_property
    def copies(self) -> EditedCopies:
        works = torch.from_numpy(self.pixels)
        return EditedCopies(CopyIndex.build(works, self.whole, self._kept("whole")),
                            RegionIndex.build(works, self.region, self._kept("region")), *self.thresholds)

    def _kept(self, name: str) -> Path | None:
        return self.build / f"{name}.faiss" if self.build else None

    def work(self, name: str) -> np.ndarray:
        """uint8 [R, R, 3]: the work called ``name``, as checked."""
        if name not in self.names:
            raise BrushworkError(f"{name} is not in the index of {self.spec} (rebuild it: brushwork index)")
        return np.ascontiguousarray(self.pixels[self.names.index(name)].transpose(1, 2, 0))

    def check(self, images: torch.Tensor) -> list[dict]:
        """Each image [N, 3, R, R] (uint8 or [-1, 1]): its verdict, the checks that flagged it,
        and its nearest work by each check (what provenance records and ``--json`` prints)."""
        images = _as_indexed(images, self.resolution)
        scores = self.copies.scores(images)
        verdicts = []
        for i in range(len(images)):
            nearest, flagged = {}, []
            for check, label, threshold in (("edit", "edited copy", self.thresholds[0]),
                                            ("region", "pasted region", self.thresholds[1])):
                score = float(scores[f"{check}_score"][i])
                nearest[check] = {"work": self.names[int(scores[f"{check}_index"][i])], "score": round(score, 4)}
                if score >= threshold:
                    flagged.append(label)
            verdicts.append({"verdict": "COPY" if flagged else "original", "flagged_by": flagged,
                             "nearest": nearest, "collection": self.spec, "resolution": self.resolution,
                             "index": self.fingerprint})
        return verdicts


def _as_indexed(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Images [N, 3, H, W] as the index holds its works: their centre square at ``resolution``
    (works that are not square are indexed by their centre square; so are canvases judged)."""
    h, w = images.shape[-2:]
    if h == w == resolution:
        return images
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = images[..., top:top + side, left:left + side]
    if side == resolution:
        return square
    uint8 = square.dtype == torch.uint8
    resized = F.interpolate(square.float(), size=resolution, mode="area" if side > resolution else "bilinear",
                            align_corners=None if side > resolution else False)
    return resized.round().clamp(0, 255).to(torch.uint8) if uint8 else resized


def index_home(spec: str, resolution: int, cache_dir: str | Path = "") -> Path:
    """Where the index of a collection at a resolution lives (beside the data cache)."""
    from brushwork.data.dataset import default_cache_dir

    key = hashlib.sha256(f"{_collection_name(spec)}|{resolution}".encode()).hexdigest()[:24]
    return Path(cache_dir or default_cache_dir()) / "index" / key


INDEX_SIDES = (32, 64, 128, 256, 512)  # the sizes looked for when a run's own is not indexed


def open_index_for(spec: str, resolution: int, cache_dir: str | Path = "") -> CollectionIndex | None:
    """The index that judges images of ``resolution`` px: the one built at it, else the nearest
    one built at another size (larger first), which brings images to its own size as it checks
    them (``_as_indexed``; enlarging a small image is the rescaling edit the check is calibrated
    against). A collection indexed once is never asked for again at another size."""
    exact = open_index(spec, resolution, cache_dir)
    if exact is not None:
        return exact
    others = sorted((r for r in INDEX_SIDES if r != resolution),
                    key=lambda r: (abs(np.log2(r / resolution)), r < resolution))
    for side in others:
        index = open_index(spec, side, cache_dir)
        if index is not None:
            return index
    return None


def _collection_name(spec: str) -> str:
    return spec if spec.startswith("builtin:") else str(Path(spec).expanduser().resolve())


def open_index(spec: str, resolution: int, cache_dir: str | Path = "") -> CollectionIndex | None:
    """The current index of ``spec`` at ``resolution`` as it was last built (whether or not the
    folder changed since: ``build_index`` brings it up to date), or None when there is none.
    An index of another collection or resolution is refused; a damaged one is reported (None)."""
    home = index_home(spec, resolution, cache_dir)
    try:
        build = home / (home / "current").read_text().strip()
    except OSError:
        return None
    try:
        manifest = json.loads((build / "manifest.json").read_text())
    except (OSError, ValueError):
        return _damaged(spec)
    if manifest.get("format") != INDEX_FORMAT:
        return None
    if manifest["collection"] != _collection_name(spec) or manifest["resolution"] != resolution:
        raise BrushworkError(f"the index in {build} was built for {manifest['collection']} at "
                             f"{manifest['resolution']} px, not {spec} at {resolution} px")
    try:
        arrays = {name: np.load(build / f"{name}.npy", mmap_mode="c", allow_pickle=False)
                  for name in ("pixels", "whole", "region")}
    except (OSError, ValueError):
        return _damaged(spec)
    if len(arrays["pixels"]) != len(manifest["files"]):
        return _damaged(spec)
    return CollectionIndex(spec, resolution, manifest["fingerprint"], [f[0] for f in manifest["files"]],
                           **arrays, thresholds=tuple(manifest["thresholds"]),
                           decoded=manifest.get("decoded", 0), skipped=dict(manifest.get("skipped", {})),
                           build=build)


SHIPPED_PIXELS = "pixels.npz"  # a shipped index: the works as small thumbnails, compressed


def write_shipped_index(index: CollectionIndex, folder: Path, name: str) -> Path:
    """A built index as it ships beside a built-in model: its manifest (works, thresholds) and its
    works' thumbnails, not its descriptors (computed from the thumbnails when first needed) and
    not the paintings themselves."""
    folder = ensure_dir(folder)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, pixels=np.ascontiguousarray(index.pixels))
    atomic_write(folder / SHIPPED_PIXELS, buffer.getvalue())
    manifest = {"format": INDEX_FORMAT, "collection": name, "resolution": index.resolution,
                "fingerprint": index.fingerprint, "files": [[n] for n in index.names],
                "thresholds": list(index.thresholds)}
    atomic_write(folder / "manifest.json", json.dumps(manifest).encode())
    return folder


_SHIPPED: dict[tuple[str, int], CollectionIndex] = {}  # opened once per process (its descriptors too)


def open_shipped_index(folder: Path) -> CollectionIndex | None:
    """The index shipped in ``folder`` (``write_shipped_index``), or None when there is none."""
    try:
        key = (str(folder), (folder / SHIPPED_PIXELS).stat().st_mtime_ns)
    except OSError:
        return None
    if key not in _SHIPPED:
        index = _read_shipped(folder)
        if index is None:
            return None
        _SHIPPED[key] = index
    return _SHIPPED[key]


def _read_shipped(folder: Path) -> CollectionIndex | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        with np.load(folder / SHIPPED_PIXELS, allow_pickle=False) as arrays:
            pixels = arrays["pixels"]
    except (OSError, ValueError, KeyError):
        return None
    return CollectionIndex(manifest["collection"], manifest["resolution"], manifest["fingerprint"],
                           [f[0] for f in manifest["files"]], pixels, None, None, tuple(manifest["thresholds"]))


def _damaged(spec: str) -> None:
    print(f"the originality index of {spec} is damaged; it will be rebuilt", file=sys.stderr)
    return None


def build_index(spec: str, resolution: int, cache_dir: str | Path = "", progress: bool = True,
                calibration: int = 1000) -> CollectionIndex:
    """Build the index of ``spec`` at ``resolution``, or bring the last one up to date: only new
    or changed files are decoded; an interrupted build resumes from its finished chunks."""
    from brushwork.data.dataset import one_builder

    home = index_home(spec, resolution, cache_dir)
    with one_builder(home / "index", spec):
        old = open_index(spec, resolution, cache_dir)
        works = _current_works(spec, resolution)
        fingerprint = hashlib.sha256(json.dumps([w[:3] for w in works]).encode()).hexdigest()[:24]
        if old is not None and old.fingerprint == fingerprint:
            return old
        return _rebuild(home, spec, resolution, works, fingerprint, old, progress, calibration)


def _current_works(spec: str, resolution: int) -> list[tuple]:
    """(name, size, date, how to get its pixels) for every work of the collection now."""
    from brushwork.data.dataset import load_dataset
    from brushwork.data.images import list_image_files

    if spec.startswith("builtin:"):  # generated in memory: one row each, keyed by the set
        ds = load_dataset(spec, resolution, progress=False)
        names = ds.files or [f"{ds.label_names[int(label)]}/{i:05d}" for i, label in enumerate(ds.labels)]
        return [(name, 0, ds.fingerprint, ds.images[i]) for i, name in enumerate(names)]
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise BrushworkError(f"data folder not found: {spec}")
    files = list_image_files(root)
    if not files:
        raise BrushworkError(f"no image files (jpg, png, webp, bmp, gif, tiff) found in {spec}")
    works = []
    for path in files:
        stat = path.stat()
        works.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns, path))
    return works


def _rebuild(home: Path, spec: str, resolution: int, works: list[tuple], fingerprint: str,
             old: CollectionIndex | None, progress: bool, calibration: int) -> CollectionIndex:
    # Each stage leaves what it finished on disk, so a build killed at any point resumes from it:
    # reading (a part file per chunk), assembling (the build's arrays, then ASSEMBLED), training
    # the search indexes (their .faiss files in the build) and calibrating (CALIBRATED).
    old_rows = _reusable_rows(home, old)
    todo = [w for w in works if tuple(w[:3]) not in old_rows]
    parts = ensure_dir(home / "parts")
    chunks = [todo[i:i + CHUNK] for i in range(0, len(todo), CHUNK)]
    part_files = [parts / f"{_chunk_key(chunk, resolution)}.npz" for chunk in chunks]
    decoded = _describe_chunks(spec, chunks, part_files, resolution, progress)
    build = home / fingerprint
    try:  # the arrays an interrupted build of the same works had finished
        manifest = json.loads((build / ASSEMBLED).read_text())
        arrays = [np.load(build / f"{n}.npy", mmap_mode="c", allow_pickle=False) for n in ("pixels", "whole", "region")]
    except (OSError, ValueError):
        shutil.rmtree(build, ignore_errors=True)  # none, or half-written, or damaged since
        manifest = _assemble(build, spec, works, old, old_rows, part_files, resolution)
        atomic_write(build / ASSEMBLED, json.dumps(manifest).encode())
        arrays = [np.load(build / f"{n}.npy", mmap_mode="c") for n in ("pixels", "whole", "region")]
    current = {tuple(w[:3]) for w in works}
    removed = sum(1 for key, row in old_rows.items() if row >= 0 and key not in current)
    index = CollectionIndex(spec, resolution, fingerprint, [f[0] for f in manifest["files"]], *arrays,
                            thresholds=(1.0, 1.0), decoded=decoded, skipped=manifest["skipped"], build=build,
                            resumed=len(todo) - decoded)
    index.thresholds = _thresholds(index, old, len(todo) + removed, calibration)
    manifest |= {"thresholds": list(index.thresholds), "fingerprint": fingerprint, "decoded": decoded,
                 "resumed": len(todo) - decoded}
    atomic_write(build / "manifest.json", json.dumps(manifest).encode())
    atomic_write(home / "current", fingerprint.encode())  # the switch: readers now see this build
    for marker in (ASSEMBLED, CALIBRATED):  # a finished build is rebuilt whole if it is ever damaged
        (build / marker).unlink(missing_ok=True)
    for stale in home.iterdir():  # earlier builds and the finished parts
        if stale.is_dir() and stale.name != fingerprint:
            shutil.rmtree(stale, ignore_errors=True)
    return index


def _thresholds(index: CollectionIndex, old: CollectionIndex | None, changed: int,
                calibration: int) -> tuple[float, float]:
    """The build's thresholds: the last build's when few works changed, else calibrated (and kept
    in the build, so an interrupted build does not calibrate twice)."""
    if old is not None and changed <= RECALIBRATE * max(len(index.names), 1):
        return old.thresholds
    try:
        return tuple(json.loads((index.build / CALIBRATED).read_text()))
    except (OSError, ValueError):
        pass
    copies = index.copies  # trains the search indexes (kept in the build) with placeholder thresholds
    thresholds = calibrate(copies.whole, copies.regions, torch.from_numpy(index.pixels), calibration)
    index.__dict__.pop("copies", None)  # rebuilt with the real thresholds on use
    atomic_write(index.build / CALIBRATED, json.dumps(list(thresholds)).encode())
    return thresholds


def _reusable_rows(home: Path, old: CollectionIndex | None) -> dict[tuple, int]:
    """(name, size, date) -> row, for the works of the last build (and its unreadable files)."""
    if old is None:
        return {}
    manifest = json.loads((home / old.fingerprint / "manifest.json").read_text())
    rows = {tuple(f): i for i, f in enumerate(manifest["files"])}
    rows |= {tuple(f): -1 for f in manifest["unreadable"]}  # known unreadable: not decoded again
    return rows


def _chunk_key(chunk: list[tuple], resolution: int) -> str:
    return hashlib.sha256(json.dumps([INDEX_FORMAT, resolution, [w[:3] for w in chunk]]).encode()).hexdigest()[:24]


def _decode(work: tuple, resolution: int) -> np.ndarray | str:
    from brushwork.data.images import decode_square

    source = work[3]
    return source.numpy() if isinstance(source, torch.Tensor) else decode_square(source, resolution)


def _describe_chunks(spec: str, chunks: list[list[tuple]], part_files: list[Path], resolution: int,
                     progress: bool) -> int:
    """Decode and describe each chunk not already on disk (from an interrupted build) into its
    part file; returns how many works it read."""
    from tqdm.auto import tqdm

    todo = [(c, p) for c, p in zip(chunks, part_files) if not p.is_file()]
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool, \
            tqdm(total=sum(len(c) for c, _ in todo), desc=f"indexing {Path(spec).name or spec}", unit="work",
                 disable=not progress or not todo, file=sys.stderr) as bar:
        for chunk, part in todo:
            decoded = list(pool.map(_decode, chunk, [resolution] * len(chunk)))
            good = [d for d in decoded if not isinstance(d, str)]
            pixels = np.stack(good) if good else np.zeros((0, 3, resolution, resolution), np.uint8)
            works = torch.from_numpy(pixels if good else np.zeros((1, 3, resolution, resolution), np.uint8))
            whole, region = CopyIndex.describe(works).numpy(), RegionIndex.describe(works).numpy()
            buf = io.BytesIO()
            np.savez(buf, pixels=pixels, whole=whole[:len(whole) * len(good)], region=region[:len(region) * len(good)],
                     reasons=np.array([d if isinstance(d, str) else "" for d in decoded]))
            atomic_write(part, buf.getvalue())
            bar.update(len(chunk))
    return sum(len(c) for c, _ in todo)


def _assemble(build: Path, spec: str, works: list[tuple], old: CollectionIndex | None, old_rows: dict[tuple, int],
              part_files: list[Path], resolution: int) -> dict:
    """Write the build's arrays in the collection's order from the old build's rows and the new
    parts; returns the manifest (without thresholds)."""
    todo = [w for w in works if tuple(w[:3]) not in old_rows]
    new = {}  # (name, size, date) -> (part file, row in it), or why it is unreadable
    for i, part in enumerate(part_files):
        with np.load(part, allow_pickle=False) as stored:
            reasons, row = stored["reasons"], 0
        for work, reason in zip(todo[i * CHUNK:(i + 1) * CHUNK], reasons):
            new[tuple(work[:3])] = str(reason) if reason else (part, row)
            row += 0 if reason else 1
    rows, unreadable, skipped = [], [], {}
    for work in works:
        key = tuple(work[:3])
        found = old_rows[key] if key in old_rows else new[key]
        if found == -1 or isinstance(found, str):
            unreadable.append(list(key))
            skipped[key[0]] = found if isinstance(found, str) else old.skipped.get(key[0], "unreadable")
        else:
            rows.append((key, found))
    if not rows:
        raise BrushworkError(f"no readable images in {spec} to index")
    _write_arrays(build, [found for _, found in rows], old, resolution)
    return {"format": INDEX_FORMAT, "collection": _collection_name(spec), "resolution": resolution,
            "files": [list(key) for key, _ in rows], "unreadable": unreadable, "skipped": skipped}


def _write_arrays(build: Path, sources: list, old: CollectionIndex | None, resolution: int) -> None:
    """pixels/whole/region .npy files, row by row: ``sources[i]`` is a row of the old build (int)
    or (part file, row). Memory-mapped, so neither the collection nor its descriptors are held."""
    from numpy.lib.format import open_memmap

    probe = torch.zeros(1, 3, resolution, resolution, dtype=torch.uint8)
    per_work = {"whole": tuple(CopyIndex.describe(probe).shape), "region": tuple(RegionIndex.describe(probe).shape)}
    ensure_dir(build)
    m = len(sources)
    out = {"pixels": open_memmap(build / "pixels.npy", "w+", np.uint8, (m, 3, resolution, resolution))}
    for name, (rows, dim) in per_work.items():
        out[name] = open_memmap(build / f"{name}.npy", "w+", np.float32, (m * rows, dim))
    opened: dict[Path, dict] = {}
    for i, source in enumerate(sources):
        if isinstance(source, int):
            arrays, j = {"pixels": old.pixels, "whole": old.whole, "region": old.region}, source
        else:
            part, j = source
            if part not in opened:
                opened.clear()  # one part in memory at a time
                with np.load(part, allow_pickle=False) as stored:
                    opened[part] = {name: stored[name] for name in out}
            arrays = opened[part]
        out["pixels"][i] = arrays["pixels"][j]
        for name, (rows, _) in per_work.items():
            out[name][i * rows:(i + 1) * rows] = arrays[name][j * rows:(j + 1) * rows]
    for array in out.values():
        array.flush()
    del out
