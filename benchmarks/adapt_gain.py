"""Calibrate ``--adapt``: what fitting GapUNet to a movie's own measurements
(:mod:`emtcs.adapt`) does to ``select``'s frames, on tiles apart from the validation suite.

The cases are ``benchmarks/select_margin.py``'s (abTEM scenes the weights were not trained
on, the simulator's four modes in uint16, uint8 and as a CMOS camera records them, and
movies unlike the training data), 128 x 128 tiles.  Each group is decoded by ``select``
with the shipped weights, then with weights fitted to that group by ``--steps`` steps of
:func:`emtcs.adapt.adapt` (the tile is the file: it fits the measurement it then decodes;
the parameters of :data:`emtcs.adapt.FITTED`, those named by ``--fit``, or all with ``--all``),
unfinished, against the clean truth.  Reported per group of cases: the mean gain in PSNR,
the worst tile's, the tiles losing more than 0.1 dB, how often the fitted weights were
kept and the seconds of fitting per tile.

    python benchmarks/adapt_gain.py --scenes scratch/abtem/calib_1800.h5 --json adapt.json
"""

from __future__ import annotations

import json
import time

import numpy as np

from emtcs.adapt import FITTED, Sample, adapt
from emtcs.decoders import for_noise, get_decoder
from select_margin import calibration_groups, calibration_parser, split_unseen, unseen_cases


def summary(rows: list[dict]) -> dict:
    """Mean and worst gain, tiles losing > 0.1 dB, share of tiles whose fitted weights were kept."""
    gain = np.array([r["fitted"] - r["shipped"] for r in rows])
    return {
        "tiles": len(rows),
        "mean_gain": float(gain.mean()),
        "worst_gain": float(gain.min()),
        "losses_over_0.1dB": int((gain < -0.1).sum()),
        "kept": float(np.mean([r["kept"] > 0 for r in rows])),
        "seconds_per_tile": float(np.mean([r["seconds"] for r in rows])),
    }


def main() -> None:
    ap = calibration_parser(__doc__)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--every", type=int, default=1, help="only every n-th training-like case...")
    ap.add_argument("--phase", type=int, default=0, help="...starting from this one (0 to every - 1)")
    ap.add_argument("-B", default="10", help="group sizes (comma-separated; 10 and/or 20)")
    ap.add_argument("--all", action="store_true", help="fit every parameter, not emtcs.adapt.FITTED")
    ap.add_argument("--fit", help="comma-separated name prefixes of the parameters fitted (default emtcs.adapt.FITTED)")
    a = ap.parse_args()
    prefixes = tuple(a.fit.split(",")) if a.fit else FITTED

    def chosen(name: str) -> bool:
        return a.all or name.startswith(prefixes)

    import torch

    torch.set_num_threads(1)
    unseen = {name for name, *_ in unseen_cases(a.shared)}
    wanted = {int(b) for b in a.B.split(",")}
    rows = []
    for B, groups in calibration_groups(a):
        if B not in wanted:
            continue
        for i, g in enumerate(groups):
            if g.name not in unseen and i % a.every != a.phase:
                continue
            epu = g.electrons_per_unit  # a guess where the gain is not known, as decompress's
            shipped = for_noise(get_decoder("select", B=B, device="cpu"), measured=g.gain is not None)
            row = {"case": g.name, "B": B, "shipped": g.psnr(shipped.decode(g.y, g.C, epu))}
            fitted = for_noise(get_decoder("select", B=B, device="cpu"), measured=g.gain is not None)
            sample = Sample(
                torch.from_numpy(g.y),
                torch.from_numpy(g.C),
                torch.tensor([epu], dtype=torch.float32),
                fitted,
            )
            t0 = time.perf_counter()
            done = adapt(fitted, [sample], a.steps, fit=chosen)
            row |= {"seconds": time.perf_counter() - t0, "kept": done.kept, "ratio": done.ratio}
            row["fitted"] = g.psnr(fitted.decode(g.y, g.C, epu))
            rows.append(row)
            print(json.dumps(row), flush=True)
    report = {name: summary(part) for name, part in split_unseen(rows, a.shared).items() if part}
    print(json.dumps(report, indent=1))
    if a.json:
        fitted = "all" if a.all else list(prefixes)
        a.json.write_text(json.dumps({"steps": a.steps, "fitted": fitted, "summary": report, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
