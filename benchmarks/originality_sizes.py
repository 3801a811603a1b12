"""The copy check across collection sizes: false alarms on unseen works of the same styles and the
detection of every edit, on collections of about 200, 800, 3,000 and 12,000 WikiArt works (64 px),
each with its own thresholds calibrated on it alone. One table (markdown) and the JSON rows.

    python benchmarks/originality_sizes.py                       # all four sizes
    python benchmarks/originality_sizes.py --sizes 200,800       # the small ones

Each size runs ``benchmarks/originality.py`` (same edits, same negatives rule: held-out works of
the collection's styles less those with an identical twin in it).
"""

from __future__ import annotations

import argparse

import originality

# size -> (styles, works per style, unseen works per style, planted copies per edit)
SIZES = {
    200: ("romanticism", 200, 400, 40),
    800: ("romanticism", 800, 400, 40),
    "800b": ("baroque", 800, 400, 40),
    3000: ("baroque,romanticism,impressionism", 1000, 200, 100),
    12000: ("baroque,romanticism,impressionism", 3800, 200, 200),
}


def table(rows: list[dict]) -> str:
    edits = list(rows[0]["detected"])
    head = "| collection | false alarms (either) | whole / region | " + " | ".join(edits) + " |"
    lines = [head, "|" + "---|" * (3 + len(edits))]
    for r in rows:
        fa = r["false_alarms"]
        cells = [f"{r['detected'][e]['either']:.0%}" for e in edits]
        lines.append(f"| {r['collection']:,} ({r['styles']}) | {fa['either']:.1%} of {r['negatives']} | "
                     f"{fa['whole']:.1%} / {fa['region']:.1%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200,800,800b,3000,12000")
    ap.add_argument("--json", default="benchmarks/results/originality-sizes.json")
    args = ap.parse_args()
    rows = []
    for size in args.sizes.split(","):
        styles, per_style, negatives, planted = SIZES[int(size) if size.isdigit() else size]
        row = originality.main(["--styles", styles, "--per-style", str(per_style), "--negatives", str(negatives),
                                "--planted", str(planted), "--json", args.json])
        rows.append(row | {"styles": styles})
    print(table(rows))


if __name__ == "__main__":
    main()
