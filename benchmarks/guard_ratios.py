"""What the guard sees: a learned decoder's residual over the shot noise, per tile, and
its PSNR next to GAP-TV's, on simulated movies (doses 1 to 1000 e/px) and, when the
shared data folder is present, on real EM movies and the video-SCI scenes.

The numbers behind ``--guard``'s default (docs/decoders.md, "The guard").  Each case
codes the first B frames of a 256 x 256 crop with seed-3 masks, decodes 128 x 128
tiles with the learned decoder and with GAP-TV, and prints per tile the
:func:`emtcs.decoders.guard.noise_ratio` (gain 1) and both PSNRs against the reference
(the clean frames for simulations, the raw frames otherwise).

Usage: python benchmarks/guard_ratios.py [--decoder tcsdl] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tifffile

from emtcs.decoders import decoder_for
from emtcs.decoders.guard import noise_ratio
from emtcs.sensing import masks
from emtcs.simulate import simulate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = {
    "nanoporous gold (bright field, B=13)": ("em/tem-insitu-tensile_nanoporous-gold_13x1047x1046_uint8.tif", 13),
    "liquid-cell TEM (B=10)": ("em/lptem_nanoparticle-chains_10x1024x1024_uint8.tif", 10),
}
SCI = {"SCI Drop (B=8)": "drop40_cacti.mat", "SCI Runner (B=8)": "runner40_cacti.mat"}
TILE = 128


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    rng = float(ref.max() - ref.min()) or 1.0
    return float(10 * np.log10(rng**2 / np.mean((x - ref) ** 2)))


def tiles(frames: np.ndarray, reference: np.ndarray, B: int, decoder: str) -> list[dict[str, float]]:
    """Per-tile ratio and PSNRs over a 256 x 256 crop of the first B frames."""
    frames = frames[:B, :256, :256].astype(np.float32)
    reference = reference[:B, :256, :256].astype(np.float32)
    C = masks(3, B, frames.shape[1:]).astype(np.float32)
    learned, _ = decoder_for(decoder, B, device="cpu")
    gaptv, _ = decoder_for("gaptv", B)
    out = []
    for y0 in range(0, frames.shape[1] - TILE + 1, TILE):
        for x0 in range(0, frames.shape[2] - TILE + 1, TILE):
            win = (slice(None), slice(y0, y0 + TILE), slice(x0, x0 + TILE))
            c, ref = C[win], reference[win]
            y = np.einsum("bhw,bhw->hw", c, frames[win])
            scale = float(np.percentile(y / np.maximum(c.sum(0), 1), 99.9)) or 1.0
            x_net = learned.decode((y / scale)[None], c[None])[0] * scale
            x_gap = gaptv.decode((y / scale)[None], c[None])[0] * scale
            out.append(
                {
                    "ratio": float(noise_ratio(y[None], c[None], x_net[None], 1.0)[0]),
                    "psnr_learned": _psnr(x_net, ref),
                    "psnr_gaptv": _psnr(x_gap, ref),
                }
            )
    return out


def cases() -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    out = {}
    for dose in (1, 20, 200, 1000):
        for B in (10, 20):
            noisy, clean = simulate(B, (256, 256), dose=float(dose), seed=4, dtype="uint16")
            out[f"simulated {dose} e/px, B={B}"] = (noisy, clean, B)
    for name, (rel, B) in REAL.items():
        if (SHARED / rel).exists():
            frames = tifffile.imread(SHARED / rel)[:, 256:512, 256:512]
            out[name] = (frames, frames, B)
    if (SHARED / "sci-benchmark").exists():
        from scipy.io import loadmat

        for name, fname in SCI.items():
            frames = loadmat(SHARED / "sci-benchmark" / fname)["orig"].transpose(2, 0, 1)
            out[name] = (frames, frames, 8)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decoder", default="tcsdl")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = {}
    for name, (frames, ref, B) in cases().items():
        rows = tiles(frames, ref, B, args.decoder)
        results[name] = rows
        r = [t["ratio"] for t in rows]
        gain = np.mean([t["psnr_learned"] - t["psnr_gaptv"] for t in rows])
        print(
            f"{name:40s} ratio {min(r):.2f}-{max(r):.2f}  {args.decoder} - GAP-TV {gain:+.2f} dB (mean over tiles)",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps({"decoder": args.decoder, "tile": TILE, "cases": results}, indent=1))


if __name__ == "__main__":
    main()
