"""Does averaging GapUNet's decodes of a tile's mirror images pay, and what does it cost?

The cases are ``benchmarks/finish_strength.py``'s, apart from the validation suite (abTEM
scenes the weights were not trained on with ``--scenes``, the simulator's modes in uint16,
uint8 and as a CMOS camera records them, movies unlike the training data), 128 x 128 tiles
at B = 10 and 20.  Each is decoded by GapUNet with ``mirrors`` = 1, 2 and 4
(:class:`emtcs.decoders.learned.GapUNetDecoder`), unfinished and with the finishing the
decoders ship with (:mod:`emtcs.finish`, guided where the noise is known).  Reported per
group of cases: the mean PSNR gain over one decode and the worst case's, and the decode
time relative to one decode.

    python benchmarks/mirrors.py --scenes scratch/abtem/calib_1800.h5 --json mirrors.json
"""

from __future__ import annotations

import json
import time

import numpy as np

from emtcs.decoders import for_noise, get_decoder
from emtcs.finish import finisher
from select_margin import GROUP_SIZES, calibration_groups, calibration_parser, unseen_cases

MIRRORS = (1, 2, 4)


def main() -> None:
    a = calibration_parser(__doc__).parse_args()
    finish = finisher("nlm", "cpu")
    rows, seconds = [], dict.fromkeys(MIRRORS, 0.0)
    for B, groups in calibration_groups(a):
        decoders = {m: get_decoder("gapunet", B=B, device="cpu", mirrors=m, shift=False) for m in MIRRORS}
        for g in groups:
            row = {"case": g.name, "B": B}
            for m, dec in decoders.items():
                dec = for_noise(dec, measured=g.gain is not None)
                t = time.perf_counter()
                tile = dec.decode(g.y, g.C, g.electrons_per_unit)
                seconds[m] += time.perf_counter() - t
                row[f"{m}"] = g.psnr(tile)
                row[f"{m} finished"] = g.psnr(finish(tile, *g.told))
            rows.append(row)
            print(json.dumps(row), flush=True)
    unseen = {name for name, *_ in unseen_cases(a.shared)}
    groups = {
        "abTEM": [r for r in rows if r["case"].startswith("abTEM")],
        "simulator": [r for r in rows if r["case"] not in unseen and not r["case"].startswith("abTEM")],
        "unseen": [r for r in rows if r["case"] in unseen],
    }
    summary = []
    for B in GROUP_SIZES:
        for group, part in groups.items():
            part = [r for r in part if r["B"] == B]
            for m in MIRRORS[1:]:
                for kind in ("", " finished"):
                    gain = np.array([r[f"{m}{kind}"] - r[f"1{kind}"] for r in part])
                    if len(gain):
                        summary.append(
                            {
                                "B": B,
                                "group": group,
                                "mirrors": m,
                                "finished": bool(kind),
                                "cases": len(part),
                                "mean_gain_db": float(gain.mean()),
                                "worst_gain_db": float(gain.min()),
                            }
                        )
                        print(json.dumps(summary[-1]))
    cost = {m: seconds[m] / seconds[1] for m in MIRRORS}
    print("decode time relative to one decode:", cost)
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "summary": summary, "relative_time": cost}, indent=1))


if __name__ == "__main__":
    main()
