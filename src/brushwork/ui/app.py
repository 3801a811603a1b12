"""The studio's page: Gradio widgets wired to ``Studio`` actions, and nothing else.

Every handler goes through ``_page`` (or ``_page_stream`` for generators), so a mistake a user
can make shows one readable line in the page and anything unexpected shows a short notice while
the server log keeps the traceback. Uploads are ``gr.File`` inputs, never rendered as given:
the page shows only images brushwork decoded and wrote itself.
"""

from __future__ import annotations

import functools
import logging

import gradio as gr

from brushwork.errors import BrushworkError, WeightsUnavailable
from brushwork.ui.studio import Studio, loss_rows, made

log = logging.getLogger("brushwork.studio")
IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"]
# every picture's buttons: Gradio's share button only works on Hugging Face Spaces (elsewhere it
# answers "Must be on Spaces to share"), so it is never shown
NO_SHARE = ["download", "fullscreen"]
UNEXPECTED = "something went wrong on the server (the details are in its log)"
RUN_DATA = "(the run's training data)"
# the tabs each capability of a run opens (training.families.CAPABILITIES), said beside the run
TABS_FOR = {"sample": "Generate, Explore", "paint": "Paint", "encode": "Reproduce", "project": "Reproduce"}
_STUDIO: Studio | None = None  # the page's studio: turns its absolute folders into names in messages


def theme() -> gr.themes.Base:
    """Gradio's default look with system fonts only: nothing is fetched from the internet."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "Consolas", "monospace"])


def _readable_error(exc: Exception) -> gr.Error:
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, WeightsUnavailable):  # the studio's own option, not a command's
        exc.option = "the studio's --features PATH (restart brushwork serve with it)"
    if isinstance(exc, BrushworkError):
        return gr.Error(_STUDIO.public(str(exc)) if _STUDIO else str(exc), print_exception=False)
    log.exception("studio action failed")
    return gr.Error(UNEXPECTED, print_exception=False)


def _notice(exc: Exception):
    """A mistake (or a failure) said in a notice that stays until it is closed, while the page
    keeps what it showed: every output is left as it was (raising would blank the outputs)."""
    gr.Warning(_readable_error(exc).message, duration=None)
    return gr.skip()


def _page(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            return _notice(exc)
    return wrapper


def _page_stream(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            yield from fn(*args, **kwargs)
        except Exception as exc:
            yield _notice(exc)
    return wrapper


def _gallery(items) -> list[tuple[str, str]]:
    return [(str(m.path), m.caption) for m in items]


def build_app(studio: Studio, device_jobs: int = 1) -> gr.Blocks:
    """The whole page. Model-running events share one concurrency slot pool ("device")."""
    global _STUDIO
    _STUDIO = studio
    heavy = dict(concurrency_id="device", concurrency_limit=device_jobs)
    light = dict(queue=False)  # cheap and must always answer, even when the queue is full
    s = studio.settings
    with gr.Blocks(title="brushwork studio", analytics_enabled=False) as demo:
        gr.Markdown(f"## brushwork studio\nRuns: `{s.runs.name}/` · data: `{s.data.name}/` · "
                    f"outputs: `{s.outputs.name}/`")
        with gr.Row():
            runs = studio.run_names()  # the built-in base first: Generate and Paint work before any training
            run = gr.Dropdown(runs, value=runs[0] if runs else None, label="Run (GAN, VAE, diffusion or autoencoder)",
                              scale=4, elem_id="run")
            refresh = gr.Button("Refresh runs", scale=1, elem_id="refresh-runs")
            run_info = gr.Markdown(elem_id="run-info")
        with gr.Tabs() as tabs:
            generate = _generate_tab(studio, run, heavy, light)
            explore = _explore_tab(studio, run, generate, heavy)
            reproduce = _reproduce_tab(studio, run, generate, heavy)
            _paint_tab(studio, run, generate, [explore, reproduce], tabs, heavy, light)
            _style_tab(studio, heavy, light)
            _originality_tab(studio, run, generate, heavy)
            job = _train_tab(studio, light)
            _info_tab(studio, run, generate, tabs, heavy, light)

        @_page
        def describe(name, current_style):
            if not name:
                return "", gr.update(), gr.update(visible=False), gr.update(visible=False), gr.update(visible=False)
            d = studio.describe_run(name)
            choices = ["(seed's own)"] + d["styles"]
            text = (f"**{d['kind'].upper()}**, {'x'.join(map(str, d['size']))} px, step {d['step']}"
                    + (f", styles: {', '.join(d['styles'])}" if d["styles"] else "")
                    + (f", creative (creativity {d['creativity']})" if d["creative"] else "")
                    + f" (tabs: {', '.join(TABS_FOR[c] for c in d['can'] if c in TABS_FOR)})")
            return (text, gr.update(label=d["scale_name"] or "scale", visible=bool(d["scale_name"])),
                    gr.update(choices=choices, visible=d["conditional"],
                              value=current_style if current_style in choices else choices[0]),
                    gr.update(visible=d["conditional"]),
                    gr.update(choices=d["styles"], visible=d["conditional"] and "project" in d["can"],
                              value=d["styles"][0] if d["styles"] else None))

        described = [run_info, generate["scale"], generate["style"], generate["mix"], reproduce["style"]]
        run.change(describe, [run, generate["style"]], described, **light)
        refresh.click(_page(lambda: gr.update(choices=studio.run_names())), None, run, **light)
        demo.load(_page(lambda: gr.update(choices=studio.run_names())), None, run, **light).then(
            describe, [run, generate["style"]], described, **light)
        demo.load(_page(lambda: _jobs_choice(studio)), None, job, **light)  # a reopened page
    for fn in demo.fns.values():  # the page's own events only: no public API, nothing in /info
        fn.api_visibility = "private"
    return demo


CSS = """
#walk img, #blend img, #paint-forming img, #gallery img, #offspring img, #reproduced img,
#paint-gallery img, #neighbours img, #train-grid img, #nearest-work img { image-rendering: pixelated; }
#walk img, #blend img, #paint-forming img { min-height: 256px; object-fit: contain; }
"""  # small works enlarged with crisp pixels, not blurred


def _jobs_choice(studio: Studio):
    """The Train tab's job list, showing the running job (if any) when a page opens."""
    names = studio.training_runs()
    running = {p.name for p in studio.jobs.running()}
    return gr.update(choices=names, value=names[0] if names and names[0] in running else None)


def _generate_tab(studio: Studio, run, heavy, light) -> dict:
    with gr.Tab("Generate", id="generate"):
        with gr.Row():
            seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="seed")
            random_seed = gr.Button("Random seed", elem_id="random-seed")
            count = gr.Slider(1, studio.settings.max_images, 8, step=1, label="How many (seeds from this one)")
            scale = gr.Slider(0.1, 1.5, 1.0, step=0.05, label="truncation", elem_id="scale")
        with gr.Row():
            style = gr.Dropdown(["(seed's own)"], value="(seed's own)", label="Style", visible=False)
            mix = gr.Textbox(label="Style mix (e.g. baroque:0.6,romanticism:0.4)", visible=False)
            enlarge = gr.Dropdown(["(none)", *studio.upscaler_runs()], value="(none)", elem_id="generate-upscale",
                                  label="Enlarge with (an upscaler run)")
        go = gr.Button("Generate", variant="primary", elem_id="generate-button")
        gallery = gr.Gallery(buttons=NO_SHARE, label="Images", columns=6, height="auto", elem_id="gallery")
        paths = gr.State([])
        selected = gr.State(None)
        with gr.Row():
            download = gr.File(label="The selected image, as written (with its provenance record)",
                               elem_id="download", height=120)
            parameters = gr.Textbox(label="Its parameters", lines=4, elem_id="parameters")
            nearest = gr.Image(buttons=NO_SHARE, label=NEAREST_LABEL, elem_id="nearest-work", height=160, interactive=False)
        with gr.Row():
            reuse = gr.Button("Reuse this image's seed", elem_id="reuse-seed")
            to_a = gr.Button("Send to Explore as parent A", elem_id="to-parent-a")
            to_b = gr.Button("Send to Explore as parent B", elem_id="to-parent-b")
            to_paint = gr.Button("Send to Paint", elem_id="generate-to-paint")

    @_page
    def make(name, first, n, psi, style_name, mix_text, upscaler):
        first, n = int(first or 0), int(n)
        items = studio.generate(name, f"{first}-{first + n - 1}", psi, _style_choice(style_name),
                                mix_text or None, None if upscaler in (None, "(none)") else upscaler)
        return _gallery(items), [str(m.path) for m in items]

    @_page
    def select(items, event: gr.SelectData):
        path = items[event.index]
        return path, path, made(studio.readable(path)).parameters, _nearest_work(studio, path)

    go.click(make, [run, seed, count, scale, style, mix, enlarge], [gallery, paths], **heavy)
    enlarge.focus(_page(lambda: gr.update(choices=["(none)", *studio.upscaler_runs()])), None, enlarge, **light)
    random_seed.click(studio.random_seed, None, seed, **light)
    gallery.select(select, paths, [selected, download, parameters, nearest], **light)
    reuse.click(_page(lambda path: studio.seed_of(_chosen(path))), selected, seed, **light)
    return {"seed": seed, "count": count, "scale": scale, "style": style, "mix": mix,
            "gallery": gallery, "paths": paths, "selected": selected, "download": download,
            "parameters": parameters, "nearest": nearest, "to_a": to_a, "to_b": to_b, "to_paint": to_paint}


NEAREST_LABEL = "Its nearest training work (when the collection is indexed: brushwork index DATA)"


def _nearest_work(studio: Studio, path: str):
    """The selected image's nearest training work, as its record's originality verdict names it."""
    found = studio.nearest_work(path)
    if found is None:
        return gr.update(value=None, label=NEAREST_LABEL)
    image, caption = found
    return gr.update(value=image, label=caption)


def _chosen(path):
    if not path:
        raise BrushworkError("select an image in the gallery first")
    return path


def _explore_tab(studio: Studio, run, generate: dict, heavy) -> None:
    with gr.Tab("Explore", id="explore"):
        gr.Markdown("**Interpolation**: a walk through key seeds (and, on style-conditional runs, "
                    "key styles).")
        with gr.Row():
            seeds = gr.Textbox("3,7,11", label="Key seeds")
            styles = gr.Textbox(label="Key styles (conditional runs, comma list)")
            frames = gr.Slider(2, studio.settings.max_frames, 36, step=1, label="Frames")
            loop = gr.Checkbox(True, label="Loop")
            fmt = gr.Radio(["gif", "mp4"], value="gif", label="Format")
        walk_button = gr.Button("Make the walk", variant="primary")
        with gr.Row():
            walk_preview = gr.Image(buttons=NO_SHARE, label="Walk", type="filepath", interactive=False, elem_id="walk")
            walk_file = gr.File(label="Download")
        gr.Markdown("**Children** of parent A, or **crossbreeds** of A and B (images brushwork made; "
                    "every result records its lineage).")
        with gr.Row():
            parent_a = gr.File(label="Parent A", file_types=IMAGE_TYPES, elem_id="parent-a")
            parent_b = gr.File(label="Parent B", file_types=IMAGE_TYPES, elem_id="parent-b")
            n = gr.Slider(1, 16, 6, step=1, label="How many")
            strength = gr.Slider(0.0, 1.0, 0.3, step=0.05, label="Children: distance from the parent")
        with gr.Row():
            children = gr.Button("Children of A", elem_id="children")
            cross = gr.Button("Crossbreed A and B", elem_id="crossbreed")
        note = gr.Markdown(elem_id="explore-note")
        offspring = gr.Gallery(buttons=NO_SHARE, label="Offspring", columns=6, height="auto", elem_id="offspring")
        chosen = _selectable(offspring, "explore")

    @_page
    def make_walk(name, keys, key_styles, count, loop_it, kind):
        path = studio.interpolate(name, keys, count, 1.0, key_styles, loop_it, kind)
        return (str(path) if kind == "gif" else None), str(path)

    walk_button.click(make_walk, [run, seeds, styles, frames, loop, fmt], [walk_preview, walk_file], **heavy)
    children.click(_page(lambda a, k, w: (_gallery(studio.children(_chosen(a), k, w)), "")),
                   [parent_a, n, strength], [offspring, note], **heavy)
    cross.click(_page(lambda a, b, k: (_gallery(studio.crossbreed(_chosen(a), _chosen(b), k)),
                                       studio.crossbreed_note(a, b))),
                [parent_a, parent_b, n], [offspring, note], **heavy)
    generate["to_a"].click(_page(_chosen), generate["selected"], parent_a, queue=False)
    generate["to_b"].click(_page(_chosen), generate["selected"], parent_b, queue=False)
    return chosen


def _selectable(gallery, name: str) -> dict:
    """A gallery whose selected image can be sent to Paint (call inside its tab: the button is
    placed there)."""
    selected = gr.State(None)
    to_paint = gr.Button("Send the selected image to Paint", elem_id=f"{name}-to-paint")

    def select(items, event: gr.SelectData):
        item = (items or [])[event.index]
        return item[0] if isinstance(item, (list, tuple)) else item

    gallery.select(_page(select), gallery, selected, queue=False)
    return {"selected": selected, "to_paint": to_paint}


def _style_choice(style):
    return None if style in (None, "", "(seed's own)") else style


def _reproduce_tab(studio: Studio, run, generate: dict, heavy) -> None:
    with gr.Tab("Reproduce", id="reproduce"):
        gr.Markdown("Reconstruct an artwork, vary it, or blend two: a VAE run encodes them, a GAN "
                    "run finds them by projection (into the style chosen here, on style-conditional "
                    "runs). Diffusion runs: use Paint with a low strength.")
        with gr.Row():
            style = gr.Dropdown([], label="Style to project into", visible=False, elem_id="reproduce-style")
            image_a = gr.File(label="Artwork", file_types=IMAGE_TYPES, elem_id="artwork-a")
            image_b = gr.File(label="Second artwork (blend)", file_types=IMAGE_TYPES, elem_id="artwork-b")
            n = gr.Slider(1, 16, 6, step=1, label="Variations")
            temperature = gr.Slider(0.0, 1.5, 0.5, step=0.05, label="Variation temperature")
            frames = gr.Slider(2, 48, 12, step=1, label="Blend frames")
        with gr.Row():
            recon = gr.Button("Reconstruct", elem_id="reconstruct")
            vary = gr.Button("Variations", elem_id="variations")
            blend = gr.Button("Blend", elem_id="blend")
        message = gr.Markdown()
        results = gr.Gallery(buttons=NO_SHARE, label="Results", columns=6, height="auto", elem_id="reproduced")
        chosen = _selectable(results, "reproduce")
        blended = gr.Image(buttons=NO_SHARE, label="Blend", type="filepath", interactive=False, elem_id="blend-result")

    @_page
    def reconstruct(name, image, style):
        item, line = studio.reconstruct(name, image, _style_choice(style))
        return _gallery([item]), line

    recon.click(reconstruct, [run, image_a, style], [results, message], **heavy)
    vary.click(_page(lambda name, image, k, t, s: _gallery(studio.variations(name, image, k, t, 0, _style_choice(s)))),
               [run, image_a, n, temperature, style], results, **heavy)
    blend.click(_page(lambda name, a, b, f, s: str(studio.blend(name, a, b, f, _style_choice(s)))),
                [run, image_a, image_b, frames, style], blended, **heavy)
    return chosen | {"style": style}


def _paint_tab(studio: Studio, run, generate: dict, sources: list[dict], tabs, heavy, light) -> None:
    with gr.Tab("Paint", id="paint"):
        gr.Markdown("**Guided creation** with a diffusion run: draw or upload a sketch and the run paints "
                    "it in its collection's style. Paint a mask to repaint only that region (everything "
                    "else is kept exactly), or add margins to widen the canvas.")
        with gr.Row():
            sketch = gr.ImageEditor(label="Sketch: draw (brush, colours, eraser) or upload", type="filepath",
                                    format="png", canvas_size=(256, 256), sources=("upload", "clipboard"),
                                    brush=gr.Brush(colors=["#1f2a44", "#8c2f1b", "#d9a441", "#3e7c59",
                                                           "#6d8fb3", "#f2efe6"], color_mode="defaults"),
                                    layers=False, elem_id="paint-sketch")
            mask = gr.ImageEditor(label="Mask (optional): paint over the region to repaint", type="filepath",
                                  format="png", sources=(), brush=gr.Brush(colors=["#ff2d2d"], color_mode="fixed"),
                                  layers=gr.LayerOptions(allow_additional_layers=False, layers=["mask"]),
                                  elem_id="paint-mask")
        with gr.Row():
            use_sketch = gr.Button("Paint a mask over this sketch", elem_id="paint-mask-from-sketch")
            clear_mask = gr.Button("No mask", elem_id="paint-no-mask")
        with gr.Row():
            strength = gr.Slider(0.0, 1.0, 0.6, step=0.05, label="Strength (0 = the sketch, 1 = ignore it; "
                                 "use 1 for a masked region)", elem_id="paint-strength")
            seed = gr.Number(0, label="First seed", precision=0, minimum=0, elem_id="paint-seed")
            count = gr.Slider(1, 8, 4, step=1, label="How many", elem_id="paint-count")
            steps = gr.Slider(4, 64, 32, step=1, label="Steps", elem_id="paint-steps")
        with gr.Row():
            margins = [gr.Number(0, label=f"Extend {side} (px)", precision=0, minimum=0, elem_id=f"paint-{side}")
                       for side in ("left", "right", "top", "bottom")]
        with gr.Row():
            go = gr.Button("Paint", variant="primary", elem_id="paint-go")
            stop = gr.Button("Stop (keep the latest estimate)", elem_id="paint-stop")
        status = gr.Markdown(elem_id="paint-status")
        with gr.Row():
            forming = gr.Image(buttons=NO_SHARE, label="Forming", type="pil", interactive=False, format="png",
                               elem_id="paint-forming")
            gallery = gr.Gallery(buttons=NO_SHARE, label="Paintings", columns=4, height="auto", elem_id="paint-gallery")
        with gr.Row():
            download = gr.File(label="The selected painting, as written (with its record)",
                               elem_id="paint-download", height=120)
            parameters = gr.Textbox(label="Its record", lines=4, elem_id="paint-parameters")
        paths = gr.State([])

    @_page_stream
    def run_paint(name, editor, mask_editor, s, first, n, k, left, right, top, bottom, style, mix,
                  request: gr.Request):
        sketch_path = _composite(editor)
        mask_path = studio.mask_from_strokes(_strokes(mask_editor), sketch_path) if _strokes(mask_editor) else None
        extend = f"left={int(left or 0)},right={int(right or 0)},top={int(top or 0)},bottom={int(bottom or 0)}"
        first, n = int(first or 0), int(n)
        for update in studio.paint(name, sketch_path, mask_path, s, f"{first}-{first + n - 1}",
                                   _style_choice(style), mix or None, extend, int(k),
                                   session=request.session_hash):
            items = update.items
            yield (update.image, update.message, _gallery(items) if items is not None else gr.update(),
                   [str(m.path) for m in items] if items is not None else gr.update())

    @_page
    def select(items, event: gr.SelectData):
        path = items[event.index]
        return path, made(studio.readable(path)).parameters

    go.click(run_paint, [run, sketch, mask, strength, seed, count, steps, *margins, generate["style"],
                         generate["mix"]], [forming, status, gallery, paths], **heavy)
    stop.click(lambda request: studio.stop_paint(request.session_hash) and None,
               None, None, **light)
    gallery.select(select, paths, [download, parameters], **light)
    use_sketch.click(_page(lambda editor: {"background": _composite(editor), "layers": [], "composite": None}),
                     sketch, mask, queue=False)
    clear_mask.click(lambda: None, None, mask, queue=False)
    _send_buttons(generate, sources, sketch, tabs)


def _send_buttons(generate: dict, sources: list[dict], sketch, tabs) -> None:
    """"Send to Paint" under Generate, Explore and Reproduce: the selected image becomes the sketch."""
    for source in [generate, *sources]:
        source["to_paint"].click(_page(lambda path: ({"background": _chosen(path), "layers": [], "composite": None},
                                                     gr.Tabs(selected="paint"))),
                                 source["selected"], [sketch, tabs], queue=False)


def _composite(editor) -> str:
    """The flattened sketch an ImageEditor holds (its file, in the upload folder)."""
    if not editor or not (editor.get("composite") or editor.get("background")):
        raise BrushworkError("no sketch: draw one or upload an image first")
    return editor.get("composite") or editor["background"]


def _strokes(editor) -> str | None:
    """The mask editor's painted layer (its file), when anything was painted on it."""
    layers = (editor or {}).get("layers") or []
    return layers[0] if layers else None


def _style_tab(studio: Studio, heavy, light) -> None:
    with gr.Tab("Style transfer", id="style"):
        with gr.Row():
            content = gr.File(label="Content (photo)", file_types=IMAGE_TYPES, elem_id="content")
            styles = gr.File(label="Style image(s)", file_count="multiple", file_types=IMAGE_TYPES,
                             elem_id="styles")
            mask = gr.File(label="Mask (optional: white = stylise)", file_types=IMAGE_TYPES)
        with gr.Row():
            method = gr.Radio(["adain", "gatys"], value="gatys", label="Method", elem_id="method")
            adain_run = gr.Dropdown(studio.adain_runs(), label="AdaIN run", elem_id="adain-run")
            weights = gr.Textbox(label="Style weights (comma list, one per style)")
            strength = gr.Slider(0.0, 1.0, 1.0, step=0.05, label="Strength")
            preserve = gr.Radio(["none", "luminance", "coral"], value="none", label="Keep content colours")
        with gr.Row():
            steps = gr.Slider(10, 1000, 200, step=10, label="Gatys steps")
            size = gr.Slider(64, studio.settings.max_style_size, 384, step=32, label="Longest side (px)")
        with gr.Row():
            go = gr.Button("Stylise", variant="primary", elem_id="stylize")
            stop = gr.Button("Stop (keep the best so far)", elem_id="stop-style")
        status = gr.Markdown(elem_id="style-status")
        with gr.Row():
            result = gr.Image(buttons=NO_SHARE, label="Result", type="pil", interactive=False, format="png",
                              elem_id="style-result")
            download = gr.File(label="Download (with provenance)", elem_id="style-download")

    @_page_stream
    def run_style(c, s, w, m, a, st, pc, mk, n, sz, request: gr.Request):
        for update in studio.stylize(c, s or [], w, m, a, st, pc, mk, n, sz,
                                     session=request.session_hash):
            yield update.image, update.message, (str(update.path) if update.path else None)

    go.click(run_style, [content, styles, weights, method, adain_run, strength, preserve, mask,
                         steps, size], [result, status, download], **heavy)
    def stop_style(request: gr.Request):
        studio.stop_style(request.session_hash)

    stop.click(stop_style, None, None, **light)


def _originality_tab(studio: Studio, run, generate: dict, heavy) -> None:
    with gr.Tab("Originality", id="originality"):
        gr.Markdown("Is it new? The nearest training works to an image, by pixels (tiled L2) and "
                    "by VGG features, with the verdict.")
        with gr.Row():
            image = gr.File(label="Image to check", file_types=IMAGE_TYPES, elem_id="originality-image")
            data = gr.Dropdown([RUN_DATA, *studio.data_choices()], value=RUN_DATA, label="Compare with",
                               elem_id="originality-data")
        with gr.Row():
            use_selected = gr.Button("Use the image selected in Generate", elem_id="originality-use-selected")
            check = gr.Button("Check", variant="primary", elem_id="originality-check")
        verdict = gr.Textbox(label="Verdict", lines=4, elem_id="verdict")
        neighbours = gr.Gallery(buttons=NO_SHARE, label="The image and its nearest training works", columns=5,
                                height="auto", elem_id="neighbours")

    @_page
    def run_check(path, name, folder):
        folder = None if folder in (None, "", RUN_DATA) else folder
        text, near = studio.originality(path, name, folder)
        query = made(studio.readable(path), "checked image")
        details = "\n".join(f"{n.label}: {n.name} ({n.score:.4f})" for n in near)
        return f"{text}\n{details}", [(str(query.path), query.caption)] + [
            (n.image, n.label.split(" (")[0]) for n in near]  # short captions; the details above

    use_selected.click(_page(_chosen), generate["selected"], image, queue=False)
    check.click(run_check, [image, run, data], [verdict, neighbours], **heavy)


def _train_tab(studio: Studio, light) -> gr.Dropdown:
    with gr.Tab("Train", id="train"):
        with gr.Row():
            name = gr.Textbox(label="New run name", elem_id="train-name")
            family = gr.Radio(["gan", "vae", "diffusion"], value="gan", label="Family")
            data = gr.Dropdown(studio.data_choices(), value="builtin:abstract", label="Data",
                               elem_id="train-data")
            steps = gr.Number(2000, label="Steps", precision=0, minimum=1, elem_id="train-steps")
        with gr.Row():
            preset = gr.Dropdown(["modern", "dcgan", "seed"], value="modern", label="GAN preset")
            res = gr.Dropdown([32, 64], value=64, label="Resolution")
            canvas = gr.Textbox(label="Canvas WxH (blank: square), e.g. 64x80", elem_id="train-canvas")
            fit = gr.Button("Fit the collection's proportions", elem_id="train-fit-canvas")
            batch = gr.Number(64, label="Batch size", precision=0, minimum=1, elem_id="train-batch")
            conditional = gr.Checkbox(label="Style-conditional (GAN, diffusion; subfolders are styles)")
        with gr.Row():
            settings = gr.Textbox(label="Model settings (key=value, e.g. g_width=32 d_width=32)",
                                  elem_id="train-settings")
            start = gr.Button("Start training", variant="primary", elem_id="train-start")
            adapt = gr.Button("Adapt the base to this folder (LoRA, minutes)", elem_id="train-adapt")
        with gr.Row():
            job = gr.Dropdown(studio.training_runs(), label="Job", elem_id="train-job")
            stop = gr.Button("Stop (keeps a checkpoint)", elem_id="train-stop")
            resume = gr.Button("Resume to the steps above", elem_id="train-resume")
        status = gr.Textbox(label="Status", lines=2, elem_id="train-status")
        with gr.Row():
            # tall enough for the legend under the plot (at 260 px its entries were cut off)
            curve = gr.LinePlot(x="step", y="value", color="term", color_title="loss", label="Losses",
                                height=360, elem_id="train-losses")
            grid = gr.Image(buttons=NO_SHARE, label="Latest samples", type="filepath", interactive=False,
                            elem_id="train-grid")
        timer = gr.Timer(2.0)

    @_page
    def begin(n, fam, d, total, pre, r, cond, size, extra, wxh):
        studio.start_training(n, fam, d, total, pre, r, cond, size, extra, canvas=wxh)
        return gr.update(choices=studio.training_runs(), value=n)

    @_page
    def show(n):
        if not n:
            return "", None, None
        status_, line = studio.training_status(n)
        import pandas as pd

        rows = loss_rows(status_)
        return line, (pd.DataFrame(rows) if rows else None), (str(status_.grid) if status_.grid else None)

    @_page
    def end(n):
        if not n:
            raise BrushworkError("choose a job")
        return None if studio.stop_training(n) else gr.Warning(f"{n} is not running")

    start.click(begin, [name, family, data, steps, preset, res, conditional, batch, settings, canvas], job,
                **light)
    @_page
    def adapt_base(n, d, size):
        studio.adapt_base(n, d, size)
        return gr.update(choices=studio.training_runs(), value=n)

    adapt.click(adapt_base, [name, data, batch], job, **light)
    fit.click(_page(studio.fitting_canvas), [data, res], [canvas, status], **light)
    stop.click(end, job, None, **light)
    resume.click(_page(lambda n, total: studio.resume_training(n, total) and None), [job, steps], None, **light)
    timer.tick(show, job, [status, curve, grid], **light)
    job.change(show, job, [status, curve, grid], **light)
    job.focus(_page(lambda: gr.update(choices=studio.training_runs())), None, job, **light)
    return job


def _info_tab(studio: Studio, run, generate: dict, tabs, heavy, light) -> None:
    with gr.Tab("Info", id="info"):
        image = gr.File(label="Any image", file_types=IMAGE_TYPES, elem_id="info-image")
        with gr.Row():
            record = gr.Textbox(label="Its record", lines=12, elem_id="info-record")
            watermark = gr.Textbox(label="Watermark", elem_id="info-watermark")
        send = gr.Button("Send to Generate (regenerate it exactly)", elem_id="send-to-generate")

    @_page
    def read(path):
        if not path:
            return "", ""
        text, mark, _ = studio.info(path)
        return text, mark

    @_page
    def regenerate(path):
        settings, item = studio.regenerate(_chosen(path))
        style = settings["style"] or "(seed's own)"
        return (gr.update(value=settings["run"]), settings["seed"] if settings["seed"] is not None else gr.update(),
                1, settings["scale"], gr.update(value=style), settings["mix"] or "",
                _gallery([item]), [str(item.path)], str(item.path), str(item.path), item.parameters,
                _nearest_work(studio, str(item.path)), gr.Tabs(selected="generate"))

    image.change(read, image, [record, watermark], **light)
    send.click(regenerate, image,
               [run, generate["seed"], generate["count"], generate["scale"], generate["style"],
                generate["mix"], generate["gallery"], generate["paths"], generate["selected"],
                generate["download"], generate["parameters"], generate["nearest"], tabs], **heavy)
