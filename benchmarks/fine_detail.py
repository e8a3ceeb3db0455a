"""Does compress's fine-detail report (``loses_detail``, :mod:`emtcs.cuts`) say where a movie
decodes worse than its raw frames?

For every scene of an abTEM file made by ``training/make_scenes.sh`` (fresh seeds: no
training or decision has seen them), the first 20 frames are counted at each dose
(Poisson), compressed at each B and decoded as ``emtcs decompress`` does by default
(``auto``); the decoded movie's PSNR and the raw frames' against the clean truth (the
bench's movie PSNR: mean squared error over all frames, the truth's span) are set beside
what compress reported (``detail_next``, ``detail_apart``, ``loses_detail``), and JPEG
XL's PSNR at the file's size.  Where the report names a group length that keeps the
detail (``detail_frames``), the movie is also compressed and decoded at that B.  Printed:
how many movies decode below their raw frames and how many of those, and of the others,
are reported.

    training/make_scenes.sh 9100 48 && mv scratch/abtem/next_9100.h5 scenes.h5
    python benchmarks/fine_detail.py scenes.h5 --json fine-detail.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile

import emtcs
from emtcs.bench.codecs import get_codec
from emtcs.bench.run import environment
from emtcs.metrics import psnr

FRAMES = 20


def _coded(noisy: np.ndarray, truth: np.ndarray, tmp: Path, B: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The movie compressed at ``B`` and decoded as ``emtcs decompress`` does by default:
    its PSNR, the file's size and JPEG XL's PSNR at that size; and compress's info."""
    span = float(truth.max() - truth.min()) or 1.0
    src, tcs, out = tmp / "movie.tif", tmp / "movie.tcs", tmp / "decoded.tif"
    tifffile.imwrite(src, noisy)
    t0 = time.perf_counter()
    info = emtcs.compress(src, tcs, B=B, force=True)
    emtcs.decompress(tcs, out, force=True)
    decoded = tifffile.imread(out).astype(np.float64)
    seconds = time.perf_counter() - t0
    jxl = get_codec("jpegxl").at_budget(noisy, info["file_bytes"])
    return {
        "decoded_psnr": psnr(truth, decoded, data_range=span),
        "jpegxl_psnr": None if jxl.decoded is None else psnr(truth, jxl.decoded.astype(np.float64), data_range=span),
        "file_bytes": info["file_bytes"],
        "seconds": seconds,
    }, info


def measure(clean: np.ndarray, dose: float, B: int, rng: np.random.Generator, tmp: Path) -> dict[str, Any]:
    """One scene at one dose and B: the raw and decoded PSNR, the file's size, JPEG XL's
    PSNR at that size and compress's coherence report; where the report says the detail
    is lost and names a group length (``detail_frames``) shorter than B, the same at that
    B (``suggested``), as ``emtcs compress`` names it."""
    noisy = rng.poisson(clean * dose).astype(np.uint16)
    truth = clean * dose
    span = float(truth.max() - truth.min()) or 1.0
    scores, info = _coded(noisy, truth, tmp, B)
    row = {
        "dose": dose,
        "B": B,
        "raw_psnr": psnr(truth, noisy.astype(np.float64), data_range=span),
        **scores,
        "coherence": info["coherence"],
        "suggested": None,
    }
    c = info["coherence"]
    if c and c["loses_detail"] and c["detail_frames"] is not None and round(c["detail_frames"]) < B:
        shorter = max(2, round(c["detail_frames"]))
        row["suggested"] = {"B": shorter, **_coded(noisy, truth, tmp, shorter)[0]}
    return row


def summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How the report's calls fall against decoding below the raw frames."""
    below = [r["decoded_psnr"] < r["raw_psnr"] for r in rows]
    called = [bool(r["coherence"] and r["coherence"]["loses_detail"]) for r in rows]
    return {
        "movies": len(rows),
        "below_raw": sum(below),
        "below_raw_reported": sum(b and c for b, c in zip(below, called)),
        "at_or_above_raw_reported": sum(c and not b for b, c in zip(below, called)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenes", type=Path, help="abTEM scenes (training/make_scenes.sh), clean intensities")
    ap.add_argument("--doses", default="20,200", help="electrons per pixel (default 20,200)")
    ap.add_argument("-B", default="10,20", help="group sizes (default 10,20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the counting noise")
    ap.add_argument("--json", type=Path, help="write every movie's numbers here")
    a = ap.parse_args()
    doses = [float(d) for d in a.doses.split(",")]
    Bs = [int(b) for b in a.B.split(",")]
    rng = np.random.default_rng(a.seed)
    rows: list[dict[str, Any]] = []
    with h5py.File(a.scenes, "r") as f, tempfile.TemporaryDirectory() as tmp:
        for name in sorted(f.keys()):
            clean = f[name][:FRAMES].astype(np.float64)
            for dose in doses:
                for B in Bs:
                    row = {"scene": name, **measure(clean, dose, B, rng, Path(tmp))}
                    rows.append(row)
                    c, shorter = row["coherence"], row["suggested"]
                    print(
                        f"{name} {dose:g} e/px B={B}: raw {row['raw_psnr']:.2f} dB, decoded "
                        f"{row['decoded_psnr']:.2f} dB, {row['file_bytes']} bytes (JPEG XL at them "
                        f"{row['jpegxl_psnr'] or float('nan'):.2f}); detail {c['detail_next']:.3f} next, "
                        f"{c['detail_apart']:.3f} apart{'; reported' if c['loses_detail'] else ''}"
                        + (
                            f"; at -B {shorter['B']}: {shorter['decoded_psnr']:.2f} dB, {shorter['file_bytes']} "
                            f"bytes (JPEG XL {shorter['jpegxl_psnr'] or float('nan'):.2f})"
                            if shorter
                            else ""
                        ),
                        flush=True,
                    )
    totals = summary(rows)
    print(
        f"{totals['movies']} movies: {totals['below_raw']} decode below their raw frames, "
        f"{totals['below_raw_reported']} of them reported; "
        f"{totals['at_or_above_raw_reported']} reported that do not"
    )
    if a.json:
        doc = {
            "scenes": str(a.scenes),
            "seed": a.seed,
            "environment": environment(),
            "summary": totals,
            "movies": rows,
        }
        a.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
