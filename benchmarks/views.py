"""Which decodes should GapUNet average?  The grid's copy of a lattice, PSNR and time per view set.

GapUNet's frames are a weighted mean of decodes of the tile, its mirror images and the
tile on the network's 2 x 2 pixel grid one pixel over (:func:`emtcs.decoders.learned.views`).
Compared here, at the same cost where possible:

* ``session 19``: the tile, its left-right mirror image and the tile one pixel over, a
  third each (the default of session 19);
* ``default``: the view set the decoder ships with (session 20: the tile a half, the tile
  one pixel over and its up-down mirror image a quarter each, so that both parities of
  the grid weigh the same);
* ``mirrors 2, shift``: the tile and its left-right mirror image, and the same two one
  pixel over, a quarter each (one decode more).

Measured (1) on the README demo's first group of B = 10 (``emtcs simulate``'s defaults,
as ``benchmarks/grid_alias.py``): the copy of the lattice's strongest reflection half the
sampling rate away, along x and y, relative to the reflection, and the PSNR against the
truth; (2) on the calibration tiles of ``benchmarks/finish_strength.py`` (apart from the
validation suite; 128 x 128, B = 10 and 20), decoded by ``select`` as ``auto`` runs it and
finished: mean PSNR change against session 19's views, the worst tile's, and the time.

    python benchmarks/views.py --scenes scratch/abtem/calib_1800.h5 --json views.json
"""

from __future__ import annotations

import json
import time

import numpy as np

from emtcs.decoders import for_noise, get_decoder
from emtcs.decoders.learned import View, views
from emtcs.finish import finisher
from emtcs.metrics import psnr
from grid_alias import aliases, demo_group
from select_margin import calibration_groups, calibration_parser, split_unseen

VIEW_SETS: dict[str, tuple[View, ...]] = {
    "session 19": (View(False, (), 1 / 3), View(False, (-1,), 1 / 3), View(True, (), 1 / 3)),
    "default": views(1, True),
    "mirrors 2, shift": views(2, True),
}


def demo_alias(B: int = 10) -> dict[str, dict[str, float]]:
    """Per view set: the grid's copy along x and y (median over frames) and PSNR on the demo."""
    truth, y, C, scale, k = demo_group(B)
    rng = float(truth.max() - truth.min())
    out = {"truth": {ax: float(np.median(np.abs(v))) for ax, v in aliases(truth, k).items()}}
    dec = get_decoder("gapunet", B=B, device="cpu")
    for name, view_set in VIEW_SETS.items():
        dec.views = view_set
        frames = dec.decode(y[None] / scale, C[None], scale)[0] * scale
        copy = aliases(frames, k)
        out[name] = {
            "alias_x": float(np.median(np.abs(copy["x"]))),
            "alias_y": float(np.median(np.abs(copy["y"]))),
            "psnr": float(np.mean([psnr(t, f, data_range=rng) for t, f in zip(truth, frames)])),
        }
        print("demo", name, json.dumps(out[name]), flush=True)
    return out


def main() -> None:
    a = calibration_parser(__doc__).parse_args()
    result = {"view_sets": {n: [v._asdict() for v in vs] for n, vs in VIEW_SETS.items()}, "demo": demo_alias()}
    finish = finisher("nlm", "cpu")
    rows, seconds = [], dict.fromkeys(VIEW_SETS, 0.0)
    for B, groups in calibration_groups(a):
        dec = get_decoder("select", B=B, device="cpu")
        for g in groups:
            row = {"case": g.name, "B": B}
            used = for_noise(dec, measured=g.gain is not None)
            for name, view_set in VIEW_SETS.items():
                used.views = view_set
                t = time.perf_counter()
                tile = used.decode(g.y, g.C, g.electrons_per_unit)
                seconds[name] += time.perf_counter() - t
                row[name] = g.psnr(finish(tile, *g.told))
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {}
    for part, part_rows in split_unseen(rows, a.shared).items():
        for name in VIEW_SETS:
            gain = np.array([r[name] - r["session 19"] for r in part_rows])
            if len(gain):
                summary[f"{part}: {name}"] = {
                    "tiles": len(gain),
                    "mean_gain_db": float(gain.mean()),
                    "worst_gain_db": float(gain.min()),
                    "best_gain_db": float(gain.max()),
                }
    result.update(rows=rows, summary=summary, relative_time={n: s / seconds["session 19"] for n, s in seconds.items()})
    print(json.dumps(summary, indent=1), json.dumps(result["relative_time"]))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
