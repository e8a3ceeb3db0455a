"""GapUNet weights alone on whole abTEM validation movies: a screen for the campaign.

    python training/whole_movies.py models/gapunet-w24s2.safetensors runs/gapunet-p32.safetensors

The campaign's validation clips (128 x 128 crops at a random zoom, with flicker and scene
cuts) have not ranked fine-tuned weights as the validation suite does: phases 28 and 32
scored within 0.05 dB of the shipped weights on the clips and 0.2 dB below them on the
suite's abTEM movies.  This runs each network alone (exact measurements, no views, no
finishing) on the first B frames of whole 192 x 192 abTEM validation scenes (seeds 0-31,
never trained on) at the suite's doses (20 and 200 e/px) and group sizes (10 and 20), the
same noise and masks for every network, and prints the PSNR against the clean frames of
each movie, the mean, and each file's difference from the first with its standard error
over scenes.  Differences between nearby checkpoints of a run are of the size of the
scene-to-scene spread of four scenes (session 29: one run +0.06 dB on four scenes, -0.21
on four others), so by default it runs the 30 validation scenes that are not the suite's
(120 movies; the difference's standard error about 0.02 dB), about 2.5 minutes of one
core per weights file.  The suite (``training/candidate.py``) still decides what ships.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import torch

import emtcs.train as T
from emtcs import zoo
from emtcs.metrics import psnr
from emtcs.nets import build

SCENES = Path(__file__).resolve().parents[2] / "shared" / "data" / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
SUITE = (3, 17)  # the validation suite's scenes (benchmarks/validation.py)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--scenes", type=Path, default=SCENES)
    ap.add_argument(
        "--seeds",
        default=",".join(str(s) for s in range(32) if s not in SUITE),
        help="validation scenes, comma-separated (default: the 30 that are not the suite's)",
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    nets = []
    for path in a.weights:
        info, state = zoo.load_weights(path)
        net = build(info["config"])
        net.load_state_dict(state)
        nets.append(net.eval())
    cfg = T.TrainConfig(noise_error=0.0)
    scores: list[list[float]] = [[] for _ in nets]
    print("movie".ljust(26) + "".join(f"{i:>8d}" for i in range(1, len(nets) + 1)))
    with h5py.File(a.scenes, "r") as f:
        for seed in (int(s) for s in a.seeds.split(",")):
            clean = np.asarray(f[f"scene_{seed:05d}"][:20], dtype=np.float64)
            for dose in (20.0, 200.0):
                for B in (10, 20):
                    rng = np.random.default_rng([seed, int(dose), B])  # the same sample for every network
                    sample = T.make_batch(clean[None, :B], rng, replace(cfg, dose_range=(dose, dose)))
                    x = sample["x"][0].numpy()
                    line = f"seed {seed:2d}, {dose:3g} e/px, B = {B:2d}".ljust(26)
                    for net, row in zip(nets, scores):
                        with torch.inference_mode():
                            out = T.run_net(net, sample)[0].numpy()
                        row.append(psnr(x, out, data_range=float(x.max() - x.min())))
                        line += f"{row[-1]:8.2f}"
                    print(line, flush=True)
    print("mean".ljust(26) + "".join(f"{np.mean(row):8.3f}" for row in scores))
    # against the first file, scene by scene: a scene's four movies share its content, so the
    # standard error is over scenes
    per_scene = np.asarray(scores).reshape(len(nets), -1, 4).mean(axis=2)
    if len(nets) > 1 and per_scene.shape[1] > 1:
        diff = per_scene[1:] - per_scene[0]
        error = diff.std(axis=1, ddof=1) / np.sqrt(diff.shape[1])
        print("minus 1".ljust(26) + " " * 8 + "".join(f"{d:+8.3f}" for d in diff.mean(axis=1)))
        print("  its standard error".ljust(26) + " " * 8 + "".join(f"{e:8.3f}" for e in error))
    for i, path in enumerate(a.weights, 1):
        print(f"{i}: {path}")


if __name__ == "__main__":
    main()
