import pytest
import torch

from brushwork.cli import main
from brushwork.data.dataset import load_dataset
from brushwork.metrics.originality import check_originality, near_duplicates, tiled_l2, tiles
from brushwork.models.vgg import VGGFeatures


@pytest.fixture(scope="module")
def encoder():
    return VGGFeatures(("relu2_1", "relu3_1"), weights="random")


@pytest.fixture(scope="module")
def train():
    return load_dataset("builtin:abstract:40", 32, progress=False).images  # 200 paintings


def test_tiles_and_tiled_l2_by_hand():
    a = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    b = a.clone()
    b[0, :, :2, :2] = 255  # one 2x2 tile fully different: 12 values of 1.0 -> L2 sqrt(12)
    assert tiles(a).shape == (16, 1, 12)
    dist, idx = tiled_l2(b, torch.cat([a, b]))
    assert dist.item() == 0 and idx.item() == 1
    dist, _ = tiled_l2(b, a)
    assert dist.item() == pytest.approx(12 ** 0.5)  # the worst tile decides


def test_a_model_that_returns_training_images_is_flagged(train, encoder):
    copies = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:50]]
    report = check_originality(copies, train, encoder)
    assert report.summary()["memorisation_rate"] >= 0.95
    assert torch.all(report.tiled_l2 < 0.05)  # 0 up to the rounding of matmul-based cdist


def test_a_model_that_returns_noise_is_not(train, encoder):
    noise = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8)
    assert check_originality(noise, train, encoder).summary()["memorisation_rate"] <= 0.05


def test_lightly_edited_copies_are_still_found(train, encoder):
    edited = train[:40].float()
    edited = (edited + torch.randn_like(edited) * 3).clamp(0, 255).to(torch.uint8)  # re-encode-like noise
    report = check_originality(edited, train, encoder)
    assert report.summary()["memorisation_rate"] >= 0.9
    assert torch.equal(report.tiled_index, torch.arange(40))


def test_near_duplicates_in_the_data_are_found(train):
    data = torch.cat([train[:30], train[5:6], train[17:18]])  # two duplicated files
    pairs = near_duplicates(data)
    assert [(i, j) for i, j, _ in pairs] == [(5, 30), (17, 31)]


def test_originality_cli_on_an_image_and_a_run(tmp_path, capsys):
    from PIL import Image

    from brushwork.data.builtin import paint

    data = tmp_path / "art"
    for style in ("grid", "circles", "stripes"):
        (data / style).mkdir(parents=True)
        for i in range(4):
            paint(style, i, 32).save(data / style / f"{style}{i}.png")
    paint("grid", 3, 32).save(tmp_path / "copy.png")
    assert main(["originality", "--image", str(tmp_path / "copy.png"), "--data", str(data),
                 "--res", "32", "--features", "random", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "verdict: COPY" in printed  # and the work it copies, by name, with both scores:
    assert "nearest by tiled L2: grid/grid3.png  (distance 0.0000)" in printed
    assert "nearest by features: grid/grid3.png  (cosine 1.0000)" in printed
    Image.new("RGB", (32, 32), (90, 200, 10)).save(tmp_path / "new.png")
    assert main(["originality", "--image", str(tmp_path / "new.png"), "--data", "builtin:abstract:8",
                 "--res", "32", "--features", "random", "--device", "cpu"]) == 0
    assert "verdict: original" in capsys.readouterr().out

    from brushwork.training.run import train_run
    from conftest import tiny_run_config

    train_run(tiny_run_config("dcgan", steps=2), tmp_path / "run", quiet=True)
    report = tmp_path / "report.html"
    assert main(["originality", str(tmp_path / "run"), "--data", "builtin:abstract:8", "--n", "16",
                 "--features", "random", "--report", str(report), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "flagged images:" in printed
    flagged = [line for line in printed.splitlines() if line.strip().startswith("seed")]
    assert len(flagged) == (0 if "flagged images: none" in printed else int(printed.split("flagged images: ")[1].split()[0]))
    page = report.read_text()
    assert "memorisation_rate" in page and "pair00.png" in page
    assert (tmp_path / "report_files" / "distributions.png").exists()


def test_originality_of_a_folder_as_json_lines(tmp_path, capsys):
    """--images checks any folder (unreadable files skipped and named), --json prints one object
    per image; a mirrored training work is caught by the edited-copy check, not by pixels."""
    import json

    from PIL import Image

    from test_copies import pil, textures

    data, folder = tmp_path / "art", tmp_path / "mine"
    data.mkdir()
    folder.mkdir()
    works = textures(40, 0)
    for i, work in enumerate(works):
        pil(work).save(data / f"work{i:02d}.png")
    pil(works[7]).transpose(Image.FLIP_LEFT_RIGHT).save(folder / "mirrored.png")
    pil(textures(1, 9)[0]).save(folder / "new.png")
    (folder / "broken.png").write_bytes(b"not a png")
    args = ["originality", "--images", str(folder), "--data", str(data), "--res", "64",
            "--features", "random", "--device", "cpu"]
    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["file"] for line in lines] == ["mirrored.png", "new.png"]
    assert lines[0]["verdict"] == "COPY" and "edited copy" in lines[0]["flagged_by"]
    assert lines[0]["nearest"]["edit"]["work"] == "work07.png" and lines[1]["verdict"] == "original"
    assert "skipped broken.png" in captured.err
    (folder / "mirrored.png").unlink()
    (folder / "new.png").unlink()
    assert main(args) == 2  # nothing readable left: one line, no traceback
    assert "no readable images" in capsys.readouterr().err
