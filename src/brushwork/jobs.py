"""Training jobs that outlive the page that started them (for the studio, usable from scripts).

A job is ``brushwork train`` in its own process, writing its run directory as the CLI does; all
state lives on disk, so a job keeps running when a page is closed or the server restarts, and
shows again when asked about. Whether it is running is the run directory's lock (held by the
trainer, released when it ends or dies); progress is its ``metrics.jsonl`` and newest sample grid.
Stopping sends Ctrl-C (SIGINT): the trainer saves a checkpoint and exits, and the run resumes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from brushwork.config import RunConfig
from brushwork.errors import BrushworkError
from brushwork.runs.checkpoint import list_checkpoints
from brushwork.runs.directory import lock_holder, read_run_config
from brushwork.training.run import train_run
from brushwork.utils import atomic_write, confined, ensure_dir

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LOG_NAME = "train.log"  # the job's own stdout and stderr, in its run directory
JOB_CONFIG = "job.json"  # the RunConfig a new job was started with (config.json once it trains)


@dataclass
class JobStatus:
    run: Path
    running: bool
    holder: str = ""  # "process 1234 on host" while running
    step: int = 0  # newest logged or checkpointed step
    total_steps: int = 0
    rows: list[dict] = field(default_factory=list)  # metrics.jsonl rows (loss curve)
    grid: Path | None = None  # newest sample grid
    last_line: str = ""  # the last line the job printed (its error, when it failed)


class TrainingJobs:
    """Start, watch, stop and resume training runs under ``runs_dir`` on data under ``data_root``
    (or the built-in sets); at most ``max_running`` at a time."""

    def __init__(self, runs_dir: str | Path, data_root: str | Path, max_running: int = 1):
        self.runs_dir = ensure_dir(runs_dir).resolve()
        self.data_root = Path(data_root).resolve()
        self.max_running = max_running
        self.processes: dict[Path, subprocess.Popen] = {}  # started here (to reap them)

    def run_dir(self, name: str) -> Path:
        if not RUN_NAME.match(name or ""):
            raise BrushworkError(f"run name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        return self.runs_dir / name

    def running(self) -> list[Path]:
        """Runs under runs_dir whose trainer is alive (started here or anywhere else)."""
        return [p.parent for p in sorted(self.runs_dir.glob("*/.lock")) if lock_holder(p.parent)]

    def start(self, name: str, run_cfg: RunConfig | None = None, steps: int | None = None,
              resume: bool = False) -> Path:
        """Start training run ``name`` as ``run_cfg`` says, or (``resume``) continue it with its own
        config to ``steps``; returns its directory. A new run's data must be a built-in set or a
        folder under ``data_root``."""
        busy = self.running()
        if len(busy) >= self.max_running:
            raise BrushworkError(f"a training job is already running ({busy[0].name}); stop it "
                                 f"first (this server runs {self.max_running} at a time)")
        run = self.run_dir(name)
        if resume:
            if not (run / "config.json").is_file():
                raise BrushworkError(f"there is no run named {name} to resume")
            argv = ["--resume", *(["--steps", str(int(steps))] if steps else [])]
        else:
            if run_cfg is None:
                raise BrushworkError("say what to train (a run config)")
            data = run_cfg.train.data
            if not data.startswith("builtin:"):  # the caller's config is left as it was
                train = dataclasses.replace(run_cfg.train, data=str(confined(self.data_root, data, "the data folder")))
                run_cfg = dataclasses.replace(run_cfg, train=train)
            ensure_dir(run)
            atomic_write(run / JOB_CONFIG, run_cfg.to_json().encode())
            argv = []
        with open(run / LOG_NAME, "a") as log:
            # a session of its own: the job survives the server and ignores the server's Ctrl-C
            self.processes[run] = subprocess.Popen([sys.executable, "-m", "brushwork.jobs", str(run), *argv],
                                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return run

    def stop(self, name: str) -> bool:
        """Ask a running job to save a checkpoint and exit (as Ctrl-C does); False if not running."""
        holder = lock_holder(self.run_dir(name))
        match = re.search(r"process (\d+)", holder or "")
        if not match:
            return False
        os.kill(int(match.group(1)), signal.SIGINT)
        return True

    def wait(self, name: str, timeout: float | None = None) -> int | None:
        """For jobs started here: wait for the process to end; its exit code."""
        process = self.processes.get(self.run_dir(name))
        return None if process is None else process.wait(timeout)

    def status(self, name: str) -> JobStatus:
        run = self.run_dir(name)
        holder = lock_holder(run) or ""
        rows = []
        if (run / "metrics.jsonl").is_file():
            rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                    if line.strip()]
        checkpoints = list_checkpoints(run)
        grids = sorted((run / "samples").glob("step-*.png")) if (run / "samples").is_dir() else []
        total = 0
        if (run / "config.json").is_file():
            total = json.loads((run / "config.json").read_text())["train"]["steps"]
        lines = (run / LOG_NAME).read_text().strip().splitlines() if (run / LOG_NAME).is_file() else []
        step = max([r.get("step", 0) for r in rows] + [s for s, _ in checkpoints] + [0])
        return JobStatus(run, bool(holder), holder, step, total, rows, grids[-1] if grids else None,
                         lines[-1] if lines else "")


def main(argv: list[str] | None = None) -> int:
    """``python -m brushwork.jobs RUN [--resume [--steps N]]``: what a job's process runs. A new job
    trains the config ``start`` left in RUN; a resumed one its own config.json. A mistake ends it
    with one line (the studio shows the log's last line), as ``brushwork train`` does."""
    import argparse

    parser = argparse.ArgumentParser(prog="brushwork.jobs")
    parser.add_argument("run")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--steps", type=int)
    args = parser.parse_args(argv)
    run = Path(args.run)
    try:
        if args.resume:
            run_cfg = read_run_config(run)
            if args.steps:
                run_cfg.train.steps = args.steps
        else:
            run_cfg = RunConfig.from_json((run / JOB_CONFIG).read_text())
        train_run(run_cfg, run, resume=args.resume, quiet=True)
    except BrushworkError as exc:
        print(f"brushwork: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
