"""A run directory: its config.json, its metrics rows, and the lock held while training in it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

from brushwork.config import RunConfig
from brushwork.errors import BrushworkError
from brushwork.runs.builtin import resolve_run
from brushwork.utils import ensure_dir, output_error

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def read_run_config(run_dir: str | Path) -> RunConfig:
    """A run's config.json (``run_dir`` may name a built-in model: ``builtin:base``)."""
    path = resolve_run(run_dir) / "config.json"
    if not path.is_file():
        raise BrushworkError(f"{run_dir} is not a brushwork run (no config.json)")
    try:
        return RunConfig.from_json(path.read_text())
    except (ValueError, KeyError) as exc:
        raise BrushworkError(f"{path} is damaged: {exc}") from None


LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: str | Path):
    """Hold the run directory for this process while it trains there.

    An OS lock (flock) on ``RUN/.lock``: a second process that tries to train in the same run is
    refused at once with the holder's process id, and the kernel releases the lock when its holder
    dies in any way (kill -9 included), so a killed run can always be resumed. Without fcntl
    (Windows) runs are not locked.
    """
    run_dir = ensure_dir(run_dir)
    path = run_dir / LOCK_NAME
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise output_error(exc, path) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise BrushworkError(f"{run_dir} is in use: {holder} is training in it; wait for it to "
                                 f"finish (or stop it), or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def lock_holder(run_dir: str | Path) -> str | None:
    """Who trains in ``run_dir`` right now ("process 1234 on host"), or None when nobody does."""
    path = Path(run_dir) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one JSON object as a line (metrics.jsonl); a failed write is one readable line."""
    try:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
    except OSError as exc:
        raise output_error(exc, path) from None
