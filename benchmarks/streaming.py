"""Large requests in bounded memory: peak resident memory of ``brushwork sample`` for few and
many seeds (and of ``interpolate`` for few and many frames), each in a fresh process, on a small
run trained here. The goal (issue 23): 100,000 seeds within 10% of 1,000.

    python benchmarks/streaming.py --seeds 1000,100000 --frames 100,5000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import ROOT, peak  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="1000,100000")
    ap.add_argument("--frames", default="100,5000")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        sys.path.insert(0, str(ROOT / "src"))
        from brushwork.cli import main as cli

        cli(["train", "gan", "--data", "builtin:abstract:8", "--out", str(run), "--res", "64", "--steps", "2",
             "--batch-size", "8", "--device", "cpu", "--quiet"])
        result = {"benchmark": "streaming", "run": "modern, 64 px"}
        for n in (int(s) for s in args.seeds.split(",")):
            result[f"sample {n} seeds"] = peak(["sample", str(run), "--seeds", f"0-{n - 1}", "--out",
                                                str(Path(tmp) / f"s{n}"), "--device", "cpu"])
            print(json.dumps(result), flush=True)
        for f in (int(s) for s in args.frames.split(",")):
            result[f"interpolate {f} frames"] = peak(["interpolate", str(run), "--seeds", "1,2,3", "--frames",
                                                      str(f), "--out", str(Path(tmp) / f"w{f}.gif"), "--device", "cpu"])
        seeds = [k for k in result if k.startswith("sample")]
        result["ratio_many_to_few_seeds"] = round(result[seeds[-1]]["peak_mib"] / result[seeds[0]]["peak_mib"], 3)
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / "streaming.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
