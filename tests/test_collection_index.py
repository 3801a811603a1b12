"""The collection's originality index (``brushwork index``) and the verdict every written image
records: built once, updated for changed files only, reused by sample, breed, interpolate and
paint; ``--avoid-copies`` replaces seeds whose images are copies."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli import main
from brushwork.data import images as image_io
from brushwork.metrics.collection_index import build_index, index_home, open_index
from brushwork.provenance import read_record
from test_cli import TINY, run_cli


def _collection(folder, n=24, size=40, seed=0):
    """A folder of n distinct random-texture works (two style subfolders)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        style = folder / ("a" if i % 2 else "b")
        style.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
        img.save(style / f"w{i:03d}.png")
    return folder


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    real = image_io.decode_square

    def counting(path, size):
        calls.append(str(path))
        return real(path, size)

    monkeypatch.setattr(image_io, "decode_square", counting)
    return calls


def test_index_is_reused_and_updated_for_changed_files_only(tmp_path, count_decodes, monkeypatch):
    from brushwork.metrics import collection_index

    calibrations, real_calibrate = [], collection_index.calibrate
    monkeypatch.setattr(collection_index, "calibrate", lambda *a, **k: (calibrations.append(1), real_calibrate(*a, **k))[1])
    data = _collection(tmp_path / "data", n=48)
    (data / "a" / "broken.png").write_bytes(b"not an image")
    first = build_index(str(data), 32, progress=False)
    assert len(first.names) == 48 and len(count_decodes) == 49
    assert set(first.skipped) == {"a/broken.png"}

    count_decodes.clear()
    again = build_index(str(data), 32, progress=False)  # nothing changed: nothing read
    assert count_decodes == [] and again.fingerprint == first.fingerprint

    shutil.copy(data / "a" / "w001.png", data / "b" / "added.png")
    (data / "b" / "w000.png").unlink()
    updated = build_index(str(data), 32, progress=False)
    assert [p.rsplit("/", 2)[-2:] for p in count_decodes] == [["b", "added.png"]]  # only the new file
    assert "b/added.png" in updated.names and "b/w000.png" not in updated.names
    assert "a/broken.png" in updated.skipped  # known unreadable: not read again
    kept = updated.names.index("a/w003.png")
    assert np.array_equal(updated.pixels[kept], first.pixels[first.names.index("a/w003.png")])
    assert updated.thresholds == first.thresholds and len(calibrations) == 1  # 2 of 48 changed: kept

    for i in range(1, 24, 2):  # a quarter of the collection removed: calibrated again
        (data / "a" / f"w{i:03d}.png").unlink()
    count_decodes.clear()
    smaller = build_index(str(data), 32, progress=False)
    assert count_decodes == [] and len(smaller.names) == 36 and len(calibrations) == 2


def test_index_finds_edited_copies_and_passes_other_works(tmp_path):
    data = _collection(tmp_path / "data", n=30)
    index = build_index(str(data), 32, progress=False)
    import torch

    works = torch.from_numpy(np.array(index.pixels[:4]))
    others = torch.from_numpy(np.array(build_index(str(_collection(tmp_path / "other", n=4, seed=9)), 32,
                                                   progress=False).pixels))
    verdicts = index.check(torch.cat([works.flip(-1), others]))
    assert [v["verdict"] for v in verdicts] == ["COPY"] * 4 + ["original"] * 4
    assert [v["nearest"]["edit"]["work"] for v in verdicts[:4]] == index.names[:4]


def test_index_bad_input(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["index", str(empty)]) == 2
    assert "no image files" in capsys.readouterr().err
    only_broken = tmp_path / "broken"
    only_broken.mkdir()
    (only_broken / "x.png").write_bytes(b"junk")
    assert main(["index", str(only_broken)]) == 2
    assert "no readable images" in capsys.readouterr().err

    data = _collection(tmp_path / "data", n=6)
    build_index(str(data), 32, progress=False)
    home = index_home(str(data), 32)
    build = home / (home / "current").read_text()
    manifest = json.loads((build / "manifest.json").read_text())
    (build / "manifest.json").write_text(json.dumps(manifest | {"resolution": 64}))
    assert main(["index", str(data), "--res", "32", "--quiet"]) == 2  # someone else's index
    err = capsys.readouterr().err
    assert "was built for" in err and "at 64 px, not" in err
    (build / "pixels.npy").write_bytes(b"damaged")
    (build / "manifest.json").write_text(json.dumps(manifest))
    assert open_index(str(data), 32) is None
    assert "damaged; it will be rebuilt" in capsys.readouterr().err
    assert main(["index", str(data), "--res", "32", "--quiet"]) == 0
    assert open_index(str(data), 32) is not None


def test_written_images_record_their_verdict_and_copies_are_said_and_avoided(tmp_path):
    data = tmp_path / "data"
    run = tmp_path / "run"
    done = run_cli("train", "gan", "--out", str(run), "--steps", "2", *TINY[2:], "--data", str(
        _collection(data, n=8)))
    assert done.returncode == 0, done.stderr
    told = run_cli("sample", str(run), "--seeds", "0-1", "--out", str(tmp_path / "before"), "--device", "cpu")
    assert told.returncode == 0 and "has no originality index" in told.stderr
    assert "originality" not in read_record(tmp_path / "before" / "seed0000.png")["brushwork"]

    # the collection becomes the run's own seeds 0-2: a run that has memorised it
    shutil.rmtree(data)
    (data / "a").mkdir(parents=True)
    for seed in range(3):
        shutil.copy(tmp_path / "before" / f"seed000{min(seed, 1)}.png", data / "a" / f"s{seed}.png")
    assert main(["sample", str(run), "--seeds", "2", "--out", str(tmp_path / "two"), "--device", "cpu",
                 "--no-originality"]) == 0
    shutil.copy(tmp_path / "two" / "seed0002.png", data / "a" / "s2.png")
    assert run_cli("index", str(data), "--res", "32").returncode == 0

    made = run_cli("sample", str(run), "--seeds", "0-5", "--out", str(tmp_path / "after"), "--device", "cpu")
    assert made.returncode == 0, made.stderr
    assert made.stderr.count("COPY: seed000") == 3  # said at once, not only written into the file
    record = read_record(tmp_path / "after" / "seed0001.png")["brushwork"]
    assert record["originality"]["verdict"] == "COPY" and record["originality"]["nearest"]["edit"]["work"] == "a/s1.png"
    assert read_record(tmp_path / "after" / "seed0004.png")["brushwork"]["originality"]["verdict"] == "original"
    info = run_cli("info", str(tmp_path / "after" / "seed0001.png"))
    assert "originality: COPY (edited copy" in info.stdout and "a/s1.png" in info.stdout

    assert main(["evaluate", str(run), "--data", str(data), "--n", "6", "--metrics", "swd", "--device", "cpu"]) == 0
    evaluated = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert evaluated["copy_rate"] == 0.5  # seeds 0-5, of which 0-2 are the collection

    avoided = run_cli("sample", str(run), "--seeds", "0-3", "--out", str(tmp_path / "avoided"), "--device", "cpu",
                      "--avoid-copies")
    assert avoided.returncode == 0, avoided.stderr
    for seed, new in ((0, 4), (1, 5), (2, 6)):
        assert f"seed {seed} makes a copy of a training work: replaced by seed {new}" in avoided.stderr
    written = sorted(p.name for p in (tmp_path / "avoided").iterdir())
    assert written == ["seed0003.png", "seed0004.png", "seed0005.png", "seed0006.png"]
    assert all(read_record(tmp_path / "avoided" / name)["brushwork"]["originality"]["verdict"] == "original"
               for name in written)

    assert main(["breed", str(tmp_path / "after" / "seed0004.png"), "--n", "2", "--out", str(tmp_path / "kids"),
                 "--run", str(run), "--device", "cpu"]) == 0
    assert "originality" in read_record(tmp_path / "kids" / "child0000.png")["brushwork"]
    assert main(["interpolate", str(run), "--seeds", "1,4", "--frames", "4", "--out", str(tmp_path / "w.gif"),
                 "--device", "cpu"]) == 0
    walk = read_record(tmp_path / "w.gif")["brushwork"]["originality"]
    assert walk["verdict"] == "COPY" and 0 in walk["frames_flagged"]  # its first frame is seed 1


def test_a_large_index_keeps_its_trained_search_structure(tmp_path, monkeypatch):
    import torch

    from brushwork.metrics import copies

    monkeypatch.setattr(copies, "FLAT_UP_TO", 100)  # IVF from 100 descriptors: this collection has more
    data = _collection(tmp_path / "data", n=40)
    index = build_index(str(data), 32, progress=False)
    assert {"whole.faiss", "region.faiss"} <= {p.name for p in index.build.iterdir()}
    queries = torch.from_numpy(np.array(index.pixels[:5])).flip(-1)
    first = index.check(queries)
    reopened = open_index(str(data), 32)
    import faiss

    trained, real_train = [], faiss.IndexIVFFlat.train
    monkeypatch.setattr(faiss.IndexIVFFlat, "train", lambda self, x: trained.append(len(x)))
    assert reopened.check(queries) == first and trained == []  # read back, not trained again
    assert [v["verdict"] for v in first] == ["COPY"] * 5
    (index.build / "region.faiss").write_bytes(b"damaged")  # trained again, not a traceback
    monkeypatch.setattr(faiss.IndexIVFFlat, "train", real_train)
    assert open_index(str(data), 32).check(queries) == first


def test_an_index_at_64_px_judges_a_32_px_run(tmp_path):
    """Indexed once at the works' size, a collection is never asked for again at another: a run
    trained at 32 px is judged by the 64 px index (its images enlarged to it)."""
    from brushwork.metrics.collection_index import open_index_for

    data = _collection(tmp_path / "data", n=8, size=64)
    assert main(["index", str(data), "--res", "64", "--quiet"]) == 0
    assert open_index(str(data), 32) is None and open_index_for(str(data), 32).resolution == 64
    run = tmp_path / "run"
    done = run_cli("train", "gan", "--out", str(run), "--steps", "2", *TINY[2:], "--data", str(data))
    assert done.returncode == 0, done.stderr
    done = run_cli("sample", str(run), "--seeds", "0-1", "--out", str(tmp_path / "out"), "--device", "cpu")
    assert done.returncode == 0 and "originality not checked" not in done.stderr, done.stderr
    verdict = read_record(tmp_path / "out" / "seed0000.png")["brushwork"]["originality"]
    assert verdict["resolution"] == 64 and verdict["verdict"] in ("original", "COPY")
    # a work of the collection itself, shown at 32 px, is still found in the 64 px index
    work = open_index_for(str(data), 64).work(open_index_for(str(data), 64).names[0])
    small = torch.from_numpy(work.transpose(2, 0, 1).copy())[None].float()
    small = torch.nn.functional.interpolate(small, size=32, mode="area").round().to(torch.uint8)
    assert open_index_for(str(data), 32).check(small)[0]["verdict"] == "COPY"


class Killed(BaseException):
    """Stands for kill -9: nothing after the point it is raised at runs (no cleanup either)."""


def test_an_interrupted_build_resumes_at_every_stage(tmp_path, monkeypatch, count_decodes):
    """Killed while reading, while training its search indexes, or while calibrating, a build
    starts again from what it had finished: no work is read twice, nothing is trained or
    calibrated twice."""
    import faiss

    from brushwork.metrics import collection_index, copies

    monkeypatch.setattr(collection_index, "CHUNK", 8)
    monkeypatch.setattr(copies, "FLAT_UP_TO", 100)  # IVF search indexes, which are trained
    data = _collection(tmp_path / "data", n=40)

    def dies_after(n, real):
        calls = []

        def wrapped(*args, **kwargs):
            calls.append(1)
            if len(calls) > n:
                raise Killed
            return real(*args, **kwargs)
        return wrapped, calls

    # reading: killed while decoding the third chunk (two of five chunks finished)
    real_decode = collection_index._decode
    monkeypatch.setattr(collection_index, "_decode", dies_after(2 * 8 + 3, real_decode)[0])
    with pytest.raises(Killed):
        build_index(str(data), 32, progress=False)
    assert len(count_decodes) == 2 * 8 + 3
    monkeypatch.setattr(collection_index, "_decode", real_decode)
    # training: the first search index trained, killed while training the second
    real_train = faiss.IndexIVFFlat.train
    train, trainings = dies_after(1, real_train)
    monkeypatch.setattr(faiss.IndexIVFFlat, "train", train)
    count_decodes.clear()
    with pytest.raises(Killed):
        build_index(str(data), 32, progress=False)
    assert len(count_decodes) == 40 - 2 * 8 and len(trainings) == 2  # only the unfinished chunks read
    # calibration: killed while calibrating
    train, trainings = dies_after(10, real_train)
    monkeypatch.setattr(faiss.IndexIVFFlat, "train", train)
    real_calibrate = collection_index.calibrate
    monkeypatch.setattr(collection_index, "calibrate", dies_after(0, real_calibrate)[0])
    count_decodes.clear()
    with pytest.raises(Killed):
        build_index(str(data), 32, progress=False)
    assert count_decodes == [] and len(trainings) == 1  # the second index trained; the first was kept
    # finished: calibrated once, nothing read or trained again
    calibrate, calibrations = dies_after(10, real_calibrate)
    monkeypatch.setattr(collection_index, "calibrate", calibrate)
    trainings.clear()
    index = build_index(str(data), 32, progress=False)
    assert count_decodes == [] and trainings == [] and len(calibrations) == 1
    assert len(index.names) == 40 and index.decoded == 0 and index.resumed == 40
    queries = torch.from_numpy(np.array(index.pixels[:3])).flip(-1)
    assert [v["verdict"] for v in index.check(queries)] == ["COPY"] * 3
    assert not (index.build.parent / "parts").exists()  # the finished build cleaned up after itself
