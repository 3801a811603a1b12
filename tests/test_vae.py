import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli import main
from brushwork.config import RunConfig, TrainConfig, VAEConfig
from brushwork.making.generate import load_model
from brushwork.losses import kl_divergence, reconstruction_loss
from brushwork.models.vae import VAE
from brushwork.provenance import read_record
from brushwork.making.reproduce import blend_latents, reconstruct, variation_latents, variations
from brushwork.training.run import train_run
from brushwork.training.vae import validation_metrics


def tiny_vae_config(steps=6, **train) -> RunConfig:
    model = VAEConfig(resolution=32, latent_dim=16, width=8)
    defaults = dict(data="builtin:abstract:8", batch_size=8, steps=steps, log_every=2,
                    sample_every=3, ckpt_every=3, device="cpu")
    defaults.update(train)
    return RunConfig(kind="vae", model=model, train=TrainConfig(**defaults))


def test_kl_matches_hand_computation():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    # -1/2 * [(1 + 0 - 1 - 1) + (1 + ln 4 - 0 - 4)] = -1/2 * (-1 + ln 4 - 3)
    assert math.isclose(kl_divergence(mu, logvar).item(), -0.5 * (-4 + math.log(4)), rel_tol=1e-6)
    assert kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)).item() == 0  # q = prior


def test_reconstruction_terms_match_hand_computation():
    x = torch.zeros(2, 3, 2, 2)
    x_hat = torch.full_like(x, 0.5)
    x_hat[1] = -1.0
    # image 0: 12 * 0.25 = 3; image 1: 12 * 1 = 12 -> mean 7.5; L1: (6 + 12) / 2 = 9
    assert reconstruction_loss(x_hat, x, "mse").item() == pytest.approx(7.5)
    assert reconstruction_loss(x_hat, x, "l1").item() == pytest.approx(9.0)


def test_reparameterisation_lets_gradients_reach_mu_and_logvar():
    mu = torch.zeros(4, 8, requires_grad=True)
    logvar = torch.zeros(4, 8, requires_grad=True)
    VAE.reparameterise(mu, logvar).square().sum().backward()
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0


@pytest.mark.parametrize("res", [32, 64, 128, 256])
def test_vae_shapes(res):
    vae = VAE(VAEConfig(resolution=res, latent_dim=12, width=4))
    x_hat, mu, logvar = vae(torch.rand(2, 3, res, res) * 2 - 1)
    assert x_hat.shape == (2, 3, res, res) and mu.shape == logvar.shape == (2, 12)


def test_elbo_improves_over_a_short_cpu_run(tmp_path):
    cfg = tiny_vae_config(steps=60, log_every=10, sample_every=60, ckpt_every=60)
    cfg.model.width = 16
    train_run(cfg, tmp_path / "run", quiet=True)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "loss", "recon", "kl", "img_per_s", "val_bits_per_dim", "val_psnr",
            "val_neg_elbo_nats"} <= set(rows[0])
    assert rows[-1]["val_neg_elbo_nats"] < rows[0]["val_neg_elbo_nats"]
    assert rows[-1]["val_bits_per_dim"] < rows[0]["val_bits_per_dim"]
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_validation_bits_per_dim_formula():
    """A VAE whose decoder ignores z and outputs 0 with KL = 0: -ELBO is a Gaussian fit of the data."""
    vae = VAE(VAEConfig(resolution=32, latent_dim=4, width=4))
    for p in vae.parameters():
        torch.nn.init.zeros_(p)
    images = torch.full((4, 3, 32, 32), 255, dtype=torch.uint8)  # x = +1 everywhere
    images[:2] = 0  # x = -1: squared error 1 per dimension, so sigma^2 = 1
    m = validation_metrics(vae, images, torch.device("cpu"))
    dims = 3 * 32 * 32
    expected = dims / 2 * math.log(2 * math.pi) + dims / 2
    assert m["val_neg_elbo_nats"] == pytest.approx(expected, rel=1e-5)
    assert m["val_bits_per_dim"] == pytest.approx((expected + dims * math.log(127.5)) / (dims * math.log(2)), rel=1e-4)
    assert m["val_psnr"] == pytest.approx(10 * math.log10(1 / 0.25), rel=1e-4)  # error 1/2 in [0,1]
    assert m["val_kl"] == 0


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("vae") / "run"
    train_run(tiny_vae_config(steps=6), run, quiet=True)
    return run


@pytest.fixture
def artworks(tmp_path):
    rng = np.random.RandomState(0)
    paths = []
    for name, size in [("a.png", (48, 40)), ("b.jpg", (32, 32))]:
        Image.fromarray(rng.randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / name)
        paths.append(tmp_path / name)
    return paths


def test_encode_decode_round_trip_and_psnr(vae_run, artworks, tmp_path):
    model = load_model(vae_run, "cpu")
    results = reconstruct(model, artworks, tmp_path / "rec")
    assert [p.name for p, _ in results] == ["a_recon.png", "b_recon.png"]
    assert all(0 < v < 100 for _, v in results)
    record = read_record(results[0][0])["brushwork"]
    assert record["operation"] == "reconstruct" and len(record["source_sha256"]) == 64
    mu, logvar = model.encode(torch.zeros(1, 3, 32, 32))
    assert mu.shape == (1, 16) and torch.equal(model.decode(mu), model.decode(mu))


def test_variations_at_temperature_zero_are_the_reconstruction(vae_run, artworks, tmp_path):
    model = load_model(vae_run, "cpu")
    mu, logvar = torch.randn(16), torch.randn(16)
    assert torch.equal(variation_latents(mu, logvar, [1, 2], 0.0), torch.stack([mu, mu]))
    var = variations(model, artworks[0], 3, 0.0, tmp_path / "v")
    recon = reconstruct(model, [artworks[0]], tmp_path / "r")[0][0]
    reference = np.asarray(Image.open(recon))
    for path in var[:3]:
        assert np.array_equal(np.asarray(Image.open(path)), reference)
    warm = variations(model, artworks[0], 2, 1.0, tmp_path / "w")
    assert not np.array_equal(np.asarray(Image.open(warm[0])), np.asarray(Image.open(warm[1])))


def test_blend_endpoints_are_the_reconstructions(vae_run, artworks, tmp_path):
    a, b = torch.randn(16), torch.randn(16)
    path = blend_latents(a, b, 5)
    assert torch.equal(path[0], a) and torch.allclose(path[-1], b)
    assert main(["blend", str(vae_run), str(artworks[0]), str(artworks[1]), "--frames", "6",
                 "--out", str(tmp_path / "blend.gif"), "--device", "cpu"]) == 0
    gif = Image.open(tmp_path / "blend.gif")
    assert gif.n_frames == 6
    model = load_model(vae_run, "cpu")
    recons = reconstruct(model, artworks, tmp_path / "r")
    gif.seek(0)
    first = np.asarray(gif.convert("RGB")).astype(int)
    # GIF quantises to 256 colours, so compare loosely to the exact reconstruction
    assert np.abs(first - np.asarray(Image.open(recons[0][0])).astype(int)).mean() < 12


def test_vae_cli_end_to_end(tmp_path, artworks, capsys):
    run = tmp_path / "run"
    assert main(["train", "vae", "--out", str(run), "--data", "builtin:abstract:8", "--res", "32",
                 "--batch-size", "8", "--steps", "4", "--latent-dim", "8", "--beta", "0.5",
                 "--kl-warmup", "2", "--set", "width=8", "--device", "cpu", "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["beta"] == 0.5
    assert main(["reconstruct", str(run), *map(str, artworks), "--out", str(tmp_path / "rec"),
                 "--device", "cpu"]) == 0
    assert "PSNR" in capsys.readouterr().out
    assert main(["variations", str(run), str(artworks[0]), "--n", "4", "--out",
                 str(tmp_path / "var"), "--device", "cpu"]) == 0
    assert len(list((tmp_path / "var").glob("a_var[0-9]*.png"))) == 4
    assert main(["sample", str(run), "--seeds", "0-2", "--temperature", "0.7",
                 "--out", str(tmp_path / "s"), "--device", "cpu"]) == 0
    assert read_record(tmp_path / "s" / "seed0001.png")["parameters"].startswith("Seed: 1, Temperature: 0.7")
    assert main(["sample", "--from", str(tmp_path / "s" / "seed0001.png"), "--run", str(run),
                 "--out", str(tmp_path / "again"), "--device", "cpu"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again" / "seed0001.png")),
                          np.asarray(Image.open(tmp_path / "s" / "seed0001.png")))
    assert main(["interpolate", str(run), "--seeds", "0,1", "--frames", "4", "--temperature", "0.5",
                 "--out", str(tmp_path / "w.gif"), "--device", "cpu"]) == 0
    capsys.readouterr()
    # VAE-only commands on a GAN run, and a resume with the wrong family, are clear errors
    gan = tmp_path / "gan"
    assert main(["train", "gan", "--out", str(gan), "--data", "builtin:abstract:8", "--res", "32",
                 "--batch-size", "8", "--steps", "2", "--set", "g_width=8", "--set", "d_width=8",
                 "--device", "cpu", "--quiet"]) == 0
    assert main(["reconstruct", str(gan), str(artworks[0]), "--out", str(tmp_path / "x")]) == 2
    assert "needs a run that encodes artworks" in capsys.readouterr().err
    assert main(["train", "vae", "--out", str(gan), "--resume", "--quiet"]) == 2
    assert "is a gan run" in capsys.readouterr().err
    assert main(["variations", str(run), str(tmp_path / "missing.png"), "--out", str(tmp_path)]) == 2
    assert "no such image" in capsys.readouterr().err


def test_vae_resume_is_bit_identical(tmp_path):
    from safetensors import safe_open

    from brushwork.runs import checkpoint as ckpt

    train_run(tiny_vae_config(steps=8, ckpt_every=4), tmp_path / "a", quiet=True)
    train_run(tiny_vae_config(steps=4, ckpt_every=4), tmp_path / "b", quiet=True)
    train_run(tiny_vae_config(steps=8, ckpt_every=4), tmp_path / "b", resume=True, quiet=True)
    read = lambda p: {k: f.get_tensor(k) for f in [safe_open(str(p), "pt")] for k in f.keys()}  # noqa: E731
    a, b = read(ckpt.checkpoint_path(tmp_path / "a", 8)), read(ckpt.checkpoint_path(tmp_path / "b", 8))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_perceptual_term_with_random_vgg_stand_in(tmp_path):
    cfg = tiny_vae_config(steps=4)
    cfg.model.perceptual_weight, cfg.model.vgg_weights = 10.0, "random"
    train_run(cfg, tmp_path / "run", quiet=True)
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["perceptual"] > 0
    assert row["loss"] > row["recon"]  # the feature term is part of the loss


def test_vgg_weights_errors_are_clear(tmp_path):
    from brushwork.errors import BrushworkError
    from brushwork.models.vgg import VGGFeatures, perceptual_loss

    with pytest.raises(BrushworkError, match="not found"):
        VGGFeatures(weights=str(tmp_path / "nope.pth"))
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(BrushworkError, match="cannot read VGG19 weights"):
        VGGFeatures(weights=str(tmp_path / "bad.pth"))
    torch.save({"x": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(BrushworkError, match="not a VGG19 state dict"):
        VGGFeatures(weights=str(tmp_path / "wrong.pth"))
    # a real (random-initialised) VGG19 file loads through the local-file path
    from torchvision.models import vgg19

    torch.save(vgg19(weights=None).state_dict(), tmp_path / "vgg19.pth")
    vgg = VGGFeatures(("relu1_1", "relu2_1"), weights=str(tmp_path / "vgg19.pth"))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert set(vgg(x)) == {"relu1_1", "relu2_1"} and vgg(x)["relu2_1"].shape == (1, 128, 16, 16)
    assert perceptual_loss(vgg, x, x).item() == 0


def test_imagenet_vgg_offline_message(monkeypatch, tmp_path, capsys):
    from brushwork.errors import BrushworkError
    from brushwork.models.vgg import VGGFeatures

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(BrushworkError, match="vgg19-dcbb9e9d.pth"):
        VGGFeatures(weights="imagenet")
    # each command names its own option for a local file, not the library's keyword
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    for argv, option in [(["train", "vae", "--set", "perceptual_weight=1", "--out", str(tmp_path / "r")],
                          "--set vgg_weights=PATH"),
                         (["originality", "--image", str(tmp_path / "x.png"), "--data", "builtin:abstract:8"],
                          "--features PATH")]:
        assert main([*argv, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"or pass a local file with {option}" in err, err
