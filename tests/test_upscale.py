"""Upscaling: an upscaler trained on the collection, a user's pretrained weights read by spandrel,
tiling that gives the untiled pixels, and one readable line for every mistake."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli import main
from brushwork.config import UpscalerConfig
from brushwork.making.upscale import LoadedUpscaler, _UnitRange, upscale_tensor
from brushwork.models.upscaler import Upscaler
from brushwork.provenance import make_record, read_record, save_png
from test_cli import run_cli


def _random_upscaler(scale=2, blocks=2) -> LoadedUpscaler:
    torch.manual_seed(0)
    net = Upscaler(UpscalerConfig(scale=scale, width=8, blocks=blocks))
    torch.nn.init.normal_(net.tail.weight, std=0.1)  # not the bicubic it starts as
    return LoadedUpscaler(_UnitRange(net).eval(), scale, net.reach, "random", "0" * 64, "test",
                          torch.device("cpu"))


@pytest.mark.parametrize("scale", [2, 4])
def test_tiles_give_the_untiled_pixels(scale):
    up = _random_upscaler(scale)
    image = torch.rand(3, 45, 70)
    whole = upscale_tensor(up, image, tile=1000)
    assert whole.shape == (3, 45 * scale, 70 * scale)
    assert torch.allclose(upscale_tensor(up, image, tile=16), whole, atol=1e-5)
    up.reach = 1  # too little context: the seams show (the test can fail)
    assert not torch.allclose(upscale_tensor(up, image, tile=16), whole, atol=1e-3)


def test_texture_term_covers_every_invented_octave():
    from brushwork.training.upscaler import UpscalerTask, invented_bands

    flat, checks = torch.full((2, 3, 16, 16), 0.3), torch.rand(2, 3, 16, 16)
    bands = invented_bands(checks, 4)
    assert [b.shape[-1] for b in bands] == [16, 8]  # 4x invents two octaves, 2x one
    assert len(invented_bands(checks, 2)) == 1
    assert all(b.abs().max() > 0.05 for b in bands)
    assert all(b.abs().max() < 1e-6 for b in invented_bands(flat, 4))  # no detail in a flat work
    task = UpscalerTask(UpscalerConfig(resolution=32, scale=4, width=8, blocks=1, texture_weight=1.0),
                        torch.device("cpu"))
    logged = task.train_step(torch.rand(2, 3, 32, 32) * 2 - 1, step=0)
    assert logged["texture"] > 0 and logged["loss"] > logged["l1"]


@pytest.fixture(scope="module")
def upscaler_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("upscaler") / "run"
    assert main(["train", "upscaler", "--data", "builtin:abstract:8", "--out", str(run), "--res", "32",
                 "--batch-size", "8", "--steps", "4", "--set", "width=8", "--set", "blocks=1",
                 "--device", "cpu", "--quiet"]) == 0
    return run


def test_trained_upscaler_enlarges_and_records_both_sizes(upscaler_run, tmp_path):
    metrics = (upscaler_run / "metrics.jsonl").read_text()
    assert "val_psnr_bicubic" in metrics  # each run says what it adds over bicubic
    plain = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8)).save(plain)
    made = tmp_path / "made.png"  # a brushwork image keeps its own record
    save_png(Image.open(plain), made, make_record(kind="gan", seed=3, model_hash="ab" * 32))
    assert main(["upscale", str(plain), str(made), "--run", str(upscaler_run), "--out", str(tmp_path / "big"),
                 "--tile", "16", "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "big" / "photo.png").size == (82, 60)
    record = read_record(tmp_path / "big" / "made.png")["brushwork"]
    assert record["seed"] == 3 and record["upscale"]["from_size"] == [41, 30]
    assert record["upscale"]["to_size"] == [82, 60] and len(record["upscale"]["upscaler_hash"]) == 64
    assert read_record(tmp_path / "big" / "photo.png")["brushwork"]["upscale"]["upscaler"] == "run"


def test_spandrel_loads_a_random_esrgan_from_disk(tmp_path):
    spandrel = pytest.importorskip("spandrel", reason="pretrained upscalers need spandrel")
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    model = ESRGAN(num_filters=8, num_blocks=1, scale=2)
    weights = tmp_path / "esrgan_x2.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    assert spandrel.ModelLoader().load_from_file(str(weights)).architecture.name == "ESRGAN"
    Image.new("RGB", (20, 12), (200, 40, 90)).save(tmp_path / "small.png")
    done = run_cli("upscale", str(tmp_path / "small.png"), "--weights", str(weights), "--out",
                   str(tmp_path / "big"), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "big" / "small.png").size == (40, 24)
    assert read_record(tmp_path / "big" / "small.png")["brushwork"]["upscale"]["architecture"] == "ESRGAN"


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_upscale_mistakes_get_one_line_and_write_nothing(upscaler_run, tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "img.png")
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"weight": _Evil()}))
    unknown = tmp_path / "unknown.safetensors"
    from safetensors.torch import save_file

    save_file({"nothing.like.an.upscaler": torch.zeros(3)}, str(unknown))
    gan = tmp_path / "gan"
    assert main(["train", "gan", "--data", "builtin:abstract:8", "--out", str(gan), "--res", "32",
                 "--steps", "1", "--batch-size", "8", "--set", "g_width=8", "--set", "d_width=8",
                 "--device", "cpu", "--quiet"]) == 0
    cases = [(["--weights", str(evil)], "refused"),
             (["--weights", str(unknown)], "not an upscaler architecture"),
             (["--run", str(upscaler_run), "--max-pixels", "1000"], "more than --max-pixels"),
             (["--run", str(gan)], "not an upscaler"),
             ([], "--run UPSCALER_RUN or --weights FILE"),
             (["--run", str(upscaler_run), "--scale", "4"], "enlarges 2x"),
             (["--weights", str(tmp_path / "img.png")], "must be .safetensors or .pth")]
    for args, message in cases:
        done = run_cli("upscale", str(tmp_path / "img.png"), *args, "--out", str(tmp_path / "out"),
                       "--device", "cpu")
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.strip().count("\n") == 0 and message in done.stderr, (args, done.stderr)
        assert "pickled code ran" not in done.stdout + done.stderr
        assert not (tmp_path / "out").exists()


def test_sample_writes_enlarged_works_and_from_remakes_them(upscaler_run, tmp_path):
    gan = tmp_path / "gan"
    assert main(["train", "gan", "--data", "builtin:abstract:8", "--out", str(gan), "--res", "32",
                 "--steps", "1", "--batch-size", "8", "--set", "g_width=8", "--set", "d_width=8",
                 "--device", "cpu", "--quiet"]) == 0
    assert main(["sample", str(gan), "--seeds", "0-1", "--upscale", str(upscaler_run), "--out",
                 str(tmp_path / "big"), "--device", "cpu"]) == 0
    big = tmp_path / "big" / "seed0001.png"
    record = read_record(big)["brushwork"]
    assert Image.open(big).size == (64, 64) and record["seed"] == 1
    assert record["upscale"]["from_size"] == [32, 32] and record["upscale"]["to_size"] == [64, 64]
    refused = run_cli("sample", "--from", str(big), "--run", str(gan), "--out", str(tmp_path / "again"),
                      "--device", "cpu")
    assert refused.returncode == 2 and "give --upscale RUN" in refused.stderr
    assert main(["sample", "--from", str(big), "--run", str(gan), "--upscale", str(upscaler_run), "--out",
                 str(tmp_path / "again"), "--device", "cpu"]) == 0
    assert (tmp_path / "again" / "seed0001.png").read_bytes() == big.read_bytes()  # exactly remade
    assert main(["breed", str(big), "--n", "2", "--run", str(gan), "--upscale", str(upscaler_run),
                 "--out", str(tmp_path / "kids"), "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "kids" / "child0000.png").size == (64, 64)


def test_paint_and_the_studio_write_enlarged_works(upscaler_run, tmp_path):
    import shutil

    from brushwork.ui.studio import Studio, StudioSettings

    runs = tmp_path / "runs"
    diffusion = runs / "diffusion"
    assert main(["train", "diffusion", "--data", "builtin:abstract:8", "--out", str(diffusion), "--res", "32",
                 "--steps", "1", "--batch-size", "4", "--set", "width=8", "--set", "attention_levels=0",
                 "--device", "cpu", "--quiet"]) == 0
    sketch = tmp_path / "sketch.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(sketch)
    assert main(["paint", str(diffusion), "--sketch", str(sketch), "--seeds", "3", "--steps", "2",
                 "--upscale", str(upscaler_run), "--out", str(tmp_path / "painted"), "--device", "cpu"]) == 0
    painted = tmp_path / "painted" / "paint0003.png"
    record = read_record(painted)["brushwork"]
    assert Image.open(painted).size == (64, 64) and record["upscale"]["to_size"] == [64, 64]
    assert main(["sample", "--from", str(painted), "--sketch", str(sketch), "--run", str(diffusion), "--upscale",
                 str(upscaler_run), "--out", str(tmp_path / "again"), "--device", "cpu"]) == 0
    assert (tmp_path / "again" / "paint0003.png").read_bytes() == painted.read_bytes()  # exactly remade

    shutil.copytree(upscaler_run, runs / "up")
    studio = Studio(StudioSettings(runs=runs, data=tmp_path, outputs=tmp_path / "outputs", device="cpu",
                                   features="random"))
    assert studio.upscaler_runs() == ["up"]
    big = studio.generate("diffusion", "1", upscale="up")[0].path
    small = studio.generate("diffusion", "1")[0].path  # the cached model is not left enlarging
    assert Image.open(big).size == (64, 64) and Image.open(small).size == (32, 32)
    assert read_record(big)["brushwork"]["upscale"]["upscaler_hash"]
