"""``brushwork demo``: learn the built-in abstract styles, then show imitation and innovation.

Two small GANs are trained on the procedural art (five styles): a style-conditional one (a row
of new works per style, and mixes of styles) and a creative one (CAN: rewarded for works that no
learned style explains); a small diffusion model then paints a crude sketch in each style and
repaints a region of a work. brushwork's own style judge then says how well each row hits its style
and how far the creative row strays. The amount of training is fixed (not a time budget), so a
slower or busier machine takes longer but shows the same pictures.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

import torch
from PIL import Image

from brushwork.config import RunConfig, TrainConfig, config_hash, gan_preset
from brushwork.data.dataset import load_dataset
from brushwork.evaluation import style_metrics
from brushwork.making.generate import load_model
from brushwork.imaging import save_figure, save_grid, unit_from_uint8
from brushwork.latents import latents_for_seeds
from brushwork.models.vgg import imagenet_weights_cached
from brushwork.runs.builtin import installed
from brushwork.runs.directory import read_run_config
from brushwork.training.families import ModelOptions, family
from brushwork.runs.checkpoint import latest_checkpoint
from brushwork.training.run import train_run
from brushwork.utils import atomic_write, ensure_dir, resolve_device
from brushwork.making.video import write_walk

DATA = "builtin:abstract"
COLUMNS = 8  # works per gallery row (seeds 0-7)
# Steps of the conditional model; the creative one trains CREATIVE_SHARE of them. Measured on an
# idle 2-core AVX512-BF16 CPU: 1,500 steps take about 85 s, and the style judge then places 82%
# of the conditional samples in the style asked for (see MODE_SEEKING).
CONDITIONAL_STEPS = 1500
# Conditioned from the start on 200 works per style, the generator nearly ignores z within a style
# (pairwise distance of samples 0.45x that of real works; ramping the conditioning in over 32k
# images made it 0.31x). The mode-seeking term restores variety at some cost in style accuracy:
# weight 0: 0.45x, 95% judged as asked; 0.05: 0.73x, 86%; 0.1: 0.82x, 82%; 0.15: 0.93x, 75%;
# 0.2: 0.94x, 67% (one seed each; variety = style_variety of ``evaluation.style_metrics``).
MODE_SEEKING = 0.1
CREATIVE_SHARE = 2 / 3
EVAL_SAMPLES = 250  # images the innovation figures are measured on
# The diffusion model that paints the built-in sketch: a small style-conditional U-Net (no
# attention: on the CPU it cost 40% of the step at this size) with a fast schedule.
DIFFUSION_STEPS = 600
PAINT_STRENGTHS = (0.5, 0.8)  # the sketch's composition kept, then mostly the style's own
PAINT_GUIDANCE = 2.0  # classifier-free guidance: each row clearly in its style


def demo_config(device: torch.device, steps: int, mode: str) -> RunConfig:
    """The modern recipe at thumbnail size, ``mode`` "conditional" or "creative"."""
    on_gpu = device.type == "cuda"
    model = gan_preset("modern", 64 if on_gpu else 32)
    model.g_width = model.d_width = 64 if on_gpu else 32
    # A minutes-long schedule: 2.5x the preset's learning rates (measured on CPU when the preset
    # still used cutout, 60 s each: SWD 68 with faster rates and no cutout vs 229 without either).
    model.g_lr, model.d_lr = 5e-4, 1e-3
    # Transposed convs initialised as resize convs, not the preset's growing resize convs: with
    # these rates, 83.2% of samples judged as the style asked for vs 78.0% (one seed each).
    model.g_upsample = "transpose-as-resize"
    model.conditional, model.creative = mode == "conditional", mode == "creative"
    model.mode_seeking = MODE_SEEKING if model.conditional else 0.0
    train = TrainConfig(data=DATA, batch_size=64, steps=steps, log_every=25,
                        sample_every=max(50, steps // 8), ckpt_every=max(100, steps // 4),
                        device=str(device))
    return RunConfig(kind="gan", model=model, train=train)


def diffusion_demo_config(device: torch.device, steps: int) -> RunConfig:
    """A style-conditional diffusion model of the built-in art, sized for minutes on a CPU."""
    from brushwork.config import DiffusionConfig

    model = DiffusionConfig(resolution=32, width=32, blocks=1, attention_levels=0, conditional=True,
                            lr=2e-3, ema_halflife_kimg=2.0, sampling_steps=16)
    train = TrainConfig(data=DATA, batch_size=64, steps=steps, log_every=25,
                        sample_every=max(50, steps // 4), ckpt_every=max(100, steps // 2),
                        device=str(device))
    return RunConfig(kind="diffusion", model=model, train=train)


def crude_sketch(size: int = 32):
    """The demo's built-in sketch: a sky, a red sun and a green hill in flat colour blocks."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (110, 150, 200))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, size * 5 // 8, size, size), fill=(70, 110, 60))
    draw.ellipse((size // 4, size // 5, size * 5 // 8, size * 3 // 5), fill=(200, 60, 40))
    return img


SIDES = {"left": 0, "right": 0, "top": 0, "bottom": 0}  # no canvas widening


def _sketch_rows(model, out: Path, seeds: list[int], name: str = "painted.png", sketch_name: str = "sketch.png"
                 ) -> Path:
    """One row per style: the crude sketch painted at each of PAINT_STRENGTHS (half a row each)."""
    import numpy as np
    from PIL import Image

    from brushwork.making.paint import PaintInputs, paint

    sketch = np.asarray(crude_sketch(model.config.model.resolution)).copy()
    Image.fromarray(sketch).save(out / sketch_name)
    rows = []
    for style in getattr(model.config.model, "default_styles", None) or model.style_names:  # an adapted
        for strength in PAINT_STRENGTHS:                                                  # model's own
            rows.append(paint(model, PaintInputs(sketch, None, "", None, SIDES), seeds[:COLUMNS // 2], strength,
                              style=style))
    painted = torch.from_numpy(np.concatenate(rows)).permute(0, 3, 1, 2)
    save_grid(unit_from_uint8(painted), out / name, COLUMNS)
    return out / name


def _paint_rows(model, out: Path, seeds: list[int]) -> tuple[Path, Path]:
    """(one row per style: the sketch painted at each strength; a real work with its centre
    square repainted) as enlarged grids."""
    import numpy as np

    from brushwork.making.paint import PaintInputs, paint

    sides = SIDES
    _sketch_rows(model, out, seeds)
    real = load_dataset(DATA, model.config.model.resolution, progress=False)
    work = real.images[0].permute(1, 2, 0).numpy().copy()  # the first work of the first style
    r = work.shape[0]
    square = np.zeros((r, r), bool)
    square[r // 4: 3 * r // 4, r // 4: 3 * r // 4] = True
    inpainted = paint(model, PaintInputs(work, square, "", None, sides), seeds[:COLUMNS - 2], 1.0,
                      style=real.label_names[0])
    masked = work.copy()
    masked[square] = 128
    strip = torch.from_numpy(np.stack([work, masked, *inpainted])).permute(0, 3, 1, 2)
    save_grid(unit_from_uint8(strip), out / "inpainted.png", COLUMNS)
    return out / "painted.png", out / "inpainted.png"


def plot_losses(metrics: Path, out: Path) -> Path | None:
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss_d" in r]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    steps = [r["step"] for r in rows]
    for key in ("loss_d", "loss_g"):
        ax.plot(steps, [r[key] for r in rows], label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("hinge loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out)


def _train(cfg: RunConfig, run_dir: Path, label: str) -> Path:
    """Train (or continue) one demo model. Its folder is named after the model settings, so a
    demo folder made by another brushwork version keeps its old runs and trains a new one."""
    run_dir = run_dir.with_name(f"{run_dir.name}-{config_hash(cfg.model)[:8]}")
    if latest_checkpoint(run_dir) is not None:  # a previous demo: continue rather than refuse
        print(f"continuing the {label} model in {run_dir}", file=sys.stderr)
    print(f"training the {label} model ({cfg.train.steps} steps)", file=sys.stderr)
    train_run(cfg, run_dir, resume=True)
    return run_dir


def _mix_row(model, seeds: list[int]) -> torch.Tensor:
    """The first style blending into the second across the row, one seed per column."""
    a, b = model.style_names[:2]
    t = torch.linspace(0, 1, len(seeds))
    mixes = [{a: float(1 - w), b: float(w)} for w in t]
    return model.generate(latents_for_seeds(seeds, model.z_dim), mixes)


def _figures_table(names: list[str], cond: dict, creative: dict) -> str:
    rows = [("style judge accuracy on real works", f"{cond['judge_accuracy']:.0%}")]
    rows += [(f"conditional samples judged '{n}'", f"{cond[f'style_accuracy/{n}']:.0%}") for n in names]
    rows.append(("variety within a style: samples' pairwise distance / real works'",
                 f"{cond['style_variety']:.2f} (" + ", ".join(f"{n} {cond[f'style_variety/{n}']:.2f}"
                                                          for n in names) + ")"))
    rows += [("style ambiguity: real works / conditional / creative",
              f"{cond['real_ambiguity']:.2f} / {cond['ambiguity']:.2f} / {creative['ambiguity']:.2f}"),
             ("novelty (median nearest tiled L2): conditional / creative",
              f"{cond['novelty']:.2f} / {creative['novelty']:.2f}")]
    if "memorisation_rate" in cond:
        rows.append(("memorisation rate: conditional / creative",
                     f"{cond['memorisation_rate']:.1%} / {creative['memorisation_rate']:.1%}"))
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                               for k, v in rows) + "</table>"


PAGE_WIDTH = 900  # px of the page's column
MAX_ZOOM = 8  # small works are enlarged by a whole factor (crisp pixels), at most this one


def shown_size(image: Path) -> tuple[int, int]:
    """(width, height) an image is shown at: enlarged by the largest whole factor (up to MAX_ZOOM)
    that fits the page, so a 32 px walk is 256 px, not stretched to the page's width."""
    with Image.open(image) as img:
        w, h = img.size
    zoom = max(1, min(MAX_ZOOM, PAGE_WIDTH // w))
    return w * zoom, h * zoom


def _page(title: str, intro: str, sections: list[tuple[str, str, str]], folder: Path) -> str:
    items = "\n".join(f"<section><h2>{html.escape(h)}</h2><p>{html.escape(t)}</p>"
                      f"<img src='{html.escape(src)}' alt='{html.escape(h)}' "
                      f"width='{shown_size(folder / src)[0]}' height='{shown_size(folder / src)[1]}'></section>"
                      for h, t, src in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto;background:#faf8f4}"
            "img{display:block;max-width:100%;height:auto;image-rendering:pixelated;border:1px solid #ccc}"
            "th,td{text-align:left;padding:3px 12px}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{intro}{items}</body></html>")


def _step_seconds(task, batch: torch.Tensor, labels: torch.Tensor, repeats: int = 3) -> float:
    """Seconds of one training step of ``task`` on this machine as it is now (after a warm-up)."""
    import time

    task.train_step(batch, 0, labels)
    start = time.perf_counter()
    for i in range(repeats):
        task.train_step(batch, i + 1, labels)
    return (time.perf_counter() - start) / repeats


def estimate_minutes(device: torch.device, cond_steps: int, creative_steps: int, paint_steps: int) -> float:
    """The demo's duration, from a few timed steps of each model: said before the work starts, as
    the time depends on this machine's cores and on whatever else it is doing."""
    from brushwork.training.diffusion import DiffusionTask
    from brushwork.training.gan import GANTask

    torch_state = torch.get_rng_state()
    gan_cfg = demo_config(device, 1, "conditional").model
    gan_cfg.num_styles = 5
    diff_cfg = diffusion_demo_config(device, 1).model
    diff_cfg.num_styles = 5
    res = gan_cfg.resolution
    batch = torch.rand(64, 3, res, res, device=device) * 2 - 1
    labels = torch.arange(64, device=device) % 5
    gan = _step_seconds(GANTask(gan_cfg, device), batch, labels)
    if installed("base"):  # adapting the base: a step of its denoiser on a batch of latents
        diff_cfg = read_run_config(BASE).model
        diff_cfg.num_styles += 5
        latents = torch.randn(ADAPT_BATCH, *diff_cfg.space, device=device)
        diff = _step_seconds(DiffusionTask(diff_cfg, device), latents, labels[:ADAPT_BATCH] + 2, repeats=2)
    else:
        diff = _step_seconds(DiffusionTask(diff_cfg, device), batch[:, :, :32, :32], labels)
    torch.set_rng_state(torch_state)
    # measuring (style judge, samples) took about as long as 600 GAN steps on the reference machine
    return ((cond_steps + creative_steps + 600) * gan + paint_steps * diff) / 60


BASE = "builtin:base"
ADAPT_DATA = "builtin:abstract:8"  # 8 works of each built-in style: 40 works, five styles the base never saw
ADAPT_STEPS = 150  # LoRA steps of batch 32 (4,800 images, 120 passes)
ADAPT_RANK = 8
ADAPT_BATCH = 32
BASE_SAMPLING = {"steps": 16, "guidance": 2.0}  # half the default steps: the demo's pictures in seconds


def base_sections(out: Path, dev: torch.device, steps: int = ADAPT_STEPS) -> tuple[list[tuple[str, str, str]], object]:
    """(sections, the adapted model): the shipped base before any training (a row of works per
    style, the sketch painted in its styles) and the base adapted to the built-in art with LoRA
    (ADAPT_STEPS steps). ([], None), with a line, when the base is not installed."""
    if not installed("base"):
        print(f"{BASE} is not installed (a slim install): the demo trains its own painter instead", file=sys.stderr)
        return [], None
    base = load_model(BASE, str(dev)).using(sampling=BASE_SAMPLING)
    seeds = list(range(COLUMNS))
    print(f"making works with {BASE}", file=sys.stderr, flush=True)
    save_grid(torch.cat([base.generate_seeds(seeds, style=name) for name in base.style_names]), out / "base.png",
              COLUMNS)
    _sketch_rows(base, out, seeds, "base-painted.png", "base-sketch.png")
    model = family("diffusion").configure(ModelOptions(width=base.config.model.resolution, parent=BASE,
                                                       adapter="lora", rank=ADAPT_RANK))
    train = TrainConfig(data=ADAPT_DATA, batch_size=ADAPT_BATCH, steps=steps, log_every=25, sample_every=10**6,
                        ckpt_every=steps, init_from=BASE, device=str(dev))
    adapted_dir = _train(RunConfig(kind="diffusion", model=model, train=train), out / "adapted",
                         f"base adapted to the built-in art ({BASE}, LoRA)")
    adapted = load_model(adapted_dir, str(dev)).using(sampling=BASE_SAMPLING)
    new_styles = adapted.config.model.default_styles
    save_grid(torch.cat([adapted.generate_seeds(seeds, style=name) for name in new_styles]),
              out / "adapted.png", COLUMNS)
    return [
        ("brushwork's base model, before any training", f"{BASE}: latent diffusion at 128 px learned from "
         f"public-domain paintings; seeds 0-7 asked for each of its styles ({', '.join(base.style_names)}).",
         "base.png"),
        ("The base paints a sketch", f"The crude sketch painted by {BASE} in each style, four seeds at strength "
         f"{PAINT_STRENGTHS[0]}, then four at {PAINT_STRENGTHS[1]}.", "base-painted.png"),
        ("The base adapted to the built-in art", f"LoRA adapters of rank {ADAPT_RANK} learned in {steps} "
         f"steps from 40 works it never saw; seeds 0-7 in each new style ({', '.join(new_styles)}).",
         "adapted.png"),
    ], adapted


def run_demo(out: Path, device: str = "auto", steps: int | None = None) -> Path:
    """Train both models and write the gallery; returns index.html. ``steps`` replaces the
    conditional model's step count (the creative model trains 2/3 as many)."""
    dev = resolve_device(device)
    out = ensure_dir(out)
    steps = steps or CONDITIONAL_STEPS
    creative_steps = max(1, int(steps * CREATIVE_SHARE))
    paint_steps = max(1, int(steps * DIFFUSION_STEPS / CONDITIONAL_STEPS))
    adapt_steps = max(1, int(steps * ADAPT_STEPS / CONDITIONAL_STEPS))
    third = (f"adapts {BASE} to it ({adapt_steps:,} LoRA steps)" if installed("base") else
             f"trains a small painter ({paint_steps:,} diffusion steps)")
    minutes = estimate_minutes(dev, steps, creative_steps, adapt_steps if installed("base") else paint_steps)
    print(f"the demo learns the built-in art with two small GANs ({steps:,} + {creative_steps:,} steps), {third} "
          f"and measures them: about {minutes:.0f} minutes on this machine as busy as it is now",
          file=sys.stderr, flush=True)
    from_base, adapted = base_sections(out, dev, adapt_steps)
    cond_cfg = demo_config(dev, steps, "conditional")
    cond_dir = _train(cond_cfg, out / "run", "style-conditional GAN")
    creative_dir = _train(demo_config(dev, creative_steps, "creative"), out / "creative", "creative GAN")
    if adapted is not None:  # the adapted base paints the built-in styles at 128 px
        painter, painted_by = adapted, f"The base adapted to the same art ({adapted.step:,} LoRA steps)"
    else:  # a slim install: a small diffusion model of the art, trained here
        paint_dir = _train(diffusion_demo_config(dev, paint_steps), out / "paint", "diffusion (painting)")
        painter = load_model(paint_dir, str(dev)).using(sampling={"guidance": PAINT_GUIDANCE})
        painted_by = f"A diffusion model of the same art ({painter.step:,} steps)"

    cond, creative = load_model(cond_dir, str(dev)), load_model(creative_dir, str(dev))
    names, seeds = cond.style_names, list(range(COLUMNS))
    rows = [cond.generate_seeds(seeds, style=name) for name in names]
    save_grid(torch.cat(rows), out / "styles.png", COLUMNS)
    save_grid(_mix_row(cond, seeds), out / "mix.png", COLUMNS)
    save_grid(creative.generate_seeds(seeds), out / "creative.png", COLUMNS)
    write_walk(cond, [7], 60, out / "walk.gif", fps=15, loop=True, styles=names)
    _paint_rows(painter, out, seeds)
    real = load_dataset(DATA, cond_cfg.model.resolution, progress=False)
    picks = torch.cat([(real.labels == k).nonzero().flatten()[:COLUMNS] for k in range(len(names))])
    save_grid(unit_from_uint8(real.images[picks]), out / "training_art.png", COLUMNS)
    print("measuring the innovation figures", file=sys.stderr)
    features = "imagenet" if imagenet_weights_cached() else None  # memorisation needs VGG19 weights
    figures = [style_metrics(m, real, EVAL_SAMPLES, dev, features) for m in (cond, creative)]
    plot = plot_losses(cond_dir / "metrics.jsonl", out / "losses.png")
    shown = f"{cond.step:,} steps, {cond.step * cond_cfg.train.batch_size:,} images shown"
    sections = from_base + [
        ("New works, a row per style", f"Seeds 0-7 asked for each style in turn ({', '.join(names)}; "
         f"{shown}).", "styles.png"),
        ("Mixing styles", f"The same seeds, from pure {names[0]} to pure {names[1]}: the generator "
         f"mixes the two styles' embeddings.", "mix.png"),
        ("Creative mode", f"Seeds 0-7 of a creative adversarial network ({creative.step:,} steps): "
         f"rewarded for works the critic cannot place in any learned style.", "creative.png"),
        ("One seed walking through the styles", "Seed 7 blended from style to style, looping.",
         "walk.gif"),
        ("Painting a sketch in each style", f"{painted_by} "
         f"paints the crude sketch (sky, sun, hill; sketch.png), a row per style: four seeds at strength "
         f"{PAINT_STRENGTHS[0]} (the sketch's composition kept), then four at {PAINT_STRENGTHS[1]} "
         f"(mostly the style's own).", "painted.png"),
        ("Repainting a region", "A work, its centre square masked, and six repaintings of the square: "
         "every pixel outside it is the work's own.", "inpainted.png"),
        ("What it learned from", "The built-in procedural art, a row per style.", "training_art.png"),
    ]
    if plot:
        sections.append(("Training curves", "Discriminator and generator hinge losses "
                         "(conditional model).", "losses.png"))
    intro = ("<h2>Imitation and innovation, measured</h2><p>By brushwork's own style judge, a small "
             f"classifier trained on the real works ({EVAL_SAMPLES} samples per model).</p>"
             + _figures_table(names, *figures))
    page = out / "index.html"
    atomic_write(page, _page("brushwork demo", intro, sections, out).encode())
    atomic_write(out / "figures.json", json.dumps(dict(zip(("conditional", "creative"), figures)),
                                                  indent=2).encode())
    return page
