"""Style transfer speed: brushwork's Gatys and AdaIN against the textbook Gatys loop, same run.

Textbook = the PyTorch tutorial's loop: plain L-BFGS (history 100) stepped until ``steps`` closure
calls, fp32 NCHW, single scale, the image clamped inside the closure, the last iterate returned. It
optimises brushwork's objective (same layers, normalised losses, weights), so losses compare.
brushwork's Gatys adds multiscale (automatic above 512 px only), channels_last VGG passes and Gram
matrices, and returns its best iterate (L-BFGS with unit steps and a clamp is not monotone).

Both results are scored with the *same* yardstick (brushwork's normalised content and style losses
at full size), so "equal loss" is judged on equal terms. Without ImageNet VGG19 weights (none can be
downloaded here) both use the fixed-seed random VGG19: speed is unaffected, quality is not ImageNet's.

    python benchmarks/style.py --size 256 --steps 60            # CPU
    python benchmarks/style.py --size 512 --steps 300 --device cuda
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image

from common import SHARED, report  # noqa: E402  (also puts src/ on the path)
from brushwork.models.style import CONTENT_LAYER, AdaINDecoder, load_style_encoder  # noqa: E402
from brushwork.style.transfer import (GatysSettings, StyleRequest, _style_targets,  # noqa: E402
                                      adain_transfer, gatys_losses, pil_to_tensor, resize_longest,
                                      stylize)

def textbook_gatys(encoder, content: torch.Tensor, style_img, steps: int, settings: GatysSettings):
    """The tutorial's loop on the same objective: single scale, plain L-BFGS stepped until
    ``steps`` closure calls, the image clamped inside the closure. Returns (image, [(seconds,
    total loss)] per evaluation)."""
    target = encoder(content)[CONTENT_LAYER].detach()
    grams = {k: v.detach() for k, v in _style_targets(encoder, [style_img], [1.0], max(content.shape[-2:])).items()}
    img = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([img])
    trace, t0 = [], time.perf_counter()
    while len(trace) < steps:
        def closure():
            with torch.no_grad():
                img.clamp_(-1, 1)
            opt.zero_grad()
            loss = gatys_losses(encoder, img, target, grams, settings)["total"]
            loss.backward()
            trace.append((time.perf_counter() - t0, loss.item()))
            return loss
        opt.step(closure)
    return img.detach().clamp(-1, 1), trace


def score(encoder, result, content, style_img) -> dict:
    """Content, style and total loss of a result at full size (the shared yardstick)."""
    with torch.no_grad():
        target = encoder(content)[CONTENT_LAYER]
        grams = _style_targets(encoder, [style_img], [1.0], max(content.shape[-2:]))
        losses = gatys_losses(encoder, result, target, grams, GatysSettings())
    return {k: round(v.item(), 5) for k, v in losses.items() if k in ("content", "style", "total")}


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def first_time_at(trace, loss):
    """(seconds, evaluations) when a [(seconds, loss)] trace first reached ``loss``, else None."""
    return next(((t, n + 1) for n, (t, value) in enumerate(trace) if value <= loss), None)


def speedup(textbook_trace, our_trace, loss):
    """How much sooner brushwork reached ``loss`` than the textbook did (None if either never did)."""
    ours, theirs = first_time_at(our_trace, loss), first_time_at(textbook_trace, loss)
    return {"loss": round(loss, 5),
            "textbook": {"seconds": round(theirs[0], 2), "evaluations": theirs[1]} if theirs else "never",
            "brushwork": {"seconds": round(ours[0], 2), "evaluations": ours[1]} if ours else "never",
            "speedup": round(theirs[0] / ours[0], 2) if ours and theirs else None}


def run_ours(content_img, style_img, args, encoder, device):
    """brushwork's stylize() with a progress callback timing every evaluation."""
    request = StyleRequest(size=args.size, gatys=GatysSettings(steps=args.steps))
    trace, t0 = [], time.perf_counter()

    def progress(step, total, losses):
        trace.append((time.perf_counter() - t0, losses["total"]))

    image, seconds = timed(lambda: stylize(content_img, [style_img], request, encoder, progress=progress), device)
    return pil_to_tensor(image).to(device), trace, seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--content", default=str(SHARED / "photos" / "tubingen.jpg"))
    ap.add_argument("--style", default=str(SHARED / "paintings" / "vangogh_starry_night.jpg"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--encoder", default="random", help="imagenet, random or a VGG19 file")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/results/style")
    ap.add_argument("--json", help="append the result as a JSON line to this file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    encoder = load_style_encoder(args.encoder, device)
    content_img = Image.open(args.content).convert("RGB")
    style_img = Image.open(args.style).convert("RGB")
    content = pil_to_tensor(resize_longest(content_img, args.size)).to(device)

    # The textbook loop runs first, in a process nothing of brushwork's has tuned yet (brushwork's
    # Gatys changes glibc's malloc thresholds while it runs on a CPU).
    plain = load_style_encoder(args.encoder, device, channels_last=False)  # NCHW, as the tutorial
    (textbook, tb_trace), t_textbook = timed(
        lambda: textbook_gatys(plain, content, style_img, args.steps, GatysSettings()), device)
    ours, our_trace, t_ours = run_ours(content_img, style_img, args, encoder, device)
    final = {"textbook_gatys": score(encoder, textbook, content, style_img),
             "brushwork_gatys": score(encoder, ours, content, style_img)}
    decoder = AdaINDecoder(64).to(device).eval()
    adain_once = lambda: adain_transfer(encoder, decoder, content, [style_img], [1.0], 1.0, args.size)  # noqa: E731
    timed(adain_once, device)  # warm-up
    t_adain = sorted(timed(adain_once, device)[1] for _ in range(5))[2]
    for name, img in [("textbook_gatys", textbook), ("brushwork_gatys", ours)]:
        Image.fromarray(img[0].add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()).save(
            out / f"{name}.png")
    result = {"device": str(device), "size": args.size, "steps": args.steps, "encoder": args.encoder,
              "seconds_per_image": {"textbook_gatys": round(t_textbook, 2), "brushwork_gatys": round(t_ours, 2),
                                    "brushwork_adain": round(t_adain, 4)},
              "seconds_per_evaluation": {"textbook": round(tb_trace[-1][0] / len(tb_trace), 4),
                                         "brushwork": round(our_trace[-1][0] / len(our_trace), 4)},
              # The image each returns, scored on the same yardstick (the textbook returns its last
              # iterate, brushwork its best).
              "final_losses": final,
              "loss_at_equal_evaluations": {"textbook_gatys": round(tb_trace[-1][1], 5),
                                            "brushwork_gatys": round(our_trace[-1][1], 5)},
              # Speed at equal loss, two ways: to the loss of the image the textbook returns, and
              # (stricter) to the lowest loss the textbook ever reached.
              "to_textbook_result": speedup(tb_trace, our_trace, final["textbook_gatys"]["total"]),
              "to_textbook_best": speedup(tb_trace, our_trace, min(loss for _, loss in tb_trace)),
              "adain_speedup_vs_brushwork_gatys": round(t_ours / t_adain, 1)}
    report(result, args.json)


if __name__ == "__main__":
    main()
