import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.making.generate import load_model, write_seed_images
from brushwork.latents import latent_for_seed, latents_for_seeds, parse_seeds, slerp, walk_latents
from brushwork.provenance import parameters_line, read_record
from brushwork.training.run import train_run
from conftest import tiny_run_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("gan") / "run"
    train_run(tiny_run_config("modern", steps=4), run, quiet=True)
    return run


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("3,7, 11") == [3, 7, 11]
    assert parse_seeds("1,5-6") == [1, 5, 6]
    for bad in ["", "a-b", "5-2", "1,,x"]:
        with pytest.raises(BrushworkError):
            parse_seeds(bad)


def test_latents_are_fixed_per_seed_and_truncation_scales_them():
    assert torch.equal(latent_for_seed(7, 100), latent_for_seed(7, 100))
    assert not torch.equal(latent_for_seed(7, 100), latent_for_seed(8, 100))
    # Pinned to NumPy's MT19937 stream: the same on every OS and device.
    assert latent_for_seed(0, 3).tolist() == pytest.approx(np.random.RandomState(0).randn(3).tolist())
    z = latents_for_seeds([1, 2], 50, truncation=0.5)
    assert torch.allclose(z, latents_for_seeds([1, 2], 50) * 0.5)
    for bad in (-0.5, 3.0):
        with pytest.raises(BrushworkError):
            latents_for_seeds([1], 10, truncation=bad)


def test_slerp_and_walks_hit_their_endpoints():
    a, b = latent_for_seed(1, 64), latent_for_seed(2, 64)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5)
    assert torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert abs(mid.norm() - (a.norm() + b.norm()) / 2) < 0.1 * a.norm()  # stays on the shell
    walk = walk_latents(torch.stack([a, b, a]), 9)
    assert walk.shape == (9, 64)
    assert torch.allclose(walk[0], a, atol=1e-5) and torch.allclose(walk[4], b, atol=1e-5)
    loop = walk_latents(torch.stack([a, b]), 8, loop=True)
    assert not torch.allclose(loop[-1], a, atol=1e-3)  # a loop does not repeat its first frame


def test_same_seed_same_pixels_whatever_the_batch(trained_run, tmp_path):
    model = load_model(trained_run, "cpu")
    alone = model.generate(latents_for_seeds([5], model.config.model.z_dim))
    in_batch = model.generate(latents_for_seeds([0, 1, 5, 9], model.config.model.z_dim))
    assert torch.equal(alone[0], in_batch[2])
    a = write_seed_images(model, [5], tmp_path / "a")
    b = write_seed_images(model, [5], tmp_path / "b")
    assert np.array_equal(np.asarray(Image.open(a[0])), np.asarray(Image.open(b[0])))
    assert a[0].name == "seed0005.png"


def test_png_provenance_round_trip(trained_run, tmp_path):
    model = load_model(trained_run, "cpu")
    (path,) = write_seed_images(model, [7], tmp_path, truncation=0.7)
    record = read_record(path)
    assert record["parameters"] == (f"Seed: 7, Truncation: 0.7, Model: run, "
                                    f"Model hash: {model.model_hash[:10]}, Steps: 4")
    full = record["brushwork"]
    assert full["seed"] == 7 and full["truncation"] == 0.7 and full["model_hash"] == model.model_hash
    assert full["latent_method"] and full["config_hash"] and full["version"]
    assert parameters_line(full) == record["parameters"]
    (bare,) = write_seed_images(model, [7], tmp_path / "bare", metadata=False)
    assert read_record(bare) == {}


def test_model_hash_changes_when_weights_change(trained_run, tmp_path):
    before = load_model(trained_run, "cpu").model_hash
    train_run(tiny_run_config("modern", steps=5), trained_run, resume=True, quiet=True)
    assert load_model(trained_run, "cpu").model_hash != before


def test_loading_something_that_is_not_a_run(tmp_path):
    with pytest.raises(BrushworkError, match="not a brushwork run"):
        load_model(tmp_path)


def test_mp4_walk_when_imageio_ffmpeg_is_installed(trained_run, tmp_path):
    imageio = pytest.importorskip("imageio.v2", reason="MP4 output needs imageio + imageio-ffmpeg")
    pytest.importorskip("imageio_ffmpeg")
    from brushwork.making.video import write_walk

    path = write_walk(load_model(trained_run, "cpu"), [1, 2], 10, tmp_path / "walk.mp4", fps=10)
    reader = imageio.get_reader(path)
    assert reader.count_frames() == 10 and reader.get_data(0).shape[:2] == (32, 32)
    reader.close()


def test_walk_refuses_other_formats(trained_run, tmp_path):
    from brushwork.making.video import write_walk

    with pytest.raises(BrushworkError, match=".gif or .mp4"):
        write_walk(load_model(trained_run, "cpu"), [1, 2], 4, tmp_path / "walk.avi")


@pytest.mark.parametrize("ext", ["jpg", "webp"])
def test_jpeg_and_webp_carry_the_same_record(trained_run, tmp_path, ext):
    model = load_model(trained_run, "cpu")
    (path,) = write_seed_images(model, [7], tmp_path, truncation=0.7, ext=ext)
    assert path.suffix == f".{ext}"
    record = read_record(path)
    assert record["parameters"].startswith("Seed: 7, Truncation: 0.7, Model: run")
    assert record["brushwork"]["model_hash"] == model.model_hash
    (bare,) = write_seed_images(model, [7], tmp_path / "bare", ext=ext, metadata=False)
    assert read_record(bare) == {}
    with Image.open(bare) as img:
        assert not img.info.get("xmp") and 0x010E not in img.getexif()


def test_records_name_the_run_not_its_path_and_regeneration_finds_it_by_hash(tmp_path):
    from brushwork.making.generate import load_for_regeneration

    runs = tmp_path / "my-runs"
    train_run(tiny_run_config("modern", steps=3, keep_checkpoints=5), runs / "other", quiet=True)
    train_run(tiny_run_config("modern", steps=4, keep_checkpoints=5), runs / "styles" / "mine", quiet=True)
    model = load_model(runs / "styles" / "mine", "cpu")
    (path,) = write_seed_images(model, [3], tmp_path / "out", truncation=0.9)
    record = read_record(path)["brushwork"]
    assert record["model_name"] == "mine" and "run" not in record
    assert str(tmp_path) not in (path.read_bytes().decode("latin-1"))  # no local path anywhere
    # the run trains on; the image's model is now an older checkpoint, still found by its hash
    train_run(tiny_run_config("modern", steps=6, keep_checkpoints=5), runs / "styles" / "mine",
              resume=True, quiet=True)
    again, recipe, scale, style = load_for_regeneration(path, runs_dir=runs, device="cpu")
    assert again.run_dir == runs / "styles" / "mine" and again.step == 4
    assert (recipe, scale, style) == ({"seed": 3}, 0.9, None)
    assert again.model_hash == model.model_hash
    assert load_for_regeneration(path, run=runs / "styles" / "mine", device="cpu")[0].step == 4
    with pytest.raises(BrushworkError, match="no run under .* holds the model that made .* 'mine'"):
        load_for_regeneration(path, runs_dir=runs / "other", device="cpu")
    with pytest.raises(BrushworkError, match="no longer holds the model"):
        load_for_regeneration(path, run=runs / "other", device="cpu")
    with pytest.raises(BrushworkError, match="pass --run RUN or --runs DIR"):
        load_for_regeneration(path, runs_dir=tmp_path / "nowhere", device="cpu")
    # --record-paths: the absolute path is recorded, and regeneration needs no search
    model.record_paths = True
    (kept,) = write_seed_images(model, [3], tmp_path / "kept")
    assert read_record(kept)["brushwork"]["run"] == str((runs / "styles" / "mine").resolve())
    assert load_for_regeneration(kept, runs_dir=tmp_path / "nowhere", device="cpu")[0].step == 4


def test_children_and_crossbreeds_record_their_lineage_and_regenerate_exactly(trained_run, tmp_path):
    from brushwork.cli import main
    from brushwork.making.generate import write_offspring
    from brushwork.latents import child_recipe, cross_recipe, latent_from_recipe, root_seed

    a, b = {"seed": 7}, {"seed": 11}
    za, zb = latent_from_recipe(a, 512), latent_from_recipe(b, 512)
    assert torch.equal(latent_from_recipe(child_recipe(a, 3, 0.0), 512), za)
    assert torch.allclose(latent_from_recipe(child_recipe(a, 3, 1.0), 512), latent_for_seed(3, 512))
    assert abs(latent_from_recipe(child_recipe(a, 3, 0.6), 512).std() - 1) < 0.1  # the prior's scale
    assert torch.allclose(latent_from_recipe(cross_recipe(a, b, 1.0), 512), zb, atol=1e-5)
    grandchild = child_recipe(cross_recipe(child_recipe(b, 1, 0.2), a), 5, 0.1)
    assert root_seed(grandchild) == 11
    for bad in [lambda: child_recipe(a, 1, 1.5), lambda: cross_recipe(a, b, -0.1),
                lambda: latent_from_recipe({"child": a}, 8)]:
        with pytest.raises(BrushworkError):
            bad()

    model = load_model(trained_run, "cpu")
    children = write_offspring(model, [a], tmp_path / "kids", n=3, strength=0.4)
    crosses = write_offspring(model, [a, b], tmp_path / "cross", n=2)
    assert [p.name for p in children] == ["child0000.png", "child0001.png", "child0002.png"]
    record = read_record(children[1])["brushwork"]
    assert record["latent"] == {"child": {"seed": 7}, "seed": 1, "strength": 0.4} and "seed" not in record
    assert read_record(crosses[0])["brushwork"]["latent"]["cross"] == [a, b]
    with pytest.raises(BrushworkError, match="one parent"):
        write_offspring(model, [a, b, a], tmp_path / "x")
    for path in (children[1], crosses[0]):
        again = tmp_path / f"again-{path.stem}"
        assert main(["sample", "--from", str(path), "--run", str(trained_run), "--out", str(again),
                     "--device", "cpu"]) == 0
        assert np.array_equal(np.asarray(Image.open(again / path.name)), np.asarray(Image.open(path)))


def test_breed_command_makes_children_and_crossbreeds_of_images(trained_run, tmp_path, capsys):
    from brushwork.cli import main

    assert main(["sample", str(trained_run), "--seeds", "4,9", "--truncation", "0.7",
                 "--out", str(tmp_path / "s"), "--device", "cpu"]) == 0
    assert main(["breed", str(tmp_path / "s" / "seed0004.png"), "--n", "2", "--strength", "0.5",
                 "--run", str(trained_run), "--out", str(tmp_path / "kids"), "--device", "cpu"]) == 0
    record = read_record(tmp_path / "kids" / "child0001.png")["brushwork"]
    assert record["latent"] == {"child": {"seed": 4}, "seed": 1, "strength": 0.5}
    assert record["truncation"] == 0.7  # the parent's
    assert main(["breed", str(tmp_path / "kids" / "child0001.png"), str(tmp_path / "s" / "seed0009.png"),
                 "--n", "3", "--runs", str(trained_run.parent), "--out", str(tmp_path / "x"),
                 "--device", "cpu"]) == 0
    lineage = read_record(tmp_path / "x" / "cross01.png")["brushwork"]["latent"]
    assert lineage == {"cross": [record["latent"], {"seed": 9}], "t": 0.5}
    capsys.readouterr()
    assert main(["breed", str(tmp_path / "s" / "seed0004.png"), "--strength", "2", "--run",
                 str(trained_run), "--out", str(tmp_path / "y"), "--device", "cpu"]) == 2
    assert "--strength: must be in [0, 1]" in capsys.readouterr().err


def test_large_requests_are_made_and_written_a_batch_at_a_time(trained_run, tmp_path, monkeypatch):
    """Memory stays flat for any number of seeds: no call makes more than WRITE_BATCH images, and
    the grid keeps only the first GRID_MAX (benchmarks/streaming.py measures the memory itself)."""
    from brushwork.making import generate as gen

    model = load_model(trained_run, "cpu")
    sizes, real = [], type(model).generate

    def counting(self, z, style=None, batch_size=64):
        sizes.append(len(z))
        return real(self, z, style, batch_size)

    monkeypatch.setattr(type(model), "generate", counting)
    monkeypatch.setattr(gen, "WRITE_BATCH", 4)
    monkeypatch.setattr(gen, "GRID_MAX", 6)
    paths = write_seed_images(model, list(range(10)), tmp_path, grid=True)
    assert sizes == [4, 4, 2] and len(paths) == 11
    from brushwork.provenance import read_record

    assert read_record(tmp_path / "grid.png")["brushwork"]["seeds"] == list(range(6))
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (3 * 34 + 2, 2 * 34 + 2)  # 6 images of 32 px, 3 columns, 2 px gaps
