"""Tiny trained runs and images for the studio's tests (handlers and browser)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from brushwork.cli import main

TINY_GAN = ["--res", "32", "--batch-size", "8", "--set", "g_width=8", "--set", "d_width=8",
            "--device", "cpu", "--quiet"]


def noise_image(path: Path, seed: int, size=(48, 40)) -> Path:
    rng = np.random.default_rng(seed)
    smooth = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    pixels = 0.5 * smooth + 0.5 * rng.random((size[1], size[0], 3)) * 255
    Image.fromarray(pixels.astype("uint8")).save(path)
    return path


def make_studio_folders(root: Path) -> dict[str, Path]:
    """runs/{gan (style-conditional), vae, diffusion, autoencoder, latent (diffusion in its latents),
    adain}, data/art/{a,b}, and a few loose images."""
    runs, data, images = root / "runs", root / "data", root / "images"
    for folder in (data / "art" / "a", data / "art" / "b", images):
        folder.mkdir(parents=True)
    for i in range(6):
        noise_image(data / "art" / "a" / f"a{i}.png", i)
        noise_image(data / "art" / "b" / f"b{i}.jpg", 10 + i)
    for i in range(3):
        noise_image(images / f"photo{i}.png", 20 + i, (56, 48))
    assert main(["train", "gan", "--data", "builtin:abstract:8", "--out", str(runs / "gan"),
                 "--steps", "6", "--conditional", *TINY_GAN]) == 0
    assert main(["train", "vae", "--data", "builtin:abstract:8", "--out", str(runs / "vae"), "--res",
                 "32", "--batch-size", "8", "--steps", "6", "--set", "width=8", "--device", "cpu",
                 "--quiet"]) == 0
    assert main(["train", "diffusion", "--data", "builtin:abstract:8", "--out", str(runs / "diffusion"),
                 "--res", "32", "--batch-size", "8", "--steps", "2", "--set", "width=8", "--set",
                 "channel_mult=1,2", "--set", "blocks=1", "--set", "sampling_steps=4", "--device", "cpu",
                 "--quiet"]) == 0
    assert main(["train", "autoencoder", "--data", "builtin:abstract:8", "--out", str(runs / "autoencoder"),
                 "--res", "32", "--batch-size", "8", "--steps", "2", "--set", "width=8", "--set", "disc_width=8",
                 "--device", "cpu", "--quiet"]) == 0
    assert main(["train", "diffusion", "--data", "builtin:abstract:8", "--out", str(runs / "latent"),
                 "--latent", str(runs / "autoencoder"), "--batch-size", "8", "--steps", "2", "--set", "width=8",
                 "--set", "channel_mult=1,2", "--set", "blocks=1", "--set", "sampling_steps=4", "--device", "cpu",
                 "--quiet"]) == 0
    assert main(["train", "adain", "--content", str(data / "art" / "a"), "--style", str(data / "art" / "b"),
                 "--out", str(runs / "adain"), "--res", "32", "--batch-size", "2", "--steps", "2",
                 "--encoder", "random", "--set", "width=4", "--device", "cpu", "--quiet"]) == 0
    return {"runs": runs, "data": data, "images": images, "outputs": root / "outputs"}
