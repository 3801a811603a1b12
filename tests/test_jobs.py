"""Training jobs for the studio: started, watched, stopped and resumed through the run directory."""

import dataclasses
import time

import pytest

from brushwork.config import RunConfig, TrainConfig, gan_preset
from brushwork.errors import BrushworkError
from brushwork.jobs import TrainingJobs
from brushwork.utils import confined

def tiny(steps: int, data: str = "builtin:abstract:8") -> RunConfig:
    model = dataclasses.replace(gan_preset("modern", 32), g_width=8, d_width=8)
    return RunConfig(kind="gan", model=model, train=TrainConfig(data=data, steps=steps, batch_size=8, device="cpu",
                                                                ckpt_every=5, log_every=2))


def _wait(condition, timeout=600):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def test_a_job_runs_alone_stops_with_a_checkpoint_and_resumes(tmp_path):
    jobs = TrainingJobs(tmp_path / "runs", tmp_path / "data")
    run = jobs.start("first", tiny(100000))
    _wait(lambda: jobs.status("first").step >= 4)
    status = jobs.status("first")
    assert status.running and status.holder.startswith("process ") and status.total_steps == 100000
    assert status.rows and "loss_d" in status.rows[-1]
    assert jobs.running() == [run]
    with pytest.raises(BrushworkError, match="already running \\(first\\)"):
        jobs.start("second", tiny(10))
    assert jobs.stop("first")
    assert jobs.wait("first", timeout=600) == 0  # Ctrl-C: saved and exited cleanly
    stopped = jobs.status("first")
    assert not stopped.running and stopped.step >= 4 and not jobs.stop("first")
    assert "interrupted: saved checkpoint" in stopped.last_line
    jobs.start("first", steps=stopped.step + 4, resume=True)
    assert jobs.wait("first", timeout=600) == 0
    assert jobs.status("first").step == stopped.step + 4
    assert TrainingJobs(tmp_path / "runs", tmp_path / "data").status("first").grid is not None  # a new server sees it


def test_job_names_and_data_stay_inside_their_folders(tmp_path):
    (tmp_path / "data" / "art").mkdir(parents=True)
    jobs = TrainingJobs(tmp_path / "runs", tmp_path / "data")
    for bad in ["../escape", "a/b", "", ".hidden", "x" * 65]:
        with pytest.raises(BrushworkError, match="run name"):
            jobs.start(bad, tiny(1))
    for bad in ["../outside", "/etc", "art/../../outside"]:
        with pytest.raises(BrushworkError, match="outside .*the only folder allowed here"):
            jobs.start("ok", tiny(1, data=bad))
    (tmp_path / "data" / "link").symlink_to(tmp_path)  # a link out of the data root
    with pytest.raises(BrushworkError, match="outside"):
        confined(tmp_path / "data", "link/runs")
    assert confined(tmp_path / "data", "art") == (tmp_path / "data" / "art").resolve()
