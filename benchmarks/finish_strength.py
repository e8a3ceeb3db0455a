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

import argparse
import json
from pathlib import Path

import numpy as np

from emtcs.decoders import for_noise, get_decoder
from emtcs.finish import finisher
from emtcs.simulate import MovieSimulator, SimulationConfig
from select_margin import DOSES, MODES, SIZE, add_case_options, calibration_cases, coded_groups, split_unseen

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
SETTINGS = (*(str(s) for s in STRENGTHS), "guided")


def cmos_cases(rng: np.random.Generator):
    """The simulator's modes and doses as a CMOS camera records them, offset removed."""
    k = 0
    for mode in MODES:
        for dose in DOSES:
            k += 1
            cfg = SimulationConfig(
                n_frames=20,
                shape=(SIZE, SIZE),
                dose=dose,
                mode=mode,
                gain=4.0,
                offset=200.0,
                read_noise=3.0,
                seed=900 + k,
            )
            sim = MovieSimulator(cfg)
            noisy = np.stack([sim.noisy_frame(t) for t in range(20)]).astype(np.float32) - sim.offset
            clean = np.stack([sim.clean_frame(t) for t in range(20)]).astype(np.float32) - sim.offset
            yield f"{mode} CMOS, {dose:g} e/px", noisy, clean, sim.gain


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
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_case_options(ap)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    cases = calibration_cases(a, rng, cmos_cases(rng))
    finishes = {s: finisher("nlm", "cpu", strength=s) for s in STRENGTHS if s}
    guided = finisher("nlm", "cpu")
    rows = []
    for B in (10, 20):
        decoders = {"select": get_decoder("select", B=B, device="cpu"), "gaptv": get_decoder("gaptv")}
        for g in coded_groups(cases, B):
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
