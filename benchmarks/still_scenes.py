"""How well do the decoders give back a specimen that holds still?

A still specimen is the easiest movie for temporal compressive sensing: every frame of a
group is the same, so the normalised measurement Y / sum_b C_b already holds it, with the
noise of about sum_b C_b frames averaged.  Training movies always move (simulated drift,
turning and hopping atoms), so this asks whether the decoders learned that case too:

* lattice fringes 5, 7 and 10 px apart (half the mean intensity in contrast, 256 x 256,
  200 e/px), still;
* abTEM validation scenes (``../shared/data/abtem-hrtem``, seeds no training run uses),
  their first frame held still (also under a beam brightening 0.1 % a frame), drifting
  slowly (``--drifts``, px a frame, moved in Fourier space), as recorded (moving), and
  held still but for a disc where the recorded movie plays (part moving: a particle that
  changes on a still support; the disc and the still part beyond it are scored apart
  too), at 20 and 200 e/px.

Each movie (Poisson counts; :data:`FRAMES` frames, the recorded ones all the scene has)
is compressed at each B and decoded with each decoder, the learned ones with the still
stage of ``emtcs decompress`` (:mod:`emtcs.still`) and without it (``--no-still``; not
decoded again where the stage took no tile: the frames are then the same);
PSNR against the clean truth (the bench's movie PSNR), beside the raw frames' and that
of one group's still estimate, Y / sum_b C_b repeated over the group (a reference
point: it is exact only for a specimen that does not move), and the tiles the still
stage took.  ``EMTCS_MODELS`` picks the weights as for ``emtcs decompress``.

    python benchmarks/still_scenes.py --json still.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile

import emtcs
from emtcs import zoo
from emtcs.bench.run import environment
from emtcs.decoders import is_learned
from emtcs.metrics import psnr
from emtcs.sensing import masks

ROOT = Path(__file__).resolve().parents[1]
SCENES = ROOT.parent / "shared" / "data" / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
#: Frames of the still and drifting movies: two groups at B = 20, so the still stage has a
#: neighbour to test against.
FRAMES = 40
#: Radius (px) of the disc that moves in the partly moving movies.
DISC = 32
#: The beam's brightening a frame (a share of the first frame's) in the still movies under
#: a brightening beam: 1 % more between consecutive groups of 10, 2 % between groups of 20,
#: beyond the test's bar at 200 e/px, B = 20, were the groups not brought to one level.
BRIGHTENING = 0.001


def fringes(period: float, side: int = 256) -> np.ndarray:
    """Clean still fringes ``period`` px apart, mean 1, contrast 0.5, turned 0.3 rad."""
    y, x = np.mgrid[:side, :side]
    frame = 1.0 + 0.5 * np.cos(2 * np.pi * (x * np.cos(0.3) + y * np.sin(0.3)) / period)
    return np.repeat(frame[None], FRAMES, axis=0)


def still_estimate(counts: np.ndarray, B: int, seed: int = 0) -> np.ndarray:
    """Each group's Y / sum_b C_b (where no mask covers a pixel, its group's mean) repeated
    over its frames: the movie as a decoder that assumed it still would give it."""
    out = np.empty(counts.shape, dtype=np.float64)
    for g in range(0, len(counts), B):
        part = counts[g : g + B].astype(np.float64)
        c = masks(seed, len(part), part.shape[1:]).astype(np.float64)
        covered = c.sum(axis=0)
        y = (c * part).sum(axis=0)
        ratio = np.where(covered > 0, y / np.maximum(covered, 1), np.nan)
        out[g : g + B] = np.where(np.isnan(ratio), np.nanmean(ratio), ratio)
    return out


def shifted(image: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``image`` moved by (dy, dx) px, periodically (a phase ramp in Fourier space)."""
    ky = np.fft.fftfreq(image.shape[0])[:, None]
    kx = np.fft.fftfreq(image.shape[1])[None, :]
    moved = np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (ky * dy + kx * dx))).real
    return np.maximum(moved, 0)


def part_moving(clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first frame held still but for a disc (radius ``DISC`` px, centred a disc and a
    half from the top left corner) where the recorded movie plays, forwards then backwards
    to ``FRAMES`` frames, and the disc's weight (1 inside, falling to 0 over 4 px)."""
    order = np.r_[np.arange(len(clean)), np.arange(len(clean) - 2, 0, -1)]
    played = clean[np.resize(order, FRAMES)]
    y, x = np.mgrid[: clean.shape[1], : clean.shape[2]]
    disc = np.clip((DISC + 2 - np.hypot(y - 1.5 * DISC, x - 1.5 * DISC)) / 4, 0, 1)
    return clean[0] * (1 - disc) + played * disc, disc


def learned(name: str) -> bool:
    """Whether ``name`` decodes with a network (``auto`` does, where weights serve B)."""
    return name == "auto" or is_learned(name)


def measure(
    truth: np.ndarray,
    B: int,
    decoders: list[str],
    rng: np.random.Generator,
    tmp: Path,
    parts: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """One movie (clean intensities at the dose) at one B: PSNR of raw, still estimate, decoders
    (learned ones with and without the still stage) and the tiles the still stage took; with
    ``parts`` (name: a frame-sized boolean mask), the decoders' PSNR over each part too."""
    counts = rng.poisson(truth).astype(np.uint16)
    span = float(truth.max() - truth.min()) or 1.0
    src, tcs = tmp / "movie.tif", tmp / "movie.tcs"
    tifffile.imwrite(src, counts)
    emtcs.compress(src, tcs, B=B, force=True)
    row: dict[str, Any] = {
        "B": B,
        "raw": psnr(truth, counts.astype(np.float64), data_range=span),
        "still_estimate": psnr(truth, still_estimate(counts, B), data_range=span),
    }

    def score(label: str) -> None:
        decoded = tifffile.imread(tmp / "out.tif").astype(np.float64)
        row[label] = psnr(truth, decoded, data_range=span)
        for part, where in (parts or {}).items():
            row[f"{label} {part}"] = psnr(truth[:, where], decoded[:, where], data_range=span)

    for name in decoders:
        report = emtcs.decompress(tcs, tmp / "out.tif", decoder=name, force=True)
        score(name)
        if learned(name):
            row[f"{name} still tiles"] = sum(report.still.values())
            if report.still:  # else the frames are the same without the still stage
                emtcs.decompress(tcs, tmp / "out.tif", decoder=name, force=True, still=False)
            score(f"{name} --no-still")
    return row


Movie = tuple[str, np.ndarray, dict[str, np.ndarray] | None]


def movies(seeds: list[int], doses: list[float], drifts: list[float], kinds: set[str]) -> list[Movie]:
    """(label, clean movie at its dose, parts to score apart) for the fringes and the abTEM
    scenes: still, still under a beam that brightens :data:`BRIGHTENING` a frame, drifting
    ``drifts`` px a frame (at 0.6, 0.8 of it down and across), moving as recorded, and still
    but for a disc where the recorded movie plays (:func:`part_moving`; scored apart inside
    the disc and beyond twice its radius from its centre).  ``kinds``: which of fringes,
    still, beam, drift, moving and part."""
    out: list[Movie] = []
    if "fringes" in kinds:
        out += [(f"fringes {p} px, still, 200 e/px", 200.0 * fringes(p), None) for p in (5, 7, 10)]
    if not SCENES.exists():
        print(f"{SCENES} not found: fringes only")
        return out
    with h5py.File(SCENES, "r") as f:
        for seed in seeds:
            clean = f[f"scene_{seed:05d}"][:].astype(np.float64)
            clean /= clean.mean()
            partly, disc = part_moving(clean)
            y, x = np.mgrid[: disc.shape[0], : disc.shape[1]]
            parts = {"disc": disc == 1, "beyond": np.hypot(y - 1.5 * DISC, x - 1.5 * DISC) > 2 * DISC}
            for dose in doses:
                label = f"abTEM seed {seed}, {{}}, {dose:g} e/px"
                if "still" in kinds:
                    out.append((label.format("still"), dose * np.repeat(clean[:1], FRAMES, axis=0), None))
                for d in drifts if "drift" in kinds else ():
                    drifting = np.stack([shifted(clean[0], 0.6 * d * t, 0.8 * d * t) for t in range(FRAMES)])
                    out.append((label.format(f"drift {d:g} px/frame"), dose * drifting, None))
                if "beam" in kinds:
                    brightening = 1 + BRIGHTENING * np.arange(FRAMES)[:, None, None]
                    out.append((label.format("still, beam brightening"), dose * brightening * clean[:1], None))
                if "moving" in kinds:
                    out.append((label.format("moving"), dose * clean, None))
                if "part" in kinds:
                    out.append((label.format("part moving"), dose * partly, parts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="5,8,11,14,20,23,26,29", help="abTEM validation seeds (0-31)")
    ap.add_argument("--doses", default="20,200", help="e/px of the abTEM movies")
    ap.add_argument("--drifts", default="0.005,0.02,0.05", help="slow drifts of the abTEM scenes, px a frame")
    ap.add_argument("-B", default="10,20", help="group sizes")
    ap.add_argument("--kinds", default="fringes,still,beam,drift,moving,part", help="which movies (default: all)")
    ap.add_argument("--decoders", default="auto", help="decoders, comma-separated (e.g. auto,gaptv)")
    ap.add_argument("--json", type=Path, help="write every row here")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",") if s]
    doses = [float(d) for d in a.doses.split(",")]
    decoders = a.decoders.split(",")
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        drifts = [float(d) for d in a.drifts.split(",") if d]
        for label, truth, parts in movies(seeds, doses, drifts, set(a.kinds.split(","))):
            for B in (int(b) for b in a.B.split(",")):
                row = {"movie": label, **measure(truth, B, decoders, rng, Path(tmp), parts)}
                rows.append(row)
                scores = ", ".join(
                    f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in row.items()
                    if k not in ("movie", "B")
                )
                print(f"{label}, B={B}: {scores}", flush=True)
    if a.json:
        weights = zoo.find_weights("gapunet", 10)
        if weights is not None and ROOT in weights.resolve().parents:
            weights = weights.resolve().relative_to(ROOT)
        doc = {"environment": environment(), "gapunet_weights": str(weights), "rows": rows}
        a.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
