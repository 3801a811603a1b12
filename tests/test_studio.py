"""The studio's actions as library functions (no browser): what each control does, that its
files are the CLI's files, and that nothing a page sends can reach outside the allowed folders."""

import threading
import time

import numpy as np
import pytest
from PIL import Image

from brushwork.cli import main
from brushwork.errors import BrushworkError
from brushwork.provenance import read_record
from brushwork.runs.builtin import installed
from brushwork.ui.serve import ServeOptions, check_exposure, is_loopback, parse_auth
from brushwork.ui.studio import Studio, StudioSettings, loss_rows
from studio_runs import make_studio_folders, noise_image


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return make_studio_folders(tmp_path_factory.mktemp("studio"))


@pytest.fixture
def studio(folders, tmp_path):
    settings = StudioSettings(runs=folders["runs"], data=folders["data"], outputs=tmp_path / "outputs",
                              device="cpu", features="random", max_upload_mb=0.05)
    return Studio(settings)


def _upload(studio, path):
    """A file as the page hands it over: a copy in the upload folder."""
    target = studio.settings.uploads / "u" / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(path.read_bytes())
    return target


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_lists_runs_and_describes_them(studio):
    # runs that make images (the AdaIN run makes none of its own; the autoencoder reconstructs)
    shipped = ["builtin:base"] if installed("base") else []  # listed first when installed
    assert studio.run_names() == [*shipped, "autoencoder", "diffusion", "gan", "latent", "vae"]
    assert studio.run_names(("paint",)) == [*shipped, "diffusion", "latent"]
    assert studio.adain_runs() == ["adain"]
    gan = studio.describe_run("gan")
    assert gan["kind"] == "gan" and gan["conditional"] and len(gan["styles"]) >= 2
    assert gan["scale_name"] == "truncation" and studio.describe_run("vae")["scale_name"] == "temperature"
    with pytest.raises(BrushworkError, match="outside"):
        studio.describe_run("../../etc")
    with pytest.raises(BrushworkError, match="choose a run"):
        studio.generate("", "0")


def test_generate_writes_the_cli_s_exact_files(studio, folders, tmp_path):
    style = studio.describe_run("gan")["styles"][1]
    made = studio.generate("gan", "0-2", 0.8, style)
    assert [m.caption for m in made] == ["seed 0", "seed 1", "seed 2"]
    assert all(studio.settings.outputs in m.path.parents for m in made)
    assert made[1].record["seed"] == 1 and made[1].record["style"] == style
    assert "Seed: 1" in made[1].parameters
    assert main(["sample", str(folders["runs"] / "gan"), "--seeds", "0-2", "--truncation", "0.8",
                 "--style", style, "--out", str(tmp_path / "cli"), "--device", "cpu"]) == 0
    for m in made:  # byte for byte what the command line writes
        assert m.path.read_bytes() == (tmp_path / "cli" / m.path.name).read_bytes()
    assert studio.seed_of(made[2].path) == 2
    mixed = studio.generate("gan", "4", 1.0, None, f"{style}:0.5,{studio.describe_run('gan')['styles'][0]}:0.5")
    assert "style_mix" in mixed[0].record
    with pytest.raises(BrushworkError, match="more than 64 seeds"):
        studio.generate("gan", "0-1000000000")
    assert 0 <= studio.random_seed() < 2**31


def test_explore_walk_children_crossbreeds_and_regeneration(studio):
    walk = studio.interpolate("gan", "1,2", 6, loop=True)
    assert walk.suffix == ".gif" and Image.open(walk).n_frames == 6
    parents = studio.generate("gan", "3,5")
    kids = studio.children(parents[0].path, 3, 0.4)
    assert len(kids) == 3 and kids[0].record["latent"]["child"] == {"seed": 3}
    crosses = studio.crossbreed(parents[0].path, parents[1].path, 2)
    assert len(crosses) == 2 and crosses[1].record["latent"]["cross"] == [{"seed": 3}, {"seed": 5}]
    a, b = parents[0].record["style"], parents[1].record["style"]  # seeds 3 and 5: two styles
    assert a != b and studio.crossbreed_note(parents[0].path, parents[1].path).endswith(f"parent A's style ({a}).")
    assert crosses[0].record["style"] == a
    assert studio.crossbreed_note(parents[0].path, parents[0].path) == ""
    settings, again = studio.regenerate(_upload(studio, kids[1].path))  # Info's "send to Generate"
    assert settings["run"] == "gan" and settings["seed"] is None and settings["recipe"] == kids[1].record["latent"]
    assert np.array_equal(_pixels(again.path), _pixels(kids[1].path))
    settings, again = studio.regenerate(_upload(studio, parents[1].path))
    assert settings["seed"] == 5 and np.array_equal(_pixels(again.path), _pixels(parents[1].path))
    with pytest.raises(BrushworkError, match="frames"):
        studio.interpolate("gan", "1,2", 100000)


def test_reproduce_with_a_vae_and_by_projection_with_a_gan(studio, folders):
    photo = _upload(studio, folders["images"] / "photo0.png")
    made, line = studio.reconstruct("vae", photo)
    assert line.startswith("reconstruction: PSNR") and made.record["operation"] == "reconstruct"
    assert len(studio.variations("vae", photo, 3, 0.5)) == 3
    other = _upload(studio, folders["images"] / "photo1.png")
    assert Image.open(studio.blend("vae", photo, other, 4)).n_frames == 4
    studio.settings.projection_steps = 10
    style = studio.describe_run("gan")["styles"][0]  # a conditional run: projected into a style
    made, line = studio.reconstruct("gan", photo, style)
    assert line.startswith("projection: vgg distance") and "z" in made.record["latent"]  # random VGG19
    kids = studio.variations("gan", photo, 2, 0.3, style=style)
    assert len(kids) == 2 and "z" in kids[0].record["latent"]["child"]
    assert Image.open(studio.blend("gan", photo, other, 3, style)).n_frames >= 2
    before = set(studio.settings.outputs.rglob("*"))
    for action in (lambda: studio.reconstruct("gan", photo), lambda: studio.variations("gan", photo, 2, 0.3),
                   lambda: studio.blend("gan", photo, other, 3)):
        with pytest.raises(BrushworkError, match="is style-conditional: choose the style to project into") as info:
            action()
        assert "--" not in str(info.value)  # the page's words, no command-line flags
    with pytest.raises(BrushworkError, match="use the Paint tab"):
        studio.reconstruct("diffusion", photo)
    assert set(studio.settings.outputs.rglob("*")) == before  # refused requests leave no folders
    message = studio.public(f"cannot read {studio.settings.runs / 'gan' / 'x'} or {studio.settings.outputs}")
    assert str(studio.settings.runs.parent) not in message and "runs/gan/x" in message


def test_uploads_are_checked_before_use(studio, folders, tmp_path):
    with pytest.raises(BrushworkError, match="not a file this studio may read"):
        studio.upload("/etc/passwd")
    with pytest.raises(BrushworkError, match="not a file this studio may read"):
        studio.upload(studio.settings.uploads / ".." / ".." / "elsewhere.png")
    svg = studio.settings.uploads / "x.svg"
    svg.write_text("<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>")
    with pytest.raises(BrushworkError, match="x.svg: not an image"):
        studio.upload(svg)
    truncated = studio.settings.uploads / "t.png"
    truncated.write_bytes((folders["images"] / "photo0.png").read_bytes()[:200])
    with pytest.raises(BrushworkError, match="corrupt or truncated"):
        studio.upload(truncated)
    big = noise_image(studio.settings.uploads / "big.png", 1, (200, 200))  # ~120 kB > 0.05 MB
    with pytest.raises(BrushworkError, match="the limit here is 0.05 MB"):
        studio.upload(big)
    studio.settings.max_pixels = 1000
    with pytest.raises(BrushworkError, match="too many pixels: 56 x 48"):
        studio.upload(_upload(studio, folders["images"] / "photo0.png"))
    with pytest.raises(BrushworkError, match="drop an image"):
        studio.upload(None)


def test_gatys_previews_then_stops_with_its_best_image(studio, folders):
    content = _upload(studio, folders["images"] / "photo0.png")
    style = _upload(studio, folders["data"] / "art" / "b" / "b0.jpg")
    updates = studio.stylize(content, [style], method="gatys", steps=100000, size=48,
                             session="s1", preview_every=0.0)
    first = next(updates)
    assert first.path is None and max(first.image.size) == 48 and first.message.startswith("step ")
    assert studio.stop_style("s1")
    last = list(updates)[-1]
    assert last.path is not None and "stopped at step" in last.message
    record = read_record(last.path)["brushwork"]
    assert 0 < record["stopped_at_step"] < 100000 and record["method"] == "gatys"
    assert Image.open(last.path).size == first.image.size  # full size
    assert not studio.stop_style("s1")  # nothing running any more


def test_paint_a_sketch_a_masked_region_and_stop_early(studio, folders):
    sketch = _upload(studio, folders["images"] / "photo0.png")  # 56 x 48
    updates = list(studio.paint("diffusion", sketch, strength=0.5, seeds="3-4", session="p", preview_every=0))
    assert [u.message for u in updates[:-1]] == ["step 1/2", "step 2/2"]  # 4 steps x strength 0.5
    assert updates[0].image is not None and updates[-1].message == "done (2 steps)"
    items = updates[-1].items
    assert [m.caption for m in items] == ["seed 3", "seed 4"] and _pixels(items[0].path).shape == (48, 56, 3)
    assert items[0].record["paint"]["strength"] == 0.5 and items[0].record["seed"] == 3

    strokes = Image.new("RGBA", (56, 48), (0, 0, 0, 0))
    strokes.paste((255, 45, 45, 255), (10, 10, 30, 30))
    strokes.save(studio.settings.uploads / "strokes.png")
    mask = studio.mask_from_strokes(studio.settings.uploads / "strokes.png", sketch)
    painted = list(studio.paint("diffusion", sketch, mask, seeds="0", session="p"))[-1].items[0]
    keep = np.asarray(Image.open(mask)) < 128
    assert np.array_equal(_pixels(painted.path)[keep], _pixels(sketch)[keep])
    assert painted.record["paint"]["strength"] == 1.0  # a masked region is painted afresh by default

    running = studio.paint("diffusion", sketch, seeds="0-1", strength=1.0, steps=40, session="q",
                           preview_every=0)
    assert next(running).message == "step 1/40"
    assert studio.stop_paint("q")
    last = list(running)[-1]
    assert "stopped at step" in last.message and len(last.items) == 2
    assert 0 < last.items[0].record["paint"]["stopped_at_step"] < 40
    assert not studio.stop_paint("q")

    before = set(studio.settings.outputs.rglob("*"))
    able = ", ".join([*(["builtin:base"] if installed("base") else []), "diffusion", "latent"])
    with pytest.raises(BrushworkError, match=rf"gan is a gan run; painting needs a diffusion run \(in the run list: {able}\)"):
        list(studio.paint("gan", sketch, session="r"))
    with pytest.raises(BrushworkError, match="strength must be in"):
        list(studio.paint("diffusion", sketch, strength=2, session="r"))
    assert set(studio.settings.outputs.rglob("*")) == before  # a refused request leaves nothing
    generated = studio.generate("diffusion", "1", scale=0.5)  # no truncation for diffusion: ignored
    assert generated[0].record["sampler"] == "dpm2m"


def test_adain_in_one_pass_with_its_run_s_provenance(studio, folders):
    content = _upload(studio, folders["images"] / "photo1.png")
    styles = [_upload(studio, folders["data"] / "art" / "b" / f"b{i}.jpg") for i in (1, 2)]
    updates = list(studio.stylize(content, styles, "0.7,0.3", "adain", "adain", 0.8, "luminance",
                                  size=40))
    assert len(updates) == 1 and updates[0].message == "done"
    record = read_record(updates[0].path)["brushwork"]
    assert record["model_name"] == "adain" and record["style_weights"] == pytest.approx([0.7, 0.3])
    with pytest.raises(BrushworkError, match="style weight"):
        next(studio.stylize(content, styles, "1", "adain", "adain"))


def test_originality_neighbours_and_verdict(studio, folders):
    made = studio.generate("gan", "0")[0]
    verdict, near = studio.originality(made.path, run="gan")
    assert verdict.startswith(("original", "COPY")) and "training works at 32 px" in verdict
    assert len(near) == 4 and near[0].image.size == (32, 32) and near[0].name  # pixels, features, edit, region
    assert "edited copy" in near[2].label and "region" in near[3].label
    train_copy = _upload(studio, folders["data"] / "art" / "a" / "a2.png")
    verdict, near = studio.originality(train_copy, data="art")
    assert verdict.startswith("COPY") and near[0].name.endswith("a2.png") and near[0].score == 0
    with pytest.raises(BrushworkError, match="outside"):
        studio.originality(train_copy, data="/etc")


def test_train_tab_fits_the_canvas_to_the_collection(tmp_path):
    """The Train tab's "fit" button: the canvas --aspect auto would choose, in the page's words."""
    data = tmp_path / "data"
    (data / "portraits").mkdir(parents=True)
    for i, (w, h) in enumerate([(40, 50), (48, 60), (44, 56), (60, 60)]):  # mostly 4:5 portraits
        Image.new("RGB", (w, h), (i * 40, 90, 120)).save(data / "portraits" / f"p{i}.png")
    (data / "empty").mkdir()
    page = Studio(StudioSettings(runs=tmp_path / "runs", data=data, outputs=tmp_path / "out", device="cpu"))
    canvas, said = page.fitting_canvas("portraits", 32)
    assert canvas == "32x40" and "2 works cropped" in said and "--" not in said
    assert page.fitting_canvas("builtin:abstract", 64) == ("", "the built-in set is square")
    with pytest.raises(BrushworkError, match="^no readable image to measure"):
        page.fitting_canvas("empty", 32)
    with pytest.raises(BrushworkError, match="outside"):
        page.fitting_canvas("/etc", 32)


def test_training_job_from_the_page(studio):
    with pytest.raises(BrushworkError, match="model setting '--out=/tmp/x'"):
        studio.start_training("t", "gan", "builtin:abstract:8", 10, model_settings="--out=/tmp/x")
    with pytest.raises(BrushworkError, match="a run named gan exists"):
        studio.start_training("gan", "gan", "builtin:abstract:8", 10)
    with pytest.raises(BrushworkError, match="multiple of 8"):
        studio.start_training("t", "gan", "builtin:abstract:8", 10, resolution=32, canvas="32x44")
    assert not (studio.settings.runs / "t").exists()
    studio.start_training("watch", "gan", "builtin:abstract:8", 100000, resolution=32, batch_size=8,
                          model_settings="g_width=8 d_width=8", canvas="32x40")
    try:
        deadline = time.time() + 600  # generous: a busy machine is slow, not broken
        while len(loss_rows(studio.training_status("watch")[0])) < 2:
            assert time.time() < deadline, studio.training_status("watch")[1]
            time.sleep(0.2)
        status, line = studio.training_status("watch")
        assert status.running and line.startswith("watch: running, step ")
        assert studio.training_runs()[0] == "watch"  # running jobs first
        with pytest.raises(BrushworkError, match="already running"):
            studio.start_training("other", "vae", "builtin:abstract:8", 10)
    finally:
        assert studio.stop_training("watch")
    assert studio.jobs.wait("watch", 600) == 0
    status, line = studio.training_status("watch")
    assert not status.running and "stopped" in line and status.step > 0
    assert studio.describe_run("watch")["size"] == [32, 40]  # a portrait canvas, trained from the page
    assert "press Resume to continue" in line and "--resume" not in line  # the page's own words


def test_info_reads_records_and_watermarks(studio, folders):
    made = studio.generate("gan", "9")[0]
    text, mark, regenerable = studio.info(_upload(studio, made.path))
    assert made.record["model_hash"] in text and "Seed: 9" in text and regenerable
    assert "watermark" in mark
    text, _, regenerable = studio.info(_upload(studio, folders["images"] / "photo2.png"))
    assert "no brushwork" in text and not regenerable


def test_server_exposure_rules():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert check_exposure(ServeOptions()) is None
    with pytest.raises(BrushworkError, match="--auth USER:PASSWORD"):
        check_exposure(ServeOptions(host="0.0.0.0"))
    assert "anyone with a password" in check_exposure(ServeOptions(host="0.0.0.0", auth=[("a", "b")]))
    assert "anyone who can reach it" in check_exposure(ServeOptions(host="0.0.0.0", insecure_no_auth=True))
    assert parse_auth(["ann:pa:ss"]) == [("ann", "pa:ss")]
    with pytest.raises(BrushworkError, match="auth entry 1: expected user:password"):
        parse_auth(["nopassword"])


def test_serve_refuses_an_open_host_with_one_line(tmp_path, capsys):
    assert main(["serve", "--host", "0.0.0.0", "--runs", str(tmp_path / "r"), "--outputs",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("brushwork: error: --host 0.0.0.0") and len(err.splitlines()) == 1
    auth = tmp_path / "auth.txt"
    auth.write_text("# logins\nann\n")
    assert main(["serve", "--auth-file", str(auth)]) == 2
    assert "auth entry 1" in capsys.readouterr().err


def test_stop_from_another_thread_is_safe_when_idle(studio):
    threads = [threading.Thread(target=studio.stop_style, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert studio._stops == {}


def test_file_guard_serves_only_images_and_videos_marked_nosniff():
    import asyncio

    from brushwork.ui.serve import FileGuard

    async def app(scope, receive, send):  # stands in for Gradio: serves anything
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served"})

    def get(path):
        sent = []

        async def send(message):
            sent.append(message)

        asyncio.run(FileGuard(app)({"type": "http", "path": path}, None, send))
        return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]

    for path in ("/gradio_api/file=/up/x.html", "/gradio_api/file/up/x.svg", "/gradio_api/file=/up/x.PNG.html",
                 "/gradio_api/file=/up/x", "/gradio_api/file=/etc/passwd"):
        assert get(path)[0] == 403, path
    status, headers, body = get("/gradio_api/file=/outputs/a/seed0001.PNG")
    assert status == 200 and headers[b"x-content-type-options"] == b"nosniff" and body == b"served"
    assert get("/")[2] == b"served" and b"x-content-type-options" not in get("/")[1]


def test_images_show_their_originality_badge_and_open_their_nearest_work(studio, tmp_path):
    from brushwork.provenance import save_png

    assert main(["index", "builtin:abstract:8", "--res", "32", "--quiet"]) == 0
    made = studio.generate("gan", "0-1")
    assert [m.caption.rsplit(" · ", 1)[0] for m in made] == ["seed 0", "seed 1"]
    assert all(m.caption.endswith((" · original", " · COPY")) for m in made)
    image, caption = studio.nearest_work(made[0].path)
    nearest = made[0].record["originality"]["nearest"]["edit"]["work"]
    assert image.size == (256, 256) and nearest in caption
    # a record may name only the data root's folders (or a built-in set)
    hostile = made[0].record | {"originality": made[0].record["originality"] | {"collection": "/etc"}}
    forged = studio.settings.outputs / "forged.png"
    save_png(Image.open(made[0].path), forged, hostile)
    with pytest.raises(BrushworkError, match="outside"):
        studio.nearest_work(forged)
