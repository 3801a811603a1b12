"""VAE: brushwork's training vs a textbook VAE loop, same run, same data, same images shown.

Textbook = the pytorch/examples way: the same conv architecture in plain PyTorch, fp32, NCHW,
torchvision ImageFolder + DataLoader (2 workers), loss = sum of squared errors + KL, Adam, and
``loss.item()`` every step. Both models train on WikiArt paintings for the same number of images;
then held-out bits/dim (calibrated-decoder ELBO) and reconstruction PSNR are measured with the same
function on the same held-out paintings, and throughput is timed in interleaved rounds.

    python benchmarks/vae.py --kimg 20 --device cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from brushwork.config import VAEConfig  # noqa: E402
from brushwork.data.dataset import ImageBatcher, load_dataset  # noqa: E402
from brushwork.losses import kl_divergence  # noqa: E402
from brushwork.models.vae import VAE  # noqa: E402
from brushwork.training.vae import VAETask, validation_metrics  # noqa: E402
from train_throughput import measure, textbook_loader  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


class TextbookVAE:
    """pytorch/examples-style training of the same architecture: fp32, NCHW, plain Adam."""

    def __init__(self, cfg: VAEConfig, device):
        torch.manual_seed(0)
        self.model = VAE(cfg).to(device)  # the architecture under test; the loop is the baseline
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.device = device

    def step(self, x):
        self.opt.zero_grad()
        recon, mu, logvar = self.model(x)
        loss = nn.functional.mse_loss(recon, x, reduction="sum") / len(x)
        loss = loss + kl_divergence(mu, logvar)
        loss.backward()
        self.opt.step()
        return loss.item()  # the textbook logs every step (a host sync)


def loader_stepper(loader, fn, device):
    state = {"it": iter(loader)}

    def step():
        try:
            x, _ = next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            x, _ = next(state["it"])
        fn(x.to(device, non_blocking=True))
    return step


def batcher_stepper(batcher, task):
    counter = {"step": 0}

    def step():
        task.train_step(batcher.next()[0], counter["step"])
        counter["step"] += 1
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SHARED / "wikiart64"))
    ap.add_argument("--styles", default="baroque,romanticism")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--latent-dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--kimg", type=float, default=20, help="thousands of images shown to each")
    ap.add_argument("--n-eval", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10, help="timed seconds per variant")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="append the result as a JSON line to this file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    root = Path(args.data)
    if not root.is_dir():
        sys.exit(f"vae benchmark: data folder {root} not found (see shared/data/SOURCES.md)")
    cfg = VAEConfig(resolution=args.res, latent_dim=args.latent_dim, width=args.width)

    with tempfile.TemporaryDirectory() as tmp:  # only the chosen styles, for both pipelines
        for style in args.styles.split(","):
            (Path(tmp) / style).symlink_to((root / style).resolve())
        train, held_out = load_dataset(tmp, args.res, progress=False).split(
            args.n_eval / 8000, seed=0, minimum=args.n_eval)
        loader = textbook_loader(Path(tmp), args.res, args.batch, exclude=set(held_out.files))
        textbook = TextbookVAE(cfg, device)
        ours = VAETask(cfg, device, seed=0)
        batcher = ImageBatcher(train, args.batch, args.res, device, flip=False,
                               channels_last=cfg.channels_last)
        variants = {"textbook": loader_stepper(loader, textbook.step, device),
                    "brushwork": batcher_stepper(batcher, ours)}
        steps = int(args.kimg * 1000 / args.batch)
        result = {"device": str(device), "res": args.res, "width": args.width, "batch": args.batch,
                  "kimg": args.kimg, "train_images": len(train), "held_out_images": len(held_out)}
        for name, fn in variants.items():  # equal compute: the same number of images each
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            result[f"{name}_train_seconds"] = round(time.perf_counter() - t0, 1)
        rates = measure(variants, args.batch, device, args.seconds, rounds=3, warmup=2)
    result["img_per_s"] = rates
    result["speed_ratio"] = round(rates["brushwork"] / rates["textbook"], 2)
    result["held_out_metrics"] = {
        "textbook": validation_metrics(textbook.model, held_out.images, device),
        "brushwork": validation_metrics(ours.vae, held_out.images, device),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
