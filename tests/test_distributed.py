"""Training under torchrun on the CPU (gloo): N processes x batch B follow one process x batch
N*B, checkpoints resume under any world size, and faults end the job readably."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file

from brushwork.data.dataset import ImageBatcher, load_dataset
from brushwork.training.distributed import CrossProcessBatchNorm, World, sync_batchnorm

pytestmark = pytest.mark.slow
TINY = ["--data", "builtin:abstract:8", "--res", "32", "--set", "g_width=8", "--set", "d_width=8",
        "--set", "mixed_precision=no", "--device", "cpu", "--log-every", "2", "--quiet", "--no-flip"]
# fp32 on the CPU; the differences are float summation order (gradient all-reduce, BatchNorm
# statistics over two halves), measured at ~2e-7 after 4 steps and ~1e-6 after 8 with EMA.
TOLERANCE = 1e-5


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _python(procs: int = 1) -> list[str]:
    """The start of a command line: Python itself, or torchrun with ``procs`` local processes."""
    if procs == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)]


def _train(out: Path, *args: str, procs: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    launcher = [*_python(procs), "-m", "brushwork"]
    done = subprocess.run([*launcher, "train", "gan", "--out", str(out), *TINY, *args], env=_env(),
                          capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    tensors = load_file(run / "checkpoints" / f"step-{step:08d}.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith("model/") and v.is_floating_point()}


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    worst, key = max(((a[k] - b[k]).abs().max().item(), k) for k in a)
    assert worst < TOLERANCE, f"largest difference {worst} in {key}"


def _assert_close_overall(a: dict, b: dict) -> None:
    """For the diffusion U-Net, whose residual branches start at zero: their bias gradients are sums
    that nearly cancel, so summation order changes a few of them by a large share, and Adam turns
    each into an lr-sized step (measured: 26 of 99,622 elements off by up to 3.3e-5, the whole
    3.4e-6 of the weights' norm). Wrong draws move 90% of the elements, 8e-3 of the norm."""
    assert a.keys() == b.keys()
    difference = torch.cat([(a[k] - b[k]).flatten() for k in a])
    relative = (difference.norm() / torch.cat([a[k].flatten() for k in a]).norm()).item()
    moved = (difference.abs() > TOLERANCE).float().mean().item()
    assert relative < 1e-4 and moved < 0.01, f"weights differ by {relative:.2e} of their norm, {moved:.2%} moved"


def test_batches_are_rows_of_the_global_batch():
    ds = load_dataset("builtin:abstract:8", 32)
    whole = ImageBatcher(ds, 8, 32, torch.device("cpu"), seed=3)
    halves = [ImageBatcher(ds, 4, 32, torch.device("cpu"), seed=3, world=World(r, 2)) for r in (0, 1)]
    for _ in range(3):
        images, labels = whole.next()
        parts = [h.next() for h in halves]
        assert torch.equal(images, torch.cat([p[0] for p in parts]))
        assert torch.equal(labels, torch.cat([p[1] for p in parts]))
    assert halves[0].state_dict()["position"] == whole.state_dict()["position"]  # resumable anywhere


def test_batchnorm_conversion_keeps_the_checkpoint_format():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    keys = set(net.state_dict())
    converted = sync_batchnorm(net, World(0, 2), torch.device("cpu"))
    assert [type(m) for m in converted.modules()].count(CrossProcessBatchNorm) == 2
    assert set(converted.state_dict()) == keys
    plain = nn.Sequential(nn.BatchNorm2d(4))
    assert type(sync_batchnorm(plain, World(0, 2), torch.device("cpu"), enabled=False)[0]) is nn.BatchNorm2d
    x = torch.randn(6, 4, 5, 5)  # without a process group it is plain BatchNorm
    reference = nn.BatchNorm2d(4)
    assert torch.allclose(CrossProcessBatchNorm(4)(x), reference(x))


def test_two_processes_match_one_process_with_the_global_batch(tmp_path):
    # dcgan: BatchNorm in G and D, so this also checks BatchNorm over the global batch
    _train(tmp_path / "one", "--preset", "dcgan", "--batch-size", "16", "--steps", "4")
    two = _train(tmp_path / "two", "--preset", "dcgan", "--batch-size", "8", "--steps", "4", procs=2)
    _assert_same(_weights(tmp_path / "one", 4), _weights(tmp_path / "two", 4))
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["step-00000004.safetensors"]
    rows = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and '"images_seen": 64' in rows[-1]  # one writer; 4 steps x 16
    assert "brushwork: error" not in two.stderr


GLOO_TEARDOWN_ABORT = "terminate called without an active exception"  # retried once: not a result


@pytest.mark.parametrize("preset, overrides", [("fastgan", []), ("modern", ["creative=True", "num_styles=3"])],
                         ids=["fastgan", "modern-creative"])
def test_two_processes_average_the_gradients_of_one_process(tmp_path, preset, overrides):
    """Every update of one step (D, R1, G) sees the gradients of the global batch: FastGAN's
    decoders and noise injection, R1's second derivative through BatchNorm statistics of both
    processes, and the parameters R1 does not reach (last bias, CAN's style head)."""
    helper = Path(__file__).with_name("ddp_gradients.py")
    env = {**_env(), "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    for procs, out in ((1, "one"), (2, "two")):
        for attempt in range(2):  # gloo's teardown has aborted a finished process twice in full CI runs
            done = subprocess.run([*_python(procs), str(helper), preset, str(tmp_path / f"{out}.safetensors"),
                                   *overrides],
                                  env=env, capture_output=True, text=True, timeout=300)
            if done.returncode == 0 or GLOO_TEARDOWN_ABORT not in done.stderr:
                break
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = load_file(tmp_path / "one.safetensors"), load_file(tmp_path / "two.safetensors")
    assert one.keys() == two.keys()
    assert {k.split("/")[0] for k in one} == {"D0", "D1", "G0"}  # D step, R1 step, G step
    for key in one:  # float64: summation order alone leaves ~1e-6
        assert (one[key] - two[key]).norm() <= 1e-5 * one[key].norm() + 1e-12, key


def test_resume_across_world_sizes(tmp_path):
    """A checkpoint continues the same way under any world size: one process's step-4 checkpoint
    resumed by two processes follows the straight one-process run, and two processes' resumed by
    one process follows the same checkpoint resumed by two.

    The modern preset (EMA, SN) with transposed convs, not its growing resize convs: with those,
    451 of the 51,200 weights of G's first layer differ by more than 1e-5 after 4 steps. Adam with
    beta1 = 0 divides each gradient by its own running size, which amplifies the 1e-7
    summation-order noise where gradients are small, most of all in the first steps, when an
    update is lr x sign(gradient): on an AMX CPU, two processes' first 4 steps left 70% of the
    weights up to 8e-4 apart from one process's (a chaotic GAN turns sign flips into different
    gradients). So the two world sizes are compared from a shared checkpoint, where measured
    differences stay below 1e-6; two processes against one over the first steps is checked with
    dcgan (beta1 = 0.5) above, and R1 by the float64 gradient test.
    """
    import shutil

    modern = ["--preset", "modern", "--set", "diffaugment=", "--set", "g_upsample=transpose-as-resize",
              "--ckpt-every", "4"]
    _train(tmp_path / "straight", *modern, "--batch-size", "16", "--steps", "8")
    (tmp_path / "one_then_two" / "checkpoints").mkdir(parents=True)
    for name in ("config.json", "checkpoints/step-00000004.safetensors"):
        shutil.copy(tmp_path / "straight" / name, tmp_path / "one_then_two" / name)
    _train(tmp_path / "one_then_two", *modern, "--batch-size", "8", "--steps", "8", "--resume", procs=2)
    _assert_same(_weights(tmp_path / "straight", 8), _weights(tmp_path / "one_then_two", 8))

    _train(tmp_path / "two", *modern, "--batch-size", "8", "--steps", "4", procs=2)
    shutil.copytree(tmp_path / "two", tmp_path / "two_then_one")
    _train(tmp_path / "two", *modern, "--batch-size", "8", "--steps", "8", "--resume", procs=2)
    _train(tmp_path / "two_then_one", *modern, "--batch-size", "16", "--steps", "8", "--resume")
    _assert_same(_weights(tmp_path / "two", 8), _weights(tmp_path / "two_then_one", 8))


def _running_job(out: Path) -> subprocess.Popen:
    job = subprocess.Popen([*_python(2), "-m", "brushwork", "train", "gan", "--out", str(out),
                            *TINY, "--batch-size", "8", "--steps", "1000000", "--ckpt-every", "20"],
                           env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    deadline = time.time() + 600  # generous: a busy machine is slow, not broken
    while not list((out / "checkpoints").glob("*.safetensors")) if (out / "checkpoints").is_dir() else True:
        assert job.poll() is None and time.time() < deadline, "the job did not start"
        time.sleep(0.2)
    return job


def _workers(launcher: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(launcher)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def test_a_killed_rank_ends_the_job_with_a_clear_line_and_the_run_resumes(tmp_path):
    job = _running_job(tmp_path / "run")
    workers = _workers(job.pid)
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGKILL)
    started = time.time()
    output, _ = job.communicate(timeout=600)
    # no hang: the lost peer is noticed well before the collective timeout (120 s) runs out
    assert job.returncode != 0 and time.time() - started < 100
    lines = [line for line in output.splitlines() if line.startswith("brushwork: error:")]
    assert len(lines) == 1 and "lost contact with another training process" in lines[0]
    assert "--resume" in lines[0]
    kept = max(int(p.stem.split("-")[1]) for p in (tmp_path / "run" / "checkpoints").glob("*.safetensors"))
    resumed = _train(tmp_path / "run", "--batch-size", "16", "--steps", str(kept + 2), "--resume")
    assert resumed.returncode == 0


def test_ctrl_c_on_the_launcher_saves_once_and_exits(tmp_path):
    job = _running_job(tmp_path / "run")
    os.kill(job.pid, signal.SIGINT)  # it is training: a checkpoint was written
    output, _ = job.communicate(timeout=600)
    saved = [line for line in output.splitlines() if line.startswith("interrupted: saved checkpoint")]
    assert len(saved) == 1  # rank 0 alone
    step = int(saved[0].split("step ")[1].split(";")[0])
    assert (tmp_path / "run" / "checkpoints" / f"step-{step:08d}.safetensors").is_file()


def test_vae_two_processes_match_one_process(tmp_path):
    """Each process keeps its rows of the global batch's posterior noise (the same noise on every
    rank would have left 8e-3 between these weights)."""
    vae = ["-m", "brushwork", "train", "vae", "--data", "builtin:abstract:16", "--res", "32", "--steps", "4",
           "--set", "width=8", "--set", "mixed_precision=no", "--log-every", "2", "--device", "cpu",
           "--quiet", "--no-flip"]
    for out, procs, batch in (("one", 1, "8"), ("two", 2, "4")):
        done = subprocess.run([*_python(procs), *vae, "--batch-size", batch, "--out", str(tmp_path / out)],
                              env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    _assert_same(_weights(tmp_path / "one", 4), _weights(tmp_path / "two", 4))


@pytest.mark.parametrize("styles", [[], ["--conditional"]], ids=["plain", "conditional"])
def test_diffusion_two_processes_match_one_process(tmp_path, styles):
    """Noise levels, noise and dropped styles are rows of the global batch's draws: 2 x 4 follows
    1 x 8 (the same draws on every rank leave the weights 8e-3 of their norm apart)."""
    diffusion = ["-m", "brushwork", "train", "diffusion", "--data", "builtin:abstract:16", "--res", "32",
                 "--steps", "4", "--set", "width=8", "--set", "channel_mult=1,2", "--set", "blocks=1",
                 "--set", "mixed_precision=no", "--set", "lr_rampup_kimg=0", "--set", "sampling_steps=2",
                 "--log-every", "2", "--device", "cpu", "--quiet", "--no-flip", *styles]
    for out, procs, batch in (("one", 1, "8"), ("two", 2, "4")):
        done = subprocess.run([*_python(procs), *diffusion, "--batch-size", batch, "--out", str(tmp_path / out)],
                              env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    _assert_close_overall(_weights(tmp_path / "one", 4), _weights(tmp_path / "two", 4))


def test_vae_and_adain_train_under_torchrun(tmp_path):
    from studio_runs import noise_image

    for folder in ("content", "style"):
        (tmp_path / folder).mkdir()
        for i in range(4):
            noise_image(tmp_path / folder / f"{i}.png", i + (10 if folder == "style" else 0))
    launcher = [*_python(2), "-m", "brushwork", "train"]
    runs = {
        "vae": ["vae", "--data", "builtin:abstract:8", "--res", "32", "--batch-size", "4", "--steps", "4",
                "--set", "width=8", "--log-every", "2"],
        "adain": ["adain", "--content", str(tmp_path / "content"), "--style", str(tmp_path / "style"),
                  "--res", "32", "--batch-size", "2", "--steps", "4", "--log-every", "2",
                  "--encoder", "random", "--set", "width=4"]}
    for name, args in runs.items():
        out = tmp_path / name
        done = subprocess.run([*launcher, *args, "--out", str(out), "--device", "cpu"], env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "2 processes x batch" in done.stderr and done.stderr.count("run saved in") == 1
        assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000004.safetensors"]
        assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_autoencoder_and_latent_diffusion_two_processes_match_one_process(tmp_path):
    """The autoencoder's posterior noise and a latent run's noise are rows of the global batch's
    draws: 2 x 4 follows 1 x 8 for both; with the patch discriminator on (its adaptive weight is
    each rank's own gradient ratio, so not compared) the autoencoder still trains under torchrun."""
    base = ["--data", "builtin:abstract:16", "--steps", "4", "--log-every", "2", "--device", "cpu", "--quiet",
            "--no-flip", "--set", "mixed_precision=no"]
    ae = ["autoencoder", "--res", "32", "--set", "width=8", "--set", "disc_width=8", *base]
    for out, procs, batch in (("ae1", 1, "8"), ("ae2", 2, "4")):
        done = subprocess.run([*_python(procs), "-m", "brushwork", "train", *ae, "--set", "disc_start=100",
                               "--batch-size", batch, "--out", str(tmp_path / out)],
                              env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    _assert_close_overall(_weights(tmp_path / "ae1", 4), _weights(tmp_path / "ae2", 4))
    latent = ["diffusion", "--latent", str(tmp_path / "ae1"), "--set", "width=8", "--set", "channel_mult=1,2",
              "--set", "blocks=1", "--set", "lr_rampup_kimg=0", "--set", "sampling_steps=2", *base]
    for out, procs, batch in (("ld1", 1, "8"), ("ld2", 2, "4")):
        done = subprocess.run([*_python(procs), "-m", "brushwork", "train", *latent, "--batch-size", batch,
                               "--out", str(tmp_path / out)], env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    _assert_close_overall(_weights(tmp_path / "ld1", 4), _weights(tmp_path / "ld2", 4))
    done = subprocess.run([*_python(2), "-m", "brushwork", "train", *ae, "--set", "disc_start=1", "--batch-size", "4",
                           "--out", str(tmp_path / "ae-d")], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = (tmp_path / "ae-d" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and "d_loss" in rows[-1]
