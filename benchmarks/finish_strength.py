"""Calibrate the finishing (:mod:`emtcs.finish`): does non-local means at s times each
frame's own estimated noise sigma improve decoded tiles, and at which s?

The cases are ``benchmarks/select_margin.py``'s, apart from the validation suite:
abTEM scenes the weights were not trained on (``--scenes``, e.g. seeds 1800-1815), the
movie simulator's four imaging modes at 5-1000 e/px in uint16 and uint8, the same as a
CMOS camera records them (gain 4 levels per electron, offset 200, read noise 3 e), and movies
unlike the training data (two optical video-SCI scenes, a HAADF tilt series, a
simulated focal series), 128 x 128 tiles at B = 10 and 20.  Each is decoded once by
``select`` (what ``auto`` runs) and once by the noise-aware GAP-TV, then finished at
every strength of :data:`STRENGTHS` (0: not finished) and at the strength the measurement
allows (``guided``, :mod:`emtcs.finish`'s rule; the fixed default where the noise is not
known).  Reported per decoder and group of cases: the mean PSNR at each strength, its gain
over no finishing, the worst tile's gain and how many tiles lose more than 0.1 dB.

    python benchmarks/finish_strength.py --scenes scratch/abtem/calib_1800.h5 --json finish.json
"""

from __future__ import annotations

import json

import numpy as np

from emtcs.decoders import for_noise, get_decoder
from emtcs.finish import finisher
from select_margin import calibration_groups, calibration_parser, split_unseen

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
SETTINGS = (*(str(s) for s in STRENGTHS), "guided")


def summary(rows: list[dict], decoder: str) -> list[dict]:
    """Per strength: mean PSNR, mean and worst gain over no finishing, tiles losing > 0.1 dB."""
    out = []
    for s in SETTINGS:
        gain = [r[decoder][s] - r[decoder]["0.0"] for r in rows]
        out.append(
            {
                "strength": s,
                "mean_psnr": float(np.mean([r[decoder][s] for r in rows])),
                "mean_gain": float(np.mean(gain)),
                "worst_gain": float(min(gain)),
                "losses_over_0.1dB": int(sum(g < -0.1 for g in gain)),
            }
        )
    return out


def main() -> None:
    a = calibration_parser(__doc__).parse_args()
    finishes = {s: finisher("nlm", "cpu", strength=s) for s in STRENGTHS if s}
    guided = finisher("nlm", "cpu")
    rows = []
    for B, groups in calibration_groups(a):
        decoders = {"select": get_decoder("select", B=B, device="cpu"), "gaptv": get_decoder("gaptv")}
        for g in groups:
            row = {"case": g.name, "B": B}
            for key, dec in decoders.items():
                dec = for_noise(dec, measured=g.gain is not None)
                tile = dec.decode(g.y, g.C, g.electrons_per_unit)
                row[key] = {"0.0": g.psnr(tile)}
                for s, finish in finishes.items():
                    row[key][str(s)] = g.psnr(finish(tile))
                row[key]["guided"] = g.psnr(guided(tile, *g.told))
            rows.append(row)
            print(json.dumps(row), flush=True)
    groups = split_unseen(rows, a.shared)
    result = {
        f"{dec}_{group}": summary(part, dec) for dec in ("select", "gaptv") for group, part in groups.items() if part
    }
    for key, table in result.items():
        print(key, json.dumps(table))
    if a.json:
        a.json.write_text(json.dumps({"strengths": STRENGTHS, "rows": rows, **result}, indent=1))


if __name__ == "__main__":
    main()
