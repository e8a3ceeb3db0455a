"""GapUNet told the neighbouring groups' frames: what it gives a group's first and last frames.

A group's first and last frames decode 1.4 dB below the frames beside them
(``benchmarks/group_position.py``): inside a group the network sees each frame's
neighbours, at a group's edge it sees a copy of the frame itself.  With ``run`` = the
number of groups (:meth:`emtcs.nets.gapunet.GapUNet.forward`) a tile's consecutive groups
are decoded as one run: the frames on either side of a boundary see each other, as
neighbours inside a group do, in the U-Net's input and in its temporal convolutions;
each group's mean and its measurement stay its own.  The weights are the shipped ones, trained on single groups.

This decodes abTEM validation movies (seeds 0-31 are never trained on; all 24 frames,
whole groups of B) whole, as one tile, with the network alone (no views, no finish, no
choice of decoder), group by group and as one run, and prints the mean PSNR by frame
against the clean truth.  ``emtcs decompress --run`` decodes runs of groups this way
(``benchmarks/group_runs.py`` measures it with everything decompress does).

    python benchmarks/group_context.py --json docs/figures/group-context.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from emtcs import zoo
from emtcs.metrics import psnr
from emtcs.nets import load
from emtcs.sensing import encode, masks
from validation import DOSES, SHARED, abtem_movie


def decode_runs(net: torch.nn.Module, noisy: np.ndarray, B: int, sequence: bool, seed: int = 0) -> np.ndarray:
    """The movie's whole groups of B, compressed with seeded masks (exactly) and decoded by
    ``net`` at once, as one run of groups or group by group; frames in electrons."""
    n = len(noisy) // B
    C = masks(seed, B * n, noisy.shape[1:]).reshape(n, B, *noisy.shape[1:]).astype(np.float32)
    y = np.stack([encode(noisy[g * B : (g + 1) * B], C[g]) for g in range(n)]).astype(np.float32)
    scale = float(np.percentile(noisy, 99.9)) or 1.0  # frames about [0, 1]; electrons per unit = scale
    with torch.inference_mode():
        x = net(torch.from_numpy(y / scale), torch.from_numpy(C), epu=torch.full((n,), scale), run=n if sequence else 1)
    return x.numpy().reshape(n * B, *noisy.shape[1:]) * scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=SHARED, help="folder holding abtem-hrtem/")
    ap.add_argument("--seeds", default="0,1,2,3,4,5,6,7", help="abTEM validation scenes (0-31)")
    ap.add_argument("-B", default="6,10", help="group sizes (default 6,10: 4 and 2 groups of the 24 frames)")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args()
    scenes = a.shared / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
    if not scenes.exists():
        raise SystemExit(f"no abTEM scenes at {scenes}")
    weights = zoo.find_weights("gapunet")
    if weights is None:
        raise SystemExit("no GapUNet weights (EMTCS_MODELS or models/)")
    net = load(weights)
    torch.set_num_threads(1)
    results = []
    for B in (int(b) for b in a.B.split(",")):
        scores: dict[bool, list[list[float]]] = {False: [], True: []}
        for seed in (int(s) for s in a.seeds.split(",")):
            for dose in DOSES:
                noisy, clean = abtem_movie(scenes, seed, dose, n_frames=24)
                span = float(clean.max() - clean.min())
                for sequence in (False, True):
                    x = decode_runs(net, noisy, B, sequence)
                    scores[sequence].append([psnr(c, d, data_range=span) for c, d in zip(clean, x)])
        alone, run = np.mean(scores[False], axis=0), np.mean(scores[True], axis=0)
        inner = [t for t in range(len(run)) if t % B in (0, B - 1) and 0 < t < len(run) - 1]
        results.append(
            {
                "B": B,
                "psnr_by_frame_group_by_group": alone.round(3).tolist(),
                "psnr_by_frame_as_one_run": run.round(3).tolist(),
                "psnr": [round(float(alone.mean()), 3), round(float(run.mean()), 3)],
                "psnr_frames_at_inner_boundaries": [
                    round(float(alone[inner].mean()), 3),
                    round(float(run[inner].mean()), 3),
                ],
            }
        )
        r = results[-1]
        print(f"B = {B}: group by group " + " ".join(f"{v:5.2f}" for v in alone))
        print(f"{'':>7}as one run     " + " ".join(f"{v:5.2f}" for v in run))
        print(
            f"{'':>7}mean {r['psnr'][0]:.3f} -> {r['psnr'][1]:.3f} dB; frames beside a boundary between groups "
            f"{r['psnr_frames_at_inner_boundaries'][0]:.2f} -> {r['psnr_frames_at_inner_boundaries'][1]:.2f} dB"
        )
    if a.json:
        doc = {"weights": weights.name, "seeds": a.seeds, "doses": list(DOSES), "results": results}
        a.json.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
