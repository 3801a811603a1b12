"""The documentation: the site builds with ``mkdocs build --strict``, its CLI reference names every
command, and every tutorial's commands (its ```bash blocks) run, in order, at toy sizes."""

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
STYLES = ("ink", "oil")  # the style folders the tutorials' ~/art/my-collection holds

# toy sizes: what each training family is shrunk to (its commands keep every other word)
TINY_MODELS = {
    "gan": ["g_width=8", "d_width=8"],
    "vae": ["width=8"],
    "diffusion": ["width=8", "channel_mult=1,2", "blocks=1", "sampling_steps=2"],
    "autoencoder": ["width=8", "disc_width=8", "disc_start=1"],
    "upscaler": ["width=8", "blocks=1"],
}
TOY_VALUES = {"--steps": "2", "--n": "4", "--frames": "3", "--minutes": "0.05"}


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    from brushwork.cli import build_parser

    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = list(subcommands.choices)
    assert len(commands) > 10
    for command in commands:  # generated from the parser: no command is missing
        assert f"brushwork {command}" in cli, command
    assert "brushwork train autoencoder" in cli and "--latent" in cli
    for page in ("tutorials/latent-diffusion", "families", "originality", "api"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page


def tutorial_commands(page: Path) -> list[str]:
    """The commands of a page's ```bash blocks (comments dropped, continued lines joined)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def toy(command: str, home: Path) -> list[str]:
    """A tutorial's command as the test runs it: toy sizes, the test's Python."""
    words = shlex.split(command.replace("~/", f"{home}/"))
    if words[0] == "torchrun":  # one machine: two local processes (gloo on the CPU)
        at = words.index("-m")
        words = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                 *words[at:]]
        start = at = words.index("brushwork") + 1
    else:
        assert words[0] == "brushwork", command
        words = [sys.executable, "-m", "brushwork", *words[1:]]
        start = 3
    verb = words[start:start + 2]
    for i, word in enumerate(words[:-1]):
        if word in TOY_VALUES:
            words[i + 1] = TOY_VALUES[word]
        if word == "--batch-size":
            words[i + 1] = "2" if "torch.distributed.run" in words else "4"
    if verb[0] == "train":
        if "--resume" in words and "--steps" in words:  # continues past the first command's 2 steps
            words[words.index("--steps") + 1] = "4"
        if "--batch-size" not in words:
            words += ["--batch-size", "4"]
        if "--from" in words and "--steps" not in words:  # adapting chooses its steps by the works: a toy few
            words += ["--steps", "2"]
        if "--resume" not in words and "--from" not in words:  # an adapted run keeps its parent's sizes
            words += [arg for setting in TINY_MODELS.get(verb[1], []) for arg in ("--set", setting)]
    if verb[0] in ("originality", "stylize") and "--features" not in words:
        words += ["--features", "random"]  # no ImageNet weights on test machines
    return words


def _collection(root: Path, per_style: int = 8, size: int = 128) -> None:
    rng = np.random.default_rng(0)
    for style in STYLES:
        (root / style).mkdir(parents=True)
        for i in range(per_style):
            coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            Image.fromarray(coarse).resize((size, size), Image.BICUBIC).save(root / style / f"{i:04d}.jpg")


def _inputs(work: Path) -> None:
    """The files tutorials name: a sketch, a work and its mask, a painting, a photo."""
    sketch = np.zeros((48, 40, 3), np.uint8)
    sketch[:24] = (90, 140, 220)  # sky
    sketch[24:] = (60, 130, 50)  # hill
    sketch[6:14, 26:34] = (250, 220, 60)  # sun
    for name in ("my-sketch.png", "work.png", "painting.png", "painting.jpg", "photo.png"):
        Image.fromarray(sketch).save(work / name)
    mask = np.zeros((48, 40), np.uint8)
    mask[12:36, 8:32] = 255
    Image.fromarray(mask).save(work / "mask.png")


@pytest.mark.slow
@pytest.mark.parametrize("page", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_at_toy_sizes(page, tmp_path):
    commands = tutorial_commands(page)
    assert commands, f"{page.name} has no ```bash block to run"
    home, work = tmp_path / "home", tmp_path / "work"
    _collection(home / "art" / "my-collection")
    work.mkdir()
    _inputs(work)
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for command in commands:
        done = subprocess.run(toy(command, home), cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{page.name}: {command}\n{done.stderr[-2000:]}"


def test_toy_keeps_a_tutorial_command_and_shrinks_its_sizes(tmp_path):
    words = toy("brushwork train gan --data ~/art/my-collection --out runs/mine --res 64 --steps 20000", tmp_path)
    assert words[:3] == [sys.executable, "-m", "brushwork"]
    assert words[words.index("--data") + 1] == f"{tmp_path}/art/my-collection"
    assert words[words.index("--steps") + 1] == "2" and "g_width=8" in words and "--batch-size" in words
    words = toy("torchrun --nproc-per-node 4 -m brushwork train gan --out runs/big --batch-size 64", tmp_path)
    assert words[words.index("--nproc-per-node") + 1] == "2" and words[words.index("--batch-size") + 1] == "2"
    assert toy("brushwork originality --images g --data d --json", tmp_path)[-2:] == ["--features", "random"]
    assert "--set" not in toy("brushwork train gan --out runs/mine --steps 4 --resume", tmp_path)
