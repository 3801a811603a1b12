"""A run directory's config.json, read the one way every command reads it."""

from __future__ import annotations

from pathlib import Path

from brushwork.config import RunConfig
from brushwork.errors import BrushworkError


def read_run_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise BrushworkError(f"{run_dir} is not a brushwork run (no config.json)")
    try:
        return RunConfig.from_json(path.read_text())
    except (ValueError, KeyError) as exc:
        raise BrushworkError(f"{path} is damaged: {exc}") from None
