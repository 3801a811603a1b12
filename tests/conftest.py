import os
from pathlib import Path

import pytest
import torch

from brushwork.config import RunConfig, TrainConfig, gan_preset

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own dataset cache folder and a deterministic CPU setup."""
    monkeypatch.setenv("BRUSHWORK_CACHE", str(tmp_path_factory.mktemp("cache")))
    from brushwork.data import dataset

    monkeypatch.setattr(dataset, "_MEMORY_CACHE", {})
    torch.set_num_threads(min(2, os.cpu_count() or 1))


def tiny_run_config(preset: str = "modern", steps: int = 6, **train) -> RunConfig:
    """A GAN small enough to train in about a second on one CPU core."""
    model = gan_preset(preset, 32)
    model.g_width = model.d_width = 8
    if preset == "seed":
        model.g_width = 16
    defaults = dict(data="builtin:abstract:8", batch_size=8, steps=steps, log_every=2,
                    sample_every=3, ckpt_every=3, device="cpu", n_sample=16)
    defaults.update(train)
    return RunConfig(kind="gan", model=model, train=TrainConfig(**defaults))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real art data not found at {SHARED_DATA} (see shared/data/SOURCES.md)")
    return SHARED_DATA
