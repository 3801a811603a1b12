"""The offline edited-copy checks (metrics/copies.py): a work mirrored, cropped, rotated,
recoloured, re-compressed or rescaled is found, and so is a quarter of one pasted into another
picture; works that are not in the collection are not flagged."""

import io
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance

from brushwork.metrics.copies import EditedCopies, calibration_works
from brushwork.metrics.originality import check_originality
from brushwork.models.vgg import VGGFeatures

SIZE = 64


def textures(n: int, seed: int) -> torch.Tensor:
    """uint8 [n, 3, SIZE, SIZE]: smooth random colour fields with finer detail on top, each one
    its own picture (the built-in art is too regular: its works differ mostly in colour)."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(n, 3, 6, 6, generator=g), size=SIZE, mode="bicubic", align_corners=False)
    fine = F.interpolate(torch.rand(n, 3, 16, 16, generator=g), size=SIZE, mode="bilinear", align_corners=False)
    return ((0.7 * coarse + 0.3 * fine).clamp(0, 1) * 255).round().to(torch.uint8)


def pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def tensor(images: list[Image.Image]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(i.convert("RGB")) for i in images])).permute(0, 3, 1, 2).contiguous()


def jpeg(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=40)
    return Image.open(io.BytesIO(buffer.getvalue()))


def crop(image: Image.Image, frac: float, x: int, y: int) -> Image.Image:
    side = int(SIZE * frac)
    return image.crop((x, y, x + side, y + side)).resize((SIZE, SIZE), Image.BICUBIC)


EDITS = {
    "mirror": lambda im, rng: im.transpose(Image.FLIP_LEFT_RIGHT),
    "centre crop 75%": lambda im, rng: crop(im, 0.75, 8, 8),
    "crop 90%": lambda im, rng: crop(im, 0.9, rng.randint(0, 6), rng.randint(0, 6)),
    "rotation 5 deg": lambda im, rng: im.rotate(rng.choice([-5, 5]), Image.BICUBIC),
    "brighter": lambda im, rng: ImageEnhance.Brightness(im).enhance(1.15),
    "JPEG 40": lambda im, rng: jpeg(im),
    "downscaled x2": lambda im, rng: im.resize((SIZE // 2,) * 2, Image.BICUBIC).resize((SIZE,) * 2, Image.BICUBIC),
}


@pytest.fixture(scope="module")
def collection():
    works, others = textures(150, 0), textures(100, 1)
    return works, others, EditedCopies.build(works, calibration=150)


@pytest.mark.parametrize("edit", list(EDITS))
def test_each_edit_of_a_work_is_found_and_named(collection, edit):
    works, _, check = collection
    rng, picked = random.Random(3), list(range(0, 150, 15))
    copies = tensor([EDITS[edit](pil(works[i]), rng) for i in picked])
    scores = check.scores(copies)
    assert bool((scores["edit_score"] >= check.whole_threshold).all()), scores["edit_score"]
    assert scores["edit_index"].tolist() == picked


def test_a_pasted_quarter_is_found_by_its_region(collection):
    works, others, check = collection
    rng, pasted, picked = random.Random(4), [], list(range(5, 150, 15))
    for n, i in enumerate(picked):
        canvas, x, y = pil(others[n]).copy(), rng.randint(0, 32), rng.randint(0, 32)
        canvas.paste(pil(works[i]).crop((x, y, x + 32, y + 32)), (x, y))
        pasted.append(canvas)
    scores = check.scores(tensor(pasted))
    assert bool((scores["region_score"] >= check.region_threshold).all()), scores["region_score"]
    assert scores["region_index"].tolist() == picked


def test_works_not_in_the_collection_are_not_flagged(collection):
    _, others, check = collection
    scores = check.scores(others)
    flagged = (scores["edit_score"] >= check.whole_threshold) | (scores["region_score"] >= check.region_threshold)
    assert flagged.float().mean().item() <= 0.06  # calibrated for ~1.5%


def test_calibration_leaves_out_works_with_an_identical_twin():
    works = textures(30, 2)
    works = torch.cat([works, works[:5]])  # five works twice: a scraped collection's repeats
    chosen = set(calibration_works(works).tolist())
    assert chosen == set(range(5, 30))


def test_the_report_says_which_measure_flagged_each_image(collection, tmp_path):
    works, others, _ = collection
    mirrored = works[:3].flip(-1)
    report = check_originality(torch.cat([works[3:4], mirrored, others[:2]]), works,
                               VGGFeatures(("relu2_1",), weights="random"), calibration=150)
    assert report.copies.tolist() == [True, True, True, True, False, False]
    assert "pixels and features" in report.flagged_by(0) and "edited copy" in report.flagged_by(0)
    assert report.flagged_by(1) == ["edited copy"]  # a mirror image is far in pixels
    near = report.nearest(2)
    assert near["edit"][0] == report.train_name(1) and near["flagged_by"] == ["edited copy"]
    assert report.summary()["flagged_edited_copy"] == pytest.approx(4 / 6, abs=1e-3)
    from brushwork.originality_report import write_report

    images = torch.cat([works[3:4], mirrored, others[:2]])
    page = write_report(report, images, works, tmp_path / "report.html").read_text()
    assert page.count("<b>COPY (") == 4 and "<th>edited copy</th>" in page
    shown = np.asarray(Image.open(tmp_path / "report_files" / "pair01.png"))  # a mirror, beside its work
    assert shown.shape[1] > shown.shape[0]


def test_thresholds_are_calibrated_once_per_collection(tmp_path, monkeypatch):
    import json

    import brushwork.metrics.copies as copies

    works, cache = textures(60, 5), tmp_path / "thresholds.json"
    first = EditedCopies.build(works, cache=cache)
    assert json.loads(cache.read_text())["whole"] == pytest.approx(first.whole_threshold)
    with monkeypatch.context() as patch:
        patch.setattr(copies, "calibration_works", lambda *a, **k: pytest.fail("calibrated again"))
        again = EditedCopies.build(works, cache=cache)
    assert (again.whole_threshold, again.region_threshold) == (first.whole_threshold, first.region_threshold)
    cache.write_text("{damaged")  # recalibrated and rewritten
    rebuilt = EditedCopies.build(works, cache=cache)
    assert rebuilt.region_threshold == pytest.approx(first.region_threshold)
    assert json.loads(cache.read_text())["version"] == copies.CALIBRATION_VERSION
