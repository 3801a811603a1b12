"""What checking every written image costs: ``brushwork index`` on a WikiArt collection (build
time, peak memory, and the time to bring it up to date after one added work), then ``sample`` of a
64 px GAN with and without the check, in the same process (the check's share of the time per
image; the goal of issue 21 is under 20% of the sample's time).

    python benchmarks/originality_cost.py --per-style 1000 --seeds 256
"""

from __future__ import annotations

import argparse
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
from brushwork.making.generate import load_model, write_seed_images  # noqa: E402
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(SHARED / "wikiart64"))
    ap.add_argument("--styles", default="baroque,romanticism,impressionism")
    ap.add_argument("--per-style", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=256, help="images sampled with and without the check")
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
        result["cpu_threads"] = __import__("torch").get_num_threads()
    print(json.dumps(result, indent=2))
    out = Path(__file__).resolve().parents[1] / args.json
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
