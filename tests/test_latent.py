"""Latent diffusion: the autoencoder family, diffusion in its latents, and the refusals around them."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from brushwork.config import AutoencoderConfig, DiffusionConfig, RunConfig, TrainConfig, from_dict
from brushwork.errors import BrushworkError
from brushwork.models.autoencoder import Autoencoder, Encoder, LatentCodec

TINY_AE = ["--set", "width=8", "--set", "disc_width=8", "--set", "disc_start=2", "--set", "mixed_precision=no"]
TINY_TRAIN = ["--data", "builtin:abstract:8", "--batch-size", "8", "--log-every", "2", "--device", "cpu"]
TINY_LD = ["--set", "width=8", "--set", "channel_mult=1,2", "--set", "blocks=1", "--set", "sampling_steps=3",
           "--set", "mixed_precision=no"]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "brushwork", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("factor", [4, 8])
@pytest.mark.parametrize("size", [(64, 0), (64, 80), (96, 64)])
def test_autoencoder_shapes(factor, size):
    cfg = AutoencoderConfig(resolution=size[0], height=size[1], factor=factor, channels=3, width=8)
    ae = Autoencoder(cfg)
    h, w = size[1] or size[0], size[0]
    x = torch.rand(2, 3, h, w) * 2 - 1
    recon, mean, logvar = ae(x)
    assert mean.shape == logvar.shape == (2, 3, h // factor, w // factor) == (2, 3, *cfg.latent_size)
    assert recon.shape == x.shape
    assert len(cfg.multipliers) == {4: 3, 8: 4}[factor]


def test_autoencoder_sizes_refused():
    with pytest.raises(BrushworkError, match="factor must be 4 or 8"):
        AutoencoderConfig(factor=2).validate()
    with pytest.raises(BrushworkError, match="channels, width"):
        AutoencoderConfig(channels=0).validate()
    with pytest.raises(BrushworkError, match="needs VGG19 weights"):
        AutoencoderConfig(perceptual="vgg").validate()
    AutoencoderConfig(resolution=32, factor=8).validate()  # 4 x 4 latents: the smallest


@pytest.mark.parametrize("norm", ["channel", "group"])
def test_only_the_channel_norm_keeps_decoding_local(norm):
    """A change to one corner latent reaches far pixels only through statistics that span the
    image (GroupNorm's): the channel norm has none, so a spike in one place cannot steer a whole
    map (the blue specks of our GroupNorm decoder), and far pixels stay bit-equal."""
    torch.manual_seed(0)
    decoder = Autoencoder(AutoencoderConfig(resolution=64, factor=4, width=8, norm=norm)).decoder.eval()
    z = torch.randn(1, 4, 16, 16)
    spiked = z.clone()
    spiked[0, :, 0, 0] += 20.0
    with torch.no_grad():
        far = (decoder(z) - decoder(spiked))[..., 48:, 48:]  # beyond the corner's receptive field (~34 px)
    assert far.abs().max().item() == 0 if norm == "channel" else far.abs().max().item() > 1e-3


def test_a_config_saved_before_the_norm_option_keeps_groupnorm():
    saved = {k: v for k, v in AutoencoderConfig().__dict__.items() if k != "norm"}
    assert from_dict(AutoencoderConfig, saved).norm == "group"
    assert from_dict(AutoencoderConfig, {**saved, "norm": "channel"}).norm == "channel"
    assert AutoencoderConfig().norm == "channel"  # new runs
    with pytest.raises(BrushworkError, match="norm must be channel or group"):
        AutoencoderConfig(norm="batch").validate()


def test_latent_space_of_a_diffusion_config():
    ae = AutoencoderConfig(resolution=64, height=80, factor=4, channels=3)
    cfg = DiffusionConfig(resolution=64, height=80, autoencoder="/x", autoencoder_config=ae.__dict__.copy())
    assert cfg.space == (3, 20, 16) and cfg.z_dim == 3 * 20 * 16
    assert DiffusionConfig(resolution=32).space == (3, 32, 32)
    with pytest.raises(BrushworkError, match="goes to 256"):
        DiffusionConfig(resolution=256).validate()  # pixels stop at 128; latents do not
    DiffusionConfig(resolution=256, autoencoder="/x", autoencoder_config=AutoencoderConfig(256).__dict__.copy(),
                    channel_mult="1,2,2").validate()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny autoencoder at 32 px (f=4: 8 x 8 x 4 latents) and a latent diffusion run on it."""
    root = tmp_path_factory.mktemp("latent")
    env = {**__import__("os").environ, "BRUSHWORK_CACHE": str(root / "cache")}
    done = run_cli("train", "autoencoder", "--out", root / "ae", "--res", 32, "--steps", 4, *TINY_TRAIN, *TINY_AE,
                   env=env)
    assert done.returncode == 0, done.stderr
    done = run_cli("train", "diffusion", "--latent", root / "ae", "--out", root / "ld", "--steps", 4,
                   "--ckpt-every", 2, *TINY_TRAIN, *TINY_LD, env=env)
    assert done.returncode == 0, done.stderr
    return root, env


def test_autoencoder_logs_reconstruction_and_latent_spread(trained):
    root, _ = trained
    rows = [json.loads(line) for line in (root / "ae" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(5 < r["val_psnr"] < 60 and r["val_latent_std"] > 0 for r in rows)
    assert "d_loss" in rows[-1] and "d_loss" not in rows[0]  # the patch discriminator joins at disc_start
    config = json.loads((root / "ae" / "config.json").read_text())
    assert config["kind"] == "autoencoder" and config["model"]["perceptual"] == "laplacian"


def test_latent_run_samples_and_remakes_bit_exact(trained):
    root, env = trained
    config = json.loads((root / "ld" / "config.json").read_text())["model"]
    assert config["autoencoder"] == str(root / "ae") and len(config["autoencoder_hash"]) == 64
    assert config["latent_scale"] > 0 and config["autoencoder_config"]["channels"] == 4
    weights = load_file(root / "ld" / "checkpoints" / "step-00000004.safetensors")
    assert any(k.startswith("model/autoencoder/") for k in weights)  # the run carries its autoencoder
    done = run_cli("sample", root / "ld", "--seeds", "0-2", "--out", root / "s1", "--no-originality", env=env)
    assert done.returncode == 0, done.stderr
    image = root / "s1" / "seed0001.png"
    assert _pixels(image).shape == (32, 32, 3)
    record = json.loads(Image.open(image).text["brushwork"])
    assert record["autoencoder_hash"] == config["autoencoder_hash"] and record["model_hash"]
    done = run_cli("sample", "--from", image, "--runs", root, "--out", root / "s2", "--no-originality", env=env)
    assert done.returncode == 0, done.stderr
    assert (root / "s2" / "seed0001.png").read_bytes() == image.read_bytes()


def test_latent_inpainting_keeps_every_pixel_outside_the_mask(trained, tmp_path):
    root, env = trained
    sketch = np.zeros((40, 48, 3), np.uint8)
    sketch[:, :24] = (200, 60, 40)
    sketch[:, 24:] = (30, 90, 200)
    mask = np.zeros((40, 48), np.uint8)
    mask[8:28, 12:36] = 255
    Image.fromarray(sketch).save(tmp_path / "sketch.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    done = run_cli("paint", root / "ld", "--sketch", tmp_path / "sketch.png", "--mask", tmp_path / "mask.png",
                   "--seeds", "0-1", "--out", tmp_path / "painted", "--no-originality", env=env)
    assert done.returncode == 0, done.stderr
    keep = mask == 0
    for path in sorted((tmp_path / "painted").glob("*.png")):
        out = _pixels(path)
        assert out.shape == sketch.shape
        assert (out[keep] == sketch[keep]).all()
        assert (out[~keep] != sketch[~keep]).any()  # the region was painted
    done = run_cli("paint", root / "ld", "--sketch", tmp_path / "sketch.png", "--extend", "left=16",
                   "--seeds", "0", "--out", tmp_path / "wider", "--no-originality", env=env)
    assert done.returncode == 0, done.stderr
    wider = _pixels(next((tmp_path / "wider").glob("*.png")))
    assert wider.shape == (40, 64, 3) and (wider[:, 16:] == sketch).all()


def test_latent_run_resumes_exactly_and_encodes_the_works_once(tmp_path, monkeypatch):
    """2 + 2 steps through a resume equal 4 straight; the works are encoded once, however often
    the run starts (counted encoder calls)."""
    from brushwork.training.run import train_run

    ae_cfg = AutoencoderConfig(resolution=32, width=8, disc_width=8, disc_start=1, mixed_precision="no")
    train = dict(data="builtin:abstract:8", batch_size=8, log_every=2, sample_every=4, ckpt_every=2, device="cpu")
    train_run(RunConfig(kind="autoencoder", model=ae_cfg, train=TrainConfig(steps=2, **train)), tmp_path / "ae",
              quiet=True)
    from brushwork.runs.directory import read_run_config
    from brushwork.training.latent import attach_autoencoder

    calls = []
    forward = Encoder.forward
    monkeypatch.setattr(Encoder, "forward", lambda self, x: (calls.append(len(x)), forward(self, x))[1])

    def config(steps):
        cfg = attach_autoencoder(DiffusionConfig(resolution=32, width=8, channel_mult="1,2", blocks=1,
                                                 mixed_precision="no", sampling_steps=2, lr_rampup_kimg=0.05),
                                 tmp_path / "ae")
        return RunConfig(kind="diffusion", model=cfg, train=TrainConfig(steps=steps, **train))

    train_run(config(4), tmp_path / "straight", quiet=True)
    encoded = sum(calls)
    assert encoded >= 2 * 40  # every work and its mirror image (40 works), padded to whole batches
    calls.clear()
    train_run(config(2), tmp_path / "resumed", quiet=True)
    resumed = read_run_config(tmp_path / "resumed")  # as ``train --resume`` does: the run's own settings
    resumed.train.steps = 4
    train_run(resumed, tmp_path / "resumed", resume=True, quiet=True)
    assert sum(calls) == 0, "the latents were encoded again instead of read from the cache"
    a = load_file(tmp_path / "straight" / "checkpoints" / "step-00000004.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoints" / "step-00000004.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("model/denoiser_ema/") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_codec_round_trip_is_batch_independent():
    cfg = AutoencoderConfig(resolution=32, width=8)
    codec = LatentCodec(cfg, scale=0.7).eval()
    x = torch.rand(11, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = codec.encode(x)
        assert z.shape == (11, 4, 8, 8)
        assert torch.equal(codec.decode(z)[3:4], codec.decode(z[3:4]))


def _refused(done, *words):
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_bad_latent_inputs_are_refused_in_one_line(trained, tmp_path):
    root, env = trained
    # an autoencoder of another size
    _refused(run_cli("train", "diffusion", "--latent", root / "ae", "--res", 64, "--out", tmp_path / "a",
                     *TINY_TRAIN, env=env), "encodes 32 px works, not 64 px")
    # a run of another family
    _refused(run_cli("train", "diffusion", "--latent", root / "ld", "--out", tmp_path / "b", *TINY_TRAIN, env=env),
             "ld is a diffusion run, not an autoencoder run (--latent needs one)")
    # an autoencoder that has changed since the run started
    done = run_cli("train", "autoencoder", "--out", root / "ae2", "--res", 32, "--steps", 2, *TINY_TRAIN, *TINY_AE,
                   env=env)
    assert done.returncode == 0, done.stderr
    _refused(run_cli("train", "diffusion", "--out", root / "ld", "--latent", root / "ae2", "--resume", "--steps", 6,
                     env=env), "not the autoencoder this run learns in")
    # an autoencoder asked to sample, and a pixel run asked to be a latent space
    _refused(run_cli("sample", root / "ae", "--seeds", "0", "--out", tmp_path / "c", env=env),
             "autoencoder run, not a gan, vae or diffusion run")
    assert not any((tmp_path / name).exists() for name in "abc")


def test_autoencoder_reconstructs_an_artwork(trained, tmp_path):
    root, env = trained
    Image.fromarray((np.random.RandomState(0).rand(40, 40, 3) * 255).astype(np.uint8)).save(tmp_path / "art.png")
    done = run_cli("reconstruct", root / "ae", tmp_path / "art.png", "--out", tmp_path / "recon", env=env)
    assert done.returncode == 0, done.stderr
    assert "PSNR" in done.stdout and _pixels(tmp_path / "recon" / "art_recon.png").shape == (32, 32, 3)


def test_a_latent_run_on_a_canvas_that_is_not_square(tmp_path):
    """A 32x40 (portrait) autoencoder: the latent run takes its canvas without being told, its
    samples are 32 x 40, and another size is refused in one line."""
    env = {**__import__("os").environ, "BRUSHWORK_CACHE": str(tmp_path / "cache")}
    done = run_cli("train", "autoencoder", "--out", tmp_path / "ae", "--size", "32x40", "--steps", 2, *TINY_TRAIN,
                   *TINY_AE, env=env)
    assert done.returncode == 0, done.stderr
    done = run_cli("train", "diffusion", "--latent", tmp_path / "ae", "--out", tmp_path / "ld", "--steps", 2,
                   *TINY_TRAIN, *TINY_LD, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "ld" / "config.json").read_text())["model"]["height"] == 40
    done = run_cli("sample", tmp_path / "ld", "--seeds", "0-1", "--out", tmp_path / "s", "--no-originality", env=env)
    assert done.returncode == 0, done.stderr
    assert _pixels(tmp_path / "s" / "seed0001.png").shape == (40, 32, 3)
    _refused(run_cli("train", "diffusion", "--latent", tmp_path / "ae", "--size", "40x32", "--out", tmp_path / "x",
                     *TINY_TRAIN, env=env), "encodes 32x40 px works, not 40x32 px")
