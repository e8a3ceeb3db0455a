"""``decompress --run``: what decoding runs of consecutive groups together gives, and costs.

A group's first and last frames decode 1.4 dB below the frames beside them
(``benchmarks/group_position.py``); decoded as one run, the frames either side of a
boundary between groups see each other (``benchmarks/group_context.py``, the network
alone).  This measures it the way a user gets it: movies of several groups compressed
once as ``emtcs compress`` does, decompressed with ``auto`` (select, guard, finish) at
``--run 1`` (each group alone) and at the runs asked for, against the clean truth, on
one core:

* abTEM validation scenes (seeds 0-31 are never trained on; 24 frames, B = 6: four
  groups) at 20 and 200 e/px;
* ``emtcs.simulate`` movies of each mode (40 frames at B = 10, 192 x 192; seeds above
  every training pool's), at their default dose.

Prints, per movie kind and run, the mean PSNR over all frames, over the frames beside
a boundary inside a run of 4 and elsewhere, and the decode time relative to ``--run 1``.

    python benchmarks/group_runs.py --json docs/figures/group-runs.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from emtcs.metrics import psnr
from emtcs.simulate import simulate
from round_trip import round_trip
from validation import DOSES, SHARED, abtem_movie

MODES = ("hrtem", "bright-field", "liquid-cell", "stem")
SIMULATOR_SEEDS = 20_000_000  # above every training pool's, as training/whole_movies.py


def movies(shared: Path, seeds: list[int]) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """(kind, B, noisy, clean) of every movie measured."""
    out = []
    scenes = shared / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
    if scenes.exists():
        for seed in seeds:
            for dose in DOSES:
                noisy, clean = abtem_movie(scenes, seed, dose, n_frames=24)
                out.append((f"abTEM {dose:g} e/px", 6, noisy, clean))
    else:
        print(f"no abTEM scenes at {scenes}: skipped")
    for mode in MODES:
        for i in range(len(seeds) // 4 or 1):
            noisy, clean = simulate(40, (192, 192), seed=SIMULATOR_SEEDS + i, mode=mode)
            out.append((f"simulated {mode}", 10, noisy, clean))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=SHARED, help="folder holding abtem-hrtem/")
    ap.add_argument("--seeds", default="0,1,2,3,4,5,6,7", help="abTEM validation scenes (0-31)")
    ap.add_argument("--runs", default="2,4", help="run lengths to compare with 1 (default 2,4)")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    runs = [1, *(int(r) for r in a.runs.split(","))]
    rows: dict[str, dict[int, list[list[float]]]] = {}
    seconds: dict[int, float] = dict.fromkeys(runs, 0.0)
    for kind, B, noisy, clean in movies(a.shared, [int(s) for s in a.seeds.split(",")]):
        span = float(clean.max() - clean.min())
        settings = {run: {"decoder": "auto", "device": "cpu", "run": run} for run in runs}
        for run, (frames, s) in round_trip(noisy, B, settings).items():
            rows.setdefault(kind, {}).setdefault(run, []).append(
                [psnr(c, d, data_range=span) for c, d in zip(clean, frames)]
            )
            seconds[run] += s
        print(f"{kind}: " + "  ".join(f"run {r} {np.mean(v[-1]):.3f}" for r, v in rows[kind].items()), flush=True)
    results = []
    for kind, by_run in rows.items():
        B = 6 if kind.startswith("abTEM") else 10
        n = len(next(iter(by_run.values()))[0])
        # frames beside a boundary inside a run of 4 (the default): the boundary before group g
        later = {t: t // B + (t % B == B - 1) for t in range(1, n - 1) if t % B in (0, B - 1)}
        beside = [t for t, g in later.items() if g % 4 != 0]
        others = [t for t in range(n) if t not in beside]
        for run, scores in by_run.items():
            mean = np.mean(scores, axis=0)
            results.append(
                {
                    "movies": kind,
                    "B": B,
                    "run": run,
                    "count": len(scores),
                    "psnr": round(float(mean.mean()), 3),
                    "psnr_beside_boundaries_in_runs_of_4": round(float(mean[beside].mean()), 3),
                    "psnr_other_frames": round(float(mean[others].mean()), 3),
                }
            )
    print(f"{'movies':<26}{'run':>4}{'PSNR':>9}{'beside':>9}{'others':>9}")
    for r in results:
        print(
            f"{r['movies']:<26}{r['run']:>4}{r['psnr']:9.3f}"
            f"{r['psnr_beside_boundaries_in_runs_of_4']:9.3f}{r['psnr_other_frames']:9.3f}"
        )
    ratio = {run: seconds[run] / seconds[1] for run in runs}
    print("decode time relative to --run 1: " + ", ".join(f"run {r} {v:.2f}x" for r, v in ratio.items()))
    if a.json:
        doc = {
            "machine": f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}",
            "seeds": a.seeds,
            "decode_time_relative_to_run_1": {str(r): round(v, 3) for r, v in ratio.items()},
            "results": results,
        }
        a.json.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
