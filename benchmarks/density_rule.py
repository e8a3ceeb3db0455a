"""Score the rule that chooses the masks' density against what sparser masks measured.

``benchmarks/mask_density.py`` decodes each movie at density 0.5 and at a sparser one; its
figures hold the PSNR of both.  This regenerates each figure's movies (from the command the
figure records), measures their first group with :func:`emtcs.density.moving_share`, and
reports what the rule in use (sparser masks above :data:`emtcs.density.MOVING_SHARE`) gains
over density 0.5 everywhere, beside the rule before session 62 (:func:`mean_ratio` above 2)
and an oracle that picks the better density per movie.
Gains are averaged over all the figure's movies, those kept at 0.5 counting 0.

    python benchmarks/density_rule.py docs/figures/mask-density-calibration.json \\
        docs/figures/mask-density.json docs/figures/mask-density-simulated.json \\
        docs/figures/mask-density-check.json docs/figures/mask-density-simulated-check.json \\
        docs/figures/mask-density-check2.json docs/figures/mask-density-simulated-check2.json \\
        docs/figures/mask-density-b30.json docs/figures/mask-density-flicker.json \\
        --scenes scratch/abtem/val_long_2-17.h5 \\
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

import numpy as np

from emtcs.density import BOX, MOVING_SHARE, WINDOW, moving_share

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import mask_density  # noqa: E402

#: The bar of the rule before session 62, on :func:`mean_ratio`.
MEAN_RATIO_BAR = 2.0


def mean_ratio(levels: np.ndarray) -> float:
    """The statistic of the rule before session 62: over the same blocks as
    :func:`~emtcs.density.moving_share`, the mean variance of the block means over the group
    against the mean variance of the halves' difference."""
    B, H, W = levels.shape
    h, w = min(H, WINDOW) // BOX * BOX, min(W, WINDOW) // BOX * BOX
    y0, x0 = (H - h) // 2, (W - w) // 2
    pairs = []
    for frame in levels:
        halves = np.asarray(frame, np.float64)[y0 : y0 + h, x0 : x0 + w].reshape(h // BOX, BOX, w // BOX, 2, BOX // 2)
        left, right = halves.sum(axis=(1, 4)).transpose(2, 0, 1)
        pair = np.stack([left + right, left - right])
        pairs.append(pair / pair[0].mean())
    change = np.var(pairs, axis=0).mean(axis=(1, 2))
    return float(change[0] / change[1])


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
        ratio = mean_ratio(noisy[:B])
        movies.append(
            {
                "movie": name,
                "density": sparse,
                "gain": round(rows[sparse]["auto"] - rows[0.5]["auto"], 3),
                "moving_share": round(share, 3),
                "mean_ratio": round(ratio, 3),
                "chosen": share > MOVING_SHARE,
                "chosen_before": ratio > MEAN_RATIO_BAR,
            }
        )
    n = max(len(movies), 1)

    def average(key: str) -> float:
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
        print(
            f"{figure.name}: {r['movies']} movies at B = {r['B']}; rule {r['rule']:+.3f} dB ({chosen} sparser, "
            f"worst {r['worst_chosen']}), rule before {r['rule_before']:+.3f}, oracle {r['oracle']:+.3f}"
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
