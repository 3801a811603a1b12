"""4x (or --scale 2) upscaling of held-out WikiArt 128 px paintings from 32 px (64 px): an
upscaler trained on the collection's other works for --minutes of CPU time, against bicubic and
Lanczos.

PSNR (against the real 128 px works) and SWD (the texture measure: the upscaled set against
*other* real held-out works, so a method is not rewarded for matching its own originals), with
the floor beside it: the real works against those same other works. Then the cost: seconds per
1024 x 1024 output (a 256 px input, tiled) and peak resident memory for a 4096 x 4096 output.
Goal (issue 22): SWD at most 0.6x bicubic's at a PSNR no worse than bicubic's minus 1 dB.

    python benchmarks/upscale.py --minutes 10
    python benchmarks/upscale.py --scale 2 --minutes 60 --json benchmarks/results/upscale-2x.json
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common import SHARED  # noqa: E402  (puts src/ on the path)
from brushwork.config import RunConfig, TrainConfig, UpscalerConfig  # noqa: E402
from brushwork.data.dataset import load_dataset  # noqa: E402
from brushwork.imaging import psnr  # noqa: E402
from brushwork.making.upscale import load_upscaler, upscale_tensor  # noqa: E402
from brushwork.metrics.swd import swd  # noqa: E402
from brushwork.training.run import train_run  # noqa: E402


def _pil_resize(images: torch.Tensor, size: int, method) -> torch.Tensor:
    out = [np.asarray(Image.fromarray(im.permute(1, 2, 0).numpy()).resize((size, size), method))
           for im in images]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def _as_uint8(unit: torch.Tensor) -> torch.Tensor:
    return (unit.clamp(0, 1) * 255).round().to(torch.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(SHARED / "wikiart128"))
    ap.add_argument("--minutes", type=float, default=10.0, help="CPU minutes of upscaler training")
    ap.add_argument("--scale", type=int, choices=[2, 4], default=4)
    ap.add_argument("--texture-weight", type=float, help="the upscaler's texture term (default: its config's)")
    ap.add_argument("--held-out", type=int, default=300, help="works never trained on (half upscaled, half reference)")
    ap.add_argument("--json", default="benchmarks/results/upscale.json")
    args = ap.parse_args()
    ds = load_dataset(args.data, 128, progress=False)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    test, reference, train = order[:args.held_out // 2], order[args.held_out // 2:args.held_out], order[args.held_out:]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "train" / "works"
        folder.mkdir(parents=True)
        for i in train.tolist():  # the training works as files (the run's data is a folder)
            Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")
        model = UpscalerConfig(resolution=128, scale=args.scale)
        if args.texture_weight is not None:
            model.texture_weight = args.texture_weight
        cfg = RunConfig(kind="upscaler", model=model,
                        train=TrainConfig(data=str(folder.parent), batch_size=16, steps=10**7, log_every=50,
                                          sample_every=10**7, ckpt_every=10**7, device="cpu"))
        trainer = train_run(cfg, Path(tmp) / "run", quiet=True, time_limit=args.minutes * 60,
                            clock=time.process_time)
        up = load_upscaler(Path(tmp) / "run", device="cpu")
        real, others = ds.images[test], ds.images[reference]
        small = F.avg_pool2d(real.float(), args.scale).round().to(torch.uint8)  # 32 px (64 px) inputs
        made = {"bicubic": _pil_resize(small, 128, Image.BICUBIC),
                "lanczos": _pil_resize(small, 128, Image.LANCZOS),
                "upscaler": torch.stack([_as_uint8(upscale_tensor(up, s.float() / 255)) for s in small])}
        floor = swd(real, others)
        result = {"benchmark": f"upscale {args.scale}x from {128 // args.scale} px", "train_works": len(train), "test_works": len(test),
                  "training_steps": trainer.step, "cpu_minutes": args.minutes,
                  "texture_weight": model.texture_weight,
                  "floor_swd_real_vs_other_real": floor["mean"], "floor_swd_levels": floor["levels"]}
        for name, images in made.items():
            to_unit = lambda x: x.float() / 127.5 - 1  # noqa: E731
            texture = swd(images, others)  # per pyramid level too: upscaling can only mend the fine ones
            result[name] = {"psnr": round(psnr(to_unit(images), to_unit(real)).mean().item(), 3),
                            "swd_vs_other_real": texture["mean"], "swd_levels": texture["levels"]}
        result["swd_ratio_upscaler_to_bicubic"] = round(result["upscaler"]["swd_vs_other_real"]
                                                        / result["bicubic"]["swd_vs_other_real"], 3)
        result |= _cost(up, Path(tmp) / "run", Path(tmp), args.scale)
    print(json.dumps(result, indent=2))
    (Path(__file__).resolve().parents[1] / args.json).write_text(json.dumps(result, indent=2) + "\n")


def _cost(up, run: Path, tmp: Path, scale: int) -> dict:
    """Seconds per 1024 x 1024 output; peak resident memory of a fresh ``brushwork upscale``
    process making a 4096 x 4096 output (tiled), beside one making 1024 x 1024."""
    import subprocess
    import sys

    image = torch.rand(3, 1024 // scale, 1024 // scale)
    start = time.perf_counter()
    upscale_tensor(up, image)
    result = {"seconds_per_1024px_output": round(time.perf_counter() - start, 2)}
    for side in (1024 // scale, 4096 // scale):
        path = tmp / f"input{side}.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
        done = subprocess.run(
            [sys.executable, "-c", "import resource, sys; from brushwork.cli import main; c = main(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(c)",
             "upscale", str(path), "--run", str(run), "--out", str(tmp / "big"), "--device", "cpu"],
            capture_output=True, text=True, check=True,
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "PATH": "/usr/bin:/bin"})
        result[f"peak_rss_mib_{side * scale}px_output"] = round(int(done.stdout.split()[-1]) / 1024)
    return result


if __name__ == "__main__":
    main()
