"""The studio end to end in a real headless Chromium: the server runs as ``brushwork serve`` on a
free loopback port with tiny trained runs, and each test works the page as a person would.
Screenshots of every tab go to tests/artifacts/ (git-ignored)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork.provenance import read_record
from brushwork.runs.builtin import installed
from studio_runs import make_studio_folders, noise_image

CHROMIUM = os.environ.get("BRUSHWORK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
pytest.importorskip("gradio", reason="the studio needs gradio (pip install -e '.[test]')")
playwright = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright")
if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium chromium-driver)",
                allow_module_level=True)
pytestmark = pytest.mark.slow
TIMEOUT = 300_000  # ms; a 2-core CI machine runs the server and the browser side by side,
# perhaps beside other work: waits are for conditions, with deadlines that only a hang reaches


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(folders: dict, cwd: Path, log_path: Path, *options: str):
    port = _free_port()
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "brushwork", "serve", "--port", str(port), "--runs", str(folders["runs"]),
         "--data", str(folders["data"]), "--outputs", str(folders["outputs"]), "--features", "random",
         "--device", "cpu", *options], cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return process, url
        except OSError:
            assert process.poll() is None, log_path.read_text()
            assert time.time() < deadline, "the studio did not start"
            time.sleep(0.3)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio")
    folders = make_studio_folders(root)
    cwd = root / "cwd"  # the server's working directory: nothing may be written there
    cwd.mkdir()
    (cwd / "secret.txt").write_text("not for the browser")
    process, url = _start_server(folders, cwd, root / "server.log", "--max-upload-mb", "0.5")
    yield {"url": url, "cwd": cwd, "root": root, "log": root / "server.log", **folders}
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browser_page(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page.set_default_timeout(TIMEOUT)
    outside = []  # any request that leaves this machine (fonts, scripts, analytics)
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith((server["url"], "data:", "blob:")) else None)
    page.goto(server["url"])
    page.wait_for_selector("#run-info")
    page.outside_requests = outside
    yield page
    page.close()


def _until(page, condition: str, timeout: float = TIMEOUT):
    """Wait for a JS condition; on a timeout, keep a screenshot and say what the page showed."""
    try:
        page.wait_for_function(f"(() => {{ try {{ return {condition}; }} catch (e) {{ return false; }} }})()",
                               timeout=timeout)
    except playwright.TimeoutError:
        page.screenshot(path=str(ARTIFACTS / "studio-failure.png"), full_page=True)
        toasts = page.locator(".toast-body").all_inner_texts()
        raise AssertionError(f"timed out waiting for {condition}; messages in the page: {toasts}")


def _value(selector: str) -> str:
    return f"document.querySelector('{selector}').value"


def _text(selector: str) -> str:
    return f"document.querySelector('{selector}').innerText"


def _tab(page, name):
    page.get_by_role("tab", name=name).click()


def _shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"studio-{name}.png"), full_page=True)


def _download(page, selector, tmp_path) -> Path:
    with page.expect_download() as info:
        page.locator(f"{selector} a").first.click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return target


def _gallery_count(page, selector, n):
    _until(page, f"document.querySelectorAll('{selector} .thumbnail-item').length >= {n}")


def server_errors(log: Path) -> list[str]:
    """The tracebacks in the studio's log, less those of uploads a closing page cut short (uvicorn
    logs starlette's ClientDisconnect: the browser left, the server did nothing wrong)."""
    parts = log.read_text().split("Traceback (most recent call last):")[1:]
    return [p for p in parts if "starlette.requests.ClientDisconnect" not in p.split("Traceback")[0][-400:]]


def _upload(page, selector, path):
    page.locator(f"{selector} input[type=file]").set_input_files(str(path))


def _upload_to_editor(page, selector, path):
    """Upload into an ImageEditor and wait until the editor has loaded the image: it then fits the
    view to the image, so its zoom reading changes (a stroke drawn earlier lands on the blank canvas
    that the upload then replaces, which a busy machine made happen)."""
    zoom = f"document.querySelector('{selector} span[role=button]')?.innerText"
    page.wait_for_selector(f"{selector} span[role=button]")  # the editor has drawn its blank canvas
    before = page.evaluate(zoom)
    _upload(page, selector, path)
    _until(page, f"{zoom} !== {before!r}")


def _choose_run(page, name: str, kind: str):
    page.get_by_label("Run (GAN, VAE, diffusion or autoencoder)").click()
    page.get_by_role("option", name=name, exact=True).click()
    _until(page, _text("#run-info") + f".includes('{kind}')")


def test_generate_download_reuse_seed_and_info_round_trip(server, browser_page, tmp_path):
    page = browser_page
    _choose_run(page, "gan", "GAN")
    page.locator("#seed input").fill("10")
    page.click("#generate-button")
    _gallery_count(page, "#gallery", 8)
    _shot(page, "generate")
    page.locator("#gallery .thumbnail-item").nth(2).click()  # seed 12
    _until(page, _value("#parameters textarea") + ".includes('Seed: 12')")
    downloaded = _download(page, "#download", tmp_path)
    record = read_record(downloaded)["brushwork"]
    assert record["seed"] == 12 and record["model_name"] == "gan" and record["truncation"] == 1.0
    page.locator("#seed input").fill("0")
    page.click("#reuse-seed")
    _until(page, _value("#seed input") + " === '12'")
    page.locator("#seed input").fill("0")  # "send to Generate" must set it back

    _tab(page, "Info")
    _upload(page, "#info-image", downloaded)
    _until(page, _value("#info-record textarea") + ".includes('model_hash')")
    assert record["model_hash"] in page.input_value("#info-record textarea")
    assert "watermark" in page.input_value("#info-watermark textarea")
    _shot(page, "info")
    page.click("#send-to-generate")
    _until(page, _text("#gallery") + ".includes('regenerated')")
    assert page.get_by_role("tab", name="Generate").get_attribute("aria-selected") == "true"
    assert page.input_value("#seed input") == "12"
    page.locator("#gallery .thumbnail-item").first.click()
    _until(page, _value("#parameters textarea") + ".includes('Seed: 12')")
    again = _download(page, "#download", tmp_path / "again")
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(downloaded)))


def test_gatys_style_transfer_previews_and_stops(server, browser_page, tmp_path):
    page = browser_page
    _tab(page, "Style transfer")
    _upload(page, "#content", server["images"] / "photo0.png")
    _upload(page, "#styles", server["data"] / "art" / "b" / "b1.jpg")
    steps = page.get_by_role("spinbutton", name="number input for Gatys steps")
    steps.fill("1000")  # long enough to be stopped
    steps.press("Tab")
    page.click("#stylize")
    _until(page, _text("#style-status") + ".includes('step ')")
    page.click("#stop-style")
    _until(page, _text("#style-status") + ".includes('stopped at step')")
    _shot(page, "style")
    record = read_record(_download(page, "#style-download", tmp_path))["brushwork"]
    assert record["method"] == "gatys" and 0 < record["stopped_at_step"] < 1000
    assert record["encoder"] == "random"


def test_paint_tab_draws_paints_downloads_and_takes_work_from_generate(server, browser_page, tmp_path):
    page = browser_page
    _choose_run(page, "diffusion", "DIFFUSION")
    _tab(page, "Paint")
    _upload_to_editor(page, "#paint-sketch", server["images"] / "photo1.png")  # 56 x 48
    page.locator("#paint-sketch button[aria-label='Brush']").first.click()
    box = page.locator("#paint-sketch canvas").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=8)
    page.mouse.up()
    page.locator("#paint-count input[type=number]").fill("2")
    page.locator("#paint-count input[type=number]").press("Tab")
    page.click("#paint-go")
    _until(page, _text("#paint-status") + ".includes('done')")
    _gallery_count(page, "#paint-gallery", 2)
    _shot(page, "paint")
    page.locator("#paint-gallery .thumbnail-item").nth(1).click()
    _until(page, _value("#paint-parameters textarea") + ".includes('Seed: 1')")
    painted = _download(page, "#paint-download", tmp_path)
    record = read_record(painted)["brushwork"]
    assert record["kind"] == "diffusion" and record["seed"] == 1 and record["paint"]["strength"] == 0.6
    assert Image.open(painted).size == (56, 48)  # the sketch's own size
    sketch = np.asarray(Image.open(server["images"] / "photo1.png").convert("RGB"))
    # the drawn stroke is part of the sketch the record names: not the uploaded file's hash
    import hashlib

    assert record["paint"]["sketch_sha256"] != hashlib.sha256((server["images"] / "photo1.png").read_bytes()).hexdigest()
    assert not np.array_equal(np.asarray(Image.open(painted).convert("RGB")), sketch)

    _tab(page, "Generate")
    page.locator("#seed input").fill("4")
    page.click("#generate-button")
    _until(page, _text("#gallery") + ".includes('seed 4')")
    page.locator("#gallery .thumbnail-item").first.click()
    _until(page, _value("#parameters textarea") + ".includes('Seed: 4')")
    page.click("#generate-to-paint")
    _until(page, "document.querySelector('[role=tab][aria-selected=true]').innerText.includes('Paint')")
    page.click("#paint-go")
    _until(page, _text("#paint-status") + ".includes('done')")
    assert not server_errors(server["log"])


def test_originality_shows_neighbours(server, browser_page):
    page = browser_page
    _tab(page, "Generate")
    page.locator("#gallery .thumbnail-item").first.click()
    _tab(page, "Originality")
    page.click("#originality-use-selected")
    page.wait_for_selector("#originality-image a")
    page.click("#originality-check")
    _until(page, _value("#verdict textarea") + ".length > 0")
    assert page.input_value("#verdict textarea").startswith(("original", "COPY"))
    _gallery_count(page, "#neighbours", 3)
    _shot(page, "originality")


def test_training_job_starts_shows_progress_and_stops(server, browser_page):
    page = browser_page
    _tab(page, "Train")
    page.locator("#train-name textarea, #train-name input").first.fill("tiny")
    page.locator("#train-steps input").fill("100000")
    page.locator("#train-batch input").fill("8")
    page.locator("#train-settings textarea, #train-settings input").first.fill("g_width=8 d_width=8")
    page.get_by_label("Resolution").click()
    page.get_by_role("option", name="32").click()
    page.locator("#train-canvas textarea, #train-canvas input").first.fill("32x40")
    page.click("#train-fit-canvas")  # the built-in set is square: the canvas field is cleared
    _until(page, _value("#train-status textarea") + ".includes('the built-in set is square')")
    assert page.locator("#train-canvas textarea, #train-canvas input").first.input_value() == ""
    page.click("#train-start")
    _until(page, _value("#train-status textarea") + ".includes('tiny: running, step')")
    _until(page, "document.querySelector('#train-grid img') !== null", timeout=600_000)
    _shot(page, "train")
    page.reload()  # the page closes and opens again: the job is still running, and shown
    page.wait_for_selector("#run-info")
    _tab(page, "Train")
    _until(page, _value("#train-status textarea") + ".includes('tiny: running, step')")
    page.click("#train-stop")
    _until(page, _value("#train-status textarea") + ".includes('tiny: stopped')", timeout=600_000)
    assert (server["runs"] / "tiny" / "checkpoints").is_dir()


@pytest.mark.skipif(not installed("base"), reason="the built-in base is not installed (a slim install)")
def test_adapt_button_starts_lora_from_the_base_and_stops(server, browser_page):
    page = browser_page
    _tab(page, "Train")
    page.locator("#train-name textarea, #train-name input").first.fill("adapted")
    page.locator("#train-batch input").fill("4")
    page.locator("#train-data input").click()
    page.get_by_role("option", name="art", exact=True).click()
    page.click("#train-adapt")
    _until(page, _value("#train-status textarea") + ".includes('adapted: running, step')")
    metrics, deadline = server["runs"] / "adapted" / "metrics.jsonl", time.time() + 600
    while not (metrics.is_file() and metrics.read_text().strip()):  # training has begun (log rows)
        assert time.time() < deadline, "the adapting job logged no step"
        time.sleep(1)
    _shot(page, "train-adapt")
    page.click("#train-stop")
    _until(page, _value("#train-status textarea") + ".includes('adapted: stopped')", timeout=600_000)
    config = json.loads((server["runs"] / "adapted" / "config.json").read_text())
    assert config["train"]["init_from"] == "builtin:base" and config["model"]["adapter"] == "lora"
    assert config["labels"][-2:] == ["a", "b"]  # the folder's two styles, new to the base
    assert config["train"]["steps"] > 0 and config["model"]["adapter_rank"] > 0  # chosen for 12 works
    assert not server_errors(server["log"])
    shutil.rmtree(server["runs"] / "adapted")  # the other tests name the runs they expect in lists


def test_refusals_forbidden_file_and_oversized_upload(server, browser_page, tmp_path):
    page = browser_page
    for path in [server["cwd"] / "secret.txt", "/etc/passwd", f"{server['outputs']}/../cwd/secret.txt",
                 str(server["cwd"] / "secret.txt").replace("/", "%2f"), str(server["cwd"] / "SECRET.TXT"),
                 "http://127.0.0.1:1/x"]:
        response = page.request.get(f"{server['url']}/gradio_api/file={path}")
        assert response.status in (403, 404), path
        assert b"not for the browser" not in response.body()
    info = page.request.get(f"{server['url']}/gradio_api/info")  # no public API: nothing listed
    assert info.status != 200 or not (info.json().get("named_endpoints") or info.json().get("unnamed_endpoints"))
    log = server["log"].read_text()
    assert "share=True" not in log and "brushwork studio running at http://127.0.0.1:" in log
    for name, mime in (("x.html", "text/html"), ("x.svg", "image/svg+xml")):  # never rendered
        uploaded = page.request.post(f"{server['url']}/gradio_api/upload", multipart={"files": {
            "name": name, "mimeType": mime, "buffer": b"<svg><script>alert(1)</script></svg>"}}).json()[0]
        for route in ("file=", "file/"):
            response = page.request.get(f"{server['url']}/gradio_api/{route}{uploaded}")
            assert response.status == 403 and b"script" not in response.body(), (route, name)
    _tab(page, "Reproduce")
    big = noise_image(tmp_path / "big.png", 3, (600, 600))  # ~1 MB > --max-upload-mb 0.5
    _upload(page, "#artwork-b", big)
    page.wait_for_selector("text=/exceeds|too large|maximum/i")
    _shot(page, "refused-upload")
    _upload(page, "#artwork-a", server["images"] / "photo1.png")  # a user mistake: one artwork
    page.click("#blend")
    _until(page, "document.body.innerText.includes('no second image')")
    assert not server_errors(server["log"])  # a user's mistake is no server error
    for name in ("explore", "reproduce"):
        _tab(page, name.capitalize())
        _shot(page, name)
    assert page.outside_requests == []  # works offline: nothing fetched from elsewhere
    assert sorted(p.name for p in server["cwd"].iterdir()) == ["secret.txt"]  # nothing written beside


def test_a_full_queue_gives_a_readable_message_and_stop_still_works(server, browser):
    process, url = _start_server(server, server["cwd"], server["root"] / "queue.log", "--max-queue", "1")
    try:
        if True:
            pages = [browser.new_page(viewport={"width": 1280, "height": 900}) for _ in range(3)]
            for i, page in enumerate(pages):
                page.set_default_timeout(TIMEOUT)
                page.goto(url)
                page.wait_for_selector("#run-info")
                _tab(page, "Style transfer")
                _upload(page, "#content", server["images"] / "photo1.png")
                _upload(page, "#styles", server["data"] / "art" / "b" / "b2.jpg")
                steps = page.get_by_role("spinbutton", name="number input for Gatys steps")
                steps.fill("1000")
                steps.press("Tab")
                _until(page, "document.querySelector('#styles a') !== null")
            pages[0].click("#stylize")  # runs (the one device slot)
            _until(pages[0], _text("#style-status") + ".includes('step ')")
            pages[1].click("#stylize")  # waits: the queue now holds its one request
            _until(pages[1], "!document.querySelector('#style-status .wrap').classList.contains('hide')")  # queued
            pages[2].click("#stylize")  # refused, readably
            _until(pages[2], "document.body.innerText.toLowerCase().includes('currently busy')")
            pages[2].screenshot(path=str(ARTIFACTS / "studio-queue-full.png"), full_page=True)
            pages[0].click("#stop-style")  # not queued: answers while the queue is full
            _until(pages[0], _text("#style-status") + ".includes('stopped at step')")
            _until(pages[1], _text("#style-status") + ".includes('step ')")
            pages[1].click("#stop-style")
            _until(pages[1], _text("#style-status") + ".includes('stopped at step')")
            for page in pages:
                page.close()
    finally:
        process.terminate()
        process.wait(30)


# Every tab's main action with every kind of run: its result, or one line saying which run it needs.
PAINTERS = ", ".join([*(["builtin:base"] if installed("base") else []), "diffusion", "latent"])
TAB_RESULTS = {  # run -> tab -> the result expected, or the words of the refusal
    "gan": {"Generate": "result", "Explore": "result", "Reproduce": "result",
            "Paint": f"gan is a gan run; painting needs a diffusion run (in the run list: {PAINTERS})"},
    "vae": {"Generate": "result", "Explore": "result", "Reproduce": "result",
            "Paint": "vae is a vae run; painting needs a diffusion run"},
    "diffusion": {"Generate": "result", "Explore": "result", "Paint": "result",
                  "Reproduce": "a diffusion run has no latent to project an artwork into"},
    "latent": {"Generate": "result", "Explore": "result", "Paint": "result",
               "Reproduce": "a diffusion run has no latent to project an artwork into"},
    **({"builtin:base": {"Generate": "result", "Explore": "result", "Paint": "result",  # before any training
                         "Reproduce": "a diffusion run has no latent to project an artwork into"}}
       if installed("base") else {}),
    "autoencoder": {"Reproduce": "result", "Generate": "not a gan, vae or diffusion run",
                    "Explore": "not a gan, vae or diffusion run",
                    "Paint": "autoencoder is an autoencoder run; painting needs a diffusion run"},
}
# per tab: (how to start its main action, a JS condition that its result has arrived)
TAB_ACTIONS = {
    "Generate": ("#generate-button", "document.querySelectorAll('#gallery .thumbnail-item').length > 0"),
    "Explore": ("text=Make the walk", "!!document.querySelector('#walk img')"),
    "Reproduce": ("#reconstruct", "document.querySelectorAll('#reproduced .thumbnail-item').length > 0"),
    "Paint": ("#paint-go", "document.querySelector('#paint-status').innerText.includes('done')"),
}


def _toasts(page) -> list[str]:
    return page.locator(".toast-body").all_inner_texts()


def _close_toasts(page) -> None:
    """Close every notice (they stay until closed, and Gradio groups alike ones under one)."""
    page.evaluate("document.querySelectorAll('.toast-body .toast-close').forEach(b => b.click())")
    _until(page, "document.querySelectorAll('.toast-body').length === 0")


@pytest.mark.parametrize("run", list(TAB_RESULTS))
def test_every_tab_with_every_kind_of_run(server, browser, run):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT)
    page.goto(server["url"])
    page.wait_for_selector("#run-info")
    _choose_run(page, run, "DIFFUSION" if run in ("latent", "builtin:base") else run.upper())
    for tab, expected in TAB_RESULTS[run].items():
        _tab(page, tab)
        if tab == "Reproduce":
            _upload(page, "#artwork-a", server["images"] / "photo0.png")
        if tab == "Paint":
            _upload_to_editor(page, "#paint-sketch", server["images"] / "photo1.png")
        _close_toasts(page)
        start, arrived = TAB_ACTIONS[tab]
        page.click(start)
        if expected == "result":
            _until(page, arrived)
            assert _toasts(page) == [], f"{run} / {tab}: {_toasts(page)}"
        else:
            _until(page, "document.querySelectorAll('.toast-body').length > 0")
            said = _toasts(page)[-1]
            assert expected in said and "went wrong" not in said, f"{run} / {tab}: {said}"
    _shot(page, f"tabs-{run}")
    # no picture offers Gradio's share button (it only works on Hugging Face Spaces)
    assert page.locator("button[aria-label='Share'], button[title='Share'], .share-button").count() == 0
    page.close()
    assert not server_errors(server["log"])
