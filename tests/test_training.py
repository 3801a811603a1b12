import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors import safe_open

from brushwork.errors import TrainingDiverged
from brushwork.runs import checkpoint as ckpt
from brushwork.training.gan import GANTask
from brushwork.training.run import train_run
from conftest import tiny_run_config


def _all_tensors(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


@pytest.mark.parametrize("preset", ["modern", "dcgan", "seed"])
def test_training_writes_run_directory(tmp_path, preset):
    trainer = train_run(tiny_run_config(preset, steps=6), tmp_path / "run", quiet=True)
    run = tmp_path / "run"
    assert trainer.step == 6
    assert json.loads((run / "config.json").read_text())["model"]["preset"] == preset
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    for row in rows:
        assert {"step", "loss_d", "loss_g", "img_per_s"} <= set(row)
        assert all(torch.isfinite(torch.tensor(row[k])) for k in ("loss_d", "loss_g"))
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-00000003.png", "step-00000006.png"]
    assert [s for s, _ in ckpt.list_checkpoints(run)] == [3, 6]
    keys = _all_tensors(ckpt.latest_checkpoint(run)).keys()
    assert any(k.startswith("model/G/") for k in keys) and any(k.startswith("optim/D/") for k in keys)
    assert any(k.startswith("model/G_ema/") for k in keys) == (preset == "modern")
    assert list((run / "tb").iterdir())  # TensorBoard event file


@pytest.mark.parametrize("preset", ["modern", "dcgan"])
def test_resume_is_bit_identical_to_training_straight_through(tmp_path, preset):
    """8 steps in one go == 4 steps, a fresh process state, resume, 4 more steps."""
    straight = train_run(tiny_run_config(preset, steps=8, ckpt_every=4), tmp_path / "a", quiet=True)
    train_run(tiny_run_config(preset, steps=4, ckpt_every=4), tmp_path / "b", quiet=True)
    torch.manual_seed(12345)  # scramble global RNG: resume must restore it from the checkpoint
    resumed = train_run(tiny_run_config(preset, steps=8, ckpt_every=4), tmp_path / "b",
                        resume=True, quiet=True)
    assert straight.step == resumed.step == 8
    a = _all_tensors(ckpt.checkpoint_path(tmp_path / "a", 8))
    b = _all_tensors(ckpt.checkpoint_path(tmp_path / "b", 8))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows_a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    rows_b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    strip = lambda rows: [{k: v for k, v in json.loads(r).items() if k != "img_per_s"} for r in rows]  # noqa: E731
    assert strip(rows_a) == strip(rows_b)


def test_checkpoint_round_trip_restores_models_and_optimisers(tmp_path):
    cfg = tiny_run_config("modern")
    task = GANTask(cfg.model, torch.device("cpu"))
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    task.train_step(real, 0)
    path = tmp_path / "c.safetensors"
    ckpt.save_checkpoint(path, 1, task.modules(), task.optimizers(), {"x": torch.arange(3)}, {"a": 1})
    other = GANTask(cfg.model, torch.device("cpu"), seed=99)
    step, state, info = ckpt.load_checkpoint(path, other.modules(), other.optimizers())
    assert step == 1 and info == {"a": 1} and torch.equal(state["x"], torch.arange(3))
    for name, module in task.modules().items():
        for (k, v), (k2, v2) in zip(module.state_dict().items(), other.modules()[name].state_dict().items()):
            assert k == k2 and torch.equal(v, v2)
    s1, s2 = task.opt_d.state_dict(), other.opt_d.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid in s1["state"]:
        for key in s1["state"][pid]:
            assert torch.equal(torch.as_tensor(s1["state"][pid][key]), torch.as_tensor(s2["state"][pid][key]))


def test_temporary_and_foreign_files_are_never_taken_for_checkpoints(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".step-00000009.safetensors.abc.tmp").write_bytes(b"half written")
    (folder / "notes.txt").write_text("x")
    assert ckpt.latest_checkpoint(tmp_path) is None


def test_nan_loss_stops_training_without_a_bad_checkpoint(tmp_path, monkeypatch):
    original = GANTask.train_step

    def poisoned(self, real, step, labels=None):
        stats = original(self, real, step, labels)
        if step >= 4:
            stats["loss_d"] = torch.tensor(float("nan"))
        return stats

    monkeypatch.setattr(GANTask, "train_step", poisoned)
    with pytest.raises(TrainingDiverged, match="loss_d became nan"):
        train_run(tiny_run_config("modern", steps=10, log_every=2, ckpt_every=2), tmp_path / "r",
                  quiet=True)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "r")][-1] == 4


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "brushwork", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


TINY_FLAGS = ["--data", "builtin:abstract:8", "--res", "32", "--batch-size", "8", "--device", "cpu",
              "--set", "g_width=8", "--set", "d_width=8", "--quiet"]


def _wait_for_checkpoint(run, proc, timeout=600):
    deadline = time.time() + timeout
    while not ckpt.list_checkpoints(run):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_then_resume_finishes_the_run(tmp_path):
    """Also: while one process trains in a run, a second one (fresh or --resume) is refused at
    once, naming the holder; the lock dies with its holder, so the killed run resumes."""
    run = tmp_path / "run"
    proc = _cli("train", "gan", "--out", str(run), "--steps", "100000", "--ckpt-every", "5",
                "--log-every", "1", *TINY_FLAGS)
    _wait_for_checkpoint(run, proc)
    rows_before = (run / "metrics.jsonl").read_text()
    for extra in ([], ["--resume"]):
        second = _cli("train", "gan", "--out", str(run), "--steps", "100000", *extra, *TINY_FLAGS)
        _, err = second.communicate(timeout=600)
        assert second.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert f"{run} is in use: process {proc.pid} on" in err
    assert proc.poll() is None  # the first run goes on untouched
    assert (run / "metrics.jsonl").read_text().startswith(rows_before)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = ckpt.list_checkpoints(run)[-1][0]
    (run / "checkpoints" / ".step-99999999.safetensors.x.tmp").write_bytes(b"half")  # as if killed mid-write
    done = _cli("train", "gan", "--out", str(run), "--steps", str(killed_at + 6), "--resume",
                *TINY_FLAGS)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    assert ckpt.list_checkpoints(run)[-1][0] == killed_at + 6
    assert not list((run / "checkpoints").glob(".*.tmp"))  # leftovers of the killed run are gone


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    proc = _cli("train", "gan", "--out", str(run), "--steps", "100000", "--ckpt-every", "100000",
                "--sample-every", "3", *TINY_FLAGS[:-1])
    deadline = time.time() + 600
    while not (run / "samples").exists() or not list((run / "samples").iterdir()):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "interrupted: saved checkpoint" in err and "Traceback" not in err
    step = ckpt.list_checkpoints(run)[-1][0]
    assert 3 <= step < 100000


def test_a_second_ctrl_c_while_the_last_grid_is_drawn_loses_nothing(tmp_path, monkeypatch):
    """Stopping early saves the checkpoint first, then draws the grid of the final weights (a
    minute for large diffusion models on a CPU), where an impatient second Ctrl-C lands."""
    def second_ctrl_c(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(GANTask, "preview", second_ctrl_c)
    cfg = tiny_run_config("modern", steps=1000)
    cfg.train.sample_every = cfg.train.ckpt_every = 10**6
    with pytest.raises(KeyboardInterrupt):  # stopped by its time limit after the first step
        train_run(cfg, tmp_path / "r", quiet=True, time_limit=1e-9)
    assert ckpt.list_checkpoints(tmp_path / "r")[-1][0] >= 1


def test_cuda_graph_request_on_the_cpu_says_why_and_trains_eagerly(tmp_path, capsys):
    cfg = tiny_run_config("modern", steps=4)
    cfg.model.cuda_graph = True
    trainer = train_run(cfg, tmp_path / "r")
    assert trainer.task.graphs is None and trainer.step == 4
    assert "CUDA graphs off: CUDA graphs need a CUDA device" in capsys.readouterr().err


def test_resume_keeps_this_optimizers_implementation_flags(tmp_path):
    """A checkpoint's optimiser state, not how it ran: capturable/fused/foreach stay as built."""
    train_run(tiny_run_config("modern", steps=3), tmp_path / "r", quiet=True)
    task = GANTask(tiny_run_config("modern").model, torch.device("cpu"))
    for group in task.opt_g.param_groups:
        group["foreach"], group["fused"] = True, None  # as a machine without the fused kernel builds it
    ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "r"), task.modules(), task.optimizers())
    assert all(g["foreach"] is True and g["fused"] is None for g in task.opt_g.param_groups)
    assert task.opt_g.state  # the moments themselves were restored


def test_growing_upsampling_opens_with_images_seen_and_samples_follow():
    from brushwork.models.gan import GrowingUpsample

    cfg = tiny_run_config("modern").model
    cfg.g_grow_start_kimg, cfg.g_grow_kimg = 0.016, 0.032  # closed for 16 images, open by 48
    task = GANTask(cfg, torch.device("cpu"))
    real = torch.rand(8, 3, 32, 32) * 2 - 1
    gates = []
    for step in range(7):  # the gate of step s follows the s x 8 images seen before it
        task.train_step(real, step)
        gates.append([float(m.gate) for m in task.G.modules() if isinstance(m, GrowingUpsample)])
    assert [g[0] for g in gates] == pytest.approx([0, 0, 0, 0.25, 0.5, 0.75, 1.0])
    ema_gates = [float(m.gate) for m in task.sampler.modules() if isinstance(m, GrowingUpsample)]
    assert ema_gates == gates[-1]  # the sampling generator paints with the same kernels


def test_resuming_with_other_model_settings_is_one_line_and_keeps_the_run(tmp_path):
    from brushwork.errors import BrushworkError

    train_run(tiny_run_config("modern", steps=3), tmp_path / "r", quiet=True)
    saved = (tmp_path / "r" / "config.json").read_text()
    other = tiny_run_config("modern", steps=6)
    other.model.g_upsample = "transpose"  # e.g. the preset changed between versions
    with pytest.raises(BrushworkError, match=r"other model settings \(g_upsample: 'grow' -> 'transpose'\)"):
        train_run(other, tmp_path / "r", resume=True, quiet=True)
    assert (tmp_path / "r" / "config.json").read_text() == saved  # not rewritten
    train_run(tiny_run_config("modern", steps=6), tmp_path / "r", resume=True, quiet=True)  # its own: fine
