"""Metric speed and the memorisation found in real data.

* SWD: images per second for multi-scale SWD between two disjoint sets of WikiArt paintings.
* Originality search: images per second for finding the nearest of N training paintings by tiled
  L2 and by VGG features (random stand-in weights; speed does not depend on them).
* Duplicates: the near-duplicate pairs inside the shared WikiArt 64 px set (scraped collections
  contain byte-identical files across style folders), and the memorisation rate that the
  originality check reports for a "model" that outputs a held-out sample of that same data.

    python benchmarks/metrics.py --n 10000
"""

from __future__ import annotations

import argparse
import time

import torch

from common import SHARED, report  # noqa: E402  (also puts src/ on the path)
from brushwork.data.dataset import load_dataset  # noqa: E402
from brushwork.metrics.originality import check_originality, near_duplicates  # noqa: E402
from brushwork.metrics.swd import swd  # noqa: E402
from brushwork.models.vgg import VGGFeatures  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SHARED / "wikiart64"))
    ap.add_argument("--n", type=int, default=10000, help="training images searched")
    ap.add_argument("--queries", type=int, default=1000, help="images checked for originality")
    ap.add_argument("--swd-n", type=int, default=2000, help="images per side for SWD")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="append the result as a JSON line to this file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    ds = load_dataset(args.data, 64, progress=False)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    train, queries = ds.images[order[: args.n]], ds.images[order[args.n: args.n + args.queries]]
    result = {"device": str(device), "dataset_images": len(ds)}

    t0 = time.perf_counter()
    value = swd(ds.images[order[: args.swd_n]], ds.images[order[args.swd_n: 2 * args.swd_n]], device=device)
    seconds = time.perf_counter() - t0
    result["swd"] = {"images": 2 * args.swd_n, "seconds": round(seconds, 2),
                     "img_per_s": round(2 * args.swd_n / seconds, 1), "real_vs_real": value["mean"]}

    encoder = VGGFeatures(("relu2_1", "relu3_1", "relu4_1"), weights="random").to(device)
    t0 = time.perf_counter()
    found = check_originality(queries, train, encoder, calibration=2000)
    seconds = time.perf_counter() - t0
    result["originality"] = {"queries": len(queries), "training_images": len(train),
                             "seconds": round(seconds, 2), "queries_per_s": round(len(queries) / seconds, 1),
                             **found.summary()}

    t0 = time.perf_counter()
    pairs = near_duplicates(ds.images)
    seconds = time.perf_counter() - t0
    in_pairs = {i for i, j, _ in pairs} | {j for i, j, _ in pairs}
    exact = sum(1 for *_, d in pairs if d < 0.05)
    result["duplicates"] = {"pairs": len(pairs), "exact_pairs": exact, "images_involved": len(in_pairs),
                            "fraction_of_data": round(len(in_pairs) / len(ds), 4),
                            "seconds": round(seconds, 1),
                            "examples": [(ds.files[i], ds.files[j], d) for i, j, d in pairs[:5]]}
    report(result, args.json)


if __name__ == "__main__":
    main()
