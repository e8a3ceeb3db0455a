"""Calibrate GapUNet's final projection: how far may its frames' prediction of a measurement
pixel stray from the recorded value, in shot-noise sigmas (``kappa``), before the excess is
put back into the frames?

A bound too tight pulls denoised frames back towards the noisy measurement (with the true
frames, 13 % of pixels lie beyond 1.5 sigma and 0.3 % beyond 3); a bound too loose lets
a correction leave the data.  Measured like ``select_margin.py``, on tiles never used to
judge the rule (the validation suite checks it afterwards): abTEM scenes the weights were
not trained on, the simulator's four imaging modes at 5-1000 e/px, and movies unlike the
training data.  The network runs once per tile; each bound is applied to its frames
before the projection.

    python benchmarks/projection_bound.py --scenes scratch/abtem/calib_1800.h5 --json bound.json
"""

from __future__ import annotations

import json

import numpy as np

from emtcs.decoders import for_noise, get_decoder
from select_margin import calibration_groups, calibration_parser, split_unseen

KAPPAS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 1e6)


def main() -> None:
    import torch

    a = calibration_parser(__doc__).parse_args()
    rows = []
    stash: dict[str, tuple] = {}

    def keep(x, y, C, csum, epu):  # the projection's inputs, to apply every bound to
        stash["args"] = (x, y, C, csum, epu)
        return x

    for B, groups in calibration_groups(a, cmos=False):
        # one decode: the stash keeps the projection's inputs of the last run of the stages
        base = get_decoder("gapunet", B=B, device="cpu", mirrors=1, shift=False)
        net = base.net
        project = net.project
        net.project = keep
        for g in groups:
            for_noise(base, measured=g.gain is not None).decode(g.y, g.C, g.electrons_per_unit)
            row = {"case": g.name, "B": B, "psnr": {}}
            with torch.no_grad():
                for kappa in KAPPAS:
                    net.kappa = kappa
                    row["psnr"][str(kappa)] = g.psnr(project(*stash["args"]).float().cpu().numpy())
            rows.append(row)
            print(json.dumps(row), flush=True)

    def summary(subset: list[dict]) -> dict[str, float]:
        return {str(k): float(np.mean([r["psnr"][str(k)] for r in subset])) for k in KAPPAS}

    doc = {
        "kappas": [str(k) for k in KAPPAS],
        **{
            f"mean_psnr{'' if group == 'all' else '_' + group}": summary(part)
            for group, part in split_unseen(rows, a.shared).items()
            if part
        },
        "rows": rows,
    }
    for key in (k for k in doc if k.startswith("mean_psnr")):
        print(key, json.dumps(doc[key]))
    if a.json:
        a.json.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
