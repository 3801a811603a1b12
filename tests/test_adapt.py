"""Adapting a diffusion run to a collection (--from), LoRA adapters, and built-in models (builtin:base)."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from brushwork.cli import main
from brushwork.data.builtin import paint
from brushwork.metrics.collection_index import build_index, write_shipped_index
from brushwork.runs import builtin
from brushwork.runs.checkpoint import latest_checkpoint
from brushwork.training.adapt import MAX_IMAGES, MIN_IMAGES, fit_styles, plan
from brushwork.training.shipping import ship

TRAIN = ["--batch-size", "4", "--log-every", "2", "--device", "cpu", "--quiet"]
TINY = ["--set", "width=8", "--set", "channel_mult=1,2", "--set", "blocks=1", "--set", "sampling_steps=3",
        "--set", "mixed_precision=no"]


def _folder(path, n, style="circles", size=32):
    path.mkdir(parents=True)
    for i in range(n):
        paint(style, i, size).save(path / f"w{i:02d}.png")
    return path


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def _cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny conditional latent diffusion 'base' (two styles) on a tiny autoencoder, and collections."""
    root = tmp_path_factory.mktemp("adapt")
    mp = pytest.MonkeyPatch()
    mp.setenv("BRUSHWORK_CACHE", str(root / "cache"))
    styles = root / "styles"
    _folder(styles / "grid", 6, "grid")
    _folder(styles / "stripes", 6, "stripes")
    assert _cli("train", "autoencoder", "--data", styles, "--out", root / "ae", "--res", 32, "--steps", 2, *TRAIN,
                "--set", "width=8", "--set", "disc_width=8", "--set", "disc_start=1", "--set", "mixed_precision=no") == 0
    assert _cli("train", "diffusion", "--latent", root / "ae", "--conditional", "--data", styles, "--out",
                root / "base", "--steps", 2, *TRAIN, *TINY) == 0
    _folder(root / "mine", 6, "circles")  # loose works: one new style, "mine"
    yield root
    mp.undo()


def test_full_fine_tuning_starts_from_the_parent_and_adds_the_collection_as_a_style(base, capsys):
    out = base / "full"
    assert _cli("train", "diffusion", "--from", base / "base", "--data", base / "mine", "--out", out,
                "--steps", 1, "--set", "lr=1e-12", *TRAIN) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["labels"] == ["grid", "stripes", "mine"]
    assert cfg["model"]["num_styles"] == 3 and cfg["model"]["default_styles"] == ["mine"]
    assert cfg["model"]["autoencoder_hash"] and cfg["train"]["init_from_hash"]
    with safe_open(str(latest_checkpoint(base / "base")), "pt") as f:
        parent = {k: f.get_tensor(k) for k in f.keys() if k.startswith("model/denoiser_ema/")}
    with safe_open(str(latest_checkpoint(out)), "pt") as f:
        child = {k: f.get_tensor(k) for k in f.keys() if k.startswith("model/denoiser_ema/")}
    vectors = child["model/denoiser_ema/unet.style_vectors"]
    assert torch.allclose(vectors[:2], parent["model/denoiser_ema/unet.style_vectors"], atol=1e-6)
    assert torch.allclose(vectors[2], parent["model/denoiser_ema/unet.no_style"], atol=1e-6)  # the new style
    weight = "model/denoiser_ema/unet.conv_in.weight"
    assert torch.allclose(child[weight], parent[weight], atol=1e-6)
    assert _cli("sample", out, "--seeds", "0-1", "--out", base / "full-img", "--no-originality") == 0
    record = json.loads(Image.open(base / "full-img" / "seed0001.png").text["brushwork"])
    assert record["style"] == "mine" and record["parent_model_hash"] == cfg["train"]["init_from_hash"]


def test_lora_run_holds_only_adapters_and_remakes_images_bit_exact(base):
    out = base / "lora"
    assert _cli("train", "diffusion", "--from", base / "base", "--data", base / "mine", "--out", out,
                "--adapter", "lora", "--rank", 2, "--steps", 3, *TRAIN) == 0
    with safe_open(str(latest_checkpoint(out)), "pt") as f:
        names = [k for k in f.keys() if k.startswith("model/")]
    assert names and all(".lora_" in k or k.endswith(("style_vectors", "no_style")) for k in names)
    assert not any(k.startswith("model/autoencoder/") for k in names)  # it comes from the parent
    lora_b = [k for k in names if "lora_B" in k and k.startswith("model/denoiser/")]
    with safe_open(str(latest_checkpoint(out)), "pt") as f:
        assert any(f.get_tensor(k).abs().sum() > 0 for k in lora_b)  # the adapters learned something
    assert _cli("sample", out, "--seeds", "0-2", "--out", base / "lora-img", "--no-originality") == 0
    assert _cli("sample", "--from", base / "lora-img" / "seed0002.png", "--run", out, "--out", base / "again") == 0
    assert (_pixels(base / "again" / "seed0002.png") == _pixels(base / "lora-img" / "seed0002.png")).all()
    # resumed, the adapters carry on from their checkpoint
    assert _cli("train", "diffusion", "--out", out, "--resume", "--steps", 4, *TRAIN) == 0
    assert latest_checkpoint(out).name == "step-00000004.safetensors"


def test_an_adapter_refuses_a_parent_that_changed(base, capsys):
    parent = base / "parent-copy"
    shutil.copytree(base / "base", parent)
    assert _cli("train", "diffusion", "--from", parent, "--data", base / "mine", "--out", base / "on-copy",
                "--adapter", "lora", "--steps", 1, *TRAIN) == 0
    assert _cli("train", "diffusion", "--out", parent, "--resume", "--steps", 3, *TRAIN) == 0  # the parent moves on
    capsys.readouterr()
    assert _cli("sample", base / "on-copy", "--seeds", 0, "--out", base / "x", "--no-originality") == 2
    err = capsys.readouterr().err.strip()
    assert "now holds" in err and len(err.splitlines()) == 1
    assert not (base / "x").exists()


def test_bad_parents_and_settings_are_refused_in_one_line(base, tmp_path, capsys):
    gan = tmp_path / "gan"
    assert _cli("train", "gan", "--data", base / "mine", "--out", gan, "--res", 32, "--steps", 1, "--preset", "dcgan",
                "--set", "g_width=8", "--set", "d_width=8", *TRAIN) == 0
    cases = {
        "is a gan run; adapting starts from a diffusion run": ["--from", gan],
        "is an autoencoder run": ["--from", base / "ae"],
        "adapting keeps its size": ["--from", base / "base", "--res", 64],
        "--rank: must be >= 1": ["--from", base / "base", "--adapter", "lora", "--rank", 0],
        "adapting needs at least 4": ["--from", base / "base", "--data", _folder(tmp_path / "three", 3)],
        "--rank goes with --adapter lora": ["--from", base / "base", "--rank", 2],
    }
    for expected, args in cases.items():
        data = [] if "--data" in args else ["--data", base / "mine"]
        capsys.readouterr()
        assert _cli("train", "diffusion", *data, *args, "--out", tmp_path / "child", "--steps", 1, *TRAIN) == 2, expected
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "child").exists(), expected


def test_the_plan_scales_with_the_number_of_works():
    plans = {n: plan(n, 32, "lora") for n in (30, 100, 300, 1000)}
    images = {n: p.steps * 32 for n, p in plans.items()}
    assert MIN_IMAGES <= images[30] < images[100] < images[300] < images[1000] <= MAX_IMAGES
    assert images[30] / 30 > images[100] / 100 > images[300] / 300  # small collections seen more often
    assert [p.rank for p in plans.values()] == [4, 4, 8, 16]
    assert plan(100, 32, "").rank == 0 and plan(100, 32, "").lr < plans[100].lr


def test_new_styles_start_as_the_parents_unconditional_model():
    state = {"unet.style_vectors": torch.randn(2, 5), "unet.no_style": torch.randn(5), "w": torch.ones(1)}
    grown = fit_styles(state, 4)
    assert grown["unet.style_vectors"].shape == (4, 5)
    assert torch.equal(grown["unet.style_vectors"][3], state["unet.no_style"])
    assert fit_styles(state, 2) is state


# ---- built-in models -------------------------------------------------------------------------------
@pytest.fixture
def installed_base(base, tmp_path, monkeypatch):
    """The tiny base installed as builtin:base (a stand-in for the shipped weights), shipped as the
    real one is (float16, its autoencoder in its checkpoint), hash and all."""
    root = tmp_path / "builtin"
    ship(base / "base", root / "base", ("denoiser_ema", "autoencoder"))
    (root / "base" / "card.md").write_text("# base\nA stand-in.\n")
    monkeypatch.setenv("BRUSHWORK_BUILTIN_MODELS", str(root))
    (root / "hashes.json").write_text(json.dumps({"base": builtin._file_sha256(latest_checkpoint(root / "base"))}))
    works = build_index(str(base / "styles"), 32, cache_dir=str(tmp_path / "cache"), progress=False)
    write_shipped_index(works, root / "base" / builtin.INDEX_FOLDER, "builtin:base training works")
    return root


def test_builtin_base_samples_and_remakes_by_name(installed_base, tmp_path, capsys):
    assert _cli("models") == 0
    assert "builtin:base  [installed]" in capsys.readouterr().out
    assert _cli("sample", "builtin:base", "--seeds", "0-1", "--out", tmp_path / "img", "--no-originality") == 0
    record = json.loads(Image.open(tmp_path / "img" / "seed0001.png").text["brushwork"])
    assert record["model_name"] == "builtin:base"
    # remade from its record alone: the model is found by name, no --run needed
    assert _cli("sample", "--from", tmp_path / "img" / "seed0001.png", "--out", tmp_path / "again",
                "--runs", tmp_path / "nowhere") == 0
    assert (_pixels(tmp_path / "again" / "seed0001.png") == _pixels(tmp_path / "img" / "seed0001.png")).all()


def test_adapting_the_builtin_base(installed_base, base, tmp_path):
    out = tmp_path / "adapted"
    assert _cli("train", "diffusion", "--from", "builtin:base", "--data", base / "mine", "--out", out,
                "--adapter", "lora", "--steps", 1, *TRAIN) == 0
    assert json.loads((out / "config.json").read_text())["train"]["init_from"] == "builtin:base"
    assert _cli("sample", out, "--seeds", 0, "--out", tmp_path / "img", "--no-originality") == 0


def test_full_fine_tuning_of_the_float16_base_resumes(installed_base, base, tmp_path):
    """The base ships in float16; a fully fine-tuned child saves its copy of the autoencoder in
    float32. Resuming it is the same autoencoder (the benchmark's stretches once refused it)."""
    out = tmp_path / "full"
    with safe_open(str(latest_checkpoint(installed_base / "base")), framework="pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    assert _cli("train", "diffusion", "--from", "builtin:base", "--data", base / "mine", "--out", out,
                "--steps", 1, *TRAIN) == 0
    assert _cli("train", "diffusion", "--out", out, "--resume", "--steps", 2, *TRAIN) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["autoencoder_hash"] == json.loads(
        (installed_base / "base" / "config.json").read_text())["model"]["autoencoder_hash"]
    assert latest_checkpoint(out).name == "step-00000002.safetensors"


def test_a_damaged_or_missing_builtin_is_one_line(installed_base, tmp_path, capsys, monkeypatch):
    path = latest_checkpoint(installed_base / "base")
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert _cli("sample", "builtin:base", "--seeds", 0, "--out", tmp_path / "x") == 2
    assert "damaged or replaced" in capsys.readouterr().err
    monkeypatch.setenv("BRUSHWORK_BUILTIN_MODELS", str(tmp_path / "empty"))
    assert _cli("sample", "builtin:base", "--seeds", 0, "--out", tmp_path / "x") == 2
    err = capsys.readouterr().err.strip()
    assert "not installed" in err and len(err.splitlines()) == 1
    assert _cli("models") == 0 and "not installed" in capsys.readouterr().out


def test_the_pairwise_term_is_zero_when_distances_are_kept_and_grows_when_they_collapse():
    from brushwork.losses import pairwise_similarity_loss

    torch.manual_seed(0)
    source = torch.randn(6, 3, 8, 8)
    assert pairwise_similarity_loss(source * 2.0, source).item() < 1e-6  # cosines ignore scale
    collapsed = source.mean(0, keepdim=True) + 0.1 * source  # every image pulled towards one
    slightly = source + 0.1 * source.mean(0, keepdim=True)
    assert pairwise_similarity_loss(collapsed, source) > 10 * pairwise_similarity_loss(slightly, source) > 0


def test_the_pairwise_term_compares_with_the_frozen_parent():
    from brushwork.config import DiffusionConfig
    from brushwork.models.diffusion import Denoiser
    from brushwork.training.diffusion import DiffusionTask

    cfg = DiffusionConfig(resolution=32, width=8, channel_mult="1,2", blocks=1, mixed_precision="no", pairwise=1.0)
    parent = {k: v + 0.01 * torch.randn_like(v) for k, v in Denoiser(cfg).state_dict().items()}
    task = DiffusionTask(cfg, torch.device("cpu"), start=parent)
    real = torch.rand(6, 3, 32, 32) * 2 - 1
    assert task.train_step(real, 0)["pairwise"].item() < 1e-9  # the same weights: the same distances
    with torch.no_grad():
        task.net.unet.conv_out.weight.add_(0.5 * torch.randn_like(task.net.unet.conv_out.weight))
    assert task.train_step(real, 1)["pairwise"].item() > 0
    assert all(not p.requires_grad for p in task.source.parameters())
    without = DiffusionTask(DiffusionConfig(resolution=32, width=8, channel_mult="1,2", blocks=1,
                                            mixed_precision="no"), torch.device("cpu"), start=parent)
    assert without.source is None and "pairwise" not in without.train_step(real, 0)


def test_the_studio_lists_the_base_and_adapts_it(installed_base, base, tmp_path):
    from brushwork.ui.studio import Studio, StudioSettings

    data = tmp_path / "data"
    shutil.copytree(base / "mine", data / "mine")
    studio = Studio(StudioSettings(runs=tmp_path / "runs", outputs=tmp_path / "out", data=data, device="cpu"))
    assert studio.run_names()[0] == "builtin:base"
    assert studio.describe_run("builtin:base")["styles"] == ["grid", "stripes"]
    made = studio.generate("builtin:base", "0-1")
    assert len(made) == 2
    with pytest.raises(Exception, match="folder of your own works"):
        studio.adapt_base("adapted", "builtin:abstract")
    studio.adapt_base("adapted", "mine")
    studio.jobs.wait("adapted", timeout=600)
    status, line = studio.training_status("adapted")
    cfg = json.loads((tmp_path / "runs" / "adapted" / "config.json").read_text())
    assert cfg["model"]["adapter"] == "lora" and cfg["train"]["init_from"] == "builtin:base", line
    assert cfg["train"]["steps"] > 0  # chosen by the number of works


def test_copies_of_the_bases_training_works_are_found_in_adapted_models(installed_base, base, tmp_path):
    from brushwork.making.generate import load_model
    from brushwork.originality_report import run_judge

    out = tmp_path / "adapted"
    assert _cli("train", "diffusion", "--from", "builtin:base", "--data", base / "mine", "--out", out,
                "--adapter", "lora", "--steps", 1, *TRAIN) == 0
    assert _cli("index", base / "mine") == 0  # the artist's own collection, indexed
    judge = run_judge(load_model(out, "cpu"))
    planted = torch.from_numpy(_pixels(base / "styles" / "grid" / "w03.png").copy()).permute(2, 0, 1)
    own = torch.from_numpy(_pixels(base / "mine" / "w01.png").copy()).permute(2, 0, 1)
    mirrored = planted.flip(-1)
    verdicts = judge(torch.stack([planted, mirrored, own]))
    for verdict in verdicts[:2]:  # a work of the base's, as it is and mirrored
        assert verdict["verdict"] == "COPY" and verdict["collection"] == "builtin:base training works"
        assert verdict["nearest"]["edit"]["work"] == "grid/w03.png"
    assert verdicts[2]["verdict"] == "COPY" and verdicts[2]["collection"] != "builtin:base training works"
    assert {c["collection"] for c in verdicts[0]["checked"]} == {"builtin:base training works",
                                                                 judge.index.spec}
    base_judge = run_judge(load_model("builtin:base", "cpu"))  # the base itself: its own works
    assert base_judge(planted[None])[0]["verdict"] == "COPY"


# ---- the shipped base itself (skipped on a slim install without its files) -------------------------
def _shipped_base():
    import os

    if os.environ.get("BRUSHWORK_BUILTIN_MODELS") or not builtin.installed("base"):
        pytest.skip("builtin:base is not installed in this checkout (a slim install)")
    return builtin.models_root() / "base"


def test_the_shipped_base_matches_its_hash_and_budget():
    folder = _shipped_base()
    assert builtin._file_sha256(latest_checkpoint(folder)) == builtin.BUILTIN_MODELS["base"].checkpoint_sha256
    assert builtin.resolve_run("builtin:base") == folder
    shipped = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and builtin.INDEX_FOLDER not in p.parts)
    assert shipped <= 64 * 2 ** 20, f"{shipped / 2**20:.1f} MiB shipped for the base"
    assert (folder / "card.md").read_text().startswith("# Model card")


def test_sampling_the_shipped_base_in_a_fresh_environment(tmp_path):
    import os
    import subprocess
    import sys

    _shipped_base()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRUSHWORK")}
    env |= {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "brushwork", "sample", "builtin:base", "--seeds", "0-1", "--steps",
                           "4", "--style", "romanticism", "--out", str(tmp_path / "img")], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    image = Image.open(tmp_path / "img" / "seed0001.png")
    assert image.size == (128, 128)
    record = json.loads(image.text["brushwork"])
    assert record["model_name"] == "builtin:base" and record["style"] == "romanticism"
    if (_shipped_base() / builtin.INDEX_FOLDER).is_dir():  # built here from shared/data (never shipped)
        assert record["originality"]["checked"][0]["collection"] == "builtin:base training works"
    else:
        assert "originality" not in record and "their index is not installed" in done.stderr
