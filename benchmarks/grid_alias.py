"""Does a learned decoder modulate its frames with its own 2 x 2 pixel grid?

GapUNet and GapNet work on a 2 x 2 pixel-unshuffled input, so nothing forces their
output to shift with the input by one pixel.  A decoder that adds a pattern like
(-1)^x times the content shows it in the spectrum as a copy of each lattice reflection
k moved by half the sampling rate, k + (0, w/2) (or (h/2, 0)): a spectral peak the truth
lacks.  This measures that copy's amplitude relative to the reflection itself on the
README's demo movie (``emtcs simulate``'s defaults, first group of B frames) for each
learned decoder, for the decoder run again on the input shifted by one pixel (the copy
changes sign if the pixel grid makes it) and for the mean of the two, beside the truth.
``--mirrors 2,4`` adds GapUNet averaged over that many mirror images
(:class:`emtcs.decoders.learned.GapUNetDecoder`): on a frame of even width a left-right
flip turns (-1)^x into -(-1)^x, so a grid pattern printed alike on the tile and on its
mirror image would cancel in their mean; how much does?  ``--shift`` adds GapUNet as it
ships, with the decodes on the grid one pixel over (``shift=True``;
``benchmarks/views.py`` compares view sets).

    python benchmarks/grid_alias.py --mirrors 2,4 --shift --json grid-alias.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from emtcs.decoders import get_decoder
from emtcs.metrics import psnr, spectral_peaks
from emtcs.sensing import encode, masks
from emtcs.simulate import simulate

B = 10


def spectrum(frame: np.ndarray) -> np.ndarray:
    """The centred Fourier transform of a mean-removed, Hann-tapered frame."""
    h, w = frame.shape
    taper = np.outer(np.hanning(h), np.hanning(w))
    return np.fft.fftshift(np.fft.fft2((frame - frame.mean()) * taper))


def aliases(frames: np.ndarray, k: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per frame, the complex amplitude at k + (0, w/2) and k + (h/2, 0), each over that at k."""
    h, w = frames.shape[1:]
    out: dict[str, list[complex]] = {"x": [], "y": []}
    for f in frames:
        F = spectrum(f.astype(np.float64))
        base = F[k[0] + h // 2, k[1] + w // 2]
        out["x"].append(F[k[0] + h // 2, (k[1] + w // 2 + w // 2) % w] / base)
        out["y"].append(F[(k[0] + h // 2 + h // 2) % h, k[1] + w // 2] / base)
    return {axis: np.array(v) for axis, v in out.items()}


def demo_group(B: int = B) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, tuple[int, int]]:
    """The README demo's first group of ``B`` frames as a decoder gets it: (clean truth,
    measurement, masks, intensity scale, the truth's strongest reflection k in FFT bins)."""
    noisy, clean = simulate()
    x, truth = noisy[:B].astype(np.float32), clean[:B]
    h, w = truth.shape[1:]
    power = sum(np.abs(spectrum(f)) for f in truth)
    k = max({tuple(p) for f in truth for p in spectral_peaks(f)}, key=lambda p: power[p[0] + h // 2, p[1] + w // 2])
    C = masks(0, B, x.shape[1:]).astype(np.float32)
    y = encode(x, C).astype(np.float32)
    return truth, y, C, float(np.percentile(y / np.maximum(C.sum(0), 1), 99.9)), k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decoders", default="gapunet,gapnet,tcsdl")
    ap.add_argument("--mirrors", default="", help="GapUNet's mirror counts to add, e.g. 2,4")
    ap.add_argument("--shift", action="store_true", help="add GapUNet as it ships (shift=True)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    truth, y, C, scale, k = demo_group()
    truth_alias = aliases(truth, k)
    result = {
        "movie": "emtcs simulate defaults (README demo), first group",
        "B": B,
        "reflection_bins": list(map(int, k)),
        "truth": {ax: float(np.median(np.abs(v))) for ax, v in truth_alias.items()},
        "decoders": {},
    }
    single = {"mirrors": 1, "shift": False}  # GapUNet's network alone, one decode
    runs = [(name, single if name == "gapunet" else {}) for name in a.decoders.split(",")]
    runs += [(f"gapunet, mirrors {m}", {"mirrors": int(m), "shift": False}) for m in a.mirrors.split(",") if m]
    runs += [("gapunet, shipped views", {})] if a.shift else []
    for name, options in runs:
        dec = get_decoder(name.split(",")[0], B=B, device="cpu", **options)
        outs = []
        for shift in (0, 1):  # the input moved right by one pixel, the output moved back
            ys, Cs = np.roll(y, shift, axis=-1), np.roll(C, shift, axis=-1)
            out = dec.decode(ys[None] / scale, Cs[None], scale)[0] * scale
            outs.append(np.roll(out, -shift, axis=-1))
        a0, a1 = aliases(outs[0], k), aliases(outs[1], k)
        mean = (outs[0] + outs[1]) / 2
        rng = float(truth.max() - truth.min())
        result["decoders"][name] = {
            "alias_x": float(np.median(np.abs(a0["x"]))),
            "alias_y": float(np.median(np.abs(a0["y"]))),
            "alias_x_sign_flip_deg": float(np.median(np.abs(np.degrees(np.angle(a1["x"] / a0["x"]))))),
            "alias_x_shift_mean": float(np.median(np.abs(aliases(mean, k)["x"]))),
            "psnr": float(np.mean([psnr(t, o, data_range=rng) for t, o in zip(truth, outs[0])])),
            "psnr_shift_mean": float(np.mean([psnr(t, o, data_range=rng) for t, o in zip(truth, mean)])),
        }
        print(name, json.dumps(result["decoders"][name]), flush=True)
    print("truth", json.dumps(result["truth"]), "reflection", k)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
