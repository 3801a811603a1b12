"""Training throughput: brushwork's GAN steps against a textbook DCGAN loop, in the same run.

The baseline is written the pytorch/examples way: plain nn.Sequential DCGAN, BCELoss with label
tensors, three D forwards per step, fp32, torchvision ImageFolder + DataLoader for data. Each
variant is timed in interleaved rounds (A B C A B C ...) and the median round is reported, so a
noisy machine slows all variants alike. Ratios are against the best textbook variant.

    python benchmarks/train_throughput.py --res 64 --batch 64 --seconds 20
    python benchmarks/train_throughput.py --device cuda --batch 1024 --json out.json

``--data`` (an image folder, default: ../shared/data/wikiart64 if present) is used for the
data-loader measurement; the step measurements feed both sides from memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from common import SHARED, loader_stepper, report  # noqa: E402  (also puts src/ on the path)
from brushwork.config import gan_preset  # noqa: E402
from brushwork.data import dataset as dataset_module  # noqa: E402
from brushwork.data.dataset import ImageBatcher, load_dataset  # noqa: E402
from brushwork.training.gan import GANTask  # noqa: E402
from brushwork.training.optim import use_bf16  # noqa: E402


# ---- textbook DCGAN (pytorch/examples style), the baseline -----------------------------------
def textbook_nets(res: int, nz: int = 100, ngf: int = 64, ndf: int = 64):
    def g_block(i, o):
        return [nn.ConvTranspose2d(i, o, 4, 2, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(True)]

    def d_block(i, o):
        return [nn.Conv2d(i, o, 4, 2, 1, bias=False), nn.BatchNorm2d(o), nn.LeakyReLU(0.2, True)]

    mult = res // 8  # channel multiplier at 4x4 (8 for 64 px)
    g = [nn.ConvTranspose2d(nz, ngf * mult, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * mult), nn.ReLU(True)]
    while mult > 1:
        g += g_block(ngf * mult, ngf * mult // 2)
        mult //= 2
    g += [nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh()]
    d = [nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    mult = 1
    while mult < res // 8:
        d += d_block(ndf * mult, ndf * mult * 2)
        mult *= 2
    d += [nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
    return nn.Sequential(*g), nn.Sequential(*d)


class TextbookLoop:
    """One pytorch/examples DCGAN iteration per call; ``precision`` in fp32 | tf32 | bf16."""

    def __init__(self, res, batch, device, width=64, precision="fp32", channels_last=False):
        self.netG, self.netD = (m.to(device) for m in textbook_nets(res, ngf=width, ndf=width))
        if channels_last:
            self.netG.to(memory_format=torch.channels_last)
            self.netD.to(memory_format=torch.channels_last)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.crit, self.device, self.batch = nn.BCELoss(), device, batch
        self.precision = precision

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _D(self, x):
        with self._autocast():  # BCELoss itself must run outside autocast (it refuses bf16)
            return self.netD(x).view(-1).float()

    def step(self, real):
        b = real.size(0)
        self.netD.zero_grad()
        label = torch.full((b,), 1.0, device=self.device)
        errD_real = self.crit(self._D(real), label)
        errD_real.backward()
        noise = torch.randn(b, 100, 1, 1, device=self.device)
        with self._autocast():
            fake = self.netG(noise)
        label.fill_(0.0)
        errD_fake = self.crit(self._D(fake.detach()), label)
        errD_fake.backward()
        self.optD.step()
        self.netG.zero_grad()
        label.fill_(1.0)
        errG = self.crit(self._D(fake), label)
        errG.backward()
        self.optG.step()
        return errG


# ---- timing -----------------------------------------------------------------------------------
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step_fn, device, steps):
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step_fn()
    sync(device)
    return time.perf_counter() - t0


def measure(variants: dict, batch: int, device, seconds: float, rounds: int, warmup: int) -> dict:
    """img/s per variant: the median of ``rounds`` interleaved timed rounds."""
    steps = {}
    for name, fn in variants.items():  # warm up and size each round to ~seconds/rounds
        time_steps(fn, device, warmup)
        probe = time_steps(fn, device, max(2, warmup))
        steps[name] = max(2, int(seconds / rounds / (probe / max(2, warmup))))
    rates = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            rates[name].append(steps[name] * batch / time_steps(fn, device, steps[name]))
    return {name: round(statistics.median(r), 1) for name, r in rates.items()}


def brushwork_variant(preset, res, batch, width, device, overrides=None, data="builtin:abstract:40"):
    cfg = gan_preset(preset, res)
    cfg.g_width = cfg.d_width = width
    for key, value in (overrides or {}).items():
        setattr(cfg, key, value)
    task = GANTask(cfg, device)
    ds = load_dataset(data, res, progress=False)
    batcher = ImageBatcher(ds, batch, res, device, channels_last=cfg.channels_last)
    counter = {"step": 0}

    def step():
        real, _ = batcher.next()
        task.train_step(real, counter["step"])
        counter["step"] += 1
    return step


def flops_per_image(res: int, batch: int, width: int, device) -> float:
    """FLOPs of one brushwork `dcgan` step per image (D step + G step, forward and backward),
    counted by PyTorch's FLOP counter on one eager step (convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    step = brushwork_variant("dcgan", res, batch, width, device, {"mixed_precision": "no"})
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / batch


def bf16_peak_tflops(device, n: int = 8192, repeats: int = 50) -> float:
    """The device's bf16 matmul rate (n x n x n products, TFLOP/s): the roof to compare with."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    time_steps(lambda: a @ b, device, 3)  # warm-up: cuBLAS picks its kernel
    seconds = time_steps(lambda: a @ b, device, repeats)
    return round(2 * n ** 3 * repeats / seconds / 1e12, 1)


def textbook_variant(res, batch, width, device, precision, channels_last=False):
    loop = TextbookLoop(res, batch, device, width, precision, channels_last)
    real = torch.rand(batch, 3, res, res, device=device) * 2 - 1  # data fed from memory
    if channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    return lambda: loop.step(real)


def textbook_loader(data_dir: Path, res: int, batch: int, workers: int = 2, exclude=frozenset()):
    """pytorch/examples' data pipeline: ImageFolder + Resize/CenterCrop/ToTensor/Normalize.
    ``exclude``: relative paths to leave out (a held-out split)."""
    import torchvision.datasets as dset
    import torchvision.transforms as T

    tf = T.Compose([T.Resize(res), T.CenterCrop(res), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    folder = dset.ImageFolder(str(data_dir), transform=tf)
    keep = [i for i, (path, _) in enumerate(folder.samples)
            if str(Path(path).relative_to(data_dir)) not in exclude]
    data = folder if len(keep) == len(folder) else torch.utils.data.Subset(folder, keep)
    return torch.utils.data.DataLoader(data, batch_size=batch,
                                       shuffle=True, num_workers=workers, drop_last=True,
                                       persistent_workers=True)


def textbook_end_to_end(data_dir, res, batch, width, device):
    """The whole textbook loop: a batch from its DataLoader, then its training step."""
    loop = TextbookLoop(res, batch, device, width, "fp32")
    return loader_stepper(textbook_loader(data_dir, res, batch), loop.step, device)


def loader_rates(data_dir: Path, res: int, batch: int, seconds: float) -> dict:
    """img/s of the textbook ImageFolder/DataLoader pipeline vs brushwork's cached batcher."""
    out = {}
    loader = textbook_loader(data_dir, res, batch)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for x, _ in loader:
            n += x.shape[0]
            if time.perf_counter() - t0 >= seconds:
                break
    out["textbook_dataloader"] = round(n / (time.perf_counter() - t0), 1)
    with tempfile.TemporaryDirectory() as cache:
        dataset_module._MEMORY_CACHE.clear()  # time a real first decode, not a memory hit
        t0 = time.perf_counter()
        ds = load_dataset(str(data_dir), res, cache_dir=cache, progress=False)
        out["brushwork_first_decode_s"] = round(time.perf_counter() - t0, 2)
        batcher = ImageBatcher(ds, batch, res, torch.device("cpu"))
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n += batcher.next()[0].shape[0]
        out["brushwork_cached_batcher"] = round(n / (time.perf_counter() - t0), 1)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=64, help="ngf = ndf")
    ap.add_argument("--seconds", type=float, default=20, help="timed seconds per variant")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--data", default=str(SHARED / "wikiart64"))
    ap.add_argument("--no-loader", action="store_true", help="skip the data-loader measurement")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd modules")
    ap.add_argument("--cuda-graph", action="store_true", help="also time steps replayed as CUDA graphs")
    ap.add_argument("--tflops", action="store_true", help="report TFLOP/s of the dcgan variants "
                    "(and, on CUDA, against the measured bf16 matmul peak)")
    ap.add_argument("--json", help="append the result as one JSON line to this file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    res, b, w = args.res, args.batch, args.width

    if device.type == "cuda":
        # fp32 means true fp32: TF32 off for that variant, on for the tf32 one.
        def with_tf32(flag, fn):
            def run():
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = flag
                fn()
            return run
        baselines = {
            "textbook_fp32": with_tf32(False, textbook_variant(res, b, w, device, "fp32")),
            "textbook_tf32": with_tf32(True, textbook_variant(res, b, w, device, "fp32")),
            "textbook_bf16_cl": with_tf32(True, textbook_variant(res, b, w, device, "bf16", True)),
        }
    else:
        baselines = {"textbook_fp32": textbook_variant(res, b, w, device, "fp32")}
    ours = {"brushwork_dcgan": brushwork_variant("dcgan", res, b, w, device),
            "brushwork_modern": brushwork_variant("modern", res, b, w, device)}
    if device.type == "cpu" and use_bf16("auto", device):  # what bf16 autocast alone brings
        ours["brushwork_dcgan_fp32"] = brushwork_variant("dcgan", res, b, w, device, {"mixed_precision": "no"})
        ours["brushwork_modern_fp32"] = brushwork_variant("modern", res, b, w, device, {"mixed_precision": "no"})
    if args.compile:
        try:  # compiling can fail on some stacks; report it instead of losing the whole run
            # channels_last ConvTranspose breaks compiled backward on some releases: NCHW here
            compiled = brushwork_variant("dcgan", res, b, w, device,
                                         {"compile": True, "channels_last": False})
            compiled()
            ours["brushwork_dcgan_compiled"] = compiled
        except Exception as exc:  # noqa: BLE001
            print(f"compiled variant skipped: {type(exc).__name__}: {exc}"[:300], file=sys.stderr)
    if args.cuda_graph:
        for preset in ("dcgan", "modern"):
            ours[f"brushwork_{preset}_graph"] = brushwork_variant(preset, res, b, w, device, {"cuda_graph": True})
        if args.compile:
            ours["brushwork_dcgan_graph_compiled"] = brushwork_variant(
                "dcgan", res, b, w, device, {"cuda_graph": True, "compile": True, "channels_last": False})
    with_data = Path(args.data).is_dir() and not args.no_loader
    if with_data:  # end to end: both sides read the same paintings through their own pipelines
        ours["brushwork_dcgan_end_to_end"] = brushwork_variant("dcgan", res, b, w, device,
                                                               data=args.data)
        others = {"textbook_fp32_end_to_end": textbook_end_to_end(Path(args.data), res, b, w, device)}
    else:
        others = {}
    rates = measure(baselines | others | ours, b, device, args.seconds, args.rounds, args.warmup)
    best_name = max(baselines, key=lambda k: rates[k])
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "threads": torch.get_num_threads(), "res": res, "batch": b, "width": w,
              "img_per_s": rates, "baseline": best_name,
              "ratio_vs_best_textbook": {k: round(rates[k] / rates[best_name], 2) for k in ours
                                         if "end_to_end" not in k}}
    if args.tflops:
        per_image = flops_per_image(res, b, w, device)
        result["gflop_per_image"] = round(per_image / 1e9, 3)
        result["tflops"] = {k: round(rates[k] * per_image / 1e12, 2) for k in rates if "dcgan" in k}
        if device.type == "cuda":
            result["bf16_peak_tflops"] = bf16_peak_tflops(device)
    if with_data:
        result["end_to_end_ratio"] = round(rates["brushwork_dcgan_end_to_end"]
                                           / rates["textbook_fp32_end_to_end"], 2)
        result["loader_img_per_s"] = loader_rates(Path(args.data), res, b, min(args.seconds, 10))
    report(result, args.json)


if __name__ == "__main__":
    main()
