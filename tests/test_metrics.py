import json
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from brushwork.cli import main
from brushwork.data.dataset import load_dataset
from brushwork.metrics import evaluate as ev
from brushwork.metrics.swd import laplacian_pyramid, swd


@pytest.fixture(scope="module")
def paintings():
    return load_dataset("builtin:abstract:40", 32, progress=False).images  # uint8 [200, 3, 32, 32]


def test_laplacian_pyramid_levels(paintings):
    levels = laplacian_pyramid(paintings[:2].float() / 127.5 - 1)
    assert [lv.shape[-1] for lv in levels] == [32, 16]


def test_swd_is_zero_against_itself_and_grows_with_noise_and_blur(paintings):
    assert swd(paintings, paintings)["mean"] == 0
    x = paintings.float()
    noisy = [(x + torch.randn_like(x) * s).clamp(0, 255).to(torch.uint8) for s in (8, 40)]
    d_small, d_large = (swd(paintings, n)["mean"] for n in noisy)
    assert 0 < d_small < d_large
    blurred = F.avg_pool2d(x, 3, 1, 1).to(torch.uint8)
    assert swd(paintings, blurred)["levels"][32] > 0


def test_fid_matches_the_closed_form_for_gaussians():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    fake = torch.randn(20000, 2, generator=g, dtype=torch.float64) * 2 + torch.tensor([3.0, 0.0], dtype=torch.float64)
    # ||mu||^2 = 9; per dimension tr(1 + 4 - 2*sqrt(4)) = 1 -> 9 + 2 = 11
    assert ev.fid(real, fake) == pytest.approx(11.0, rel=0.03)
    assert abs(ev.fid(real, real)) < 1e-6


def test_kid_and_precision_recall_behave(paintings):
    extractor = ev.make_extractor("random")
    real = ev.extract(extractor, paintings[:100], "cpu")
    same = ev.extract(extractor, paintings[100:200], "cpu")
    noise = ev.extract(extractor, torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8), "cpu")
    assert ev.kid(real, same, subsets=20, subset_size=50)[0] < ev.kid(real, noise, subsets=20, subset_size=50)[0]
    assert ev.fid(real, same) < ev.fid(real, noise)
    assert ev.precision_recall(real, real) == (1.0, 1.0)


def test_precision_recall_on_known_manifolds():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=g, dtype=torch.float64)
    far = torch.randn(400, 8, generator=g, dtype=torch.float64) + 20
    assert ev.precision_recall(real, far) == (0.0, 0.0)
    # fakes: half like the reals, half far away -> precision ~0.5; they cover the reals -> recall high
    half = torch.cat([torch.randn(200, 8, generator=g, dtype=torch.float64), far[:200]])
    precision, recall = ev.precision_recall(real, half)
    assert 0.35 < precision < 0.6 and recall > 0.5
    # mode collapse: every fake near one real point -> precision high, recall low
    collapsed = real[:1] + 0.01 * torch.randn(400, 8, generator=g, dtype=torch.float64)
    precision, recall = ev.precision_recall(real, collapsed)
    assert precision > 0.9 and recall < 0.1


def test_real_feature_cache_is_reused_and_invalidated_by_file_changes(tmp_path, monkeypatch):
    folder = tmp_path / "art"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (i * 60, 0, 0)).save(folder / f"{i}.png")
    extractor = ev.make_extractor("random")
    ds = load_dataset(str(folder), 32, progress=False)
    first = ev.cached_real_features(extractor, ds.images, ds.fingerprint, tmp_path / "c", "cpu")
    calls = []
    real_extract = ev.extract
    monkeypatch.setattr(ev, "extract", lambda *a, **k: calls.append(1) or real_extract(*a, **k))
    again = ev.cached_real_features(extractor, ds.images, ds.fingerprint, tmp_path / "c", "cpu")
    assert torch.equal(first, again) and calls == []
    Image.new("RGB", (32, 32), (0, 200, 0)).save(folder / "2.png")  # a file changes
    from brushwork.data import dataset

    monkeypatch.setattr(dataset, "_MEMORY_CACHE", {})
    changed = load_dataset(str(folder), 32, progress=False)
    assert changed.fingerprint != ds.fingerprint
    ev.cached_real_features(extractor, changed.images, changed.fingerprint, tmp_path / "c", "cpu")
    assert calls == [1]


def test_evaluate_cli_appends_to_metrics_and_survives_missing_inception(tmp_path, capsys, monkeypatch):
    from brushwork.training.run import train_run
    from conftest import tiny_run_config

    run = tmp_path / "run"
    train_run(tiny_run_config("dcgan", steps=2, data="builtin:abstract:10"), run, quiet=True)
    assert main(["evaluate", str(run), "--data", "builtin:abstract:10", "--n", "30", "--features",
                 "random", "--device", "cpu"]) == 0
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["step"] == 2 and row["eval_n"] == 30
    assert {"eval_swd", "eval_fid", "eval_kid", "eval_precision", "eval_recall"} <= set(row)
    assert all(math.isfinite(v) for v in row.values())
    monkeypatch.setattr(ev, "inception_features", lambda *a: (_ for _ in ()).throw(
        ev.BrushworkError("FID/KID/PR need the FID Inception weights")))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", "builtin:abstract:10", "--n", "30", "--device", "cpu"]) == 0
    out = capsys.readouterr()
    assert "need the FID Inception weights" in out.err and "eval_swd" in out.out
    assert main(["evaluate", str(run), "--data", "builtin:abstract:10", "--metrics", "swd,ssim"]) == 2


def test_eval_every_during_training(tmp_path):
    from brushwork.training.run import train_run
    from conftest import tiny_run_config

    cfg = tiny_run_config("modern", steps=6, log_every=2, eval_every=3, eval_n=20)
    train_run(cfg, tmp_path / "run", quiet=True)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_swd" in r] == [3, 6]
