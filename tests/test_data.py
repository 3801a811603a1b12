import io
import json
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.data import dataset as dataset_mod
from brushwork.data import images as images_mod
from brushwork.data.builtin import STYLES, builtin_abstract
from brushwork.data.dataset import ImageBatcher, load_dataset
from brushwork.data.images import load_rgb
from brushwork.errors import BrushworkError


def _jpeg_with_orientation(path, orientation: int):
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    img.paste((10, 10, 200), (0, 0, 10, 20))  # blue stripe on the left edge
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes())


@pytest.fixture
def odd_folder(tmp_path):
    """A folder with every supported odd format (in style subfolders) and every kind of bad file."""
    good = tmp_path / "good"
    good.mkdir()
    _jpeg_with_orientation(good / "rotated.jpg", 6)
    rgba = Image.new("RGBA", (24, 24), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    rgba.save(good / "transparent.png")
    pal = Image.new("P", (24, 24), 1)
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    pal.save(good / "palette.gif", transparency=0)
    frames = [Image.new("RGB", (24, 24), c) for c in [(0, 0, 255), (255, 255, 0)]]
    frames[0].save(good / "animated.gif", save_all=True, append_images=frames[1:])
    Image.new("CMYK", (24, 24), (0, 255, 255, 0)).save(good / "cmyk.jpg")
    ramp = np.linspace(0, 65535, 24 * 24).astype(np.uint16).reshape(24, 24)
    Image.fromarray(ramp).save(good / "deep16.png")
    Image.new("L", (24, 24), 128).save(good / "grey.tif")
    Image.new("RGB", (24, 24), (1, 2, 3)).save(good / "plain.bmp")
    Image.new("RGB", (24, 24), (9, 99, 199)).save(good / "photo.webp")
    other = tmp_path / "other"
    other.mkdir()
    Image.new("RGB", (30, 50), (50, 60, 70)).save(other / "tall.jpg")
    bad = tmp_path / "other" / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    full = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 1, 1)).save(full, "JPEG")
    (bad / "truncated.jpg").write_bytes(full.getvalue()[:200])
    (bad / "notes.png").write_text("this is not an image")
    Image.new("RGB", (100, 100)).save(bad / "bomb.png")
    (tmp_path / "README.txt").write_text("ignored: not an image extension")
    return tmp_path


def test_load_rgb_applies_exif_orientation(odd_folder):
    img = load_rgb(odd_folder / "good" / "rotated.jpg")
    assert img.mode == "RGB" and img.size == (20, 40)  # orientation 6: rotated 90 degrees
    top = np.asarray(img)[0].mean(axis=0)
    assert top[2] > 150  # the blue left edge is now at the top


def test_odd_modes_become_rgb(odd_folder):
    good = odd_folder / "good"
    assert load_rgb(good / "transparent.png").getpixel((0, 0)) == (255, 255, 255)  # on white
    assert load_rgb(good / "transparent.png").getpixel((5, 5)) == (255, 0, 0)
    assert load_rgb(good / "palette.gif").getpixel((3, 3)) == (0, 255, 0)
    assert load_rgb(good / "animated.gif").getpixel((3, 3)) == (0, 0, 255)  # first frame
    r, g, b = load_rgb(good / "cmyk.jpg").getpixel((3, 3))
    assert r > 200 and g < 60 and b < 60  # C=0, M=Y=full -> red
    deep = np.asarray(load_rgb(good / "deep16.png"))
    assert deep.min() == 0 and deep.max() == 255  # 16-bit range scaled, not clipped


def test_folder_with_bad_files_skips_and_reports_them(odd_folder, monkeypatch):
    monkeypatch.setattr(images_mod, "MAX_PIXELS", 3000)  # the 100x100 PNG now counts as a bomb
    ds = load_dataset(str(odd_folder), 32)
    assert len(ds) == 10
    assert ds.images.shape == (10, 3, 32, 32) and ds.images.dtype == torch.uint8
    reasons = dict(ds.skipped)
    assert set(reasons) == {f"other/bad/{n}" for n in
                            ["empty.jpg", "truncated.jpg", "notes.png", "bomb.png"]}
    assert "empty" in reasons["other/bad/empty.jpg"]
    assert "decompression" in reasons["other/bad/bomb.png"]
    assert "skipped 4 unreadable" in ds.skipped_summary()
    assert ds.label_names == ["good", "other"]  # first-level subfolders are style labels
    assert ds.labels.tolist().count(0) == 9


def test_empty_and_all_bad_folders_give_clear_errors(tmp_path):
    with pytest.raises(BrushworkError, match="no image files"):
        load_dataset(str(tmp_path), 32)
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(BrushworkError, match="no usable image"):
        load_dataset(str(tmp_path), 32)
    with pytest.raises(BrushworkError, match="not found"):
        load_dataset(str(tmp_path / "missing"), 32)


def test_decoded_images_are_cached_on_disk_and_invalidated_by_changes(tmp_path, monkeypatch):
    for i in range(3):
        Image.new("RGB", (40, 40), (i * 50, 0, 0)).save(tmp_path / f"{i}.png")
    first = load_dataset(str(tmp_path), 32)
    monkeypatch.setattr(dataset_mod, "_MEMORY_CACHE", {})

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the folder did not change")

    monkeypatch.setattr(dataset_mod, "_decode_one", no_decoding)
    second = load_dataset(str(tmp_path), 32)
    assert torch.equal(first.images, second.images)
    Image.new("RGB", (40, 40), (0, 255, 0)).save(tmp_path / "1.png")  # a file changes
    monkeypatch.setattr(dataset_mod, "_MEMORY_CACHE", {})
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset(str(tmp_path), 32)


def test_builtin_dataset_is_deterministic_with_distinct_styles():
    a, labels, names = builtin_abstract(32, per_style=4)
    b, _, _ = builtin_abstract(32, per_style=4)
    assert np.array_equal(a, b)
    assert names == list(STYLES) and len(names) == 5
    assert a.shape == (20, 3, 32, 32)
    means = [a[labels == k].reshape(4, -1).astype(float) for k in range(5)]
    # images within a style differ from one another (not one image repeated)
    assert all(np.abs(m[0] - m[1]).mean() > 5 for m in means)


def test_batcher_values_determinism_and_resumable_state():
    ds = load_dataset("builtin:abstract:4", 32, crop="random")
    assert ds.images.shape[-1] == 36  # cached larger for random crops
    make = lambda: ImageBatcher(ds, 6, 32, torch.device("cpu"), flip=True, seed=3)  # noqa: E731
    a, b = make(), make()
    x, labels = a.next()
    assert x.shape == (6, 3, 32, 32) and labels.shape == (6,)
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, b.next()[0])  # same seed, same batches
    for _ in range(5):  # cross an epoch boundary (20 images, batch 6)
        a.next()
    state = a.state_dict()
    c = make()
    c.load_state_dict(state)
    assert torch.equal(a.next()[0], c.next()[0])


def test_load_rgb_or_exit_reports_a_bad_file_in_one_line(tmp_path):
    from brushwork.data.images import load_rgb_or_exit

    (tmp_path / "x.png").write_bytes(struct.pack(">I", 7) * 4)
    with pytest.raises(BrushworkError, match="cannot read image"):
        load_rgb_or_exit(tmp_path / "x.png")
    with pytest.raises(BrushworkError, match="no such image"):
        load_rgb_or_exit(tmp_path / "nope.png")


@pytest.mark.skipif(not __import__("pathlib").Path("/proc/self/status").exists(), reason="reads Linux /proc")
def test_a_cached_dataset_is_memory_mapped_not_copied(tmp_path):
    """The decoded cache is read through a file mapping (safetensors maps the file): touching every
    pixel adds file-backed pages the kernel can drop, not anonymous memory, so a cache larger
    than RAM still trains."""
    import numpy as np
    import torch

    from brushwork.data import dataset

    def anonymous_bytes() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
        return 0

    n, size = 2000, 128  # 98 MB of pixels
    images = torch.from_numpy(np.random.RandomState(0).randint(0, 256, (n, 3, size, size), dtype=np.uint8))
    expected = int(images.sum(dtype=torch.int64))
    from safetensors.torch import save_file

    meta = {"label_names": '["a"]', "files": json.dumps([f"{i}.png" for i in range(n)]),
            "skipped": "[]", "source": "somewhere"}  # the cache's own layout
    save_file({"images": images, "labels": torch.zeros(n, dtype=torch.int64)},
              str(tmp_path / "cache.safetensors"), metadata=meta)
    del images
    before = anonymous_bytes()
    loaded = dataset._load_cache(tmp_path / "cache.safetensors")
    assert int(loaded.images.sum(dtype=torch.int64)) == expected  # every page read
    assert anonymous_bytes() - before < 30e6  # ... from the mapping, not into a 98 MB copy
    assert loaded.files[5] == "5.png" and loaded.images.shape == (n, 3, size, size)


def test_an_interrupted_cache_build_resumes_where_it_stopped(tmp_path, monkeypatch):
    data = tmp_path / "art"
    for style in ("a", "b"):
        (data / style).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 40), (i * 60, 100 if style == "a" else 0, 0)).save(data / style / f"{i}.png")
    (data / "a" / "bad.png").write_bytes(b"not an image")
    monkeypatch.setattr(dataset_mod, "CHUNK", 2)  # 7 files: 4 chunks
    real_save, saved = dataset_mod._save_part, []

    def interrupted(path, results):
        if len(saved) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the third chunk
        saved.append(path)
        real_save(path, results)

    monkeypatch.setattr(dataset_mod, "_save_part", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(str(data), 32, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache" / "datasets").glob("*.safetensors"))  # no half cache
    monkeypatch.setattr(dataset_mod, "_save_part", real_save)
    real_decode, decoded = dataset_mod._decode_one, []
    monkeypatch.setattr(dataset_mod, "_decode_one", lambda p, s: decoded.append(p) or real_decode(p, s))
    resumed = load_dataset(str(data), 32, cache_dir=tmp_path / "cache")
    assert len(decoded) == 3  # only the last two chunks were decoded again
    monkeypatch.setattr(dataset_mod, "_MEMORY_CACHE", {})
    fresh = load_dataset(str(data), 32, cache_dir=tmp_path / "fresh")
    assert torch.equal(resumed.images, fresh.images) and torch.equal(resumed.labels, fresh.labels)
    assert resumed.files == fresh.files and resumed.skipped == [("a/bad.png", resumed.skipped[0][1])]
    assert resumed.label_names == ["a", "b"] and len(resumed) == 6
    assert not list((tmp_path / "cache" / "datasets").glob("*.parts"))  # chunks cleaned up


def test_an_unwritable_cache_folder_still_loads_the_data(tmp_path, capsys):
    for i in range(3):
        Image.new("RGB", (40, 40), (i * 50, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "blocked").write_text("a file where the cache folder should be")
    ds = load_dataset(str(tmp_path), 32, cache_dir=tmp_path / "blocked", progress=False)
    assert len(ds) == 3 and ds.images.shape == (3, 3, 32, 32)
    assert "could not write dataset cache" in capsys.readouterr().err
    assert int(ds.images[1, 0].float().mean()) == 50  # in memory, off the deleted temporary file


_BUILD_ONE_CACHE = """
import pathlib, sys, time
import brushwork.data.dataset as d
d.CHUNK = 3  # many small parts: the window in which builders used to race
decode = d._decode_one
d._decode_one = lambda path, size: time.sleep(0.05) or decode(path, size)  # a slower disk
ready, go = pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4])
ready.touch()
while not go.exists():  # all processes start building together
    time.sleep(0.01)
ds = d.load_dataset(sys.argv[1], 32, cache_dir=sys.argv[2], progress=False)
print(len(ds), int(ds.images.sum()))
"""


def test_processes_building_one_cache_at_once_wait_for_one_builder(tmp_path):
    """Several processes asking for the same cache at once (torchrun ranks, a studio job beside a
    CLI run) under CPU load: one builds, the others wait and map its file. Before the lock, 4
    processes x 3 rounds failed every time (a builder deleted the parts another was reading)."""
    import os
    import subprocess
    import sys
    import time

    data = tmp_path / "art"
    data.mkdir()
    for i in range(30):
        Image.new("RGB", (48, 40), (i * 8, 255 - i * 8, i)).save(data / f"{i}.png")
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        for round_ in range(3):
            cache = tmp_path / f"cache{round_}"
            go = tmp_path / f"go{round_}"
            ready = [tmp_path / f"ready{round_}.{i}" for i in range(4)]
            builders = [subprocess.Popen([sys.executable, "-c", _BUILD_ONE_CACHE, str(data), str(cache),
                                          str(r), str(go)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         env={**os.environ, "OMP_NUM_THREADS": "1"})
                        for r in ready]
            deadline = time.time() + 300
            while not all(r.exists() for r in ready):
                assert time.time() < deadline and all(b.poll() is None for b in builders)
                time.sleep(0.05)
            go.touch()
            results = [(b.communicate(timeout=300), b.returncode) for b in builders]
            for (out, err), code in results:
                assert code == 0, err[-2000:]
            assert len({out for (out, _), _ in results}) == 1  # everyone read the same images
            assert len(list((cache / "datasets").glob("*.safetensors"))) == 1
            assert not list((cache / "datasets").glob("*.parts"))  # chunks cleaned up
            assert any("waiting for another process" in err for (_, err), _ in results)
    finally:
        for burner in burners:
            burner.kill()


def test_a_builder_killed_mid_way_leaves_its_chunks_and_no_lock(tmp_path, monkeypatch):
    import os
    import signal
    import subprocess
    import sys
    import time

    data = tmp_path / "art"
    data.mkdir()
    for i in range(30):
        Image.new("RGB", (40, 40), (i * 8, 0, 0)).save(data / f"{i}.png")
    go = tmp_path / "go"
    go.touch()
    builder = subprocess.Popen([sys.executable, "-c", _BUILD_ONE_CACHE, str(data), str(tmp_path / "cache"),
                                str(tmp_path / "ready"), str(go)], stderr=subprocess.DEVNULL)
    parts = tmp_path / "cache" / "datasets"
    deadline = time.time() + 300
    while len(list(parts.glob("*.parts/*.npz"))) < 2:
        assert time.time() < deadline and builder.poll() is None
        time.sleep(0.02)
    os.kill(builder.pid, signal.SIGKILL)
    builder.wait()
    kept = len(list(parts.glob("*.parts/*.npz")))
    real_decode, decoded = dataset_mod._decode_one, []
    monkeypatch.setattr(dataset_mod, "CHUNK", 3)
    monkeypatch.setattr(dataset_mod, "_decode_one", lambda p, s: decoded.append(p) or real_decode(p, s))
    ds = load_dataset(str(data), 32, cache_dir=tmp_path / "cache", progress=False)  # no wait, no hang
    assert len(ds) == 30 and len(decoded) == 30 - 3 * kept


def test_cache_follows_brushwork_cache_then_the_platforms_convention(monkeypatch, tmp_path):
    from brushwork.data.dataset import default_cache_dir

    monkeypatch.setenv("BRUSHWORK_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("BRUSHWORK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "brushwork"  # Linux: XDG_CACHE_HOME is honoured
