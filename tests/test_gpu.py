"""GPU checks: skipped without CUDA; run by benchmarks/gpu.sh on a lent GPU machine."""

import pytest
import torch

from brushwork.data.dataset import ImageBatcher, load_dataset
from brushwork.making.generate import load_model
from brushwork.latents import latents_for_seeds
from brushwork.runs import checkpoint as ckpt
from brushwork.training.gan import GANTask
from brushwork.training.run import train_run
from conftest import tiny_run_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_modern_step_runs_in_bf16_with_data_on_the_gpu():
    cfg = tiny_run_config("modern").model
    task = GANTask(cfg, torch.device("cuda"))
    assert task.bf16 == torch.cuda.is_bf16_supported()
    batcher = ImageBatcher(load_dataset("builtin:abstract:8", 32), 8, 32, torch.device("cuda"),
                           channels_last=True)
    assert batcher.images.is_cuda  # the whole uint8 dataset lives on the device
    for step in range(3):
        real, _ = batcher.next()
        stats = task.train_step(real, step)
    assert all(torch.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("preset", ["modern", "dcgan"])
def test_gpu_resume_matches_straight_run(tmp_path, preset):
    straight = tiny_run_config(preset, steps=8, ckpt_every=4, device="cuda")
    train_run(straight, tmp_path / "a", quiet=True)
    train_run(tiny_run_config(preset, steps=4, ckpt_every=4, device="cuda"), tmp_path / "b", quiet=True)
    train_run(tiny_run_config(preset, steps=8, ckpt_every=4, device="cuda"), tmp_path / "b",
              resume=True, quiet=True)
    a, _ = ckpt.read_checkpoint(ckpt.checkpoint_path(tmp_path / "a", 8), ("model/G/",))
    b, _ = ckpt.read_checkpoint(ckpt.checkpoint_path(tmp_path / "b", 8), ("model/G/",))
    # cuDNN may pick different (non-deterministic) kernels per process: equal to a tolerance.
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-3, rtol=1e-2), key


def test_seed_gives_the_same_image_on_gpu_and_cpu(tmp_path):
    train_run(tiny_run_config("dcgan", steps=4, device="cuda"), tmp_path / "r", quiet=True)
    gpu, cpu = load_model(tmp_path / "r", "cuda"), load_model(tmp_path / "r", "cpu")
    z = latents_for_seeds([3, 4], gpu.config.model.z_dim)
    assert (gpu.generate(z) - cpu.generate(z)).abs().max() < 0.02  # TF32/cuDNN rounding only


def test_vae_trains_on_the_gpu(tmp_path):
    from brushwork.config import RunConfig, TrainConfig, VAEConfig

    cfg = RunConfig(kind="vae", model=VAEConfig(resolution=32, latent_dim=8, width=8),
                    train=TrainConfig(data="builtin:abstract:8", batch_size=8, steps=4, log_every=2,
                                      sample_every=4, ckpt_every=4, device="cuda"))
    train_run(cfg, tmp_path / "v", quiet=True)
    model = load_model(tmp_path / "v", "cuda")
    mu, _ = model.encode(torch.zeros(2, 3, 32, 32))
    assert mu.shape == (2, 8) and torch.isfinite(model.decode(mu)).all()


def _train_steps(cfg, steps: int, seed: int = 0):
    """A task trained ``steps`` steps on the same batches, with its per-step losses."""
    torch.manual_seed(seed)
    task = GANTask(cfg, torch.device("cuda"), seed=seed)
    batcher = ImageBatcher(load_dataset("builtin:abstract:16", 32), 16, 32, torch.device("cuda"),
                           seed=seed, channels_last=cfg.channels_last)
    losses = []
    for step in range(steps):
        real, labels = batcher.next()
        stats = task.train_step(real, step, labels)
        losses.append((float(stats["loss_d"]), float(stats["loss_g"])))
    return task, losses


@pytest.mark.parametrize("preset", ["modern", "dcgan", "fastgan"])
def test_cuda_graph_step_matches_the_eager_step(preset):
    """20 steps cover the eager warm-up, the plain graph and (modern) the R1 graph at step 16."""
    eager_cfg = tiny_run_config(preset).model
    graph_cfg = tiny_run_config(preset).model
    graph_cfg.cuda_graph = True
    eager, eager_losses = _train_steps(eager_cfg, 20)
    graphed, graph_losses = _train_steps(graph_cfg, 20)
    assert graphed.graphs is not None and False in graphed.graphs.graphs
    if eager_cfg.r1_gamma > 0:
        assert True in graphed.graphs.graphs
    # Same latents and augmentations (the graphs draw from the same CUDA generator offsets), so
    # the two runs differ by bf16 rounding and kernel choice only.
    for (d0, g0), (d1, g1) in zip(eager_losses, graph_losses):
        assert abs(d0 - d1) < 0.05 * max(1.0, abs(d0)) and abs(g0 - g1) < 0.05 * max(1.0, abs(g0))
    for name, module in eager.modules().items():
        for (key, a), b in zip(module.state_dict().items(), graphed.modules()[name].state_dict().values()):
            if a.is_floating_point():
                assert torch.allclose(a.float(), b.float(), atol=2e-2, rtol=5e-2), (name, key)


def test_cuda_graph_run_resumes_and_keeps_training(tmp_path):
    cfg = tiny_run_config("modern", steps=24, ckpt_every=12, device="cuda")
    cfg.model.cuda_graph = True
    trainer = train_run(cfg, tmp_path / "r", quiet=True)
    assert trainer.task.graphs.graphs  # captured and replayed
    before = ckpt.read_checkpoint(ckpt.checkpoint_path(tmp_path / "r", 24), ("model/G/",))[0]
    cfg.train.steps = 36
    trainer = train_run(cfg, tmp_path / "r", resume=True, quiet=True)
    after = ckpt.read_checkpoint(ckpt.checkpoint_path(tmp_path / "r", 36), ("model/G/",))[0]
    assert any(not torch.equal(before[k], after[k]) for k in before)  # replays after a resume train
    assert all(torch.isfinite(v).all() for v in after.values())
