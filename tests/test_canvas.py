"""Canvases that are not square (``--size WxH``, ``--aspect auto``): the models' shapes in both
orientations, the cache's aspect-preserving crop, a seeded portrait run end to end, and the
one-line refusals of sizes no model supports."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli import main
from brushwork.config import DiffusionConfig, VAEConfig, base_map, check_canvas, gan_preset, parse_size
from brushwork.data.aspect import choose_canvas
from brushwork.data.dataset import ImageBatcher, load_dataset
from brushwork.errors import BrushworkError
from brushwork.models.gan import build_gan
from brushwork.models.vae import VAE
from brushwork.provenance import read_record
from test_cli import run_cli

SIZES = [(32, 40), (40, 32), (32, 64), (64, 32)]  # (width, height): two ratios, both orientations


@pytest.mark.parametrize("preset", ["dcgan", "modern"])
@pytest.mark.parametrize("mode", ["plain", "conditional", "creative"])
@pytest.mark.parametrize("width,height", SIZES)
def test_gan_presets_make_and_judge_any_canvas(preset, mode, width, height):
    cfg = dataclasses.replace(gan_preset(preset, min(width, height)), resolution=width, height=height,
                              g_width=8, d_width=8, conditional=mode == "conditional",
                              creative=mode == "creative", num_styles=0 if mode == "plain" else 3)
    G, D = build_gan(cfg)
    z = torch.randn(2, cfg.z_dim)
    styles = torch.eye(3)[:2]
    images = G(z, styles) if mode == "conditional" else G(z)
    assert images.shape == (2, 3, height, width)
    logits = D(images, styles) if mode != "plain" else D(images)
    logits = logits[0] if isinstance(logits, tuple) else logits
    assert logits.shape == (2,)


@pytest.mark.parametrize("width,height", SIZES)
def test_vae_and_diffusion_make_any_canvas(width, height):
    from brushwork.training.diffusion import DiffusionTask

    vae = VAE(VAEConfig(resolution=width, height=height, width=8, latent_dim=4))
    recon, mu, _ = vae(torch.randn(2, 3, height, width))
    assert recon.shape == (2, 3, height, width) and mu.shape == (2, 4)
    task = DiffusionTask(DiffusionConfig(resolution=width, height=height, width=8, attention_levels=0,
                                         sampling_steps=2), torch.device("cpu"))
    assert task.sample([0, 1], None).shape == (2, 3, height, width)


def test_the_seed_preset_says_it_is_square_only():
    cfg = dataclasses.replace(gan_preset("seed", 32), resolution=32, height=48)
    with pytest.raises(BrushworkError, match="square images only for now.*dcgan, modern and fastgan"):
        cfg.validate()


@pytest.mark.parametrize("width,height", [(128, 160), (160, 128), (256, 128), (128, 256)])
def test_fastgan_makes_and_judges_any_canvas(width, height):
    """Its second, 128 px judge sees the canvas with its shorter side at 128 px; its decoders
    reconstruct T x T targets."""
    cfg = dataclasses.replace(gan_preset("fastgan", min(width, height)), resolution=width, height=height,
                              g_width=4, d_width=4, d_recon="pixel")
    G, D = build_gan(cfg)
    big, small = G(torch.randn(2, cfg.z_dim), both=True)
    assert big.shape == (2, 3, height, width)
    assert small is None or small.shape[-2:] == (height * 128 // min(width, height), width * 128 // min(width, height))
    logits, pairs = D(big, reconstruct=True)
    assert logits.shape[0] == 2 and all(a.shape == b.shape for a, b in pairs)


def test_square_models_keep_their_shapes():
    """A square config builds exactly the layers it always did (old checkpoints still load)."""
    G, D = build_gan(gan_preset("modern", 64))
    assert base_map(64) == (4, 4) and base_map(64, 80) == (5, 4) and base_map(80, 64) == (4, 5)
    assert G.net[0].weight.shape == (100, 512, 4, 4)  # z -> the 4 x 4 seed map of 512 channels
    assert D.net[-1].weight.shape == (1, 512, 4, 4)  # the last "valid" 4 x 4 conv
    tall, _ = build_gan(dataclasses.replace(gan_preset("modern", 64), height=80))
    assert tall.net[0].weight.shape == (100, 512, 5, 4)
    assert {k: v.shape for k, v in G.state_dict().items() if k != "net.0.weight"} == \
        {k: v.shape for k, v in tall.state_dict().items() if k != "net.0.weight"}


def test_sizes_no_model_supports_are_refused_with_what_works():
    for size, why in (("32x44", "multiple of 8.*32x40, 32x48"), ("32x160", "beyond 1:4"),
                      ("48x64", "power of two"), ("64", "WIDTHxHEIGHT")):
        with pytest.raises(BrushworkError, match=why):
            check_canvas(*parse_size(size))
    assert parse_size("64x64") == (64, 0) and parse_size("64x80") == (64, 80)


def test_cache_keeps_each_work_in_the_asked_proportions(tmp_path):
    """A 30 x 60 work with a red top third, green middle and blue bottom, cropped to a 20 x 25
    canvas: its centre 30 x 37.5 box (the bands' inner parts), resized; and the batcher's
    random crops are of the asked size."""
    work = np.zeros((60, 30, 3), np.uint8)
    work[:20, :, 0], work[20:40, :, 1], work[40:, :, 2] = 255, 255, 255
    (tmp_path / "art").mkdir()
    Image.fromarray(work).save(tmp_path / "art" / "bands.png")
    ds = load_dataset(str(tmp_path / "art"), 20, cache_dir=tmp_path / "cache", progress=False, height=25)
    assert ds.images.shape == (1, 3, 25, 20)
    kept = ds.images[0].permute(1, 2, 0).numpy().astype(int)
    # by hand: the box is rows 11..48 of 60 (37.5 tall): red for 9 rows, green 20, blue 8.5, in 25 rows
    assert kept[1, 10, 0] > 200 and kept[1, 10, 1] < 50  # top: red
    assert kept[12, 10, 1] > 200 and kept[12, 10, 0] < 50  # middle: green
    assert kept[23, 10, 2] > 200 and kept[23, 10, 1] < 50  # bottom: blue
    red_rows = (kept[:, 10, 0] > 128).sum()
    assert 5 <= red_rows <= 7  # 9 of 37.5 rows -> 6 of 25
    square = load_dataset(str(tmp_path / "art"), 20, cache_dir=tmp_path / "cache", progress=False)
    square_red = (square.images[0, 0, :, 10] > 128).sum()
    assert square.images.shape == (1, 3, 20, 20) and 2 <= square_red <= 4  # rows 15..45: 5 of 30 red -> 3.3 of 20
    wide = load_dataset(str(tmp_path / "art"), 20, crop="random", cache_dir=tmp_path / "cache", progress=False,
                        height=25)
    batch, _ = ImageBatcher(wide, 4, (25, 20), torch.device("cpu")).next()
    assert wide.images.shape[-2:] == (28, 22) and batch.shape == (4, 3, 25, 20)


def test_aspect_auto_picks_the_collections_proportions():
    portraits = [(400, 500)] * 7 + [(500, 400)] * 3  # mostly 4:5 portraits
    choice = choose_canvas(portraits, 64)
    assert (choice.resolution, choice.height) == (64, 80) and choice.median_ratio == 1.25
    assert choice.cropped == 3 and choice.mean_loss < choice.square_loss
    assert "64x80" in choice.summary() and "3 works cropped" in choice.summary()
    assert (choose_canvas([(900, 300)] * 3, 32).resolution, choose_canvas([(900, 300)] * 3, 32).height) == (96, 32)


def test_a_portrait_run_end_to_end(tmp_path):
    """train (--size), sample, info, sample --from (bit-exact), originality, evaluate; then
    resuming or fine-tuning at another size is refused in one line."""
    run, out = tmp_path / "run", tmp_path / "out"
    tiny = ["--data", "builtin:abstract:8", "--batch-size", "8", "--device", "cpu", "--set", "g_width=8",
            "--set", "d_width=8", "--quiet"]
    assert main(["train", "gan", "--out", str(run), "--size", "32x40", "--steps", "2", *tiny]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["height"] == 40
    assert main(["sample", str(run), "--seeds", "0-2", "--out", str(out), "--device", "cpu", "--grid"]) == 0
    assert Image.open(out / "seed0001.png").size == (32, 40)
    record = read_record(out / "seed0001.png")["brushwork"]
    assert record["seed"] == 1
    again = tmp_path / "again"
    assert main(["sample", "--from", str(out / "seed0001.png"), "--run", str(run), "--out", str(again),
                 "--device", "cpu"]) == 0
    assert (again / "seed0001.png").read_bytes() == (out / "seed0001.png").read_bytes()
    checked = run_cli("originality", str(run), "--data", "builtin:abstract:8", "--n", "3", "--features", "random",
                      "--device", "cpu", "--json")
    assert checked.returncode == 0, checked.stderr
    assert [json.loads(line)["verdict"] for line in checked.stdout.splitlines()] == ["original"] * 3
    assert main(["evaluate", str(run), "--data", "builtin:abstract:8", "--n", "8", "--metrics", "swd",
                 "--device", "cpu"]) == 0
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["eval_swd"] > 0

    resumed = run_cli("train", "gan", "--out", str(run), "--size", "32x48", "--steps", "3", "--resume", *tiny)
    assert resumed.returncode == 2 and "makes 32x40 images; it cannot resume at 32x48" in resumed.stderr
    child = run_cli("train", "gan", "--out", str(tmp_path / "child"), "--res", "32", "--steps", "3",
                    "--init-from", str(run), *tiny)
    assert child.returncode == 2 and "fine-tuning keeps the size (--size 32x40)" in child.stderr
    assert not (tmp_path / "child").exists()
    for size, why in (("32x44", "multiple of 8"), ("32x160", "beyond 1:4")):
        refused = run_cli("train", "gan", "--out", str(tmp_path / "bad"), "--size", size, *tiny)
        assert refused.returncode == 2 and why in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "bad").exists()
