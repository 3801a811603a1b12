"""The diffusion family: U-Net, EDM preconditioning, samplers, training, sampling and painting."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from brushwork.cli import main
from brushwork.config import DiffusionConfig, RunConfig, TrainConfig
from brushwork.models.diffusion import Denoiser, UNet, loss_weight, preconditioning
from brushwork.models.samplers import evaluations, karras_sigmas, sample_images, sigma_at_strength

TINY_MODEL = ["--set", "width=8", "--set", "channel_mult=1,2", "--set", "blocks=1",
              "--set", "sampling_steps=4", "--set", "mixed_precision=no"]
TINY = ["--data", "builtin:abstract:8", "--res", "32", "--batch-size", "8", "--device", "cpu",
        "--quiet", *TINY_MODEL]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "brushwork", *args], capture_output=True, text=True,
                          timeout=600)


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny unconditional diffusion run (4 steps, ~1 s)."""
    out = tmp_path_factory.mktemp("diffusion") / "run"
    assert main(["train", "diffusion", "--out", str(out), "--steps", "4", "--ckpt-every", "2", *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def styled_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("diffusion") / "styled"
    assert main(["train", "diffusion", "--out", str(out), "--steps", "2", "--conditional", *TINY]) == 0
    return out


# -- the model ----------------------------------------------------------------------------------
@pytest.mark.parametrize("res, mult", [(32, "1,2,2"), (64, "1,2,2,2"), (128, "1,1,2,2,2")])
def test_unet_shapes_at_every_resolution(res, mult):
    cfg = DiffusionConfig(resolution=res, width=8, channel_mult=mult, blocks=1)
    net = UNet(cfg)
    x = torch.randn(2, 3, res, res)
    assert net(x, torch.zeros(2)).shape == (2, 3, res, res)
    wide = torch.randn(1, 3, res, res + res // 2)  # convolutional: other canvases too
    assert net(wide, torch.zeros(1)).shape == wide.shape


def test_edm_preconditioning_matches_hand_computed_values():
    # sigma_data 0.5: sum = sigma^2 + 0.25
    expected = {0.5: (0.5, 0.25 / math.sqrt(0.5), 1 / math.sqrt(0.5), math.log(0.5) / 4),
                1.0: (0.2, 0.5 / math.sqrt(1.25), 1 / math.sqrt(1.25), 0.0),
                80.0: (0.25 / 6400.25, 40 / math.sqrt(6400.25), 1 / math.sqrt(6400.25), math.log(80) / 4)}
    for sigma, values in expected.items():
        got = preconditioning(torch.tensor(sigma, dtype=torch.float64), 0.5)
        for g, e in zip(got, values):
            assert abs(g.item() - e) < 1e-9
    assert abs(loss_weight(torch.tensor(1.0), 0.5).item() - 5.0) < 1e-6  # (1 + 0.25) / 0.25


def test_the_denoiser_returns_its_input_at_a_tiny_noise_level():
    cfg = DiffusionConfig(width=8, channel_mult="1,2", blocks=1)
    net = Denoiser(cfg)
    for p in net.parameters():  # not the zero-initialised output: any network must pass
        p.data.normal_(0, 0.2)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert (net(x, torch.full((2,), 1e-5)) - x).abs().max() < 1e-3
    assert (net(x, torch.full((2,), 5.0)) - x).abs().max() > 0.1  # it does something elsewhere


@pytest.mark.parametrize("sampler", ["heun", "dpm2m"])
def test_samplers_reproduce_a_gaussian_dataset_from_its_optimal_denoiser(sampler):
    """Data ~ N(mu, s^2) per value: the ideal denoiser is mu + s^2/(s^2 + sigma^2) (x - mu), so an
    accurate ODE solver must turn sigma_max noise into samples with that mean and variance."""
    mu, s = torch.tensor([0.3, -0.5, 0.1]).view(1, 3, 1, 1), 0.2

    def denoiser(x, sigma, style=None):
        sigma = sigma.view(-1, 1, 1, 1).double()
        return mu + s ** 2 / (s ** 2 + sigma ** 2) * (x - mu)

    noise = torch.randn(64, 3, 16, 16, generator=torch.Generator().manual_seed(0)).double()
    images = sample_images(denoiser, noise, karras_sigmas(32, 0.002, 80.0), sampler)
    mean, std = images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))
    assert torch.allclose(mean, mu.flatten().double(), atol=0.01)
    assert torch.allclose(std, torch.full((3,), s).double(), rtol=0.03)


def test_schedule_and_strength_levels():
    sigmas = karras_sigmas(8, 0.002, 80.0)
    assert len(sigmas) == 9 and sigmas[0] == pytest.approx(80) and sigmas[-2] == pytest.approx(0.002)
    assert sigmas[-1] == 0 and all(a > b for a, b in zip(sigmas, sigmas[1:]))
    assert sigma_at_strength(1, 0.002, 80) == pytest.approx(80)
    assert sigma_at_strength(0, 0.002, 80) == pytest.approx(0.002)
    assert evaluations("heun", 8) == 15 and evaluations("dpm2m", 8) == 8


# -- training ------------------------------------------------------------------------------------
def _weights(run_dir, step):
    from safetensors.torch import load_file

    return load_file(run_dir / "checkpoints" / f"step-{step:08d}.safetensors")


def test_training_resumes_exactly(tmp_path):
    from brushwork.training.run import train_run

    def config(steps):
        cfg = DiffusionConfig(resolution=32, width=8, channel_mult="1,2", blocks=1, mixed_precision="no",
                              sampling_steps=2, lr_rampup_kimg=0.05)
        return RunConfig(kind="diffusion", model=cfg, train=TrainConfig(
            data="builtin:abstract:8", batch_size=8, steps=steps, log_every=2, sample_every=4,
            ckpt_every=3, device="cpu"))

    train_run(config(6), tmp_path / "straight", quiet=True)
    train_run(config(3), tmp_path / "resumed", quiet=True)
    train_run(config(6), tmp_path / "resumed", resume=True, quiet=True)
    a, b = _weights(tmp_path / "straight", 6), _weights(tmp_path / "resumed", 6)
    assert a.keys() == b.keys() and any(k.startswith("model/denoiser_ema/") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 3, 4, 6] and all(math.isfinite(r["loss"]) for r in rows)
    assert (tmp_path / "resumed" / "samples" / "step-00000004.png").is_file()


def test_long_runs_on_small_collections_are_warned_of_copying(tmp_path, capsys):
    from brushwork.config import gan_preset
    from brushwork.training.run import copying_warning, train_run

    def config(steps, dropout=0.0, kind="diffusion"):
        model = DiffusionConfig(dropout=dropout) if kind == "diffusion" else gan_preset("dcgan", 32)
        return RunConfig(kind=kind, model=model, train=TrainConfig(data="x", batch_size=64, steps=steps))

    assert "64 works shown 3,125 times each" in copying_warning(config(3125), 64)
    assert copying_warning(config(500), 64) is None  # 500 passes: not yet
    assert copying_warning(config(3125, dropout=0.3), 64) is None  # dropout already set
    assert copying_warning(config(10**6), 300) is None  # collections this size did not copy
    assert copying_warning(config(10**6, kind="gan"), 64) is None
    # wired into training: a long run on 40 works is warned of before it starts (stopped after 1 s)
    tiny = DiffusionConfig(resolution=32, width=8, channel_mult="1,2", blocks=1, mixed_precision="no")
    train_run(RunConfig(kind="diffusion", model=tiny, train=TrainConfig(
        data="builtin:abstract:8", batch_size=8, steps=10000, device="cpu")), tmp_path / "run", time_limit=1)
    assert "40 works shown 2,000 times each" in capsys.readouterr().err


def test_a_run_learns_to_denoise(tmp_path):
    """A minute's worth of steps lowers the EDM loss of a small model on the built-in art below the
    1.0 that a network saying nothing scores (measured: 1.08 -> 0.80 over these 80 steps)."""
    out = tmp_path / "run"
    assert main(["train", "diffusion", "--out", str(out), "--steps", "80", "--log-every", "20",
                 *TINY, "--batch-size", "32", "--data", "builtin:abstract:40", "--set", "width=16",
                 "--set", "lr=1e-3", "--set", "lr_rampup_kimg=0"]) == 0
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.9 and losses[-1] < losses[0] - 0.1


# -- sampling ------------------------------------------------------------------------------------
def test_a_seed_names_one_image_and_sample_from_remakes_it(run, tmp_path):
    assert main(["sample", str(run), "--seeds", "0-9", "--out", str(tmp_path / "all"), "--grid",
                 "--device", "cpu"]) == 0
    assert main(["sample", str(run), "--seeds", "7", "--out", str(tmp_path / "one"), "--device", "cpu"]) == 0
    assert np.array_equal(_pixels(tmp_path / "all" / "seed0007.png"), _pixels(tmp_path / "one" / "seed0007.png"))
    assert not np.array_equal(_pixels(tmp_path / "all" / "seed0007.png"), _pixels(tmp_path / "all" / "seed0006.png"))
    from brushwork.provenance import read_record

    record = read_record(tmp_path / "all" / "seed0007.png")["brushwork"]
    assert record["kind"] == "diffusion" and record["sampler"] == "dpm2m" and record["sampling_steps"] == 4
    assert record["seed"] == 7 and len(record["model_hash"]) == 64
    assert main(["sample", str(run), "--seeds", "7", "--sampler", "heun", "--steps", "3",
                 "--out", str(tmp_path / "heun"), "--device", "cpu"]) == 0
    assert main(["sample", "--from", str(tmp_path / "heun" / "seed0007.png"), "--runs", str(run.parent),
                 "--out", str(tmp_path / "again"), "--device", "cpu"]) == 0
    assert np.array_equal(_pixels(tmp_path / "heun" / "seed0007.png"), _pixels(tmp_path / "again" / "seed0007.png"))
    assert read_record(tmp_path / "again" / "seed0007.png")["brushwork"]["sampler"] == "heun"


def test_walks_children_and_styles(run, styled_run, tmp_path):
    assert main(["interpolate", str(run), "--seeds", "1,2", "--frames", "5", "--out",
                 str(tmp_path / "walk.gif"), "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "walk.gif").n_frames == 5
    assert main(["sample", str(run), "--seeds", "3", "--out", str(tmp_path / "p"), "--device", "cpu"]) == 0
    assert main(["breed", str(tmp_path / "p" / "seed0003.png"), "--n", "2", "--run", str(run),
                 "--out", str(tmp_path / "kids"), "--device", "cpu"]) == 0
    assert len(list((tmp_path / "kids").glob("child*.png"))) == 2
    assert main(["sample", str(styled_run), "--seeds", "0-1", "--style", "stripes", "--guidance", "2",
                 "--out", str(tmp_path / "s"), "--device", "cpu"]) == 0
    from brushwork.provenance import read_record

    record = read_record(tmp_path / "s" / "seed0001.png")["brushwork"]
    assert record["style"] == "stripes" and record["guidance"] == 2
    assert main(["sample", str(styled_run), "--seeds", "0", "--style-mix", "stripes:0.5,drips:0.5",
                 "--out", str(tmp_path / "mix"), "--device", "cpu"]) == 0


# -- painting ------------------------------------------------------------------------------------
@pytest.fixture
def sketch(tmp_path):
    img = Image.new("RGB", (45, 30), (200, 180, 120))
    ImageDraw.Draw(img).ellipse((10, 5, 30, 25), fill=(40, 60, 160))
    img.save(tmp_path / "sketch.png")
    mask = Image.new("L", (45, 30), 0)
    ImageDraw.Draw(mask).rectangle((15, 10, 30, 22), fill=255)
    mask.save(tmp_path / "mask.png")
    return tmp_path / "sketch.png", tmp_path / "mask.png"


def test_strength_zero_returns_the_sketch_and_one_ignores_it(run, tmp_path):
    square = Image.new("RGB", (32, 32), (10, 200, 30))
    square.save(tmp_path / "square.png")
    assert main(["paint", str(run), "--sketch", str(tmp_path / "square.png"), "--strength", "0",
                 "--seeds", "5", "--out", str(tmp_path / "zero"), "--device", "cpu"]) == 0
    assert np.array_equal(_pixels(tmp_path / "zero" / "paint0005.png"), np.asarray(square))
    assert main(["paint", str(run), "--sketch", str(tmp_path / "square.png"), "--strength", "1",
                 "--seeds", "5", "--out", str(tmp_path / "one"), "--device", "cpu"]) == 0
    assert main(["sample", str(run), "--seeds", "5", "--out", str(tmp_path / "plain"), "--device", "cpu"]) == 0
    assert np.array_equal(_pixels(tmp_path / "one" / "paint0005.png"), _pixels(tmp_path / "plain" / "seed0005.png"))


def test_painting_a_sketch_of_any_size_keeps_its_size_and_is_remade_exactly(run, sketch, tmp_path):
    done = run_cli("paint", str(run), "--sketch", str(sketch[0]), "--seeds", "0-1", "--strength", "0.5",
                   "--out", str(tmp_path / "out"), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert "resized" in done.stdout  # says how a 45 x 30 sketch met a 32 px model
    painted = _pixels(tmp_path / "out" / "paint0001.png")
    assert painted.shape == (30, 45, 3) and not np.array_equal(painted, _pixels(sketch[0]))
    assert main(["sample", "--from", str(tmp_path / "out" / "paint0001.png"), "--sketch", str(sketch[0]),
                 "--runs", str(run.parent), "--out", str(tmp_path / "again"), "--device", "cpu"]) == 0
    assert np.array_equal(painted, _pixels(tmp_path / "again" / "paint0001.png"))
    assert main(["sample", "--from", str(tmp_path / "out" / "paint0001.png"), "--sketch", str(sketch[1]),
                 "--runs", str(run.parent), "--out", str(tmp_path / "wrong"), "--device", "cpu"]) == 2
    assert main(["sample", "--from", str(tmp_path / "out" / "paint0001.png"), "--runs", str(run.parent),
                 "--out", str(tmp_path / "wrong"), "--device", "cpu"]) == 2  # needs the sketch
    assert not (tmp_path / "wrong").exists()


def test_inpainting_keeps_every_pixel_outside_the_mask(run, sketch, tmp_path):
    assert main(["paint", str(run), "--sketch", str(sketch[0]), "--mask", str(sketch[1]), "--seeds", "0-1",
                 "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    original, keep = _pixels(sketch[0]), np.asarray(Image.open(sketch[1])) < 128
    for path in sorted((tmp_path / "out").glob("*.png")):
        painted = _pixels(path)
        assert np.array_equal(painted[keep], original[keep])
        assert not np.array_equal(painted[~keep], original[~keep])
    from brushwork.provenance import read_record

    record = read_record(tmp_path / "out" / "paint0000.png")["brushwork"]["paint"]
    assert record["strength"] == 1.0 and record["resample"] == 2 and len(record["mask_sha256"]) == 64
    assert main(["sample", "--from", str(tmp_path / "out" / "paint0001.png"), "--sketch", str(sketch[0]),
                 "--mask", str(sketch[1]), "--runs", str(run.parent), "--out", str(tmp_path / "again"),
                 "--device", "cpu"]) == 0
    assert np.array_equal(_pixels(tmp_path / "out" / "paint0001.png"), _pixels(tmp_path / "again" / "paint0001.png"))


def test_several_canvases_share_batches_and_paint_as_each_alone(run, sketch):
    """A list of canvases (one per seed) paints as each would alone: the fixed batches make a
    seed's painting independent of its neighbours."""
    from brushwork.errors import BrushworkError
    from brushwork.making.generate import load_model
    from brushwork.making.paint import load_inputs, paint

    model = load_model(run, "cpu")
    first = load_inputs(sketch[0], sketch[1])
    flipped = load_inputs(sketch[0], sketch[1])
    flipped.canvas = np.ascontiguousarray(flipped.canvas[:, ::-1])
    together = paint(model, [first, flipped], [4, 9], 1.0)
    assert np.array_equal(together[0], paint(model, first, [4], 1.0)[0])
    assert np.array_equal(together[1], paint(model, flipped, [9], 1.0)[0])
    with pytest.raises(BrushworkError, match="one canvas per seed"):
        paint(model, [first, flipped], [4], 1.0)
    with pytest.raises(BrushworkError, match="share their size"):
        paint(model, [first, load_inputs(sketch[0])], [4, 9], 1.0)


def test_outpainting_widens_the_canvas_around_the_original(run, sketch, tmp_path):
    assert main(["paint", str(run), "--sketch", str(sketch[0]), "--extend", "left=10,right=20,top=5",
                 "--seeds", "3", "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    painted = _pixels(tmp_path / "out" / "paint0003.png")
    assert painted.shape == (35, 75, 3)
    assert np.array_equal(painted[5:, 10:55], _pixels(sketch[0]))


@pytest.mark.parametrize("args, message", [
    (["--sketch", "{tmp}/missing.png"], "no such image"),
    (["--sketch", "{tmp}/garbage.png"], "cannot read image"),
    (["--sketch", "{sketch}", "--mask", "{tmp}/small.png"], "same size"),
    (["--sketch", "{sketch}", "--mask", "{tmp}/black.png"], "no white pixels"),
    (["--sketch", "{sketch}", "--strength", "1.5"], "--strength: must be in [0, 1]"),
    (["--sketch", "{sketch}", "--extend", "left=9000,right=9000,top=9000,bottom=9000"], "more than the limit"),
    (["--sketch", "{sketch}", "--extend", "left=3000"], "64x its own area"),
    (["--sketch", "{sketch}", "--extend", "middle=3"], "bad --extend"),
    (["--sketch", "{sketch}", "--guidance", "2"], "needs a style-conditional run"),
    (["--sketch", "{sketch}", "--steps", "0"], "--steps: must be >= 1"),
])
def test_paint_mistakes_get_one_line_and_write_nothing(run, sketch, tmp_path, args, message):
    (tmp_path / "garbage.png").write_bytes(b"not a png at all")
    Image.new("L", (10, 10), 255).save(tmp_path / "small.png")
    Image.new("L", (45, 30), 0).save(tmp_path / "black.png")
    argv = [a.format(tmp=tmp_path, sketch=sketch[0]) for a in args]
    done = run_cli("paint", str(run), *argv, "--out", str(tmp_path / "out"), "--device", "cpu")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert message in done.stderr
    assert not (tmp_path / "out").exists()


def test_gan_runs_and_gan_only_commands_say_what_they_need(run, sketch, tmp_path):
    gan = tmp_path / "gan"
    assert main(["train", "gan", "--out", str(gan), "--steps", "1", "--data", "builtin:abstract:8", "--res",
                 "32", "--batch-size", "8", "--set", "g_width=8", "--set", "d_width=8", "--quiet",
                 "--device", "cpu"]) == 0
    done = run_cli("paint", str(gan), "--sketch", str(sketch[0]), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "not a diffusion run (paint needs one)" in done.stderr
    done = run_cli("sample", str(gan), "--seeds", "0", "--steps", "4", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "for diffusion runs" in done.stderr
    for command in (["project", str(run), str(sketch[0])], ["reconstruct", str(run), str(sketch[0])],
                    ["variations", str(run), str(sketch[0])]):
        done = run_cli(*command, "--out", str(tmp_path / "o"), "--device", "cpu")
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "brushwork paint" in done.stderr
    assert not (tmp_path / "o").exists()
