"""Large requests in bounded memory: peak resident memory of ``brushwork sample`` for few and
many seeds (and of ``interpolate`` for few and many frames), each in a fresh process, on a small
run trained here. The goal (issue 23): 100,000 seeds within 10% of 1,000.

    python benchmarks/streaming.py --seeds 1000,100000 --frames 100,5000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak(argv: list[str]) -> dict:
    """Peak resident MiB and seconds of one brushwork command in a fresh process."""
    script = ("import resource, sys; from brushwork.cli import main; code = main(sys.argv[1:]); "
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    return {"peak_mib": round(int(done.stdout.split()[-1]) / 1024), "seconds": round(time.perf_counter() - t0, 1)}


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
