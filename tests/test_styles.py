"""Style-conditional and creative GANs, style requests, and the style judge's measures."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli import main
from brushwork.config import gan_preset
from brushwork.data.builtin import paint
from brushwork.data.dataset import ImageBatcher, load_dataset
from brushwork.errors import BrushworkError
from brushwork.making.generate import load_model
from brushwork.losses import style_ambiguity_loss
from brushwork.models.gan import ConditionalGenerator, StyleDiscriminator, build_gan
from brushwork.provenance import read_record
from brushwork.styles import parse_style_mix, style_weights
from brushwork.training.gan import GANTask
from brushwork.training.run import train_run
from conftest import tiny_run_config

NAMES = ["baroque", "romanticism", "impressionism"]


def _styled(architecture="modern", res=32, **flags):
    cfg = gan_preset(architecture, res)
    cfg.g_width = cfg.d_width = 16 if architecture == "seed" else 8
    cfg.num_styles = 3
    for key, value in flags.items():
        setattr(cfg, key, value)
    return cfg


@pytest.mark.parametrize("preset", ["modern", "dcgan", "seed"])
@pytest.mark.parametrize("res", [32, 64])
def test_conditional_and_creative_shapes(preset, res):
    G, D = build_gan(_styled(preset, res, conditional=True))
    assert isinstance(G, ConditionalGenerator) and isinstance(D, StyleDiscriminator)
    z, style = torch.randn(4, 100), torch.eye(3)[[0, 1, 2, 0]]
    images = G(z, style)
    assert images.shape == (4, 3, res, res)
    logits, style_logits = D(images, style)
    assert logits.shape == (4,) and style_logits is None
    G, D = build_gan(_styled(preset, res, creative=True))
    assert not isinstance(G, ConditionalGenerator) and G(z).shape == (4, 3, res, res)
    logits, style_logits = D(G(z))
    assert logits.shape == (4,) and style_logits.shape == (4, 3)


def test_projection_term_is_the_inner_product_of_style_embedding_and_pooled_features():
    _, D = build_gan(_styled("dcgan", conditional=True))  # no spectral norm: plain weights
    x, style = torch.randn(2, 3, 32, 32), torch.tensor([[1.0, 0, 0], [0.2, 0.3, 0.5]])
    logits, _ = D(x, style)
    h = D.backbone.features(x)
    by_hand = D.backbone.head(h) + (style @ D.project.weight.T * h.sum(dim=(2, 3))).sum(1)
    assert torch.allclose(logits, by_hand, atol=1e-5)
    other, _ = D(x, torch.tensor([[0, 1.0, 0], [0, 1.0, 0]]))
    assert not torch.allclose(logits, other)  # the style changes the verdict


def test_style_ambiguity_loss_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = (0.25, 0.75)
    assert style_ambiguity_loss(logits).item() == pytest.approx(-(math.log(0.25) + math.log(0.75)) / 2)
    assert style_ambiguity_loss(torch.zeros(5, 4)).item() == pytest.approx(math.log(4))  # its minimum


def test_creativity_zero_leaves_exactly_the_gans_generator_loss_and_gradients():
    # Same seed: G and D's trunk start identical; no augmentation, so D sees the same pixels.
    plain = GANTask(_styled("modern", diffaugment=""), torch.device("cpu"), seed=3)
    creative = GANTask(_styled("modern", diffaugment="", creative=True, creativity=0.0), torch.device("cpu"), seed=3)
    weighted = GANTask(_styled("modern", diffaugment="", creative=True, creativity=1.0), torch.device("cpu"), seed=3)
    z = torch.randn(8, 100, generator=torch.Generator().manual_seed(0))
    losses, grads, style_logits = [], [], None
    for task in (plain, creative, weighted):
        fake = task.G(z)
        logits, style_logits = task._d(fake, None)
        loss = task.generator_loss(logits, style_logits)
        task.G.zero_grad()
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in task.G.parameters()]))
    assert losses[1] == losses[0] and torch.equal(grads[1], grads[0])
    # the weighted run's loss is the plain loss plus its ambiguity term (on its own forward: a
    # second forward would move spectral norm's power iteration and change the logits slightly)
    assert losses[2] == pytest.approx(losses[0] + style_ambiguity_loss(style_logits).item(), rel=1e-6)


def test_style_requests():
    assert torch.equal(style_weights("romanticism", NAMES), torch.tensor([0.0, 1, 0]))
    assert torch.allclose(style_weights("baroque:0.6,impressionism:0.2", NAMES), torch.tensor([0.75, 0, 0.25]))
    assert torch.allclose(style_weights([1, 1, 2], NAMES), torch.tensor([0.25, 0.25, 0.5]))
    assert style_weights(["baroque", {"romanticism": 1}], NAMES).shape == (2, 3)
    assert parse_style_mix("a:1, b:2") == {"a": 1.0, "b": 2.0}
    with pytest.raises(BrushworkError, match="bad style mix 'baroque=1': use name:weight pairs"):
        parse_style_mix("baroque=1")
    for bad, message in [("cubism", "unknown style 'cubism'; this run's styles are: baroque, "),
                         ("baroque:x", "bad style mix"),
                         ("baroque:0,romanticism:0", "add up to a positive number"),
                         ("baroque:-1,romanticism:2", ">= 0"), ([1, 2], "needs 3 entries")]:
        with pytest.raises(BrushworkError, match=message):
            style_weights(bad, NAMES)


def _art(folder, counts: dict[str, int]):
    for style, n in counts.items():
        (folder / style).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            paint(style, i, 32).save(folder / style / f"{i}.png")
    return folder


def test_balanced_styles_draw_each_style_equally_often(tmp_path):
    ds = load_dataset(str(_art(tmp_path, {"grid": 40, "circles": 4})), 32, progress=False)
    plain = ImageBatcher(ds, 64, 32, torch.device("cpu"), seed=1)
    balanced = ImageBatcher(ds, 64, 32, torch.device("cpu"), seed=1, balance_labels=True)
    share = lambda b: torch.cat([b.next()[1] for _ in range(20)]).float().mean().item()  # noqa: E731
    circles = ds.label_names.index("circles")
    assert abs(share(balanced) - 0.5) < 0.08
    assert abs(share(plain) - (circles and 4 / 44 or 40 / 44)) < 0.05


@pytest.mark.parametrize("counts, flags, message", [
    ({"grid": 4}, ["--conditional"], "--conditional needs at least two styles (subfolders of --data); found 1: grid"),
    ({"grid": 4, "circles": 0}, ["--conditional"], "style folder(s) without a readable image in"),
    ({"grid": 4, "circles": 4, "": 2}, ["--creative"], "2 image(s) lie directly in"),
    ({"grid": 4, "circles": 4}, ["--creative", "--conditional"], "cannot be combined"),
    ({"grid": 4, "circles": 4}, ["--creativity", "2"], "--creativity goes with --creative"),
])
def test_style_training_mistakes_are_one_line(tmp_path, capsys, counts, flags, message):
    data = tmp_path / "art"
    for style, n in counts.items():
        (data / style).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            paint("grid", i, 32).save(data / style / f"{style}{i}.png")
    code = main(["train", "gan", "--data", str(data), "--out", str(tmp_path / "r"), "--res", "32",
                 "--steps", "1", "--device", "cpu", "--quiet", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cond") / "run"
    cfg = tiny_run_config("modern", steps=4, data="builtin:abstract:8")
    cfg.model.conditional = True
    train_run(cfg, run, quiet=True)
    return run


def test_conditional_sampling_provenance_and_exact_regeneration(conditional_run, tmp_path, capsys):
    model = load_model(conditional_run, "cpu")
    assert model.style_names == ["grid", "circles", "stripes", "colour_fields", "drips"]
    z = torch.randn(2, model.z_dim)
    assert not torch.equal(model.generate(z, style="grid"), model.generate(z, style="drips"))
    with pytest.raises(BrushworkError, match="style-conditional: ask for a style"):
        model.generate(z)
    out = tmp_path / "o"
    assert main(["sample", str(conditional_run), "--seeds", "1-2", "--style-mix", "grid:0.6,drips:0.4",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert main(["sample", str(conditional_run), "--seeds", "7", "--out", str(out), "--device", "cpu"]) == 0
    mixed, default = read_record(out / "seed0002.png"), read_record(out / "seed0007.png")
    assert mixed["brushwork"]["style_mix"] == {"grid": 0.6, "drips": 0.4}
    assert "Style mix: grid 0.6 drips 0.4" in mixed["parameters"]
    assert default["brushwork"]["style"] == model.style_names[7 % 5]  # seed s: style s % K
    for name in ("seed0002.png", "seed0007.png"):
        again = tmp_path / f"again-{name}"
        assert main(["sample", "--from", str(out / name), "--run", str(conditional_run),
                     "--out", str(again), "--device", "cpu"]) == 0
        assert np.array_equal(np.asarray(Image.open(again / name)), np.asarray(Image.open(out / name)))
    walk = tmp_path / "walk.gif"
    assert main(["interpolate", str(conditional_run), "--seeds", "7", "--styles", "grid,drips,grid",
                 "--frames", "9", "--out", str(walk), "--device", "cpu"]) == 0
    gif = Image.open(walk)
    frames = [np.asarray(gif.convert("RGB")) for _ in range(1)]
    gif.seek(4)
    assert gif.n_frames == 9 and not np.array_equal(frames[0], np.asarray(gif.convert("RGB")))
    capsys.readouterr()
    for argv, message in [(["--style", "cubism"], "unknown style 'cubism'; this run's styles are: grid"),
                          (["--style-mix", "grid=1"], "bad style mix"),
                          (["--style-mix", "grid:0,drips:0"], "add up to a positive number"),
                          (["--style", "grid", "--style-mix", "grid:1"], "not both")]:
        assert main(["sample", str(conditional_run), "--seeds", "0", *argv, "--out", str(out),
                     "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_a_style_for_an_unconditional_run_is_refused(tmp_path, capsys):
    train_run(tiny_run_config("modern", steps=2), tmp_path / "plain", quiet=True)
    assert main(["sample", str(tmp_path / "plain"), "--seeds", "0", "--style", "grid",
                 "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "not style-conditional" in capsys.readouterr().err


def _quick(mode: str, run, steps: int, data: str = "builtin:abstract:60", **model):
    """The demo's recipe for ``steps`` steps, on the CPU."""
    from brushwork.demo import demo_config

    cfg = demo_config(torch.device("cpu"), steps, mode)
    cfg.train.data = data
    for key, value in model.items():
        setattr(cfg.model, key, value)
    train_run(cfg, run, quiet=True)
    return load_model(run, "cpu")


@pytest.mark.slow
def test_conditional_samples_are_judged_as_the_style_asked_for(tmp_path):
    from brushwork.evaluation import style_metrics

    model = _quick("conditional", tmp_path / "cond", 250)
    ds = load_dataset("builtin:abstract:60", 32, progress=False)
    row = style_metrics(model, ds, 100, torch.device("cpu"), features="random")
    assert row["judge_accuracy"] > 0.8
    assert row["style_accuracy"] > 0.5  # chance is 0.2
    assert {f"style_swd/{n}" for n in model.style_names} <= set(row)


@pytest.mark.slow
def test_creative_samples_are_more_ambiguous_than_creativity_zero(tmp_path):
    from brushwork.evaluation import style_metrics

    # Measured with this recipe at 500 steps: 0.42 (creativity 1) vs 0.24 (creativity 0).
    ds = load_dataset("builtin:abstract", 32, progress=False)
    ambiguity = {c: style_metrics(_quick("creative", tmp_path / f"c{c}", 500, "builtin:abstract",
                                         creativity=c), ds, 200, torch.device("cpu"),
                                  features="random")["ambiguity"]
                 for c in (0.0, 1.0)}
    assert ambiguity[1.0] > ambiguity[0.0] + 0.05, ambiguity


def test_conditioning_ramp_and_mode_seeking_by_hand():
    task = GANTask(_styled("modern", conditional=True, cond_rampup_kimg=1.0, mode_seeking=0.1),
                   torch.device("cpu"))
    assert [task._conditioning(s, 64) for s in (0, 8, 16, 100)] == [0.0, 0.512, 1.0, 1.0]
    z, a, b = torch.randn(2, 100), torch.eye(3)[[0, 0]], torch.eye(3)[[2, 2]]
    task.G.eval()
    assert torch.equal(task.G(z, a, 0.0), task.G(z, b, 0.0))  # strength 0: the style is not seen
    assert not torch.equal(task.G(z, a, 1.0), task.G(z, b, 1.0))
    assert torch.equal(GANTask._paired(torch.arange(5)[:, None]).flatten(), torch.tensor([0, 1, 0, 1, 4]))
    z = torch.tensor([[0.0, 0], [0, 0], [1, 1], [3, 3]])  # latent distances 1 and 3
    fake = torch.zeros(4, 3, 2, 2)
    fake[2] += 0.5  # image distances 0.5 and 0: ratios 0.5 and 0
    assert GANTask._mode_seeking(z, fake).item() == pytest.approx(1 / (0.25 + 1e-5))
    stats = task.train_step(torch.rand(8, 3, 32, 32) * 2 - 1, 0, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    assert {"mode_seeking", "conditioning"} <= set(stats) and stats["conditioning"].item() == 0.0
