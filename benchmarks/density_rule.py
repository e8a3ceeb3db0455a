"""Score the rule that chooses the masks' density against what sparser masks measured.

``benchmarks/mask_density.py`` decodes each movie at density 0.5 and at a sparser one; its
figures hold the PSNR of both.  This regenerates each figure's movies (from the command the
figure records), measures their first group with :func:`emtcs.density.moving_share`, and
reports what the rule in use (sparser masks above :data:`emtcs.density.MOVING_SHARE`) gains
over density 0.5 everywhere, beside the rule before session 62 (the mean ratio the rows
record as ``motion_ratio``, bar 2) and an oracle that picks the better density per movie.
Gains are averaged over all the figure's movies, those kept at 0.5 counting 0.

    python benchmarks/density_rule.py docs/figures/mask-density-calibration.json \\
        docs/figures/mask-density.json docs/figures/mask-density-simulated.json \\
        docs/figures/mask-density-check.json docs/figures/mask-density-simulated-check.json \\
        docs/figures/mask-density-b30.json --scenes scratch/abtem/val_long_2-17.h5 \\
        --json docs/figures/density-rule.json

(the B = 30 figure's 60-frame scenes 2-17: ``python shared/data/abtem-hrtem/make_scenes.py
scratch/abtem/val_long_2-17.h5 2 16 --frames 60``.)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from emtcs.density import MOVING_SHARE, moving_share

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import mask_density  # noqa: E402

#: The bar of the rule before session 62, on the mean ratio of the same blocks.
MEAN_RATIO_BAR = 2.0


def score(figure: Path, scenes: Path | None) -> dict:
    """Each movie of ``figure`` with its gain from the sparser masks and both rules' choices."""
    doc = json.loads(figure.read_text())
    # the figure's command is " ".join(argv): splitting on single spaces keeps an empty --seeds
    options = mask_density.parser().parse_args(doc["command"].split(" ")[1:])
    if scenes is not None and options.scenes is not None and not options.scenes.exists():
        options.scenes = scenes
    B = options.B
    by_movie: dict[str, dict[float, dict]] = {}
    for row in doc["rows"]:
        by_movie.setdefault(row["movie"], {})[row["density"]] = row
    movies = []
    for name, noisy, _ in mask_density.movies(options):
        rows = by_movie.get(name)
        if rows is None or 0.5 not in rows or len(rows) != 2:
            continue
        sparse = min(rows)
        share = moving_share(noisy[:B])
        ratio = rows[0.5].get("motion_ratio")
        movies.append(
            {
                "movie": name,
                "density": sparse,
                "gain": round(rows[sparse]["auto"] - rows[0.5]["auto"], 3),
                "moving_share": round(share, 3),
                "motion_ratio": ratio,
                "chosen": share > MOVING_SHARE,
                "chosen_before": None if ratio is None else ratio > MEAN_RATIO_BAR,
            }
        )
    n = max(len(movies), 1)

    def average(key: str) -> float | None:
        if any(m[key] is None for m in movies):
            return None
        return round(sum(m["gain"] for m in movies if m[key]) / n, 3)

    return {
        "figure": str(figure),
        "B": B,
        "movies": len(movies),
        "rule": average("chosen"),
        "rule_before": average("chosen_before"),
        "oracle": round(sum(max(m["gain"], 0.0) for m in movies) / n, 3),
        "worst_chosen": min((m["gain"] for m in movies if m["chosen"]), default=None),
        "rows": movies,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("figures", nargs="+", type=Path, help="JSON figures of benchmarks/mask_density.py")
    ap.add_argument(
        "--scenes", type=Path, help="the abTEM scene file for a figure whose recorded one is not here (moved, renamed)"
    )
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    results = []
    for figure in a.figures:
        r = score(figure, a.scenes)
        results.append(r)
        chosen = sum(m["chosen"] for m in r["rows"])
        before = "-" if r["rule_before"] is None else f"{r['rule_before']:+.3f}"
        print(
            f"{figure.name}: {r['movies']} movies at B = {r['B']}; rule {r['rule']:+.3f} dB ({chosen} sparser, "
            f"worst {r['worst_chosen']}), rule before {before}, oracle {r['oracle']:+.3f}"
        )
    if a.json:
        doc = {
            "command": " ".join(sys.argv),
            "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
            "moving_share_bar": MOVING_SHARE,
            "mean_ratio_bar_before": MEAN_RATIO_BAR,
            "figures": results,
        }
        a.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
