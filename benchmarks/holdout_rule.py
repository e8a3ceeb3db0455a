"""Does the hold-out score rank decoders like their PSNR does?  The measurement behind ``auto``.

For tiles of the validation movies (abTEM scenes at 20 and 200 e/px against their clean
truth; real movies against their wavelet-denoised raw frames), each decoder's
:func:`emtcs.decoders.guard.holdout_score` (a no-reference estimate: how well the frames
decoded without 10 % of the measurement predict those pixels, in shot-noise units) is
set beside its PSNR.  Reported: per movie, each decoder's mean score and PSNR, and how
often choosing per tile the decoder with the lower score picks the one with the higher
PSNR.

    python benchmarks/holdout_rule.py --json holdout.json
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

from emtcs.bench.denoise import Wavelet
from emtcs.bench.run import load_movie
from emtcs.decoders import get_decoder
from emtcs.decoders.guard import holdout_score
from emtcs.metrics import psnr
from emtcs.sensing import encode, masks

sys.path.insert(0, str(Path(__file__).parent))
from validation import REAL, SCENES, SHARED, abtem_movie  # noqa: E402

TILE = 96


def tiles(frames: np.ndarray, ref: np.ndarray, B: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frames, reference) tiles of the first group of B frames, on a grid."""
    H, W = frames.shape[1:]
    out = []
    for y0 in range(0, H - TILE + 1, TILE):
        for x0 in range(0, W - TILE + 1, TILE):
            out.append((frames[:B, y0 : y0 + TILE, x0 : x0 + TILE], ref[:B, y0 : y0 + TILE, x0 : x0 + TILE]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--decoders", default="gaptv,tcsdl,gapunet")
    ap.add_argument("-B", type=int, default=10)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    decoders = {
        n: get_decoder(n, B=a.B, device="cpu") if n != "gaptv" else get_decoder(n) for n in a.decoders.split(",")
    }
    movies = []
    h5 = a.shared / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
    for seed in SCENES:
        for dose in (20.0, 200.0):
            noisy, clean = abtem_movie(h5, seed, dose)
            movies.append((f"abTEM seed {seed}, {dose:g} e/px", noisy, clean, 1.0))
    for name, rel in REAL.items():
        frames, _ = load_movie(a.shared / rel, crop=(288, 288))
        if frames.shape[0] >= a.B:
            movies.append((name, frames, Wavelet()(frames), 1.0))
    C = masks(0, a.B, (TILE, TILE)).astype(np.float32)
    report = []
    for name, frames, ref, gain in movies:
        rows = {n: {"score": [], "psnr": []} for n in decoders}
        for x, r in tiles(frames.astype(np.float32), np.asarray(ref, np.float32), a.B):
            y = encode(x, C).astype(np.float32)
            scale = float(np.percentile(y / np.maximum(C.sum(0), 1), 99.9)) or 1.0
            epu = scale / gain
            rng = float(r.max() - r.min()) or 1.0
            for n, dec in decoders.items():
                out = dec.decode((y / scale)[None], C[None], epu)[0] * scale
                rows[n]["psnr"].append(psnr(r, out, data_range=rng))
                rows[n]["score"].append(float(holdout_score(dec, (y / scale)[None], C[None], epu)[0]))
        agree = {}
        for p, q in combinations(decoders, 2):
            s = np.array(rows[p]["score"]) < np.array(rows[q]["score"])
            better = np.array(rows[p]["psnr"]) > np.array(rows[q]["psnr"])
            agree[f"{p}|{q}"] = float(np.mean(s == better))
        picked = [
            min(decoders, key=lambda n, k=k: rows[n]["score"][k])
            for k in range(len(rows[next(iter(decoders))]["psnr"]))
        ]
        chosen = float(np.mean([rows[n]["psnr"][k] for k, n in enumerate(picked)]))
        entry = {
            "movie": name,
            "tiles": len(picked),
            "mean": {
                n: {"score": float(np.mean(v["score"])), "psnr": float(np.mean(v["psnr"]))} for n, v in rows.items()
            },
            "rank_agreement": agree,
            "chosen_by_score_psnr": chosen,
            "picked": {n: picked.count(n) for n in decoders},
        }
        report.append(entry)
        print(json.dumps(entry), flush=True)
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
