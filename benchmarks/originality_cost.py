"""What checking every written image costs: ``brushwork index`` on a WikiArt collection (build
time, peak memory, and the time to bring it up to date after one added work), then ``sample`` of a
64 px GAN with and without the check, in the same process (the check's share of the time per
image; the goal of issue 21 is under 20% of the sample's time).

    python benchmarks/originality_cost.py --per-style 1000 --seeds 256
    python benchmarks/originality_cost.py audit --works 100000 --images 10000

``audit``: 10,000 images checked against a 100,000-work collection, index build (a separate
``brushwork index`` process: its time and peak memory) and audit timed apart. The collection is
the 12,000 WikiArt works plus blends of two random works (weights 0.3-0.7, mirrored at random):
new pictures, not edited copies of one work. The audited images are more such blends (textured,
as generated paintings are; an untrained GAN's flat images would make the check look cheaper)
and ``--planted`` edited copies of collection works (each edit of ``originality.py`` in turn),
whose detection rate at this scale is reported per edit.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from common import SHARED  # noqa: E402  (puts src/ on the path)
from brushwork.cli import main as cli  # noqa: E402
from brushwork.latents import parse_seeds  # noqa: E402
from brushwork.making.generate import WRITE_BATCH, load_model, write_seed_images  # noqa: E402
from brushwork.metrics.collection_index import build_index  # noqa: E402
from brushwork.originality_report import RunJudge  # noqa: E402


def _collection(root: Path, data: Path, styles: list[str], per_style: int) -> Path:
    """Links to the first ``per_style`` works of each style (the shared data is never copied)."""
    for style in styles:
        (root / style).mkdir(parents=True)
        for work in sorted((data / style).iterdir())[:per_style]:
            (root / style / work.name).symlink_to(work)
    return root


def _timed(fn, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def _blend(works: list[Path], rng) -> "Image.Image":
    from PIL import Image, ImageOps

    a, b = (Image.open(works[i]).convert("RGB").resize((64, 64)) for i in rng.choice(len(works), 2, replace=False))
    out = Image.blend(a, b, float(rng.uniform(0.3, 0.7)))
    return ImageOps.mirror(out) if rng.random() < 0.5 else out


def _blends(folder: Path, works: list[Path], n: int, seed: int) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        _blend(works, rng).save(sub / f"b{i:06d}.png")
    return folder


def _planted(folder: Path, works: list[Path], n: int, seed: int) -> dict[str, str]:
    """``n`` edited copies of collection works (the edits of ``originality.py``, in turn), as
    PNGs in ``folder``: {file name: edit}. Regions are pasted onto new blends (pictures that are
    not in the collection), so that only the pasted region can make them copies."""
    import random

    import numpy as np
    from PIL import Image

    from originality import edits

    rng, blend_rng = random.Random(seed), np.random.default_rng(seed)
    others = [_blend(works, blend_rng) for _ in range(50)]
    made = {}
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, edit) in zip(range(n), itertools.cycle(edits(rng, others).items())):
        work = Image.open(rng.choice(works)).convert("RGB").resize((64, 64))
        edit(work).save(folder / f"p{i:04d}.png")
        made[f"p{i:04d}.png"] = name
    return made


def audit(argv: list[str]) -> None:
    import subprocess
    import sys

    import torch

    from brushwork.metrics.collection_index import open_index
    from brushwork.originality_report import folder_to_check

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(SHARED / "wikiart64"))
    ap.add_argument("--works", type=int, default=100_000)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--planted", type=int, default=220, help="of the images, edited copies of works (20 per edit)")
    ap.add_argument("--work-dir", default="", help="keep the synthetic collection here (default: a temp folder)")
    ap.add_argument("--json", default="benchmarks/results/originality-audit.json")
    args = ap.parse_args(argv)
    root = Path(args.work_dir or tempfile.mkdtemp())
    os.environ["BRUSHWORK_CACHE"] = str(root / "cache")
    real = sorted(p for p in Path(args.data).rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    collection = root / "collection"
    if not collection.exists():
        _collection(collection / "wikiart", Path(args.data), sorted(p.name for p in Path(args.data).iterdir()
                                                                    if p.is_dir()), 10**9)
        _blends(collection / "blends", real, args.works - len(real), 1)
        _blends(root / "audited", real, args.images - args.planted, 2)
    planted = _planted(root / "audited" / "planted", real, args.planted, 3)  # the same files each time
    done = subprocess.run(
        [sys.executable, "-c", "import resource, sys; from brushwork.cli import main; c = main(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(c)",
         "index", str(collection), "--res", "64", "--quiet"], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    index = open_index(str(collection), 64)
    result = {"benchmark": "originality audit", "works": len(index.names),
              "index_build_s": float(done.stdout.split(" in ")[1].split(" s")[0]),
              "index_build_peak_rss_mib": round(int(done.stdout.split()[-1]) / 1024)}
    print(json.dumps(result), flush=True)
    images, names = folder_to_check(root / "audited", 64)
    _, load_s = _timed(lambda: index.copies)  # the search structures, built from the index files
    verdicts, audit_s = _timed(lambda: [v for chunk in images.split(256) for v in index.check(chunk)])
    copy = {Path(name).name: v["verdict"] == "COPY" for name, v in zip(names, verdicts)}
    detected = {edit: round(sum(copy[f] for f, e in planted.items() if e == edit)
                            / sum(e == edit for e in planted.values()), 3) for edit in dict.fromkeys(planted.values())}
    result |= {"thresholds": {"whole": round(index.thresholds[0], 4), "region": round(index.thresholds[1], 4)},
               "images": len(images), "open_index_s": round(load_s, 1), "audit_s": round(audit_s, 1),
               "audit_ms_per_image": round(1000 * audit_s / len(images), 2),
               "planted_detected": detected,
               "blends_flagged": sum(flag for f, flag in copy.items() if f not in planted),
               "audit_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
               "cpu_threads": torch.get_num_threads()}
    print(json.dumps(result, indent=2))
    (Path(__file__).resolve().parents[1] / args.json).write_text(json.dumps(result, indent=2) + "\n")
    if not args.work_dir:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    import sys

    if sys.argv[1:2] == ["audit"]:
        return audit(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(SHARED / "wikiart64"))
    ap.add_argument("--styles", default="baroque,romanticism,impressionism")
    ap.add_argument("--per-style", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=256, help="images sampled with and without the check")
    ap.add_argument("--textured", type=int, default=500, help="held-out paintings of each style checked "
                    "(enough batches that a rare slow one is counted at its true share)")
    ap.add_argument("--json", default="benchmarks/results/originality-cost.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["BRUSHWORK_CACHE"] = str(tmp / "cache")
        data = _collection(tmp / "art", Path(args.data), args.styles.split(","), args.per_style)
        index, build_s = _timed(build_index, str(data), 64, progress=False)
        shutil.copy(next((data / args.styles.split(",")[0]).iterdir()).resolve(), data / "added.jpg")
        updated, update_s = _timed(build_index, str(data), 64, progress=False)
        result = {"benchmark": "originality cost", "works": len(index.names), "index_build_s": round(build_s, 1),
                  "index_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "update_after_one_added_s": round(update_s, 2), "update_files_read": updated.decoded}
        print(json.dumps(result), flush=True)

        run = tmp / "run"  # a textbook-size 64 px GAN (modern preset); its weights do not matter here
        cli(["train", "gan", "--data", str(data), "--out", str(run), "--res", "64", "--steps", "1",
             "--batch-size", "8", "--device", "cpu", "--quiet"])
        model = load_model(run, "cpu")
        seeds = parse_seeds(f"0-{args.seeds - 1}")
        write_seed_images(model, seeds[:8], tmp / "warm", progress=False)  # first-call costs
        _, plain_s = _timed(write_seed_images, model, seeds, tmp / "plain", progress=False)
        model.judge = RunJudge(updated)
        model.judge(model.generate_seeds(seeds[:8]))  # the index mapped and FAISS warmed
        _, checked_s = _timed(write_seed_images, model, seeds, tmp / "checked", progress=False)
        per_image = {"sample_ms": 1000 * plain_s / len(seeds), "sample_checked_ms": 1000 * checked_s / len(seeds)}
        result |= {k: round(v, 2) for k, v in per_image.items()}
        result["check_ms"] = round(per_image["sample_checked_ms"] - per_image["sample_ms"], 2)
        result["check_share_of_sample"] = round(result["check_ms"] / per_image["sample_ms"], 2)
        # an untrained GAN's images are nearly flat, which the region check skips: the check's cost
        # on textured pictures, held-out paintings of the same styles
        from brushwork.originality_report import folder_to_check

        held = _collection(tmp / "held", Path(args.data), args.styles.split(","), args.per_style + args.textured)
        for style in args.styles.split(","):
            for work in sorted((held / style).iterdir())[:args.per_style]:
                work.unlink()
        paintings, _ = folder_to_check(held, 64)
        # first-call costs of textured pictures (once per process, 0.15 s) are paid before the
        # clock, as for the GAN above; then a new judge (it remembers no verdict) is handed
        # WRITE_BATCH images at a time, as sample hands them
        for part in paintings.split(WRITE_BATCH):
            RunJudge(updated)(part)
        judge = RunJudge(updated)
        _, textured_s = _timed(lambda: [judge(part) for part in paintings.split(WRITE_BATCH)])
        result["check_ms_paintings"] = round(1000 * textured_s / len(paintings), 2)
        result["check_share_of_sample_paintings"] = round(result["check_ms_paintings"] / per_image["sample_ms"], 2)
        result["cpu_threads"] = __import__("torch").get_num_threads()
    print(json.dumps(result, indent=2))
    out = Path(__file__).resolve().parents[1] / args.json
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
