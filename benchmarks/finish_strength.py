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
known).  Each finished tile's measurement residual is kept too, so that the rule with
other ladders and slacks (:data:`RULES`: ``LADDER+0.1`` is the shipped one, ``WIDE+0.3``
the wider ladder :data:`WIDE` with a slack of 0.3) is scored without finishing again.
Reported per decoder and group of cases: the mean PSNR at each strength and rule, its
gain over no finishing, the worst tile's gain and how many tiles lose more than 0.1 dB.

    python benchmarks/finish_strength.py --scenes scratch/abtem/calib_1800.h5 --json finish.json
    EMTCS_MODELS=scratch/candidates/RUN python benchmarks/finish_strength.py ... --decoders select
                                                  # a candidate's weights (GAP-TV's rows do not change)
"""

from __future__ import annotations

import json

import numpy as np

from emtcs.decoders import for_noise, get_decoder
from emtcs.decoders.guard import noise_ratio
from emtcs.finish import LADDER, SLACK, STRENGTH, finisher, strongest_allowed
from select_margin import calibration_groups, calibration_parser, split_unseen

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
#: The shipped ladder and stronger rungs, for frames that keep more error than their own
#: noise estimate sees (session 32).
WIDE = (*LADDER, 2.0, 2.5, 3.0)
#: The guided rule's variants scored from the kept residuals: (ladder, slack) by name.
RULES = {
    f"{name}+{slack}": (ladder, slack)
    for name, ladder in (("LADDER", LADDER), ("WIDE", WIDE))
    for slack in (SLACK, 0.2, 0.3, 0.5)
}
SETTINGS = (*(str(s) for s in STRENGTHS), "guided", *RULES)
DECODERS = ("select", "gaptv")


def ruled(scores: dict, ladder: tuple[float, ...], slack: float) -> float:
    """A tile's PSNR at the strength :func:`emtcs.finish.strongest_allowed` picks from
    ``ladder`` with ``slack``; at :data:`emtcs.finish.STRENGTH` where the noise is not known."""
    ratio = scores.get("ratio")
    if ratio is None:
        return scores[str(STRENGTH)]
    pick = strongest_allowed(np.array([ratio["0.0"]]), np.array([[ratio[str(s)]] for s in ladder]), slack)
    return scores[str(ladder[int(pick[0])])]


def summary(rows: list[dict], decoder: str) -> list[dict]:
    """Per strength: mean PSNR, mean and worst gain over no finishing, tiles losing > 0.1 dB."""
    out = []
    for s in SETTINGS:
        score = [ruled(r[decoder], *RULES[s]) if s in RULES else r[decoder][s] for r in rows]
        gain = [v - r[decoder]["0.0"] for v, r in zip(score, rows)]
        out.append(
            {
                "strength": s,
                "mean_psnr": float(np.mean(score)),
                "mean_gain": float(np.mean(gain)),
                "worst_gain": float(min(gain)),
                "losses_over_0.1dB": int(sum(g < -0.1 for g in gain)),
            }
        )
    return out


def main() -> None:
    ap = calibration_parser(__doc__)
    ap.add_argument("--decoders", default=",".join(DECODERS), help="of select,gaptv (default both)")
    a = ap.parse_args()
    chosen = a.decoders.split(",")
    if not chosen or set(chosen) - set(DECODERS):
        ap.error(f"--decoders: a list of {', '.join(DECODERS)}")
    finishes = {s: finisher("nlm", "cpu", strength=s) for s in STRENGTHS if s}
    guided = finisher("nlm", "cpu")
    rows = []
    for B, groups in calibration_groups(a):
        decoders = {key: get_decoder(key, B=B, device="cpu") if key == "select" else get_decoder(key) for key in chosen}
        for g in groups:
            row = {"case": g.name, "B": B}
            for key, dec in decoders.items():
                dec = for_noise(dec, measured=g.gain is not None)
                tile = dec.decode(g.y, g.C, g.electrons_per_unit)
                finished = {"0.0": tile} | {str(s): finish(tile) for s, finish in finishes.items()}
                row[key] = {s: g.psnr(f) for s, f in finished.items()}
                row[key]["guided"] = g.psnr(guided(tile, *g.told))
                if g.told:
                    y, C, epu = g.told
                    row[key]["ratio"] = {s: float(noise_ratio(y, C, f, epu)[0]) for s, f in finished.items()}
            rows.append(row)
            print(json.dumps(row), flush=True)
    groups = split_unseen(rows, a.shared)
    result = {f"{dec}_{group}": summary(part, dec) for dec in chosen for group, part in groups.items() if part}
    for key, table in result.items():
        print(key, json.dumps(table))
    if a.json:
        a.json.write_text(json.dumps({"strengths": STRENGTHS, "rows": rows, **result}, indent=1))


if __name__ == "__main__":
    main()
