"""How a decoded frame's quality depends on where in its group it sits.

A group of B frames is measured as one snapshot, so every frame is as present in the
measurement as any other; but a decoder that separates them with a temporal prior sees
the frames inside a group with neighbours on both sides and the first and last with one.
This decodes abTEM validation movies (the suite's scenes by default; seeds 0-31 are never
trained on), against their clean truth, and prints, for each decoder, the mean PSNR of the frames at each position
in their group, and what the movie's mean PSNR would be if the first and last frames
scored as the frames next to them (the room a decoder with context from the neighbouring
groups would have).

    python benchmarks/group_position.py --json docs/figures/group-position.json
    EMTCS_MODELS=scratch/candidates/RUN benchmarks/group_position.py ...   # a candidate's weights
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from emtcs.metrics import psnr
from peak_timeline import decoded
from validation import DOSES, SCENES, SHARED, abtem_movie


def by_position(truth: np.ndarray, test: np.ndarray, B: int) -> np.ndarray:
    """Per-frame PSNR of the whole groups of ``test``, shaped (groups, B)."""
    span = float(truth.max() - truth.min())
    n = len(truth) // B * B
    return np.array([psnr(t, d, data_range=span) for t, d in zip(truth[:n], test[:n])]).reshape(-1, B)


def edges_as_neighbours(scores: np.ndarray) -> float:
    """The mean PSNR if each group's first and last frames scored as the frames next to them."""
    fixed = scores.copy()
    fixed[:, 0], fixed[:, -1] = scores[:, 1], scores[:, -2]
    return float(fixed.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=SHARED, help="folder holding abtem-hrtem/")
    ap.add_argument("--seeds", default=",".join(map(str, SCENES)), help="abTEM validation scenes (0-31)")
    ap.add_argument("-B", default="10,20", help="group sizes (default 10,20)")
    ap.add_argument("--decoders", default="gaptv,gapunet,auto", help="comma-separated (default gaptv,gapunet,auto)")
    ap.add_argument("--finish", default="nlm", choices=("nlm", "none"), help="the finish (default nlm, as auto)")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args()
    scenes = a.shared / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
    if not scenes.exists():
        raise SystemExit(f"no abTEM scenes at {scenes}")
    seeds = [int(s) for s in a.seeds.split(",")]
    results: list[dict[str, Any]] = []
    Bs = [int(b) for b in a.B.split(",")]
    if any(not 2 <= B <= 20 for B in Bs):
        raise SystemExit(f"B must be 2 ... 20 (the movies have 20 frames), got {a.B}")
    names = a.decoders.split(",")
    for B in Bs:
        rows: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for seed in seeds:
            for dose in DOSES:
                noisy, clean = abtem_movie(scenes, seed, dose)
                for name, frames in decoded(noisy, B, names, a.finish).items():
                    rows[name].append(by_position(clean, frames, B))
        for name in names:
            scores = np.concatenate(rows[name])
            mean = float(scores.mean())
            results.append(
                {
                    "decoder": name,
                    "B": B,
                    "finish": a.finish,
                    "groups": len(scores),
                    "psnr_by_position": scores.mean(axis=0).round(3).tolist(),
                    "psnr": round(mean, 3),
                    "psnr_edges_as_neighbours": round(edges_as_neighbours(scores), 3),
                }
            )
            r = results[-1]
            print(
                f"B = {B:2d} {name:>8}: by position " + " ".join(f"{v:5.2f}" for v in r["psnr_by_position"]),
                f"\n{'':>13}mean {mean:.2f} dB; with the edges as their neighbours {r['psnr_edges_as_neighbours']:.2f}",
            )
    if a.json:
        a.json.write_text(json.dumps({"scenes": seeds, "doses": list(DOSES), "results": results}, indent=1))


if __name__ == "__main__":
    main()
