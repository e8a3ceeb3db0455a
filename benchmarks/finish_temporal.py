"""Calibrate the finishing's search of neighbouring frames (:mod:`emtcs.finish`, ``temporal``):
does comparing each pixel's patch also with those of the R frames before and after it in its
group (offsets up to S pixels) improve decoded tiles over each frame alone, and at which R, S?

The cases are ``benchmarks/finish_strength.py``'s (apart from the validation suite), decoded
once by ``select`` (what ``auto`` runs, as shipped) at B = 10 and 20, then finished the way
decompress finishes them (the strength the measurement allows; the fixed default where the
noise is not known) at every setting of :data:`SETTINGS`.  Reported per group of cases and
setting: mean PSNR, mean and worst gain over each frame alone (R = 0), tiles losing more
than 0.1 dB, and the finishing's CPU time relative to R = 0.

    python benchmarks/finish_temporal.py --scenes scratch/abtem/calib_1800.h5 --json finish-temporal.json
"""

from __future__ import annotations

import json
import time

import numpy as np

from emtcs.decoders import for_noise, get_decoder
from emtcs.finish import finisher
from select_margin import calibration_groups, calibration_parser, split_unseen

#: (frames either side R, search radius S there); (0, 0) is each frame alone.
SETTINGS = ((0, 0), (1, 2), (2, 1), (2, 2), (3, 2))


def summary(rows: list[dict]) -> list[dict]:
    """Per setting: mean PSNR, mean and worst gain over R = 0, tiles losing > 0.1 dB, CPU time."""
    out = []
    for key in (f"R{r}S{s}" for r, s in SETTINGS):
        gain = [r[key] - r["R0S0"] for r in rows]
        out.append(
            {
                "setting": key,
                "mean_psnr": float(np.mean([r[key] for r in rows])),
                "mean_gain": float(np.mean(gain)),
                "worst_gain": float(min(gain)),
                "losses_over_0.1dB": int(sum(g < -0.1 for g in gain)),
                "cpu_time_ratio": float(sum(r[f"{key}_s"] for r in rows) / sum(r["R0S0_s"] for r in rows)),
            }
        )
    return out


def main() -> None:
    a = calibration_parser(__doc__).parse_args()
    rows = []
    for B, groups in calibration_groups(a):
        select = get_decoder("select", B=B, device="cpu")
        for g in groups:
            tile = for_noise(select, measured=g.gain is not None).decode(g.y, g.C, g.electrons_per_unit)
            row = {"case": g.name, "B": B, "unfinished": g.psnr(tile)}
            for r, s in SETTINGS:
                finish = finisher("nlm", "cpu", temporal=r, temporal_search=s)
                start = time.process_time()
                done = finish(tile, *g.told)
                row[f"R{r}S{s}_s"] = time.process_time() - start
                row[f"R{r}S{s}"] = g.psnr(done)
            rows.append(row)
            print(json.dumps(row), flush=True)
    groups = split_unseen(rows, a.shared)
    result = {group: summary(part) for group, part in groups.items() if part}
    for key, table in result.items():
        print(key, json.dumps(table))
    if a.json:
        a.json.write_text(json.dumps({"settings": SETTINGS, "rows": rows, **result}, indent=1))


if __name__ == "__main__":
    main()
