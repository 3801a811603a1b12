"""Every command that writes: an unwritable, impossible or occupied output path, or a full disk,
ends in one readable line and a non-zero exit, and leaves no half-written file behind."""

import errno
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from brushwork.cli import main
from brushwork.data.builtin import paint
from brushwork.errors import BrushworkError
from brushwork.training.run import train_run
from brushwork.utils import atomic_write
from conftest import tiny_run_config
from test_vae import tiny_vae_config

TINY = ["--data", "builtin:abstract:8", "--res", "32", "--batch-size", "8", "--device", "cpu",
        "--set", "g_width=8", "--set", "d_width=8", "--quiet"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Tiny GAN and VAE runs, two artworks, and a plain file to stand in the way."""
    root = tmp_path_factory.mktemp("outputs")
    train_run(tiny_run_config("modern", steps=4), root / "gan", quiet=True)
    train_run(tiny_vae_config(steps=4), root / "vae", quiet=True)
    for i, style in enumerate(["circles", "stripes"]):
        paint(style, i, 40).save(root / f"art{i}.png")
    (root / "a_file").write_text("in the way")
    return root


def _commands(w: Path, out: str) -> dict[str, list[str]]:
    """argv of each writing command, with ``out`` as the folder its output goes into."""
    gan, vae, a, b = str(w / "gan"), str(w / "vae"), str(w / "art0.png"), str(w / "art1.png")
    return {
        "train": ["train", "gan", "--out", f"{out}/run", "--steps", "2", *TINY],
        "sample": ["sample", gan, "--seeds", "0-1", "--out", out, "--device", "cpu"],
        "interpolate": ["interpolate", gan, "--seeds", "1,2", "--frames", "3", "--out",
                        f"{out}/walk.gif", "--device", "cpu"],
        "reconstruct": ["reconstruct", vae, a, "--out", out, "--device", "cpu"],
        "variations": ["variations", vae, a, "--n", "2", "--out", out, "--device", "cpu"],
        "blend": ["blend", vae, a, b, "--frames", "3", "--out", f"{out}/blend.gif", "--device", "cpu"],
        "stylize": ["stylize", a, "--style", b, "--size", "32", "--steps", "1", "--encoder", "random",
                    "--out", f"{out}/styled.png", "--device", "cpu"],
        "originality": ["originality", "--image", a, "--data", "builtin:abstract:8", "--res", "32",
                        "--features", "random", "--report", f"{out}/report.html", "--device", "cpu"],
        "demo": ["demo", "--out", f"{out}/demo", "--steps", "2", "--device", "cpu"],
    }


PLACES = {  # scenario: (output folder, what the message says)
    "occupied": ("{work}/a_file/out", "a file stands where a folder is needed"),
    "impossible": ("/proc/brushwork-nowhere/out", "does not exist and cannot be created"),
    "read-only": ("/sys/brushwork-out", "permission denied"),
}


def _files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")} if path.exists() else set()


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("command", list(_commands(Path("."), "")))
def test_unwritable_output_is_one_line(work, capsys, command, place):
    folder, message = PLACES[place]
    if place == "read-only" and not Path("/sys/kernel").is_dir():
        pytest.skip("needs Linux sysfs as a place nobody may write")
    before = _files_under(work)
    code = main(_commands(work, folder.format(work=work))[command])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert _files_under(work) == before  # nothing written anywhere, not even a temp file
    assert (work / "a_file").read_text() == "in the way"


@pytest.mark.parametrize("command", ["interpolate", "blend", "stylize", "originality"])
def test_a_folder_where_a_file_is_needed(work, tmp_path, capsys, command):
    argv = _commands(work, str(tmp_path))[command]
    Path(argv[argv.index("--report" if command == "originality" else "--out") + 1]).mkdir()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "it is a folder; give a file name" in err


def test_evaluate_into_a_run_whose_metrics_file_is_occupied(work, tmp_path, capsys):
    run = tmp_path / "gan"
    shutil.copytree(work / "gan", run)
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").mkdir()  # a folder where the metrics file should be
    assert main(["evaluate", str(run), "--data", "builtin:abstract:8", "--n", "8", "--metrics", "swd",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write {run / 'metrics.jsonl'}: it is a folder" in err


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))  # any write past 64 bytes fails (EFBIG)


@pytest.mark.slow
@pytest.mark.parametrize("command", [*_commands(Path("."), ""), "evaluate"])
def test_full_disk_is_one_line_and_leaves_no_half_file(work, tmp_path, command):
    """A file-size limit stands in for a full disk: every write past 64 bytes fails."""
    if command == "evaluate":
        shutil.copytree(work / "gan", tmp_path / "gan")
        argv = ["evaluate", str(tmp_path / "gan"), "--data", "builtin:abstract:8", "--n", "8",
                "--metrics", "swd", "--device", "cpu"]
    else:
        argv = _commands(work, str(tmp_path / "out"))[command]
    done = subprocess.run([sys.executable, "-m", "brushwork", *argv], capture_output=True, text=True,
                          timeout=300, preexec_fn=_limit_file_size)
    said = [line for line in done.stderr.splitlines() if line.strip() and "%|" not in line]  # no bars
    errors = [line for line in said if "error" in line.lower()]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert errors == said[-1:], said  # one error line, the last thing said (after any progress notes)
    assert said[-1].startswith("brushwork: error: cannot write ") and "larger than this system allows" in said[-1]
    for path in _files_under(tmp_path):
        assert not path.name.endswith(".tmp"), path
        if path.suffix in (".png", ".gif"):
            Image.open(path).load()  # whatever is there is whole


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "image.png"
    target.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # where a full disk shows at the latest
    with pytest.raises(BrushworkError, match=f"cannot write {target}: the disk is full"):
        atomic_write(target, b"new" * 1000)
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["image.png"]
