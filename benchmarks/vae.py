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
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from common import add_data_args, link_styles, loader_stepper, report  # noqa: E402

from brushwork.config import VAEConfig  # noqa: E402
from brushwork.data.dataset import ImageBatcher, load_dataset  # noqa: E402
from brushwork.losses import kl_divergence  # noqa: E402
from brushwork.models.vae import VAE  # noqa: E402
from brushwork.training.vae import VAETask, validation_metrics  # noqa: E402
from train_throughput import measure, textbook_loader  # noqa: E402


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


def batcher_stepper(batcher, task):
    counter = {"step": 0}

    def step():
        task.train_step(batcher.next()[0], counter["step"])
        counter["step"] += 1
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap)
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
    cfg = VAEConfig(resolution=args.res, latent_dim=args.latent_dim, width=args.width)

    with tempfile.TemporaryDirectory() as tmp:  # only the chosen styles, for both pipelines
        link_styles(Path(tmp), Path(args.data), args.styles)
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
    report(result, args.json)


if __name__ == "__main__":
    main()
