"""Fidelity tools: the FastGAN preset, adaptive augmentation, fine-tuning from a run, and
projecting artworks into a GAN."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli import main
from brushwork.config import gan_preset
from brushwork.errors import BrushworkError
from brushwork.making.generate import load_model
from brushwork.latents import latents_for_seeds
from brushwork.models.fastgan import quadrant
from brushwork.models.gan import build_gan, count_parameters
from brushwork.provenance import read_record
from brushwork.training.gan import GANTask

TINY = ["--res", "32", "--batch-size", "8", "--set", "g_width=8", "--set", "d_width=8", "--device",
        "cpu", "--quiet", "--data", "builtin:abstract:8"]


@pytest.mark.parametrize("res", [32, 64, 128, 256, 512, 1024])
def test_fastgan_shapes_at_every_resolution(res):
    cfg = gan_preset("fastgan", res)
    cfg.g_width = cfg.d_width = 4 if res >= 512 else 8  # small enough for a CPU at 1024 px
    G, D = build_gan(cfg)
    z = torch.randn(2, cfg.z_dim)
    image, small = G(z, both=True)
    assert image.shape == (2, 3, res, res) and image.abs().max() <= 1
    assert (small is None) == (res <= 128) and (small is None or small.shape == (2, 3, 128, 128))
    logits, pairs = D((image, small), reconstruct=True)
    patches = 25 * (2 if res > 128 else 1)  # [B, 1, 5, 5] per branch
    assert logits.shape == (2, patches)
    t = min(res, 128)
    assert len(pairs) == 2 + (res > 128)  # whole image, a quadrant, and the 128 px branch
    assert all(a.shape == b.shape == (2, 3, t, t) for a, b in pairs)


def test_fastgan_parameter_counts_follow_the_paper_s_channel_plan():
    counts = {}
    for res in (128, 256, 512, 1024):
        G, D = build_gan(gan_preset("fastgan", res))
        counts[res] = (count_parameters(G), count_parameters(D))
    # channels depend on map size only, so each doubling adds only its small top blocks
    assert counts[128][0] < counts[256][0] < counts[512][0] < counts[1024][0]
    assert counts[1024][0] - counts[512][0] < 0.01 * counts[1024][0]
    assert 28e6 < counts[1024][0] < 31e6  # ~29M at 1024 px with the paper's widths (ngf = 64)
    assert counts[256][1] > counts[128][1]  # from 256 px D gains the 128 px branch and its decoder


def test_fastgan_trains_a_step_at_256_px_and_samples_deterministically(tmp_path):
    run = tmp_path / "fast"
    assert main(["train", "gan", "--preset", "fastgan", "--res", "256", "--data", "builtin:abstract:8",
                 "--out", str(run), "--batch-size", "2", "--steps", "1", "--set", "g_width=8", "--set",
                 "d_width=8", "--device", "cpu", "--quiet", "--log-every", "1"]) == 0
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["d_recon"] > 0 and np.isfinite(row["loss_d"])  # D's reconstruction loss ran
    model = load_model(run, "cpu")
    a, b = (model.generate(latents_for_seeds([3, 4], model.z_dim)) for _ in range(2))
    assert a.shape == (2, 3, 256, 256) and torch.equal(a, b)  # noise injection is fixed when sampling


def test_the_reconstructed_quadrant_is_chosen_on_the_device():
    maps = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    for q, (top, left) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        for layout in (torch.contiguous_format, torch.channels_last):
            part = quadrant(maps.contiguous(memory_format=layout), torch.tensor([q]))
            assert torch.equal(part, maps[:, :, top:top + 4, left:left + 4])


def test_fastgan_without_the_reconstruction_loss_has_no_decoders_and_trains():
    cfg = gan_preset("fastgan", 32)
    cfg.g_width = cfg.d_width = 8
    with_decoders = count_parameters(build_gan(cfg)[1])
    cfg.d_recon, cfg.mixed_precision = "off", "no"
    task = GANTask(cfg, torch.device("cpu"))
    assert count_parameters(task.D) < with_decoders
    assert not any("decode" in name for name, _ in task.D.named_parameters())  # nothing left untrained
    stats = task.train_step(torch.rand(4, 3, 32, 32) * 2 - 1, 0)
    assert "d_recon" not in stats and torch.isfinite(stats["loss_d"])


def _ada_task(real_sign: float) -> GANTask:
    cfg = gan_preset("modern", 32)
    cfg.g_width = cfg.d_width = 8
    cfg.ada, cfg.ada_kimg, cfg.mixed_precision = True, 1.0, "no"
    task = GANTask(cfg, torch.device("cpu"))

    class Oracle(torch.nn.Module):  # a D that calls every image real (+) or fake (-)
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.full((x.shape[0],), real_sign) + 0 * self.w

    task.D_step = task.D_fwd = Oracle()
    return task


def test_ada_p_rises_while_d_overfits_and_falls_otherwise():
    real = torch.rand(8, 3, 32, 32) * 2 - 1
    task = _ada_task(+1.0)
    seen = []
    for step in range(16):
        task.train_step(real, step)
        seen.append(float(task.ada.p))
    assert seen[-1] > 0 and all(b >= a for a, b in zip(seen, seen[1:]))  # rises every 4 steps
    assert seen[3] == pytest.approx(8 * 4 / 1000)  # batch x interval / (ada_kimg x 1000)
    task = _ada_task(-1.0)
    task.ada.p.fill_(0.05)
    for step in range(16):
        task.train_step(real, step)
    assert float(task.ada.p) == 0  # fell, and stopped at 0


def test_ada_p_is_logged_and_restored_exactly_on_resume(tmp_path):
    args = ["train", "gan", *TINY, "--augment", "ada", "--set", "ada_kimg=0.5", "--log-every", "4"]
    assert main([*args, "--out", str(tmp_path / "straight"), "--steps", "16"]) == 0
    assert main([*args, "--out", str(tmp_path / "resumed"), "--steps", "8", "--ckpt-every", "8"]) == 0
    assert main([*args, "--out", str(tmp_path / "resumed"), "--steps", "16", "--resume"]) == 0
    rows = [[json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("straight", "resumed")]
    assert [r["ada_p"] for r in rows[0]] == [r["ada_p"] for r in rows[1]]
    assert rows[0][-1]["ada_p"] > 0
    from safetensors.torch import load_file

    state = [load_file(tmp_path / n / "checkpoints" / "step-00000016.safetensors")["state/task/ada/p"]
             for n in ("straight", "resumed")]
    assert torch.equal(*state)


def test_init_from_refuses_a_mismatch_and_records_the_parent(tmp_path, capsys):
    parent, child = tmp_path / "parent", tmp_path / "child"
    assert main(["train", "gan", *TINY, "--out", str(parent), "--steps", "4"]) == 0
    bad = [a if a != "32" else "64" for a in TINY]
    assert main(["train", "gan", *bad, "--out", str(tmp_path / "bad"), "--steps", "2",
                 "--init-from", str(parent)]) == 2
    err = capsys.readouterr().err.strip()
    assert "makes 32x32 images, this run 64x64; fine-tuning keeps the size (--res 32)" in err
    assert len(err.splitlines()) == 1
    assert main(["train", "gan", *TINY, "--out", str(child), "--steps", "4", "--init-from", str(parent),
                 "--freeze-d", "1"]) == 0
    from safetensors.torch import load_file

    before = load_file(next((parent / "checkpoints").iterdir()))
    after = load_file(next((child / "checkpoints").iterdir()))
    first = "model/D/net.0.parametrizations.weight.original"
    assert torch.equal(before[first], after[first])  # frozen
    last = [k for k in after if k.startswith("model/D/") and k.endswith("weight.original")][-1]
    assert not torch.equal(before[last], after[last])  # trained
    assert main(["sample", str(child), "--seeds", "0", "--out", str(tmp_path / "s"), "--device", "cpu"]) == 0
    record = read_record(tmp_path / "s" / "seed0000.png")["brushwork"]
    assert record["parent_model_hash"] == load_model(parent, "cpu").model_hash
    assert record["parent_run"] == "parent"
    with pytest.raises(BrushworkError, match="freeze fewer"):
        from brushwork.training.finetune import freeze_first_layers

        freeze_first_layers(build_gan(gan_preset("modern", 32))[1], 99)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("proj") / "gan"
    assert main(["train", "gan", *TINY, "--out", str(run), "--steps", "30", "--set",
                 "mixed_precision=no"]) == 0
    return run


def test_projection_lowers_its_loss_and_recovers_a_generated_latent(gan_run):
    from brushwork.making.projection import project

    model = load_model(gan_run, "cpu")
    target = model.generate(latents_for_seeds([500], model.z_dim))[0]  # not among the start seeds
    result = project(model, target, steps=120, distance="pixel")
    h = result.history
    assert np.mean(h[:40]) > np.mean(h[40:80]) > np.mean(h[80:])  # lower on average, step by step
    random_latent = model.generate(latents_for_seeds([501], model.z_dim))[0]
    assert result.distance < 0.5 * (random_latent - target).square().mean().item()
    assert result.kind == "pixel"


def test_project_command_writes_its_files_and_regenerates(gan_run, tmp_path):
    assert main(["sample", str(gan_run), "--seeds", "700,9", "--out", str(tmp_path / "t"), "--device", "cpu"]) == 0
    target = tmp_path / "t" / "seed0700.png"
    out = tmp_path / "p"
    assert main(["project", str(gan_run), str(target), "--out", str(out), "--steps", "40",
                 "--device", "cpu"]) == 0  # no ImageNet weights here: the pixel distance, said so
    assert sorted(p.name for p in out.iterdir()) == ["latent.npy", "progress.gif", "projected.png", "target.png"]
    record = read_record(out / "projected.png")["brushwork"]
    assert record["distance_kind"] == "pixel" and len(record["latent"]["z"]) == 100
    assert np.load(out / "latent.npy").shape == (100,)
    assert main(["sample", "--from", str(out / "projected.png"), "--run", str(gan_run), "--out",
                 str(tmp_path / "again"), "--device", "cpu"]) == 0
    assert np.array_equal(np.asarray(Image.open(out / "projected.png")),
                          np.asarray(Image.open(tmp_path / "again" / "projected.png")))
    assert main(["variations", str(gan_run), str(target), "--n", "2", "--steps", "10", "--out",
                 str(tmp_path / "v"), "--device", "cpu"]) == 0
    child = read_record(tmp_path / "v" / "child0001.png")["brushwork"]["latent"]
    assert "z" in child["child"]  # a child of the projection
    assert main(["blend", str(gan_run), str(target), str(tmp_path / "t" / "seed0009.png"), "--frames", "3", "--steps",
                 "10", "--out", str(tmp_path / "b.gif"), "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "b.gif").n_frames == 3


def test_fastgan_defaults_to_the_paper_s_batch_unless_asked(tmp_path):
    common = ["train", "gan", "--preset", "fastgan", "--res", "32", "--data", "builtin:abstract:8", "--steps",
              "1", "--set", "g_width=4", "--set", "d_width=4", "--device", "cpu", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--batch-size", "4"]) == 0
    batch = [json.loads((tmp_path / r / "config.json").read_text())["train"]["batch_size"] for r in "ab"]
    assert batch == [8, 4]
