"""Art datasets: a folder of images (subfolders = style labels) decoded once, cached, batched fast.

Decoding JPEGs is the slow part of training small GANs on CPUs, so every image is decoded and
resized once into a uint8 tensor [N, 3, S, S]. That tensor is cached on disk (keyed by the folder's
file list, sizes and modification times plus the resolution) and in memory, and batches are
gathered straight from it: no DataLoader workers, no per-epoch decoding.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import platformdirs
import torch
from tqdm.auto import tqdm

from brushwork.data.images import decode_canvas, list_image_files
from brushwork.errors import BrushworkError
from brushwork.utils import OutputError, atomic_write, atomic_writer, ensure_dir, output_error

CACHE_FORMAT = 1  # bump when the decoding or resizing changes, to invalidate old caches
RANDOM_CROP_MARGIN = 1.125  # random crops are taken from images cached this much larger


@dataclass
class ArtDataset:
    """Decoded images in memory plus what was learned while reading the folder."""

    images: torch.Tensor  # uint8 [N, 3, H, W]; at least the training size (S x S for squares)
    labels: torch.Tensor  # int64 [N], index into label_names
    label_names: list[str]
    files: list[str] = field(default_factory=list)  # relative paths, aligned with images
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    source: str = ""
    fingerprint: str = ""  # changes whenever a file is added, removed or modified

    def __len__(self) -> int:
        return self.images.shape[0]

    def split(self, fraction: float, seed: int = 0, minimum: int = 16) -> tuple["ArtDataset", "ArtDataset"]:
        """(train, held out): a fixed, seeded random split; the held-out part is never trained on."""
        n_held = min(len(self) // 2, max(minimum, int(round(len(self) * fraction))))
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.subset(order[n_held:]), self.subset(order[:n_held])

    def subset(self, indices: torch.Tensor) -> "ArtDataset":
        files = [self.files[i] for i in indices.tolist()] if self.files else []
        return ArtDataset(self.images[indices], self.labels[indices], self.label_names, files,
                          self.skipped, self.source,
                          self.fingerprint and f"{self.fingerprint}[{hash_indices(indices)}]")

    def skipped_summary(self, first: int = 5) -> str:
        """One line for the training log, e.g. 'skipped 3 unreadable files: a.jpg (empty file), ...'."""
        if not self.skipped:
            return ""
        names = ", ".join(f"{p} ({why})" for p, why in self.skipped[:first])
        more = f", and {len(self.skipped) - first} more" if len(self.skipped) > first else ""
        return f"skipped {len(self.skipped)} unreadable file(s): {names}{more}"


def hash_indices(indices: torch.Tensor) -> str:
    return hashlib.sha256(indices.to(torch.int64).numpy().tobytes()).hexdigest()[:12]


def default_cache_dir() -> Path:
    """$BRUSHWORK_CACHE, else the platform's cache folder (platformdirs: $XDG_CACHE_HOME/brushwork or
    ~/.cache/brushwork on Linux, ~/Library/Caches/brushwork on macOS, %LOCALAPPDATA% on Windows)."""
    return Path(os.environ.get("BRUSHWORK_CACHE") or platformdirs.user_cache_dir("brushwork", appauthor=False))


Size = int | tuple[int, int]  # a square's side, or (height, width) of a canvas that is not square


def stored_size(resolution: int, crop: str, height: int = 0) -> Size:
    """What the cache keeps: the training size, or larger for random crops; an int for squares
    (their cache keys are what they always were), (height, width) otherwise."""
    margin = 1.0 if crop == "center" else RANDOM_CROP_MARGIN
    if not height or height == resolution:
        return int(round(resolution * margin))
    return int(round(height * margin)), int(round(resolution * margin))


def height_width(size: Size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


def _folder_fingerprint(root: Path, files: list[Path], size: Size) -> str:
    digest = hashlib.sha256(f"brushwork-dataset-v{CACHE_FORMAT}:{size}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _decode_one(path: Path, size: Size) -> np.ndarray | str:
    return decode_canvas(path, size)


def _label_of(root: Path, path: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else ""  # files directly in root carry no style label


CHUNK = 512  # images decoded per resumable piece of a cache build


def _save_part(path: Path, results: list) -> None:
    """One decoded chunk: the good images [k, 3, S, S], which files were good, why others weren't."""
    import io

    good = np.array([not isinstance(r, str) for r in results])
    images = [r for r in results if not isinstance(r, str)]
    buf = io.BytesIO()
    np.savez(buf, good=good, reasons=np.array([r if isinstance(r, str) else "" for r in results]),
             images=np.stack(images) if images else np.zeros((0, 3, 1, 1), np.uint8))
    atomic_write(path, buf.getvalue())


def _build_cache(root: Path, files: list[Path], size: Size, cache_file: Path, progress: bool) -> None:
    """Decode the folder into ``cache_file`` chunk by chunk: every finished chunk is kept on disk
    (``<cache>.parts/``), so an interrupted build resumes where it stopped, and the cache file is
    streamed from the chunks (never the whole collection in memory) and renamed into place."""
    parts = ensure_dir(cache_file.with_name(cache_file.stem + ".parts"))
    chunks = [files[i:i + CHUNK] for i in range(0, len(files), CHUNK)]
    part = lambda i: parts / f"{i:06d}.npz"  # noqa: E731
    todo = [i for i in range(len(chunks)) if not part(i).is_file()]
    # Threads, not processes: PIL releases the GIL while decoding and resizing, so threads overlap
    # (12k WikiArt 64 px JPEGs on 2 cores: 4.0 s; spawned worker processes 3.4 s, but they
    # re-import the caller's main module, which breaks scripts without a __main__ guard).
    left = sum(len(chunks[i]) for i in todo)
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool, \
            tqdm(total=len(files), initial=len(files) - left, desc=f"decoding {root.name}", unit="img",
                 disable=not progress, file=sys.stderr) as bar:
        for i in todo:
            _save_part(part(i), list(pool.map(_decode_one, chunks[i], [size] * len(chunks[i]))))
            bar.update(len(chunks[i]))
    _assemble(root, chunks, [part(i) for i in range(len(chunks))], size, cache_file)
    shutil.rmtree(parts, ignore_errors=True)


def _assemble(root: Path, chunks: list[list[Path]], part_files: list[Path], size: Size,
              cache_file: Path) -> None:
    """Stream the decoded chunks into one safetensors file (images, then labels)."""
    good, skipped = [], []
    for chunk, part_file in zip(chunks, part_files):
        with np.load(part_file) as part:
            for path, ok, reason in zip(chunk, part["good"], part["reasons"]):
                (good.append(path) if ok else skipped.append((str(path.relative_to(root)), str(reason))))
    if not good:
        raise BrushworkError(f"no usable image in {root}: all {len(skipped)} file(s) unreadable "
                             f"(first: {skipped[0][0]}: {skipped[0][1]})")
    label_names = sorted({_label_of(root, p) for p in good})
    labels = np.array([label_names.index(_label_of(root, p)) for p in good], dtype=np.int64)
    (h, w), n = height_width(size), len(good)
    pixels = n * 3 * h * w
    meta = {"label_names": json.dumps(label_names), "files": json.dumps([str(p.relative_to(root)) for p in good]),
            "skipped": json.dumps(skipped), "source": str(root)}
    header = json.dumps({"__metadata__": meta,
                         "images": {"dtype": "U8", "shape": [n, 3, h, w], "data_offsets": [0, pixels]},
                         "labels": {"dtype": "I64", "shape": [n], "data_offsets": [pixels, pixels + 8 * n]}})
    header += " " * (-len(header.encode()) % 8)  # safetensors aligns the data to 8 bytes
    with atomic_writer(cache_file) as f:
        f.write(len(header.encode()).to_bytes(8, "little"))
        f.write(header.encode())
        for part_file in part_files:
            with np.load(part_file) as part:
                f.write(np.ascontiguousarray(part["images"]).tobytes())
        f.write(labels.tobytes())


def _load_cache(path: Path) -> ArtDataset | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            return ArtDataset(f.get_tensor("images"), f.get_tensor("labels"),
                              json.loads(meta["label_names"]), json.loads(meta["files"]),
                              [tuple(x) for x in json.loads(meta["skipped"])], meta["source"])
    except Exception:  # a damaged cache is just rebuilt
        return None


_MEMORY_CACHE: dict[str, ArtDataset] = {}


def load_dataset(spec: str, resolution: int, crop: str = "center", cache_dir: str | Path = "",
                 progress: bool = True, height: int = 0) -> ArtDataset:
    """Load ``builtin:abstract`` or an image folder at ``resolution`` (cached after the first time);
    ``height``: the works' height when not square (``resolution`` is then their width), each work
    centre-cropped to that aspect."""
    size = stored_size(resolution, crop, height)
    if spec.startswith("builtin:"):
        return _load_builtin(spec, size)
    root = Path(spec).expanduser()
    if root.is_file():
        raise BrushworkError(f"{spec} is a file, but a folder of images is expected "
                             f"(its subfolders are style labels)")
    if not root.is_dir():
        raise BrushworkError(f"data folder not found: {spec}")
    files = list_image_files(root)
    if not files:
        raise BrushworkError(f"no image files (jpg, png, webp, bmp, gif, tiff) found in {spec}")
    key = _folder_fingerprint(root, files, size)  # content-keyed: relative names, sizes, dates
    if key in _MEMORY_CACHE:
        return _MEMORY_CACHE[key]
    cache_file = Path(cache_dir or default_cache_dir()) / "datasets" / f"{key}.safetensors"
    ds = _load_cache(cache_file) if cache_file.exists() else None
    if ds is None:
        try:
            with one_builder(cache_file, spec):
                ds = _load_cache(cache_file) if cache_file.exists() else None  # built while we waited
                if ds is None:
                    _build_cache(root, files, size, cache_file, progress)
                    ds = _load_cache(cache_file)
        except OutputError as exc:  # a read-only or full cache dir must not stop training
            print(f"warning: could not write dataset cache {cache_file}: {exc}; decoding in memory",
                  file=sys.stderr)
            ds = _build_in_memory(root, files, size, progress)
    ds.fingerprint = key
    _MEMORY_CACHE[key] = ds
    return ds


@contextlib.contextmanager
def one_builder(cache_file: Path, spec: str):
    """Hold the cache's build lock: one process (of any number asking: torchrun ranks, a studio
    job beside a CLI run, nodes on a shared file system) builds a cache, the others wait here,
    then find the finished file. An OS lock (flock through ``filelock``, which Linux also takes
    on NFS), so the kernel releases it whenever its holder dies: a killed builder leaves its
    finished chunks for the next one and no stale lock."""
    from filelock import FileLock, Timeout

    ensure_dir(cache_file.parent)
    lock = FileLock(cache_file.with_name(cache_file.name + ".lock"))
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            print(f"waiting for another process building the cache of {spec} ...", file=sys.stderr,
                  flush=True)
            lock.acquire()
    except OSError as exc:
        raise output_error(exc, lock.lock_file) from None
    try:
        yield
    finally:
        lock.release()


def _build_in_memory(root: Path, files: list[Path], size: Size, progress: bool) -> ArtDataset:
    """The same build in a temporary folder, kept in memory (when the cache folder is unwritable)."""
    with tempfile.TemporaryDirectory() as tmp:
        _build_cache(root, files, size, Path(tmp) / "dataset.safetensors", progress)
        ds = _load_cache(Path(tmp) / "dataset.safetensors")
        ds.images = ds.images.clone()  # off the file before it is deleted
    return ds


def empty_style_folders(source: str) -> list[str]:
    """First-level folders of an image folder that hold no image file (a style with no works)."""
    root = Path(source)
    if not root.is_dir():  # built-in sets
        return []
    return sorted(d.name for d in root.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and not list_image_files(d))


def _load_builtin(spec: str, size: Size) -> ArtDataset:
    from brushwork.data.builtin import builtin_abstract

    name, _, count = spec.partition(":")[2].partition(":")
    if name != "abstract":
        raise BrushworkError(f"unknown built-in dataset {spec!r} (available: builtin:abstract)")
    per_style = int(count) if count.isdigit() else 200
    key = f"builtin:{per_style}:{size}"
    if key not in _MEMORY_CACHE:
        h, w = height_width(size)
        images, labels, names = builtin_abstract(max(h, w), per_style)
        top, left = (max(h, w) - h) // 2, (max(h, w) - w) // 2  # painted square, centre-cropped
        images = np.ascontiguousarray(images[:, :, top:top + h, left:left + w])
        _MEMORY_CACHE[key] = ArtDataset(torch.from_numpy(images), torch.from_numpy(labels), names,
                                        source=spec, fingerprint=key)
    return _MEMORY_CACHE[key]


class ImageBatcher:
    """Endless shuffled batches in [-1, 1], gathered from the uint8 tensor (on the GPU if it fits).

    All randomness (order, crops, flips) comes from one CPU generator whose state is part of every
    checkpoint, so a resumed run sees exactly the batches it would have seen.
    """

    def __init__(self, ds: ArtDataset, batch_size: int, resolution: Size, device: torch.device,
                 flip: bool = True, seed: int = 0, on_device: bool = True, channels_last: bool = False,
                 balance_labels: bool = False, world=None):
        self.resolution, self.flip = height_width(resolution), flip  # (height, width) of a batch
        # Under torchrun every rank draws the whole global batch (world x batch_size: order, crops,
        # flips) from the same generator and keeps its own rows, so the job sees what one process
        # with the global batch would, and the state resumes under any world size.
        self.world = world
        self.batch_size = batch_size * (world.size if world is not None else 1)  # global
        self.device, self.channels_last = torch.device(device), channels_last
        fits = ds.images.numel() <= 4 * 2**30
        keep_on_device = on_device and self.device.type == "cuda" and fits
        self.images = ds.images.to(self.device) if keep_on_device else ds.images
        self.labels = ds.labels.to(self.images.device)
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(ds), generator=self.generator)
        self.position = 0
        # balance_labels: each image's label is drawn uniformly, then an image of that label
        self.by_label = torch.argsort(ds.labels, stable=True) if balance_labels else None
        counts = torch.bincount(ds.labels, minlength=len(ds.label_names))
        self.label_start, self.label_count = torch.cumsum(counts, 0) - counts, counts

    def _balanced_indices(self) -> torch.Tensor:
        present = (self.label_count > 0).nonzero().flatten()
        labels = present[torch.randint(len(present), (self.batch_size,), generator=self.generator)]
        within = (torch.rand(self.batch_size, generator=self.generator) * self.label_count[labels]).long()
        return self.by_label[self.label_start[labels] + within]

    def _next_indices(self) -> torch.Tensor:
        if self.by_label is not None:
            return self._balanced_indices()
        chunks, need = [], self.batch_size
        while need:
            if self.position == len(self.order):  # epoch boundary: reshuffle
                self.order = torch.randperm(len(self.order), generator=self.generator)
                self.position = 0
            take = self.order[self.position:self.position + need]
            self.position += len(take)
            need -= len(take)
            chunks.append(take)
        return torch.cat(chunks)

    def _crop_offsets(self, g: int, spare_h: int, spare_w: int) -> torch.Tensor:
        """[2, g] random crop corners (rows, columns); equal margins take one draw, as squares
        always did (so their runs resume and repeat exactly as before)."""
        if spare_h == spare_w:
            return torch.randint(0, spare_h + 1, (2, g), generator=self.generator)
        return torch.stack([torch.randint(0, spare_h + 1, (g,), generator=self.generator),
                            torch.randint(0, spare_w + 1, (g,), generator=self.generator)])

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.world is None else self.world.rows(x)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images float [B, 3, H, W] in [-1, 1], labels int64 [B]) on the training device
        (this rank's B rows of the global batch under torchrun)."""
        idx = self._next_indices()
        g, (rh, rw), (sh, sw) = len(idx), self.resolution, self.images.shape[-2:]
        offsets = self._rows(self._crop_offsets(g, sh - rh, sw - rw).T).T
        flips = self._rows(torch.rand(g, generator=self.generator) < 0.5) if self.flip else None
        idx = self._rows(idx)
        b = len(idx)
        dev = self.images.device
        batch = self.images[idx.to(dev)]
        if (sh, sw) != (rh, rw):  # per-image random crop via one gather
            ys, xs = (offsets[0, :, None] + torch.arange(rh)).to(dev), (offsets[1, :, None] + torch.arange(rw)).to(dev)
            batch = batch[torch.arange(b, device=dev)[:, None, None, None],
                          torch.arange(3, device=dev)[None, :, None, None],
                          ys[:, None, :, None], xs[:, None, None, :]]
        labels = self.labels[idx.to(dev)]
        batch = batch.to(self.device, non_blocking=True)
        if flips is not None:
            batch = torch.where(flips.to(self.device)[:, None, None, None], batch.flip(3), batch)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        x = batch.to(memory_format=memory_format).float().mul_(2 / 255).sub_(1)
        return x, labels.to(self.device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state(), "order": self.order.clone(),
                "position": torch.tensor(self.position)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].clone()
        self.position = int(state["position"])
