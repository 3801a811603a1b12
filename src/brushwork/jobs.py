"""Training jobs that outlive the page that started them (for the studio, usable from scripts).

A job is ``brushwork train`` in its own process, writing its run directory as the CLI does; all
state lives on disk, so a job keeps running when a page is closed or the server restarts, and
shows again when asked about. Whether it is running is the run directory's lock (held by the
trainer, released when it ends or dies); progress is its ``metrics.jsonl`` and newest sample grid.
Stopping sends Ctrl-C (SIGINT): the trainer saves a checkpoint and exits, and the run resumes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from brushwork.errors import BrushworkError
from brushwork.runs.checkpoint import list_checkpoints
from brushwork.runs.directory import lock_holder
from brushwork.utils import confined, ensure_dir

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LOG_NAME = "train.log"  # the job's own stdout and stderr, in its run directory


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

    def start(self, name: str, family: str = "gan", data: str = "builtin:abstract", steps: int = 5000,
              resume: bool = False, extra: list[str] | None = None) -> Path:
        """Start (or, with ``resume``, continue) training run ``name``; returns its directory."""
        if family not in ("gan", "vae", "diffusion"):
            raise BrushworkError(f"the studio trains gan, vae or diffusion runs, not {family!r}")
        busy = self.running()
        if len(busy) >= self.max_running:
            raise BrushworkError(f"a training job is already running ({busy[0].name}); stop it "
                                 f"first (this server runs {self.max_running} at a time)")
        run = self.run_dir(name)
        if resume:  # the run's own config says what it trains on
            where = ["--resume"]
        elif data.startswith("builtin:"):
            where = ["--data", data]
        else:
            where = ["--data", str(confined(self.data_root, data, "the data folder"))]
        argv = [sys.executable, "-m", "brushwork", "train", family, *where, "--out", str(run),
                "--steps", str(int(steps)), "--quiet", *(extra or [])]
        ensure_dir(run)
        with open(run / LOG_NAME, "a") as log:
            # a session of its own: the job survives the server and ignores the server's Ctrl-C
            self.processes[run] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                   start_new_session=True)
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
