"""The ``brushwork`` command line: argument parsing only; all work is done by the library."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from brushwork import __version__
from brushwork.errors import BrushworkError, WeightsUnavailable


def number(kind: type = int, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False):
    """An argparse type for a number of ``kind`` within [low, high] (either end open, or absent):
    anything else is refused while parsing, in one line that says what is allowed."""
    lo = "" if low is None else f"{'(' if low_open else '['}{low:g}"
    hi = "" if high is None else f"{high:g}{')' if high_open else ']'}"
    allowed = (f"in {lo}, {hi}" if lo and hi else f"{'>' if low_open else '>='} {low:g}" if lo
               else f"{'<' if high_open else '<='} {high:g}")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        below = low is not None and (value < low or (low_open and value == low))
        above = high is not None and (value > high or (high_open and value == high))
        if below or above or value != value:  # value != value: NaN
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    parse.__name__ = "integer" if kind is int else "number"  # argparse names the type on errors
    return parse


COUNT = number(int, 1)  # how many of something: at least one
STEPS_OR_ZERO = number(int, 0)
SEED = number(int, 0, 2**32 - 1)
FRACTION = number(float, 0, 1)  # strengths and the like
FPS = number(float, 0, 100, low_open=True)  # GIF frames last at least 10 ms


class Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line said in one line (the usage is in --help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_common_train_args(p) -> None:
    p.add_argument("--data", default="builtin:abstract", help="image folder, or builtin:abstract")
    p.add_argument("--out", required=True, help="run directory (config, checkpoints, samples, logs)")
    p.add_argument("--res", type=number(int, 16), default=64,
                   help="square training resolution (32..256; the fastgan preset 32..1024); "
                        "--size WxH for other canvases")
    p.add_argument("--batch-size", type=COUNT)
    p.add_argument("--steps", type=STEPS_OR_ZERO, help="total optimisation steps")
    p.add_argument("--log-every", type=COUNT)
    p.add_argument("--ckpt-every", type=COUNT)
    p.add_argument("--sample-every", type=COUNT)
    p.add_argument("--seed", type=SEED)
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--crop", choices=["center", "random"])
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any model setting: --set g_width=32 (GAN), --set width=32 (VAE)")
    p.add_argument("--eval-every", type=STEPS_OR_ZERO, help="steps between quality evaluations (0 = off)")
    p.add_argument("--eval-n", type=number(int, 2), help="images per evaluation")
    p.add_argument("--eval-metrics", help="comma list of swd, fid, kid, pr")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summaries")
    p.set_defaults(func=cmd_train)


def _add_canvas_args(p) -> None:
    canvas = p.add_mutually_exclusive_group()
    canvas.add_argument("--size", metavar="WxH", help="a canvas that is not square, e.g. 64x80 (portrait) "
                        "or 80x64: the shorter side a power of two, the longer a multiple of a quarter "
                        "of it, up to 1:4 (default: square, --res)")
    canvas.add_argument("--aspect", choices=["auto"], help="auto: the collection's typical proportions, "
                        "with --res as the shorter side (says how many works it crops)")


def _canvas(args) -> tuple[int, int] | None:
    """(width, height) asked by --size or --aspect auto, or None (square at --res)."""
    from brushwork.config import parse_size

    if getattr(args, "size", None):
        w, h = parse_size(args.size)
        return w, h or w
    if getattr(args, "aspect", None) == "auto":
        from brushwork.data.aspect import auto_canvas

        try:
            choice = auto_canvas(args.data, args.res)
        except BrushworkError as exc:
            raise BrushworkError(f"--aspect auto: {exc}") from None
        print(f"aspect auto: {choice.summary()}", file=sys.stderr)
        return choice.resolution, choice.height or choice.resolution
    return None


def _add_train_parsers(sub) -> None:
    p = sub.add_parser("gan", help="train a GAN on a folder of artworks (subfolders = styles)")
    _add_common_train_args(p)
    p.add_argument("--preset", default="modern", choices=["seed", "dcgan", "modern", "fastgan"],
                   help="modern (default), dcgan (textbook), seed (the original design), fastgan "
                        "(Liu et al. 2021: 128-1024 px from a few hundred works)")
    p.add_argument("--conditional", action="store_true",
                   help="one model for all style subfolders; sample with --style NAME")
    p.add_argument("--creative", action="store_true",
                   help="CAN: reward works that no learned style explains (needs two or more styles)")
    p.add_argument("--creativity", type=number(float, 0), help="weight of the style-ambiguity loss (default 1.0)")
    p.add_argument("--augment", choices=["fixed", "ada"], default="fixed",
                   help="fixed: the preset's DiffAugment on every image; ada: applied with a "
                        "probability that adapts to D's overfitting (StyleGAN2-ADA)")
    p.add_argument("--init-from", metavar="RUN", help="fine-tune: start from this GAN run's weights "
                   "(same preset and --res); images record its model hash")
    p.add_argument("--freeze-d", type=STEPS_OR_ZERO, metavar="N", help="with --init-from: keep D's first N "
                   "convolutions fixed (FreezeD)")
    p.add_argument("--balance-styles", action="store_true",
                   help="draw styles uniformly (default: as often as the data has them)")
    _add_canvas_args(p)
    p.set_defaults(family="gan")
    p = sub.add_parser("vae", help="train a VAE (learn a style; reproduce and vary artworks)")
    _add_common_train_args(p)
    p.add_argument("--latent-dim", type=COUNT, default=128)
    p.add_argument("--beta", type=number(float, 0), default=1.0, help="KL weight (lambda)")
    p.add_argument("--kl-warmup", type=STEPS_OR_ZERO, default=0, help="steps to ramp beta up from 0")
    p.add_argument("--recon", choices=["mse", "l1"], default="mse", help="reconstruction term")
    _add_canvas_args(p)
    p.set_defaults(family="vae", weights_option="--set vgg_weights=PATH")
    p = sub.add_parser("diffusion", help="train a diffusion model (EDM): sample it, or paint sketches, "
                       "repaint regions and widen canvases with it (brushwork paint)")
    _add_common_train_args(p)
    p.add_argument("--conditional", action="store_true",
                   help="learn the style subfolders; sample with --style NAME and --guidance")
    p.add_argument("--dropout", type=number(float, 0, 1, high_open=True), help="dropout in the U-Net's blocks (default 0; curbs "
                   "copying of small collections: 0.3 took 64 works from 38%% of samples copies to 14%%)")
    p.add_argument("--latent", metavar="AE", help="latent diffusion: learn in the latents of this autoencoder run "
                   "(brushwork train autoencoder), at its size; 128 px costs about what 32 px does in pixels")
    p.add_argument("--from", dest="init_from", metavar="RUN", help="adapt a trained diffusion run to --data: "
                   "builtin:base (brushwork's own prior, learned from public-domain paintings) or a run folder; "
                   "its settings are kept, steps and learning rate are chosen by the number of works")
    p.add_argument("--adapter", choices=["lora"], help="with --from: learn low-rank adapters on the frozen "
                   "model (a few per cent of its size) instead of changing every weight")
    p.add_argument("--rank", type=COUNT, help="the adapters' rank (default: 4, 8 or 16 by the number of works)")
    _add_canvas_args(p)
    p.set_defaults(family="diffusion", res=None)
    p = sub.add_parser("autoencoder", help="train an autoencoder whose latents a diffusion model can learn in "
                       "(brushwork train diffusion --latent AE)")
    _add_common_train_args(p)
    p.add_argument("--factor", type=int, choices=[4, 8], default=4,
                   help="downsampling per side: 4 (128 px -> 32 x 32 latents, default) or 8")
    p.add_argument("--channels", type=COUNT, default=4, help="latent channels (default 4)")
    p.add_argument("--features", metavar="FILE", help="VGG19 weights for the perceptual term (default: a "
                   "Laplacian-pyramid L1, which needs no downloaded weights)")
    _add_canvas_args(p)
    p.set_defaults(family="autoencoder", res=128)
    p = sub.add_parser("adain", help="train an AdaIN decoder for fast arbitrary style transfer")
    _add_common_train_args(p)
    p.add_argument("--content", dest="data", help="folder of content photos (same as --data)")
    p.add_argument("--style", dest="style_data", help="folder of style images (paintings)")
    p.add_argument("--encoder", default="imagenet", help="VGG19 weights: imagenet, random or a file")
    p.add_argument("--vgg-weights", help="a local VGG19 weights file (overrides --encoder)")
    p.set_defaults(family="adain", res=256, weights_option="--vgg-weights PATH")
    p = sub.add_parser("upscaler", help="train a super-resolution network on the collection's own works "
                       "(enlarge images with brushwork upscale --run)")
    _add_common_train_args(p)
    p.add_argument("--scale", type=int, choices=[2, 4], default=2, help="enlargement (default 2)")
    p.set_defaults(family="upscaler", res=128)


def _train_overrides(args) -> dict:
    names = {"batch_size": args.batch_size, "steps": args.steps, "log_every": args.log_every,
             "ckpt_every": args.ckpt_every, "sample_every": args.sample_every, "seed": args.seed,
             "device": args.device, "crop": args.crop, "eval_every": args.eval_every,
             "eval_n": args.eval_n, "eval_metrics": args.eval_metrics}
    out = {k: v for k, v in names.items() if v is not None}
    if args.no_flip:
        out["flip"] = False
    return out


def _run_canvas(run: str) -> tuple[int, int]:
    """(width, height or 0) of the works a run makes or encodes: the default size of a latent run
    (its autoencoder's) or an adapted one (its parent's)."""
    from brushwork.runs.directory import read_run_config

    model = read_run_config(_run_path(run)).model
    return model.resolution, getattr(model, "height", 0)


def _model_config(args):
    """The model config the command line asks for, built by the family's own builder."""
    from brushwork.training.families import ModelOptions, family

    if args.family == "diffusion" and args.res is None:  # pixels: 32 px; latents: the autoencoder's canvas;
        args.res = 32                                      # adapting: the parent's
        canvas_of = getattr(args, "init_from", None) or getattr(args, "latent", None)
        if canvas_of:
            args.res, height = _run_canvas(canvas_of)
            if height and not args.size and not args.aspect:
                args.size = f"{args.res}x{height}"
    width, height = (_canvas(args) if hasattr(args, "size") else None) or (args.res, args.res)
    options = ModelOptions(width=width, height=height, settings=args.set)
    for name in ("preset", "conditional", "creative", "creativity", "balance_styles", "augment", "latent_dim",
                 "beta", "recon", "dropout", "latent", "factor", "channels", "scale", "adapter", "rank"):
        if getattr(args, name, None) is not None:
            setattr(options, name, getattr(args, name))
    if getattr(args, "init_from", None) and family(args.family).adapts:
        options.parent = _run_path(args.init_from)  # the family takes its settings from the run it adapts
    options.freeze_d = getattr(args, "freeze_d", None) or 0
    options.kl_warmup = getattr(args, "kl_warmup", 0)
    if getattr(args, "features", None):  # files are found again from any folder later
        options.features = _absolute(args.features)
    if args.family == "adain":
        options.style_data = _absolute(args.style_data) if args.style_data else ""
        encoder = args.vgg_weights or args.encoder
        options.encoder = encoder if encoder in ("imagenet", "random") else _absolute(encoder)
    return family(args.family).configure(options)


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def _run_path(run: str) -> str:
    """A run as a config records it: a built-in model by name, a folder by absolute path."""
    from brushwork.runs.builtin import is_builtin

    return run if is_builtin(run) else _absolute(run)


def cmd_train(args) -> int:
    from brushwork.config import RunConfig, TrainConfig, image_size
    from brushwork.runs.directory import read_run_config
    from brushwork.training.families import family, next_step_hint
    from brushwork.training.run import refuse_other_size, train_run

    from brushwork.runs.checkpoint import latest_checkpoint

    run_dir = Path(args.out)
    if args.resume and latest_checkpoint(run_dir) is None:
        raise BrushworkError(f"nothing to resume in {run_dir}: it holds no checkpoint (train it without "
                             f"--resume to start)")
    if args.resume and (run_dir / "config.json").exists():
        run_cfg = read_run_config(run_dir)  # the run's own settings; only schedule/device change
        if run_cfg.kind != args.family:
            raise BrushworkError(f"{run_dir} is a {run_cfg.kind} run; resume it with "
                                 f"'brushwork train {run_cfg.kind}'")
        run_cfg.train = dataclasses.replace(run_cfg.train, **_train_overrides(args))
        if getattr(args, "latent", None):
            from brushwork.training.latent import check_same_autoencoder

            check_same_autoencoder(run_cfg.model, args.latent)
        asked = _canvas(args) if getattr(args, "size", None) else None
        if asked is not None:
            refuse_other_size(run_dir, image_size(run_cfg.model), (asked[1], asked[0]))
    else:
        train = dataclasses.replace(TrainConfig(data=args.data), **_train_overrides(args))
        if not args.data.startswith("builtin:"):
            train.data = str(Path(args.data).expanduser().resolve())
        if getattr(args, "init_from", None):
            train.init_from = _run_path(args.init_from)
            if args.steps is None and family(args.family).adapts:
                train.steps = 0  # chosen by the number of works when the data is read (training/adapt.py)
        elif getattr(args, "freeze_d", None):
            raise BrushworkError("--freeze-d goes with --init-from (fine-tuning a trained run)")
        from brushwork.config import FASTGAN_BATCH

        model = _model_config(args)
        if args.batch_size is None and getattr(model, "architecture", "") == "fastgan":
            train.batch_size = FASTGAN_BATCH
        run_cfg = RunConfig(kind=args.family, model=model, train=train, version=__version__)
    trainer = train_run(run_cfg, run_dir, resume=args.resume, quiet=args.quiet)
    if not args.quiet and trainer.world.main:
        print(f"run saved in {run_dir} (step {trainer.step}); {next_step_hint(run_cfg.kind, run_dir)}",
              file=sys.stderr)
    return 0


def cmd_sample(args) -> int:
    from brushwork.making.generate import load_for_regeneration, load_model, write_images, write_seed_images
    from brushwork.latents import parse_seeds
    from brushwork.provenance import read_record
    from brushwork.provenance.c2pa import optional_credentials
    from brushwork.styles import style_request

    credentials = optional_credentials(args.c2pa_cert, args.c2pa_key)  # checked before any work
    run, out = args.run or args.run_option, Path(args.out)
    options = dict(metadata=not args.no_metadata, ext=args.format, watermark=args.watermark,
                   c2pa_credentials=credentials)
    if args.from_image and (args.sketch or args.mask):  # a painting, from the same sketch and mask
        from brushwork.making.paint import repaint_from_record

        paths = repaint_from_record(args.from_image, args.sketch, args.mask, out, run, args.runs,
                                    args.device, args.record_paths, getattr(args, "upscale", None))
    elif args.from_image:  # the recorded seed or lineage, truncation and style, remade exactly
        model, recipe, truncation, style = load_for_regeneration(args.from_image, run, args.runs,
                                                                 args.device)
        model = _judge(model.using(record_paths=args.record_paths), args)
        model = _enlarge(model, args, read_record(args.from_image).get("brushwork") or {})
        if any(getattr(args, k) is not None for k in ("sampler", "steps", "guidance", "truncation",
                                                      "temperature")):
            raise BrushworkError("--from remakes an image as it was made; it takes no --sampler, "
                                 "--steps, --guidance, --truncation or --temperature")
        model = _apply_sampling(model, argparse.Namespace())  # the recorded sampling, checked
        paths, _ = write_images(model, [recipe], [Path(args.from_image).stem], out, truncation,
                                style=style, **options)
    elif run is None or args.seeds is None:
        raise BrushworkError("sample needs RUN and --seeds (or --from IMAGE)")
    else:
        model = load_model(run, args.device, record_paths=args.record_paths)
        model = _apply_sampling(model, args)
        model = _judge(model, args)
        model = _enlarge(model, args)
        paths = write_seed_images(model, parse_seeds(args.seeds), out, _prior_scale(args),
                                  grid=args.grid, style=style_request(args.style, args.style_mix),
                                  avoid_copies=args.avoid_copies, **options)
    print(f"wrote {len(paths)} image(s) to {out}")
    return 0


def cmd_paint(args) -> int:
    from brushwork.latents import parse_seeds
    from brushwork.making.generate import load_model
    from brushwork.making.paint import how_it_was_handled, load_inputs, write_paintings
    from brushwork.styles import style_request

    seeds = parse_seeds(args.seeds)
    style = style_request(args.style, args.style_mix)
    model = load_model(args.run, args.device, record_paths=args.record_paths)
    model = _apply_sampling(model, args)
    model = _judge(model, args)
    model = _enlarge(model, args)
    inputs = load_inputs(args.sketch, args.mask, args.extend)
    strength = args.strength if args.strength is not None else 1.0 if inputs.repaint is not None else 0.6
    paths = write_paintings(model, inputs, seeds, Path(args.out), strength, style, args.resample,
                            metadata=not args.no_metadata, ext=args.format)
    print(how_it_was_handled(inputs, model))
    print(f"wrote {len(paths)} painting(s) to {args.out}")
    return 0


def cmd_breed(args) -> int:
    from brushwork.making.generate import breed_from_images

    paths = breed_from_images(args.images, Path(args.out), args.n, args.strength, args.seed, args.run,
                              args.runs, args.device, args.record_paths,
                              lambda model: _enlarge(_judge(model, args), args))
    print(f"wrote {len(paths)} {'children' if len(args.images) == 1 else 'crossbreeds'} to {args.out}")
    return 0


def cmd_interpolate(args) -> int:
    from brushwork.making.generate import load_model
    from brushwork.latents import parse_seeds
    from brushwork.making.video import write_walk

    model = load_model(args.run, args.device, record_paths=args.record_paths)
    model = _apply_sampling(model, args)
    model = _judge(model, args)
    styles = [s.strip() for s in args.styles.split(",")] if args.styles else None
    path = write_walk(model, parse_seeds(args.seeds), args.frames, Path(args.out),
                      truncation=_prior_scale(args), fps=args.fps, loop=args.loop,
                      metadata=not args.no_metadata, styles=styles)
    print(f"wrote {path}")
    return 0


def _prior_scale(args) -> float:
    """--truncation (GANs) and --temperature (VAEs) both scale the prior latents."""
    if args.temperature is not None and args.truncation is not None:
        raise BrushworkError("give --truncation (GAN) or --temperature (VAE), not both")
    value = args.temperature if args.temperature is not None else args.truncation
    return 1.0 if value is None else value


def _load_encoder(args):
    """A run that encodes artworks (VAE, autoencoder); GAN runs are told to project instead."""
    model = _load_projectable(args)
    if not model.can("encode"):
        raise BrushworkError(f"{args.run} is a {model.kind} run; this command needs a run that encodes "
                             "artworks (brushwork train vae or autoencoder; GAN runs: brushwork project RUN IMAGE)")
    return model


def _load_projectable(args):
    """A run whose latent space an artwork can be encoded or projected into (GAN, VAE, autoencoder)."""
    from brushwork.making.generate import load_model

    model = load_model(args.run, args.device, record_paths=args.record_paths)
    if not (model.can("encode") or model.can("project")):
        raise BrushworkError(f"{args.run} is a {model.kind} run, which has no latent to encode or project "
                             f"an artwork into; to reproduce or vary one with it, paint over it: "
                             f"brushwork paint {args.run} --sketch IMAGE --strength 0.3 (lower keeps more)")
    return model


def _projection_options(args):
    from brushwork.making.reproduce import ProjectionOptions

    return ProjectionOptions(steps=args.steps, distance=args.distance, features=args.features,
                             style=args.style)


def cmd_project(args) -> int:
    from brushwork.making.reproduce import project_file

    model = _load_projectable(args)
    paths, value, kind = project_file(model, args.image, Path(args.out), _projection_options(args))
    print(f"projected {args.image}: {kind} distance {value:.5f}")
    for name, path in paths.items():
        print(f"{name:>10}: {path}")
    return 0


def cmd_reconstruct(args) -> int:
    from brushwork.making.reproduce import reconstruct

    for path, value in reconstruct(_load_encoder(args), args.images, Path(args.out),
                                   metadata=not args.no_metadata):
        print(f"{path}  PSNR {value:.2f} dB")
    return 0


def cmd_variations(args) -> int:
    from brushwork.making.reproduce import gan_variations, variations

    model = _load_projectable(args)
    if model.can("project"):  # a GAN: projected, then children of the projection
        paths = gan_variations(model, args.image, args.n, args.temperature, Path(args.out), args.seed,
                               _projection_options(args))
        print(f"wrote {len(paths)} variation(s) of the projection of {args.image}")
        return 0
    model.require("sample")  # posterior samples need a prior to vary around (a VAE's)
    paths = variations(model, args.image, args.n, args.temperature, Path(args.out),
                       first_seed=args.seed, metadata=not args.no_metadata)
    print(f"wrote {len(paths) - 1} variation(s) and {paths[-1]}")
    return 0


def cmd_blend(args) -> int:
    from brushwork.making.reproduce import blend, gan_blend

    model = _load_projectable(args)
    if model.can("project"):
        out = gan_blend(model, args.image_a, args.image_b, args.frames, Path(args.out), args.fps,
                        _projection_options(args))
    else:
        model.require("sample")
        out = blend(model, args.image_a, args.image_b, args.frames, Path(args.out), args.fps,
                    metadata=not args.no_metadata)
    print(f"wrote {out}")
    return 0


def cmd_stylize(args) -> int:
    from brushwork.style.files import stylize_files

    for path in stylize_files(args):
        print(f"wrote {path}")
    return 0


def cmd_originality(args) -> int:
    from brushwork.originality_report import folder_to_check, images_to_check, originality, verdicts
    from brushwork.utils import resolve_device

    sources = [name for name, given in (("RUN", args.run), ("--image", args.image), ("--images", args.images))
               if given]
    if len(sources) > 1:
        raise BrushworkError(f"originality checks one thing at a time: give one of {', '.join(sources)}")
    device = resolve_device(args.device)
    if args.images:
        generated, names = folder_to_check(args.images, args.res)
    else:
        generated = images_to_check(args.run, args.image, args.n, args.res, args.device)
        names = [args.image] if args.image else [f"seed{i:04d}" for i in range(len(generated))]
    report = originality(generated, args.data, generated.shape[-1], args.features, device,
                         Path(args.report) if args.report else None, args.percentile)
    if args.json:  # one JSON object per image on stdout, nothing else
        for line in verdicts(report, names):
            print(json.dumps(line))
        return 0
    for key, value in report.summary().items():
        print(f"{key:>22}: {value}")
    # one image: its nearest works; many: the flagged ones (a run's seed = index) and theirs
    shown = [0] if args.image else report.copies.nonzero().flatten().tolist()
    if not args.image:
        print(f"{'flagged images':>22}: {len(shown) or 'none'}")
    for i in shown:
        near = report.nearest(i)
        label = "verdict" if args.image else names[i]
        how = f"  (flagged as: {', '.join(near['flagged_by'])})" if near["copy"] else ""
        print(f"{label:>22}: {'COPY' if near['copy'] else 'original'}{how}")
        print(f"{'nearest by tiled L2':>22}: {near['tiled_l2'][0]}  (distance {near['tiled_l2'][1]:.4f})")
        print(f"{'nearest by features':>22}: {near['features'][0]}  (cosine {near['features'][1]:.4f})")
        if "edit" in near:
            print(f"{'nearest edited copy':>22}: {near['edit'][0]}  (score {near['edit'][1]:.4f})")
            print(f"{'nearest region':>22}: {near['region'][0]}  (score {near['region'][1]:.4f})")
    if args.report:
        print(f"report: {args.report}")
    return 0


def cmd_index(args) -> int:
    import time

    from brushwork.metrics.collection_index import build_index, index_home

    start = time.perf_counter()
    index = build_index(args.data, args.res, progress=not args.quiet)
    kept = len(index.names) + len(index.skipped) - index.decoded - index.resumed
    resumed = f"{index.resumed} read by an interrupted build, " if index.resumed else ""
    print(f"indexed {args.data} at {args.res} px: {len(index.names)} works ({index.decoded} read now, {resumed}"
          f"{max(kept, 0)} kept from the last build) in {time.perf_counter() - start:.1f} s")
    if index.skipped:
        shown = list(index.skipped.items())[:5]
        print(f"skipped {len(index.skipped)} unreadable: " + "; ".join(f"{n} ({why})" for n, why in shown)
              + (" ..." if len(index.skipped) > len(shown) else ""))
    print(f"copy thresholds: edited copy {index.thresholds[0]:.4f}, pasted region {index.thresholds[1]:.4f}; "
          f"kept in {index_home(args.data, args.res)}")
    return 0


def _originality_line(verdict: dict) -> str:
    """One line for ``info``: the verdict an image recorded, and the work it is nearest."""
    flagged = verdict.get("flagged_by", [])
    near = verdict["nearest"]["region" if flagged == ["pasted region"] else "edit"]
    how = f" ({', '.join(flagged)})" if flagged else ""
    frames = f"; frames flagged: {verdict['frames_flagged']}" if verdict.get("frames_flagged") else ""
    checked = [c["collection"] for c in verdict.get("checked", [])]
    also = f"; checked against {' and '.join(checked)}" if len(checked) > 1 else ""
    return (f"originality: {verdict['verdict']}{how}; nearest training work {near['work']} "
            f"(score {near['score']:.3f}) in {verdict['collection']}{frames}{also}")


def cmd_evaluate(args) -> int:
    from brushwork.evaluation import evaluate_run

    row = evaluate_run(args.run, args.data, args.n, args.metrics, args.features,
                       args.inception_weights, args.device, args.originality_features)
    width = max(len(k) for k in row)
    for key, value in row.items():
        print(f"{key:>{width}}  {value}")
    return 0


def cmd_info(args) -> int:
    from brushwork.provenance import read_record

    record = read_record(args.image)
    if args.watermark:
        from brushwork.data.images import load_rgb_or_exit
        from brushwork.provenance.watermark import detect_watermark

        found = detect_watermark(load_rgb_or_exit(args.image))
        print(f"invisible watermark: {'found' if found else 'not found'} "
              "(a weak signal: resizing, cropping or re-compression remove it)")
    from brushwork.provenance import c2pa

    manifest = c2pa.read(args.image)
    if manifest is not None:
        print(f"C2PA manifest: {manifest['validation_state']}; digital source type: "
              f"{', '.join(filter(None, manifest['digital_source_type']))}"
              + (f"; issues: {', '.join(manifest['issues'])}" if manifest["issues"] else ""))
    if not record:
        print(f"{args.image}: no brushwork or generation metadata")
        return 1
    if "parameters" in record:
        print(record["parameters"])
    if "brushwork" in record:
        if "originality" in record["brushwork"]:
            print(_originality_line(record["brushwork"]["originality"]))
        print(json.dumps(record["brushwork"], indent=2, sort_keys=True))
    return 0


def cmd_models(args) -> int:
    from brushwork.runs.builtin import BUILTIN_MODELS, PREFIX, card, installed, models_root

    if args.name:
        print(card(args.name))
        return 0
    for model in BUILTIN_MODELS.values():
        state = "installed" if installed(model.name) else "not installed (a slim install)"
        print(f"{PREFIX}{model.name}  [{state}]\n    {model.summary}\n    data: {model.licence}\n"
              f"    card: brushwork models {model.name}  ({models_root() / model.name / 'card.md'})")
    return 0


def cmd_serve(args) -> int:
    from brushwork.ui.serve import ServeOptions, launch, parse_auth
    from brushwork.ui.studio import StudioSettings

    import importlib.util

    if importlib.util.find_spec("gradio") is None:  # only the studio needs it
        raise BrushworkError("the studio needs Gradio: pip install 'brushwork[studio]'")
    settings = StudioSettings(runs=Path(args.runs), data=Path(args.data), outputs=Path(args.outputs),
                              device=args.device, features=args.features,
                              max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels,
                              max_training_jobs=args.max_training_jobs)
    options = ServeOptions(host=args.host, port=args.port, auth=parse_auth(args.auth, args.auth_file),
                           insecure_no_auth=args.insecure_no_auth, max_queue=args.max_queue,
                           device_jobs=args.device_jobs)
    launch(settings, options)
    return 0


def cmd_demo(args) -> int:
    from brushwork.demo import run_demo

    page = run_demo(Path(args.out), device=args.device, steps=args.steps)
    print(f"demo gallery: {page}")
    return 0


def _add_prior_scale_args(p) -> None:
    p.add_argument("--truncation", type=number(float, 0, 2, low_open=True),
                   help="GAN: psi in (0, 2]; < 1 = safer, less varied (1 = the prior)")
    p.add_argument("--temperature", type=number(float, 0, 2),
                   help="VAE: scale of prior samples in [0, 2] (1 = the prior)")
    _add_diffusion_sampling_args(p)


def _add_diffusion_sampling_args(p) -> None:
    p.add_argument("--sampler", choices=["heun", "dpm2m"],
                   help="diffusion: ODE solver (default: the run's, dpm2m = DPM-Solver++(2M))")
    p.add_argument("--steps", type=COUNT, help="diffusion: noise levels visited (default: the run's, 32)")
    p.add_argument("--guidance", type=number(float, 0, 50), help="diffusion, conditional runs: classifier-free "
                   "guidance (1 = none, the default; 2-3 = stronger style)")


def _apply_sampling(model, args):
    """The model with --sampler, --steps and --guidance as its sampling (refused for runs that are
    not diffusion runs), checked."""
    given = {k: getattr(args, k, None) for k in ("sampler", "steps", "guidance")}
    given = {k: v for k, v in given.items() if v is not None}
    if model.sampling is None and given:
        raise BrushworkError(f"--{'/--'.join(given)}: for diffusion runs; {model.run_dir} is a "
                             f"{model.kind} run")
    if model.sampling is not None:
        model.sampling.check(model.conditional)
    return model.using(sampling=given)


def _add_output_args(p, record_paths: bool = True) -> None:
    p.add_argument("--device", default="auto")
    p.add_argument("--no-metadata", action="store_true", help="write images without provenance")
    if record_paths:  # for commands whose records name a run
        _add_record_paths_arg(p)


def _add_originality_arg(p) -> None:
    p.add_argument("--no-originality", action="store_true",
                   help="do not check the images against the training collection's originality index "
                        "(by default each image records its verdict when the index exists: brushwork index DATA)")


def _judge(model, args):
    """The model, checking every image it makes against its collection's index (unless
    --no-originality)."""
    from brushwork.originality_report import run_judge

    return model.using(judge=run_judge(model, not getattr(args, "no_originality", False)))


def _add_upscale_arg(p) -> None:
    p.add_argument("--upscale", metavar="RUN", help="write each image enlarged by this upscaler run "
                   "(brushwork train upscaler); the record keeps both sizes and its hash")


def _enlarge(model, args, record: dict | None = None):
    """The model, writing every image enlarged when --upscale RUN is given (``record``: of an image
    being remade, whose own upscaler must be the one given)."""
    from brushwork.making.upscale import enlarger, load_upscaler, upscaler_for

    given = getattr(args, "upscale", None)
    up = upscaler_for(record, given, args.device) if record is not None else \
        (load_upscaler(given, None, args.device) if given else None)
    return model.using(enlarge=enlarger(up) if up is not None else None)


def _add_record_paths_arg(p) -> None:
    p.add_argument("--record-paths", action="store_true",
                   help="record the run's absolute path in each image (off: run name and hash only)")


def _add_c2pa_args(p) -> None:
    p.add_argument("--c2pa-cert", help="PEM certificate chain: add a signed C2PA manifest")
    p.add_argument("--c2pa-key", help="PEM private key (ES256) for --c2pa-cert")


def _add_generation_parsers(sub) -> None:
    """Sample and interpolate: make new images from a trained run."""
    p = sub.add_parser("sample", help="one image per seed from a trained run")
    p.add_argument("run", nargs="?", help="run directory")
    p.add_argument("--seeds", help="e.g. 0-63 or 3,7,11")
    p.add_argument("--out", required=True, help="output folder")
    _add_prior_scale_args(p)
    p.add_argument("--grid", action="store_true", help="also write grid.png")
    p.add_argument("--style", help="conditional runs: the style (default: seed s gets style s %% K)")
    p.add_argument("--style-mix", help="conditional runs: a mix of styles, e.g. baroque:0.6,romanticism:0.4")
    p.add_argument("--from", dest="from_image", help="regenerate the image this file records")
    p.add_argument("--run", dest="run_option", metavar="RUN", help="with --from: the run to use")
    p.add_argument("--sketch", help="with --from, for a painting: the sketch it was painted from")
    p.add_argument("--mask", help="with --from, for a painting: the mask it was painted through")
    p.add_argument("--runs", default="runs", help="with --from: folder searched for the run whose "
                   "model hash the image records (default: ./runs)")
    p.add_argument("--watermark", action="store_true",
                   help="embed an invisible watermark (images >= 256 px; a weak signal)")
    _add_c2pa_args(p)
    p.add_argument("--format", choices=["png", "jpg", "webp"], default="png",
                   help="file type; the provenance record is embedded in each (EXIF/XMP for jpg, webp)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-metadata", action="store_true", help="write PNGs without provenance chunks")
    _add_originality_arg(p)
    _add_upscale_arg(p)
    p.add_argument("--avoid-copies", action="store_true", help="replace a seed whose image is judged a copy "
                   "of a training work by the next unused seed (needs the collection's index)")
    _add_record_paths_arg(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("breed", help="children of one image, or crossbreeds of two (GAN or VAE "
                       "images brushwork made); each records its lineage")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="one parent (children) or two (crossbreeds)")
    p.add_argument("--n", type=COUNT, default=8, help="how many")
    p.add_argument("--strength", type=FRACTION, default=0.3, help="children: how far from the parent (0-1)")
    p.add_argument("--seed", type=SEED, default=0, help="children: first seed of the variation noise")
    p.add_argument("--run", help="the run that made the parents (default: found by hash)")
    p.add_argument("--runs", default="runs", help="folder searched for that run (default: ./runs)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto")
    _add_originality_arg(p)
    _add_upscale_arg(p)
    _add_record_paths_arg(p)
    p.set_defaults(func=cmd_breed)

    p = sub.add_parser("interpolate", help="a latent walk through seeds as GIF or MP4")
    p.add_argument("run")
    p.add_argument("--seeds", required=True, help="key seeds, e.g. 3,7,11")
    p.add_argument("--frames", type=number(int, 2), default=48, help="frames in the whole walk")
    p.add_argument("--out", required=True, help="walk.gif or walk.mp4")
    _add_prior_scale_args(p)
    p.add_argument("--fps", type=FPS, default=12.0)
    p.add_argument("--loop", action="store_true", help="return to the first seed (seamless loop)")
    p.add_argument("--styles", help="conditional runs: key styles, e.g. baroque,romanticism,baroque "
                   "(one seed walks across them; or one style per seed)")
    _add_output_args(p)
    _add_originality_arg(p)
    p.set_defaults(func=cmd_interpolate)


def _add_upscale_parser(sub) -> None:
    p = sub.add_parser("upscale", help="enlarge images 2x or 4x with an upscaler trained on your collection "
                       "(--run) or your own pretrained weights (--weights: ESRGAN, SwinIR, ...)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--run", help="an upscaler run (brushwork train upscaler)")
    p.add_argument("--weights", help="a pretrained upscaler file (.safetensors, or a weights-only .pth), "
                   "read by spandrel; nothing is downloaded")
    p.add_argument("--scale", type=int, choices=[2, 4], help="check the upscaler enlarges this much")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile", type=number(int, 16), default=256, help="input pixels per tile side (bounds memory)")
    p.add_argument("--max-pixels", type=COUNT, default=64_000_000, help="largest enlarged image, in pixels")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_upscale)


def cmd_upscale(args) -> int:
    from brushwork.making.upscale import load_upscaler, upscale_files

    up = load_upscaler(args.run, args.weights, args.device)
    if args.scale is not None and args.scale != up.scale:
        raise BrushworkError(f"--scale {args.scale}: {up.name} enlarges {up.scale}x")
    paths = upscale_files(args.images, up, Path(args.out), args.tile, args.max_pixels)
    print(f"wrote {len(paths)} image(s) enlarged {up.scale}x to {args.out}")
    return 0


def _add_paint_parser(sub) -> None:
    p = sub.add_parser("paint", help="guided creation with a diffusion run: paint a sketch in the "
                       "learned style, repaint a region (--mask), widen the canvas (--extend)")
    p.add_argument("run", help="a diffusion run (brushwork train diffusion)")
    p.add_argument("--sketch", required=True, help="the sketch, photo or work to start from (any size)")
    p.add_argument("--strength", type=FRACTION, help="how much is repainted, 0-1: 0 returns the sketch, 1 "
                   "ignores it (default 0.6; 1 with --mask or --extend)")
    p.add_argument("--mask", help="repaint only where this image is white (the sketch's size); every "
                   "other pixel is kept exactly")
    p.add_argument("--extend", help="widen the canvas and paint the margins, in the sketch's pixels: "
                   "e.g. left=32,right=32,top=0,bottom=0")
    p.add_argument("--seeds", default="0-3", help="one painting per seed, e.g. 0-7 (default 0-3)")
    p.add_argument("--style", help="conditional runs: the style (default: seed s gets style s %% K)")
    p.add_argument("--style-mix", help="conditional runs: a mix of styles, e.g. a:0.6,b:0.4")
    _add_diffusion_sampling_args(p)
    p.add_argument("--resample", type=COUNT, default=2, help="--mask/--extend: repeats of each step that "
                   "harmonise the seam (RePaint; default 2, 4 for the softest seam at twice the time)")
    p.add_argument("--format", choices=["png", "jpg", "webp"], default="png")
    p.add_argument("--out", required=True, help="output folder")
    _add_output_args(p)
    _add_originality_arg(p)
    _add_upscale_arg(p)
    p.set_defaults(func=cmd_paint)


def _add_reproduction_parsers(sub) -> None:
    """Reconstruct, variations, blend: reproduce and vary real artworks (VAE)."""
    p = sub.add_parser("reconstruct", help="encode and decode artworks with a VAE run")
    p.add_argument("run")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, help="output folder")
    _add_output_args(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("project", help="find the latent of a GAN run whose image best matches an "
                       "artwork (writes it, its latent, the target and a progress GIF)")
    p.add_argument("run")
    p.add_argument("image")
    p.add_argument("--out", required=True, help="output folder")
    _add_projection_args(p, steps=1000)
    _add_output_args(p)
    p.set_defaults(func=cmd_project, weights_option="--features PATH")

    p = sub.add_parser("variations", help="variations of one artwork (VAE posterior samples; GAN "
                       "runs: children of its projection)")
    p.add_argument("run")
    p.add_argument("image")
    p.add_argument("--n", type=COUNT, default=8)
    p.add_argument("--temperature", type=number(float, 0, 2), default=0.5, help="0 = the reconstruction itself "
                   "(GAN runs: the children's distance from the projection, 0-1)")
    p.add_argument("--seed", type=SEED, default=0, help="first seed of the variations")
    p.add_argument("--out", required=True, help="output folder")
    _add_projection_args(p, steps=500)
    _add_output_args(p)
    p.set_defaults(func=cmd_variations, weights_option="--features PATH")

    p = sub.add_parser("blend", help="crossbreed two artworks: a latent-space blend (VAE)")
    p.add_argument("run")
    p.add_argument("image_a")
    p.add_argument("image_b")
    p.add_argument("--frames", type=number(int, 2), default=24)
    p.add_argument("--fps", type=FPS, default=12.0)
    p.add_argument("--out", required=True, help="blend.gif, blend.mp4 or blend.png (a strip)")
    _add_projection_args(p, steps=500)
    _add_output_args(p)
    p.set_defaults(func=cmd_blend, weights_option="--features PATH")


def _add_projection_args(p, steps: int) -> None:
    """How artworks are projected into GAN runs (project; variations and blend on GAN runs)."""
    p.add_argument("--steps", type=COUNT, default=steps, help=f"GAN projection: optimisation steps "
                   f"(default {steps})")
    p.add_argument("--distance", choices=["auto", "vgg", "pixel"], default="auto",
                   help="GAN projection: VGG19 perceptual distance, pixel L2, or auto (vgg when "
                        "ImageNet weights are available)")
    p.add_argument("--features", default="imagenet", help="VGG19 weights: imagenet, random or a file")
    p.add_argument("--style", help="GAN projection into a style-conditional run: the style")


def _add_style_parsers(sub) -> None:
    """Stylize: style transfer."""
    p = sub.add_parser("stylize", help="put a painting's style onto a photo (Gatys or AdaIN)")
    p.add_argument("content", help="content image, or a folder of them")
    p.add_argument("--style", action="append", required=True, help="style image (repeat to blend)")
    p.add_argument("--style-weights", help="comma list, one per --style, e.g. 0.7,0.3")
    p.add_argument("--method", choices=["gatys", "adain"], default="gatys")
    p.add_argument("--model", help="AdaIN run directory (brushwork train adain)")
    p.add_argument("--size", type=number(int, 16), default=512, help="longest side of the output")
    p.add_argument("--strength", type=FRACTION, default=1.0, help="0 = content, 1 = full style")
    p.add_argument("--preserve-color", nargs="?", const="luminance", default="none",
                   choices=["none", "luminance", "coral"], help="keep the content's colours")
    p.add_argument("--mask", help="greyscale image: stylise only where it is white")
    p.add_argument("--steps", type=COUNT, default=300, help="Gatys: optimisation steps")
    p.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    p.add_argument("--init", choices=["content", "style", "noise"], default="content")
    p.add_argument("--content-weight", type=number(float, 0), default=1.0)
    p.add_argument("--style-weight", type=number(float, 0), default=10.0)
    p.add_argument("--tv-weight", type=number(float, 0), default=0.05)
    p.add_argument("--scales", type=STEPS_OR_ZERO, default=0, help="Gatys multiscale levels (0 = auto, 1 = off)")
    p.add_argument("--reflection-padding", action="store_true")
    p.add_argument("--encoder", help="VGG19 weights: imagenet (torchvision cache; the default for "
                   "gatys), random (weak, runs anywhere); adain uses its run's own by default")
    p.add_argument("--vgg-weights", help="a local VGG19 weights file (overrides --encoder)")
    p.add_argument("--out", required=True, help="output .png/.jpg/.webp (a folder when CONTENT is one)")
    p.add_argument("--watermark", action="store_true",
                   help="embed an invisible watermark (a weak signal: lost on resizing or cropping)")
    _add_c2pa_args(p)
    _add_output_args(p, record_paths=False)
    p.set_defaults(func=cmd_stylize, weights_option="--vgg-weights PATH")


def _add_evaluation_parsers(sub) -> None:
    """Evaluate and originality: is it good, is it new."""
    p = sub.add_parser("originality", help="find the nearest training images; flag copies")
    p.add_argument("run", nargs="?", help="run directory (generated seeds 0..n-1 are checked)")
    p.add_argument("--image", help="check one image instead of a run's output")
    p.add_argument("--images", help="check every image in this folder (any origin)")
    p.add_argument("--data", required=True, help="the training images (folder or builtin:...)")
    p.add_argument("--n", type=COUNT, default=512, help="generated images to check")
    p.add_argument("--res", type=number(int, 16), default=64, help="comparison size for --image/--images")
    p.add_argument("--percentile", type=number(float, 0, 100, True, True), default=5.0,
                   help="flag images closer than this %% of training pairs are to each other")
    p.add_argument("--features", default="imagenet", help="VGG19 weights: imagenet, random or a file")
    p.add_argument("--report", help="write an HTML report here")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per image (file, verdict, flagged_by, nearest) instead")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_originality, weights_option="--features PATH")

    p = sub.add_parser("index", help="build (or bring up to date) a collection's originality index: "
                       "afterwards every image made from a run trained on it records whether it is a copy")
    p.add_argument("data", help="the collection: a folder of images (or builtin:...)")
    p.add_argument("--res", type=number(int, 16), default=64, help="the resolution of the runs trained on it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("evaluate", help="score a run's samples: SWD, FID, KID, precision/recall, "
                       "style (accuracy, ambiguity, novelty, memorisation)")
    p.add_argument("run")
    p.add_argument("--data", required=True, help="real images to compare with (folder or builtin:...)")
    p.add_argument("--n", type=number(int, 2), default=10000, help="generated (and real) images")
    p.add_argument("--metrics", default="swd,fid,kid,pr")
    p.add_argument("--features", default="inception", help="inception, or random (a weak stand-in)")
    p.add_argument("--inception-weights", help="local FID Inception weights file")
    p.add_argument("--originality-features", default="imagenet",
                   help="style metric's memorisation rate: VGG19 weights, imagenet, random or a file")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_evaluate, weights_option="--inception-weights PATH")


def _add_misc_parsers(sub) -> None:
    """Info and demo."""
    p = sub.add_parser("info", help="print the provenance an image carries")
    p.add_argument("image")
    p.add_argument("--watermark", action="store_true", help="also look for brushwork's invisible watermark")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", help="list the models that ship with brushwork (use one as builtin:NAME "
                       "wherever a run is asked for)")
    p.add_argument("name", nargs="?", help="show this model's card")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("demo", help="show the shipped base, adapt it to the built-in art, learn that art with two GANs and write a gallery "
                       "(about 5 minutes on a 2-core CPU)")
    p.add_argument("--out", default="brushwork-demo")
    p.add_argument("--steps", type=COUNT, help="steps of the conditional model (default 1500; the "
                   "creative model trains 2/3 as many)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)


def _add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="the studio: every capability in a web browser")
    p.add_argument("--runs", default="runs", help="trained runs to use, and where new ones go (default ./runs)")
    p.add_argument("--data", default="data", help="the only folder training data may come from "
                   "(default ./data; the built-in set is always offered)")
    p.add_argument("--outputs", default="studio-outputs", help="everything the studio makes, and "
                   "its upload folder (default ./studio-outputs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this "
                   "machine only); another address needs --auth or --insecure-no-auth")
    p.add_argument("--port", type=number(int, 1, 65535), default=7860)
    p.add_argument("--auth", action="append", metavar="USER:PASSWORD", help="a login (repeatable)")
    p.add_argument("--auth-file", help="a file of USER:PASSWORD lines")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="allow a non-local --host without a password (trusted networks only)")
    p.add_argument("--max-upload-mb", type=number(float, 0, low_open=True), default=25.0, help="largest upload (default 25 MB)")
    p.add_argument("--max-pixels", type=COUNT, default=50_000_000,
                   help="largest uploaded image in pixels, checked before decoding (default 50M)")
    p.add_argument("--max-queue", type=COUNT, default=16, help="requests that may wait (default 16)")
    p.add_argument("--device-jobs", type=COUNT, default=1,
                   help="model-running requests at once (default 1: one GPU job at a time)")
    p.add_argument("--max-training-jobs", type=COUNT, default=1, help="training jobs at once (default 1)")
    p.add_argument("--features", default="imagenet", help="VGG19 weights for Gatys and originality: "
                   "imagenet, random (weak, offline) or a file")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_serve, weights_option="--features PATH")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="brushwork", description="AI-assisted art creation: "
                                     "learn a style from artworks, then make new work.")
    parser.add_argument("--version", action="version", version=f"brushwork {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a model").add_subparsers(dest="model", required=True)
    _add_train_parsers(train)
    _add_generation_parsers(sub)
    _add_paint_parser(sub)
    _add_upscale_parser(sub)
    _add_reproduction_parsers(sub)
    _add_style_parsers(sub)
    _add_evaluation_parsers(sub)
    _add_misc_parsers(sub)
    _add_serve_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a mistake on the command line (said in one line)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except WeightsUnavailable as exc:
        exc.option = getattr(args, "weights_option", exc.option)  # this command's own option
        print(f"brushwork: error: {exc}", file=sys.stderr)
        return 2
    except BrushworkError as exc:
        print(f"brushwork: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (brushwork info X | head -1): a normal end
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:  # the file system refused something the library did not foresee
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"brushwork: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("brushwork: interrupted", file=sys.stderr)
        return 130
