"""GapUNet weights on the campaign's validation scenes with noise spread over neighbouring
pixels, beside white noise of the same per-pixel variance on the same targets.

    python training/spread_clips.py models/gapunet-w24s2.safetensors runs/gapunet-nblur.safetensors

abTEM validation scenes (seeds 0-31), 12 clips of 10 x 128 x 128, 20 and 200 e/px; the
spread is a Gaussian of 0.75 px applied to the counts (the target is the spread clean
clip, the network told the per-pixel level, and since session 28 the spread measured on
the sample's noise, as ``emtcs train --noise-blur`` makes its samples); the control is
the spread clean clip with white Poisson noise of the same per-pixel variance.  Prints
the mean PSNR of GAP-TV and of each weights file.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from emtcs.nets import load
from emtcs.training import ClipPool, TrainConfig, evaluate, make_batch
from emtcs.training.data import VALIDATION_CLIPS, _blur_energy

SCENES = Path(__file__).resolve().parents[2] / "shared" / "data" / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
SPREAD = 0.75


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--scenes", type=Path, default=SCENES)
    a = ap.parse_args()
    torch.set_num_threads(1)
    nets = {str(path): load(path) for path in a.weights}
    cfg = TrainConfig(B=[10], patch=128, simulate=False, val_scene_files=[str(a.scenes)], **VALIDATION_CLIPS)
    pool = ClipPool(cfg, seed_offset=0, scenes=0, scene_files=cfg.val_scene_files)
    kept = _blur_energy(SPREAD)
    for dose in (20.0, 200.0):
        rng = np.random.default_rng(5)
        clips = [pool.clip(rng, 10, 128)[None] for _ in range(12)]
        spread_cfg = replace(
            cfg, dose_range=(dose, dose), noise_blur=1.0, noise_blur_sigma=(SPREAD, SPREAD), noise_error=0.0
        )
        white_cfg = replace(cfg, dose_range=(dose / kept, dose / kept), noise_error=0.0)
        rng = np.random.default_rng(7)
        spread = [make_batch(c, rng, spread_cfg) for c in clips]
        rng = np.random.default_rng(7)
        white = [make_batch(gaussian_filter(c, (0, 0, SPREAD, SPREAD)), rng, white_cfg) for c in clips]
        for name, samples in (("white", white), ("spread", spread)):
            line = f"{dose:5g} e/px {name:7s} GAP-TV {evaluate(None, samples)['psnr']:.2f}"
            for path, net in nets.items():
                line += f" | {path}: {evaluate(net, samples)['psnr']:.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
