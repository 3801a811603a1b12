"""The family registry: every declared family trains, makes what it says it can, and round-trips
its config; what a family's commands need, it declares."""

import re

import pytest
import torch

from brushwork.config import (AdaINConfig, AutoencoderConfig, DiffusionConfig, RunConfig, TrainConfig, UpscalerConfig,
                              VAEConfig, gan_preset)
from brushwork.errors import BrushworkError
from brushwork.training.families import CAPABILITIES, FAMILIES, family, require

# tiny enough to train 2 steps in about a second each
TINY = {
    "gan": lambda: gan_preset("modern", 32).__class__(**{**gan_preset("modern", 32).__dict__, "g_width": 8,
                                                         "d_width": 8}),
    "vae": lambda: VAEConfig(resolution=32, width=8, latent_dim=8),
    "diffusion": lambda: DiffusionConfig(resolution=32, width=8, channel_mult="1,2", blocks=1, sampling_steps=2),
    "autoencoder": lambda: AutoencoderConfig(resolution=32, width=8, disc_width=8, disc_start=1),
    "upscaler": lambda: UpscalerConfig(resolution=32, width=8, blocks=1),
    "adain": lambda: AdaINConfig(resolution=32, width=8, style_data="builtin:abstract:8", encoder="random"),
}
# what each command asks of a run (the commands a family's hint names must be within its capabilities)
COMMAND_NEEDS = {"sample": "sample", "interpolate": "sample", "breed": "sample", "paint": "paint",
                 "reconstruct": "encode", "project": "project", "upscale": "upscale", "stylize": "stylize",
                 "train diffusion --latent": "latent-space"}


def test_every_family_is_declared_with_a_tiny_config_here():
    assert set(TINY) == set(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_trains_two_steps_makes_images_and_round_trips(name, tmp_path):
    from brushwork.making.generate import load_model
    from brushwork.training.run import train_run

    fam = family(name)
    cfg = RunConfig(kind=name, model=TINY[name](), train=TrainConfig(
        data="builtin:abstract:8", batch_size=4, steps=2, log_every=1, sample_every=2, ckpt_every=2, device="cpu"))
    assert RunConfig.from_json(cfg.to_json()) == cfg
    train_run(cfg, tmp_path / name, quiet=True)
    saved = RunConfig.from_json((tmp_path / name / "config.json").read_text())
    assert saved.kind == name and isinstance(saved.model, fam.config)
    if fam.network is None:  # AdaIN decoders are used through stylize, not loaded as models
        with pytest.raises(BrushworkError, match="makes no images of its own"):
            load_model(tmp_path / name, "cpu")
        return
    if "upscale" in fam.can:
        from brushwork.making.upscale import load_upscaler

        up = load_upscaler(tmp_path / name, None, "cpu")
        assert up.scale == 2
        return
    model = load_model(tmp_path / name, "cpu")
    if "sample" in fam.can:
        images = model.generate_seeds([0, 1])
        assert images.shape == (2, 3, 32, 32) and images.abs().max() <= 1
    else:
        with pytest.raises(BrushworkError, match="making images from seeds needs one"):
            model.generate_seeds([0])
    if "encode" in fam.can:
        x = torch.rand(2, 3, 32, 32) * 2 - 1
        mean, _ = model.encode(x)
        assert model.decode(mean).shape == x.shape


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_commands_a_family_points_to_are_within_its_capabilities(name):
    fam = family(name)
    assert fam.can <= set(CAPABILITIES)
    named = [c for c in COMMAND_NEEDS if re.search(rf"brushwork {re.escape(c)}\b", fam.hint)]
    assert named, f"{name}'s hint names no command"
    for command in named:
        assert COMMAND_NEEDS[command] in fam.can, f"{name} points to '{command}' but cannot {COMMAND_NEEDS[command]}"


def test_refusals_name_the_families_that_can():
    with pytest.raises(BrushworkError, match=r"runs/x is a gan run, not a diffusion run \(paint needs one\)"):
        require("gan", "paint", "runs/x")
    with pytest.raises(BrushworkError, match="not a gan, vae or diffusion run"):
        require("autoencoder", "sample")
    with pytest.raises(BrushworkError, match="unknown model family"):
        family("transformer")
