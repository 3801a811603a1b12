"""Collections larger than memory: memory use and speed of training from the mapped cache.

Writes a synthetic collection (the built-in procedural art, ``--n`` JPEGs at ``--res`` px), builds
brushwork's decoded cache (chunked, streamed), then trains the same small GAN for ``--steps``
steps two ways in one process, interleaved: batches gathered from the file-mapped cache (what
``brushwork train`` does), and from a copy of the whole collection in anonymous memory (the old
in-memory path). Reports images per second and memory: anonymous (what the process really holds)
and file-backed (page cache the kernel drops under pressure) separately, and peak resident size.

    python benchmarks/large_data.py --n 20000 --res 256 --steps 20
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

import common  # noqa: F401  (puts src/ on the path)
from brushwork.config import gan_preset  # noqa: E402
from brushwork.data.builtin import STYLES, paint  # noqa: E402
from brushwork.data.dataset import ArtDataset, ImageBatcher, load_dataset  # noqa: E402
from brushwork.training.gan import GANTask  # noqa: E402


def memory() -> dict:
    """Anonymous and file-backed resident MB of this process (Linux /proc), and the peak."""
    fields = dict(line.split(":", 1) for line in open("/proc/self/status")
                  if line.startswith(("RssAnon", "RssFile")))
    out = {k: round(int(v.split()[0]) / 1024) for k, v in fields.items()}
    out["peak_rss"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def write_collection(folder: Path, n: int, res: int) -> None:
    for i in range(n):
        style = STYLES[i % len(STYLES)]
        (folder / style).mkdir(parents=True, exist_ok=True)
        paint(style, i, res).save(folder / style / f"{i:06d}.jpg", quality=90)


def steps_per_second(ds: ArtDataset, res: int, steps: int, batch: int) -> float:
    cfg = gan_preset("modern", res)
    cfg.g_width = cfg.d_width = 8
    task = GANTask(cfg, torch.device("cpu"))
    batcher = ImageBatcher(ds, batch, res, torch.device("cpu"), channels_last=cfg.channels_last)
    real, labels = batcher.next()
    task.train_step(real, 0, labels)  # warm-up
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        real, labels = batcher.next()
        task.train_step(real, step, labels)
    return steps * batch / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--json", help="append the result as one JSON line to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    result = {"n": args.n, "res": args.res, "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_collection(Path(tmp) / "art", args.n, args.res)
        result["write_jpegs_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        ds = load_dataset(str(Path(tmp) / "art"), args.res, cache_dir=Path(tmp) / "cache")
        result["build_cache_s"] = round(time.perf_counter() - t0, 1)
        result["cache_mb"] = round(ds.images.numel() / 2**20)
        result["memory_after_build"] = memory()
        mapped = steps_per_second(ds, args.res, args.steps, args.batch)
        result["mapped"] = {"img_per_s": round(mapped, 1), "memory": memory()}
        in_memory = ArtDataset(ds.images.clone(), ds.labels, ds.label_names)  # the whole set in RAM
        copied = steps_per_second(in_memory, args.res, args.steps, args.batch)
        result["in_memory"] = {"img_per_s": round(copied, 1), "memory": memory()}
        result["mapped_vs_in_memory"] = round(mapped / copied, 3)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
