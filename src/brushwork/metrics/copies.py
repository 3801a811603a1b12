"""Edited copies: is an image a training work mirrored, cropped, recoloured, re-compressed,
rescaled or slightly rotated, or does it hold a region of one?

Whole works, in two stages as image-retrieval systems work (retrieve cheaply, verify geometrically):

1. Retrieval. Every work is described by a coarse luminance thumbnail (8 x 8, corner cells
   dropped, mean removed, unit length): blind to brightness, contrast and hue, tolerant of JPEG,
   rescaling and small rotations. The collection's descriptors include each work's mirror image
   and crops (the centre 75%, 90% at nine places), so crops of a work find it. FAISS returns each
   query's nearest ``CANDIDATES`` descriptors by inner product (an exact flat index; an IVF
   index for large collections, above FLAT_UP_TO descriptors).
2. Verification. Each candidate work is warped by the transforms near the view it was found by
   (mirror x {whole, centre 75%, 90% on a 5 x 5 grid of places} x rotation {-5, 0, +5} degrees)
   and compared with the query at 16 x 16 by normalised correlation inside the central disc (so
   the corners a rotation brings in do not count). The best is the query's edit score, in [-1, 1].
   Only retrieved views alike enough to be an edit are verified (and the nearest one always); each
   is first compared as it was found, and searched around only when that already looks like the
   start of an edit; only matches close to a copy are re-aligned finely: most pictures are far
   from every work.

Regions (a quarter of a work pasted into another picture): windows of 3/8 of the side, every
4 px of each work (at 32 px), are indexed by their own thumbnails; every window of the query on the
same grid looks up its nearest, and each found window alike enough is verified in colour within 2 px
of its place. This finds a region pasted in place; one moved to another place of the picture is
mostly missed (benchmarks/RESULTS.md).

Thresholds are calibrated on the collection (as the other measures, Somepalli et al. 2023): a
high quantile of sampled works' scores against the *other* works, leaving out works that have
an identical twin in the collection (scraped collections repeat works; WikiArt 64 px: 2%).

Why not perceptual hashes: in a trial on WikiArt 64 px (6,000 works), 64-bit pHash with the
mirrored and cropped works indexed found 47% of 90% crops and 71% of 5-degree rotations when set
to flag 10% of unrelated works; benchmarks/originality.py measures this check (RESULTS.md).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from brushwork.imaging import as_unit, tiles

THUMB = 8  # retrieval descriptor: THUMB x THUMB luminance cells
VERIFY = 16  # verification compares luminance at VERIFY x VERIFY
WARP = 64  # retrieval transforms are sampled at this size, then area-averaged down (no aliasing)
VERIFY_WARP = 32  # verification samples each retrieved work at VERIFY px from its luminance
# area-reduced to this size (no aliasing, and 16x fewer samples than warping at 64: as accurate in
# the benchmark); the fine re-alignment warps at this size and area-averages down to VERIFY
CANDIDATES = 16  # descriptors retrieved per query before verification
WHOLE_GATE = 0.85  # retrieved views less alike than this are not verified (but the nearest is):
# edited copies' descriptors stay above 0.878 to their work's (lowest of 1,800 WikiArt copies under
# the ten edits, 5-degree rotations), while half of unrelated paintings' nearest are below 0.80
DISC = 0.85  # verification compares pixels within this radius (1 = the inscribed circle)
DETAIL = True  # verification also asks the views' detail to agree (see verification_vectors)
CROP_PLACES = 5  # 90% crops verified on a CROP_PLACES x CROP_PLACES grid of centres
INDEX_BATCH = 512


def _affine(flip: int, scale: float, tx: float, ty: float, degrees: float) -> list[list[float]]:
    """affine_grid's theta: output coordinates -> input ones, for a crop of ``scale`` centred at
    (tx, ty), rotated by ``degrees`` and mirrored when flip = -1."""
    a = math.radians(degrees)
    return [[scale * math.cos(a) * flip, -scale * math.sin(a), tx],
            [scale * math.sin(a) * flip, scale * math.cos(a), ty]]


CENTRE_CROPS = (0.75, 0.8, 0.85)  # centre crops looked for besides the whole (0.8 and 0.85 were
# found 90% of the time as near misses of 0.75 and 0.9 on an 800-work collection)


def _crops(places: int) -> list[tuple[float, float, float]]:
    """(scale, tx, ty): the whole, its centre crops, and 90% crops on a places x places grid."""
    grid = np.linspace(-0.1, 0.1, places).tolist() if places > 1 else [0.0]
    return [(1.0, 0.0, 0.0)] + [(s, 0.0, 0.0) for s in CENTRE_CROPS] + \
        [(0.9, x, y) for x, y in itertools.product(grid, grid)]


# retrieval: each work, its mirror image and its crops (no rotation: the thumbnail tolerates it)
INDEXED_AS = [(f, s, x, y) for f in (1, -1) for s, x, y in _crops(3)]
INDEXED = torch.tensor([_affine(*view, 0) for view in INDEXED_AS])
# verification: the same at finer places, each also rotated by +-5 degrees
VERIFIED_AS = [(f, s, x, y, d) for f in (1, -1) for s, x, y in _crops(CROP_PLACES) for d in (-5, 0, 5)]
VERIFIED = torch.tensor([_affine(*view) for view in VERIFIED_AS])
# the best match of each query is then re-aligned: places a quarter and half of the grid's step
# either way, and scale +-2% (dx, dy, scale factor)
REFINE = torch.tensor([[dx, dy, k] for dx in (-0.025, -0.0125, 0, 0.0125, 0.025)
                       for dy in (-0.025, -0.0125, 0, 0.0125, 0.025) for k in (0.98, 1.0, 1.02)])
REFINE_ABOVE = 0.5  # only matches at least this alike are re-aligned (most of a check's cost
# otherwise): a 90% crop between the grid's places scores 0.6-0.7 before it (the detail of its
# views is misaligned by a fraction of a pixel) and above 0.98 after
# each retrieved view is verified under the transforms near it only (same mirror and scale,
# places within half the retrieval grid's step): 3 to 27 transforms instead of all 162
NEAR = [torch.tensor([j for j, (f, s, x, y, _) in enumerate(VERIFIED_AS)
                      if (f, s) == (fi, si) and abs(x - xi) <= 0.051 and abs(y - yi) <= 0.051])
        for fi, si, xi, yi in INDEXED_AS]


# each indexed view's own transform among the verified ones (its place, no rotation)
AS_INDEXED = torch.tensor([next(j for j, (f, s, x, y, d) in enumerate(VERIFIED_AS)
                                if (f, s, d) == (fi, si, 0) and abs(x - xi) < 1e-6 and abs(y - yi) < 1e-6)
                           for fi, si, xi, yi in INDEXED_AS])
EXPAND_ABOVE = 0.5  # a retrieved view is searched around (NEAR) only when it already scores this
# much as found: edited copies do, while most unrelated works score far lower and cost one warp


def _zero_one(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [-1, 1] images -> floats in [0, 1]."""
    return (as_unit(images) + 1) / 2


def luminance(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, R, R] uint8 (or [-1, 1] float) -> [N, 1, r, r] float luminance in [0, 1], r = min(R, WARP)."""
    x = _zero_one(images)
    gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    return F.interpolate(gray, size=WARP, mode="area") if gray.shape[-1] > WARP else gray


def warp_each(images: torch.Tensor, thetas: torch.Tensor, size: int, sampled: int = WARP) -> torch.Tensor:
    """[B, C, H, W] images, each under its own transform [B, 2, 3] -> [B, C, size, size]."""
    grid = F.affine_grid(thetas, (len(images), images.shape[1], sampled, sampled), align_corners=False)
    return _resampled(images, grid, size)


def _resampled(images: torch.Tensor, grid: torch.Tensor, size: int) -> torch.Tensor:
    """[B, C, H, W] images sampled at grid [B, S, S, 2], area-averaged down to [B, C, size, size]."""
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return F.adaptive_avg_pool2d(out, size)


@functools.cache
def _verified_grids() -> torch.Tensor:
    """[len(VERIFIED), VERIFY, VERIFY, 2] the sampling grids of the verification transforms, made
    once: making them for every retrieved view was a third of the check's time."""
    return F.affine_grid(VERIFIED, (len(VERIFIED), 1, VERIFY, VERIFY), align_corners=False)


def warped(images: torch.Tensor, thetas: torch.Tensor, size: int, sampled: int = WARP) -> torch.Tensor:
    """[N, C, H, W] -> [N, T, size, size] (C = 1) or [N, T, C, size, size]: every image under
    every transform."""
    (n, c), t = images.shape[:2], len(thetas)
    out = warp_each(images.repeat_interleave(t, dim=0), thetas.repeat(n, 1, 1), size, sampled)
    out = out.view(n, t, c, size, size)
    return out[:, :, 0] if c == 1 else out


def _correlations(gray: torch.Tensor, transforms: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """[I] likeness of works' luminance [I, 1, VERIFY_WARP, VERIFY_WARP], each under its
    verification transform (indices [I] into VERIFIED), to their query's verification vectors
    [I, K, P]: the lowest of the K correlations (layout, detail)."""
    seen = F.grid_sample(gray, _verified_grids()[transforms], mode="bilinear", padding_mode="border",
                         align_corners=False)[:, 0]  # [I, V, V]
    return (verification_vectors(seen) * query).sum(dim=-1).amin(dim=-1)


def verification_vectors(views: torch.Tensor) -> torch.Tensor:
    """[N, V, V] luminance views -> [N, K, P] unit vectors of their central disc: the layout and,
    with DETAIL, the detail (each view less its 3 x 3 blur). A copy agrees in both; two pictures
    that merely share a layout (a dark landscape and a dark seascape; two sketches on blank
    paper, alike in their empty paper) agree in the first only."""
    disc = _disc(VERIFY, DISC)
    vectors = [_unit(views[:, disc])] + ([_unit(_detail(views[:, None])[:, 0][:, disc])] if DETAIL else [])
    return torch.stack(vectors, dim=1)


def _disc(size: int, radius: float) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    return x ** 2 + y ** 2 <= radius ** 2


def _unit(cells: torch.Tensor) -> torch.Tensor:
    """[..., D] -> mean removed, unit length: brightness and contrast no longer count."""
    return F.normalize(cells - cells.mean(-1, keepdim=True), dim=-1)


def descriptors(gray: torch.Tensor, thetas: torch.Tensor | None = None) -> torch.Tensor:
    """Retrieval descriptors [N, T, D] of [N, 1, H, W] images (T = 1 without transforms)."""
    keep = _disc(THUMB, 1.2)  # drops the corner cells, where rotations bring in new content
    if thetas is None:
        return _unit(F.adaptive_avg_pool2d(gray, THUMB)[:, None, 0][..., keep])
    return _unit(warped(gray, thetas, THUMB)[..., keep])


def verification_view(gray: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] -> [N, K, P]: the verification vectors of each picture as it is."""
    return verification_vectors(F.adaptive_avg_pool2d(gray, VERIFY)[:, 0])


FLAT_UP_TO = 50_000  # descriptors searched exactly; above, an inverted-file index (IVF) that
# visits the PROBED lists nearest each query: 20-40x fewer comparisons. The copies looked for are
# near-exact matches of their descriptors, which lie in the list their own centroid heads.
PROBED = 8


def _inner_product_index(described: np.ndarray, kept: Path | None = None, probed: int = PROBED):
    """Inner-product search over unit vectors [n, D] through FAISS, the field's nearest-neighbour
    library: exact (flat) for small collections, IVF above FLAT_UP_TO descriptors. ``kept``: a
    file for the trained IVF index (FAISS's own binary format, not a pickle), read when it is
    there, written when it is made (training it is most of the cost of opening a large index)."""
    import faiss

    if kept is not None and kept.is_file():
        try:
            index = faiss.read_index(str(kept))
            index.nprobe = probed
            return index
        except RuntimeError:  # a damaged file: trained again and rewritten below
            pass
    described = np.ascontiguousarray(described, dtype=np.float32)
    n, dim = described.shape
    if n <= FLAT_UP_TO:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(4 * math.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, min(n, 64 * lists), replace=False)
        index.train(described[np.sort(sample)])
        index.nprobe = probed
    index.add(described)
    if kept is not None and n > FLAT_UP_TO:
        temporary = kept.with_name(kept.name + ".tmp")
        faiss.write_index(index, str(temporary))
        temporary.replace(kept)
    return index


def _in_chunks(score, images: torch.Tensor, exclude: list[set[int]] | None, chunk: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [N], works [N]) of images scored ``chunk`` at a time by ``score(part, its exclude)``."""
    best, where = [], []
    for start in range(0, len(images), chunk):
        score_part, work = score(images[start:start + chunk], exclude[start:start + chunk] if exclude else None)
        best.append(score_part)
        where.append(work)
    return torch.cat(best), torch.cat(where)


@dataclass
class CopyIndex:
    """A collection ready to be searched for edited copies of its works."""

    works: torch.Tensor  # [M, 3, R, R] uint8, perhaps memory-mapped: verification warps the few
    # works retrieved for each query, their luminance computed then (never the whole collection's)
    index: object  # faiss.IndexFlatIP over [M * len(INDEXED), D] descriptors
    per_work: int  # descriptors per work

    @staticmethod
    def describe(works: torch.Tensor) -> torch.Tensor:
        """[k, 3, R, R] works -> their [k * len(INDEXED), D] retrieval descriptors, work by work."""
        return descriptors(luminance(works), INDEXED).flatten(0, 1)

    @classmethod
    def build(cls, works: torch.Tensor, described: np.ndarray | None = None, kept: Path | None = None
              ) -> "CopyIndex":
        """Index ``works``; ``described``: their descriptors, when kept from before (an index file);
        ``kept``: where the trained search index is kept (large collections)."""
        if described is None:
            described = torch.cat([cls.describe(chunk) for chunk in works.split(INDEX_BATCH)]).numpy()
        return cls(works, _inner_product_index(described, kept), len(INDEXED))

    def gray(self, rows: torch.Tensor) -> torch.Tensor:
        """[K] work indices -> [K, 1, r, r] their luminance (each distinct work converted once)."""
        unique, back = torch.unique(rows, return_inverse=True)
        return luminance(self.works[unique])[back]

    def candidates(self, gray: torch.Tensor, k: int = CANDIDATES) -> list[list[tuple[int, int, float]]]:
        """Each query's nearest (work, indexed view, likeness) triples, best first."""
        alike, found = self.index.search(descriptors(gray).flatten(0, 1).numpy().astype(np.float32), k)
        return [[(*divmod(int(hit), self.per_work), float(s)) for hit, s in zip(row, sims)]
                for row, sims in zip(found, alike)]

    def scores(self, images: torch.Tensor, exclude: list[set[int]] | None = None, chunk: int = 64
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """For each image [N, 3, H, W]: (copy score, index of the work it best matches).
        ``exclude[i]``: works image i may not match (itself, when calibrating)."""
        return _in_chunks(lambda part, skip: self._verify(luminance(part), skip), images, exclude, chunk)

    def _retrieved(self, gray: torch.Tensor, exclude: list[set[int]] | None) -> list[tuple[int, int, int]]:
        """(query, work, view it was found by) of each retrieved view worth verifying, each once."""
        pairs = []
        for q, found in enumerate(self.candidates(gray)):
            found = [(work, view, alike) for work, view, alike in found if not (exclude and work in exclude[q])]
            # the first pass: only views alike enough to be an edit are verified, and the nearest
            # one always (so that every query has a nearest work and a score on the same scale)
            found = [(work, view) for j, (work, view, alike) in enumerate(found) if j == 0 or alike >= WHOLE_GATE]
            pairs += [(q, work, view) for work, view in dict.fromkeys(found)]
        return pairs

    def _verify(self, gray: torch.Tensor, exclude: list[set[int]] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of a chunk of queries [Q, 1, r, r]: each retrieved work compared with the query
        as the view it was found by, and where that already looks like the start of an edit,
        under all the transforms near that view; the best match re-aligned finely."""
        best, where = torch.full((len(gray),), -1.0), torch.zeros(len(gray), dtype=torch.int64)
        pairs = self._retrieved(gray, exclude)
        if not pairs:
            return best, where
        rows, works, views = torch.tensor(pairs).T
        unique, which = torch.unique(works, return_inverse=True)
        lum = luminance(self.works[unique])  # [U, 1, r, r] each distinct work converted once
        lum = F.adaptive_avg_pool2d(lum, VERIFY_WARP) if lum.shape[-1] > VERIFY_WARP else lum
        query = verification_view(gray)  # [Q, K, P]
        transforms = AS_INDEXED[views]
        score = _correlations(lum[which], transforms, query[rows])
        expand = (score >= EXPAND_ABOVE).nonzero()[:, 0]
        if len(expand):  # the items again under each transform near their view
            near = [NEAR[int(views[i])] for i in expand]
            repeat = torch.tensor([len(n) for n in near])
            rows_near, which_near = rows[expand].repeat_interleave(repeat), which[expand].repeat_interleave(repeat)
            near = torch.cat(near)
            score = torch.cat([score, _correlations(lum[which_near], near, query[rows_near])])
            rows, which = torch.cat([rows, rows_near]), torch.cat([which, which_near])
            transforms = torch.cat([transforms, near])
        works = unique[which]
        best = best.scatter_reduce(0, rows, score, reduce="amax")
        top = score == best[rows]  # the items that reach their query's best
        where[rows[top]] = works[top]
        first = torch.zeros(len(gray), dtype=torch.int64)  # one best item per query
        first[rows[top].flip(0)] = top.nonzero()[:, 0].flip(0)
        answered = torch.unique(rows)
        answered = answered[best[answered] >= REFINE_ABOVE]
        if len(answered):
            refined = self._refine(query[answered], works[first[answered]], VERIFIED[transforms[first[answered]]])
            best[answered] = torch.maximum(best[answered], refined)
        return best, where

    def _refine(self, query: torch.Tensor, works: torch.Tensor, thetas: torch.Tensor) -> torch.Tensor:
        """Each query's best match re-aligned more finely (places between the grid's, scale +-2%):
        a crop whose place falls between two of the grid's otherwise scores as a near miss."""
        n, r = len(works), len(REFINE)
        fine = thetas.repeat_interleave(r, dim=0).clone()  # [n * r, 2, 3]
        fine[:, :, :2] *= REFINE[:, 2].repeat(n)[:, None, None]
        fine[:, :, 2] += REFINE[:, :2].repeat(n, 1)
        seen = warp_each(self.gray(works).repeat_interleave(r, dim=0), fine, VERIFY, VERIFY_WARP)[:, 0]
        views = verification_vectors(seen).view(n, r, *query.shape[1:])
        return torch.einsum("nrkp,nkp->nrk", views, query).amin(dim=2).amax(dim=1)

    def threshold(self, works: torch.Tensor, chosen: torch.Tensor, quantile: float) -> float:
        """The score only ``1 - quantile`` of the ``chosen`` works reach against the other works."""
        scores, _ = self.scores(works[chosen], exclude=[{int(w)} for w in chosen])
        return float(torch.quantile(scores, quantile))


def _read_thresholds(cache: Path | None) -> tuple[float, float] | None:
    """Cached (whole, region) thresholds, or None when absent, unreadable or out of date."""
    if cache is None or not cache.exists():
        return None
    try:
        saved = json.loads(cache.read_text())
        if saved.get("version") == CALIBRATION_VERSION:
            return float(saved["whole"]), float(saved["region"])
    except (ValueError, KeyError, TypeError, OSError):
        pass  # a damaged cache file is recalibrated and rewritten
    return None


def calibration_works(works: torch.Tensor, sample: int = 1000, seed: int = 0,
                      twin_distance: float = 0.5) -> torch.Tensor:
    """Indices of up to ``sample`` works to calibrate on: those without an identical twin in the
    collection (tiled L2 <= ``twin_distance``), whose nearest other work is a real other work."""
    order = torch.randperm(len(works), generator=torch.Generator().manual_seed(seed))[:sample]
    return order[_nearest_other(works, order) > twin_distance]


def _nearest_other(works: torch.Tensor, order: torch.Tensor, chunk: int = 128, block: int = 4096) -> torch.Tensor:
    """Tiled L2 from each work in ``order`` to its nearest *other* work of the collection, the
    collection visited ``block`` works at a time (its tiles are never all in memory)."""
    nearest = torch.full((len(order),), float("inf"))
    for first in range(0, len(works), block):
        everything = tiles(torch.as_tensor(works[first:first + block]))
        for start in range(0, len(order), chunk):
            rows = order[start:start + chunk]
            d = torch.cdist(tiles(works[rows]), everything).amax(dim=0)  # [S, block]: worst tile
            own = (rows >= first) & (rows < first + block)
            d[own.nonzero()[:, 0], rows[own] - first] = float("inf")
            nearest[start:start + chunk] = torch.minimum(nearest[start:start + chunk], d.min(dim=1).values)
    return nearest


# -- regions: a quarter of a work (half its side) inside another picture ------------------------
# Windows are plain crops of the pictures resized to SIDE px, so searching and verifying them is
# slicing, not resampling; they are compared in colour at their own size.
SIDE = 32  # pictures are area-resized to SIDE x SIDE
WINDOW_PX = 12  # windows are WINDOW_PX square: 3/8 of the side, so that one lies wholly inside any
# region of half the side (a quarter of the area), wherever it was pasted
WORK_STEP = 4  # windows indexed per work: every 4 px (6 x 6 of them)
QUERY_STEP = 4  # windows taken from each query: every 4 px (6 x 6), on the works' own grid: the window
# wholly inside a region pasted in place is always among them (every 2 px found the same 99% of
# pasted regions at 1.6x the cost, benchmarks/originality.py)
REGION_CANDIDATES = 2  # indexed windows retrieved per query window
REGION_GATE = 0.98  # found windows less alike than this are not verified (but each picture's most
# alike is): a region pasted in place keeps its best window above 0.991 (200 WikiArt pastes),
# while half of unrelated paintings' best windows are below 0.965. (A region moved to another
# place is missed: RESULTS.md, "Edited copies")
VERIFY_BLOCK = 1024  # found windows verified at a time (each holds 25 shifted windows in colour)
FLAT = 0.03  # query windows whose luminance varies less than this (std, 0..1) are not searched
REGION_PROBED = 2  # IVF lists visited per window (large collections): a pasted window's descriptor
# is near-exact, so it lies in or beside its own centroid's list. 2 instead of 8: the same 99% of
# regions pasted in place found (benchmarks/originality.py) at 0.4x the search time (even chance
# likenesses above REGION_GATE, far less exact: 89% of those 8 lists find)
SHIFT = 2  # verification slides the found window up to 2 px each way (half of WORK_STEP)


def _colour(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, R, R] uint8 (or [-1, 1]) -> float [0, 1] at SIDE x SIDE."""
    x = _zero_one(images)
    return F.interpolate(x, size=SIDE, mode="area" if x.shape[-1] > SIDE else "bilinear", align_corners=None)


def _colour_unit(views: torch.Tensor) -> torch.Tensor:
    """[..., 3, V, V] -> [..., 3 * V * V], each channel's mean removed, unit length."""
    cells = views.flatten(-2)
    return F.normalize((cells - cells.mean(-1, keepdim=True)).flatten(-2), dim=-1)


def _detail(views: torch.Tensor) -> torch.Tensor:
    """[..., C, V, V] -> the same less its 3 x 3 blur (edges replicated): what is drawn, not the layout."""
    flat = views.reshape(-1, *views.shape[-3:])
    blurred = F.avg_pool2d(F.pad(flat, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return (flat - blurred).view(views.shape)


def _colour_vectors(views: torch.Tensor) -> torch.Tensor:
    """[..., 3, V, V] windows -> [..., K, D]: their colour and, with DETAIL, their detail, as unit
    vectors (a pasted region agrees in both; a window of sky or of a dark corner, in the first only)."""
    vectors = [_colour_unit(views)] + ([_colour_unit(_detail(views))] if DETAIL else [])
    return torch.stack(vectors, dim=-2)


def _window_descriptors(windows: torch.Tensor) -> torch.Tensor:
    """[..., 3, V, V] colour windows -> [..., THUMB * THUMB] retrieval descriptors (luminance)."""
    gray = 0.299 * windows[..., 0, :, :] + 0.587 * windows[..., 1, :, :] + 0.114 * windows[..., 2, :, :]
    cells = F.adaptive_avg_pool2d(gray.flatten(0, -3)[:, None], THUMB).view(*gray.shape[:-2], -1)
    return _unit(cells)


def _all_windows(colour: torch.Tensor, step: int) -> torch.Tensor:
    """[N, 3, SIDE, SIDE] -> [N, P, P, 3, V, V]: the windows at every ``step`` px (views, no copy)."""
    return colour.unfold(2, WINDOW_PX, step).unfold(3, WINDOW_PX, step).permute(0, 2, 3, 1, 4, 5)


def _shifted(pictures: torch.Tensor, y: torch.Tensor, x: torch.Tensor, shift: int) -> torch.Tensor:
    """The [H, S, 3, V, V] windows of pictures [H, 3, P, P] at (y, x) [H] moved by up to ``shift``
    px each way (S = (2 * shift + 1)^2), kept inside the picture."""
    offsets = torch.arange(-shift, shift + 1)
    last, n = pictures.shape[-1] - WINDOW_PX, len(offsets)
    ys = (y[:, None, None] + offsets[None, :, None]).clamp(0, last).expand(-1, n, n).flatten(1)
    xs = (x[:, None, None] + offsets[None, None, :]).clamp(0, last).expand(-1, n, n).flatten(1)
    every = _all_windows(pictures, 1)  # [H, P - V + 1, P - V + 1, 3, V, V] (views, no copy)
    return every[torch.arange(len(pictures))[:, None], ys, xs]


@dataclass
class RegionIndex:
    """A collection's windows, ready to be searched for a region of a work pasted elsewhere."""

    colour: torch.Tensor  # [M, 3, SIDE, SIDE] the works, small (float16: half the memory; kept,
    # as making them for every found window's work costs a third of a check)
    index: object  # faiss.IndexFlatIP over [M * places, D] luminance descriptors of their windows
    places: int  # windows per side indexed per work

    @staticmethod
    def describe(works: torch.Tensor) -> torch.Tensor:
        """[k, 3, R, R] works -> [k * P * P, D] descriptors of their windows, work by work."""
        return _window_descriptors(_all_windows(_colour(works), WORK_STEP)).flatten(0, 2)

    @classmethod
    def build(cls, works: torch.Tensor, described: np.ndarray | None = None, kept: Path | None = None
              ) -> "RegionIndex":
        if described is None:
            described = torch.cat([cls.describe(chunk) for chunk in works.split(INDEX_BATCH)]).numpy()
        places = (SIDE - WINDOW_PX) // WORK_STEP + 1
        colour = torch.cat([_colour(chunk).half() for chunk in works.split(INDEX_BATCH)])
        return cls(colour, _inner_product_index(described, kept, REGION_PROBED), places)

    def scores(self, images: torch.Tensor, exclude: list[set[int]] | None = None, chunk: int = 256
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """For each image: (best correlation of one of its windows with a region of a work, that work).
        Images without a textured window score -1."""
        return _in_chunks(lambda part, skip: self._search(_colour(part), skip), images, exclude, chunk)

    def _search(self, colour: torch.Tensor, exclude: list[set[int]] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of a chunk of pictures [Q, 3, SIDE, SIDE]: all their textured windows looked up
        in one search, the found windows alike enough verified in colour."""
        views = _all_windows(colour, QUERY_STEP).flatten(1, 2)  # [Q, W, 3, V, V]
        textured = views.mean(dim=2).flatten(2).std(dim=2) >= FLAT  # [Q, W]
        owner, views = textured.nonzero()[:, 0], views[textured]  # [K], [K, 3, V, V]
        best, where = torch.full((len(colour),), -1.0), torch.zeros(len(colour), dtype=torch.int64)
        if len(views) == 0:
            return best, where
        alike, hits = self.index.search(_window_descriptors(views).numpy().astype(np.float32), REGION_CANDIDATES)
        found = torch.arange(len(views)).repeat_interleave(REGION_CANDIDATES)  # [K * C] its query window
        alike, hits = torch.from_numpy(alike).flatten(), torch.from_numpy(hits).flatten()
        keep = hits >= 0
        if exclude:
            keep &= torch.tensor([int(h) // self.places ** 2 not in exclude[int(owner[f])]
                                  for f, h in zip(found, hits)], dtype=torch.bool)
        # the first pass: found windows alike enough to be a pasted region are verified, and each
        # picture's most alike one always (so that each has a nearest work on the same scale)
        nearest = torch.full((len(colour),), -2.0).scatter_reduce(0, owner[found[keep]], alike[keep], reduce="amax")
        keep &= (alike >= REGION_GATE) | (alike == nearest[owner[found]])
        found, hits = found[keep], hits[keep]
        score = torch.cat([self._verify(views[f], h)
                           for f, h in zip(found.split(VERIFY_BLOCK), hits.split(VERIFY_BLOCK))])
        rows, works = owner[found], hits // self.places ** 2
        best = best.scatter_reduce(0, rows, score, reduce="amax")
        top = score == best[rows]
        where[rows[top]] = works[top]
        return best, where

    def _verify(self, views: torch.Tensor, hits: torch.Tensor) -> torch.Tensor:
        """[H] correlations in colour of query windows [H, 3, V, V] with the windows of their
        found works within SHIFT px of where each was found (the best of the shifts)."""
        works, place = hits // self.places ** 2, hits % self.places ** 2
        y, x = (place // self.places) * WORK_STEP, (place % self.places) * WORK_STEP
        around = _shifted(self.colour[works].float(), y, x, SHIFT)  # [H, S, 3, V, V]
        likeness = torch.einsum("hskd,hkd->hsk", _colour_vectors(around), _colour_vectors(views))
        return likeness.amin(dim=2).amax(dim=1)

    threshold = CopyIndex.threshold


EXACT = 0.9999  # the threshold of a collection too alike to calibrate on: an exact copy's score
CALIBRATION_VERSION = 6  # bump when the descriptors or checks change: cached thresholds expire
WHOLE_QUANTILE = 0.99  # share of works (against the others) below the edited-copy threshold
REGION_QUANTILE = 0.995  # the same for regions: stricter, as chance likeness between small
# regions is common (measured: 1% of WikiArt works reach 0.965 against the others)
# Floors under the calibrated thresholds: a few hundred works cannot show how far chance likeness
# reaches (200 works: thresholds 0.56 / 0.84 from their own scores, and 2.75% of unseen works above
# them), while copies score far higher under every measured edit (5th percentile 0.98 for whole
# works, 1.0 for regions pasted in place; benchmarks/originality_sizes.py)
WHOLE_FLOOR = 0.9
REGION_FLOOR = 0.95


def calibrate(whole: CopyIndex, regions: RegionIndex, works: torch.Tensor, calibration: int = 1000,
              seed: int = 0) -> tuple[float, float]:
    """(edited-copy, region) thresholds: the scores that only 1% and 0.5% of ``calibration``
    sampled works reach against the rest of their collection."""
    chosen = calibration_works(works, calibration, seed)
    if len(chosen) < 2:  # a collection of twins: nothing but an exact copy counts (which scores
        return EXACT, EXACT  # 1 up to rounding)
    return (max(whole.threshold(works, chosen, WHOLE_QUANTILE), WHOLE_FLOOR),
            max(regions.threshold(works, chosen, REGION_QUANTILE), REGION_FLOOR))


@dataclass
class EditedCopies:
    """Both checks on one collection, with their calibrated thresholds."""

    whole: CopyIndex
    regions: RegionIndex
    whole_threshold: float
    region_threshold: float

    @classmethod
    def build(cls, works: torch.Tensor, calibration: int = 1000, seed: int = 0,
              cache: Path | None = None) -> "EditedCopies":
        """Index ``works`` and calibrate the thresholds, or read them from ``cache`` (a JSON file
        the caller keys by the collection's fingerprint): calibration is the costly part."""
        whole, regions = CopyIndex.build(works), RegionIndex.build(works)
        known = _read_thresholds(cache)
        if known is not None:
            return cls(whole, regions, *known)
        thresholds = calibrate(whole, regions, works, calibration, seed)
        if cache is not None:
            from brushwork.utils import atomic_write

            atomic_write(cache, json.dumps({"version": CALIBRATION_VERSION, "whole": thresholds[0],
                                            "region": thresholds[1]}).encode())
        return cls(whole, regions, *thresholds)

    def scores(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """[N] scores and nearest works of each image, by each check."""
        whole, whole_work = self.whole.scores(images)
        region, region_work = self.regions.scores(images)
        return {"edit_score": whole, "edit_index": whole_work, "region_score": region, "region_index": region_work}
