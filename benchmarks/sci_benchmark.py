"""Video-SCI benchmark scenes (Drop, Runner; B = 8): emtcs decoders next to published figures.

Decodes all 5 measurements of each scene with its own masks through
``emtcs.reconstruct`` and reports mean PSNR/SSIM over the 40 frames (peak 255, per
frame, then averaged, as the published tables do). GAP-TV uses the reference code's
normalisation (pixel values / 255); learned decoders use emtcs's own per-measurement
normalisation, as in decoding, and are unguarded unless ``--guard`` is given (then
tiles where their residual exceeds that many shot-noise sigmas, at 1 level per
electron, are decoded with GAP-TV, as ``emtcs decompress`` does).

Usage: python benchmarks/sci_benchmark.py [--data ../shared/data/sci-benchmark] [--decoders gaptv,gapnet,tcsdl]
       [--guard 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.io import loadmat

import emtcs
from emtcs.metrics import psnr, ssim

PUBLISHED = {  # mean PSNR / SSIM over the scene, as published (PnP-SCI, BIRNAT, STFormer papers)
    "GAP-TV": {"drop": (34.50, None), "runner": (30.13, None)},
    "PnP-FFDNet": {"drop": (39.82, None), "runner": (32.66, None)},
    "BIRNAT": {"drop": (42.28, None), "runner": (38.70, None)},
    "STFormer-B": {"drop": (44.99, None), "runner": (42.69, None)},
}


def evaluate(path: Path, decoder: str, guard: float = 0.0) -> dict:
    data = loadmat(str(path))
    masks = data["mask"].transpose(2, 0, 1)
    B = masks.shape[0]
    orig = data["orig"].transpose(2, 0, 1).astype(np.float64)
    meas = data["meas"]
    ps, ss = [], []
    t0 = time.perf_counter()
    for k in range(meas.shape[-1]):
        scale = 255.0 if decoder == "gaptv" else None
        x = emtcs.reconstruct(meas[..., k], masks, decoder, scale=scale, guard=guard)
        for b in range(B):
            ref = orig[k * B + b]
            ps.append(psnr(ref, x[b], data_range=255.0))
            ss.append(ssim(ref, np.clip(x[b], 0, 255), data_range=255.0))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/sci-benchmark")
    ap.add_argument("--decoders", default="gaptv,gapnet,tcsdl")
    ap.add_argument("--guard", type=float, default=0.0, help="guard learned decoders (0: the networks alone)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = {}
    for scene in ("drop", "runner"):
        for dec in args.decoders.split(","):
            r = evaluate(args.data / f"{scene}40_cacti.mat", dec, args.guard)
            results.setdefault(dec, {})[scene] = r
            print(
                f"{scene:7s} {dec:7s} PSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.4f}  "
                f"({r['seconds']:.1f} s, 5 measurements)"
            )
    for name, scenes in PUBLISHED.items():
        print(f"published {name:11s} drop {scenes['drop'][0]:.2f}  runner {scenes['runner'][0]:.2f}")
    if args.json:
        out = {"emtcs": results, "guard": args.guard, "published": PUBLISHED}
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
