"""Calibrate the margin of ``select``: how much worse may GapUNet's hold-out score be than
GAP-TV's before a tile goes to GAP-TV?

Measured on data never used to judge the rule (the validation suite then checks it),
128 x 128 tiles at B = 10 and 20:

* like the training data: abTEM scenes the weights were not trained on (session 11:
  seeds 1800-1815, made by ``training/make_scenes.sh 1800 16`` and renamed
  ``scratch/abtem/calib_1800.h5``, a name the campaign does not train on) and the movie
  simulator's four imaging modes, at doses
  from 5 to 1000 e/px, uint16 counts and 8-bit frames, against the clean truth;
* unlike it, where a network may fail: the two optical video-SCI scenes (noise-free
  8-bit video), a HAADF tilt series and a simulated focal series of Pt particles from
  ``shared/data`` (none in the training data or the suite), decoded as files without a
  noise model are (told one level per electron, a guess, so that GAP-TV accelerates
  throughout: :func:`emtcs.decoders.for_noise`), against their frames.

For every tile: the two hold-out scores and the PSNR of GapUNet, of GAP-TV and of
weighted means of the two.  Reported: for margins tau, the mean PSNR of choosing GapUNet
where ``score_net <= tau * score_tv`` and the worst loss against GAP-TV; and, at the
margin ``select`` uses, the same for blending the tiles whose score ratio lies between a
lower bound and the margin (``blends``: the bound and GapUNet's weight).

    python benchmarks/select_margin.py --scenes scratch/abtem/calib_1800.h5 --json margin.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emtcs.decoders import for_noise, get_decoder
from emtcs.decoders.base import per_tile
from emtcs.decoders.select import MARGIN
from emtcs.metrics import psnr
from emtcs.sensing import encode, masks
from emtcs.simulate import MovieSimulator, SimulationConfig

SIZE = 128
DOSES = (5.0, 20.0, 200.0, 1000.0)
MODES = ("hrtem", "bright-field", "liquid-cell", "stem")
#: The group sizes every calibration script measures.
GROUP_SIZES = (10, 20)
TAUS = (1.0, 1.05, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 2.0)
#: GapUNet's weights in a blend, and the lower bounds of the score ratio blended
WEIGHTS = (0.5, 0.75, 0.9)
BLEND_FROMS = (0.85, 0.9, 0.95, 0.98, 1.0)


def abtem_cases(path: Path, n_scenes: int, rng: np.random.Generator):
    import h5py

    with h5py.File(path, "r") as f:
        names = sorted(f)[:n_scenes]
        for i, name in enumerate(names):
            clean = np.asarray(f[name][:20, :SIZE, :SIZE], dtype=np.float64)
            clean /= clean.mean()
            dose = DOSES[i % len(DOSES)]
            yield f"abTEM {name}, {dose:g} e/px", rng.poisson(clean * dose).astype(np.float32), clean * dose, 1.0


def simulator_cases(rng: np.random.Generator):
    k = 0
    for mode in MODES:
        for dose in DOSES:
            for dtype in ("uint16", "uint8"):
                k += 1
                cfg = SimulationConfig(n_frames=20, shape=(SIZE, SIZE), dose=dose, mode=mode, dtype=dtype, seed=500 + k)
                sim = MovieSimulator(cfg)
                noisy = np.stack([sim.noisy_frame(t) for t in range(20)]).astype(np.float32) - sim.offset
                clean = np.stack([sim.clean_frame(t) for t in range(20)]).astype(np.float32) - sim.offset
                yield f"{mode} {dtype}, {dose:g} e/px", noisy, clean, sim.gain


def cmos_cases(rng: np.random.Generator):
    """The simulator's modes and doses as a CMOS camera records them (gain 4 levels per
    electron, offset 200, read noise 3 e), offset removed."""
    k = 0
    for mode in MODES:
        for dose in DOSES:
            k += 1
            cfg = SimulationConfig(
                n_frames=20,
                shape=(SIZE, SIZE),
                dose=dose,
                mode=mode,
                gain=4.0,
                offset=200.0,
                read_noise=3.0,
                seed=900 + k,
            )
            sim = MovieSimulator(cfg)
            noisy = np.stack([sim.noisy_frame(t) for t in range(20)]).astype(np.float32) - sim.offset
            clean = np.stack([sim.clean_frame(t) for t in range(20)]).astype(np.float32) - sim.offset
            yield f"{mode} CMOS, {dose:g} e/px", noisy, clean, sim.gain


def unseen_cases(shared: Path):
    """Movies unlike the training data (see the module docstring), as (name, frames, reference,
    gain None: not measured)."""
    from scipy.io import loadmat

    from emtcs.bench.run import load_movie

    for name in ("drop40_cacti.mat", "runner40_cacti.mat"):
        path = shared / "sci-benchmark" / name
        if path.exists():
            orig = np.moveaxis(loadmat(path)["orig"], -1, 0).astype(np.float32)[:, 64 : 64 + SIZE, 64 : 64 + SIZE]
            yield f"video-SCI {name.split('40')[0]}", orig, orig, None
    for rel in (
        "em/L2083_HAADF_tilt_-40to35deg_16x256x256_uint16.tif",
        "em/PtNp2-S3_5_240slc_1024x1024_6nmDefocus.tif",
    ):
        path = shared / rel
        if path.exists():
            frames, _ = load_movie(path, n_frames=20, crop=(SIZE, SIZE))
            yield Path(rel).stem, frames.astype(np.float32), frames.astype(np.float32), None


def calibration_parser(description: str) -> argparse.ArgumentParser:
    """The calibration scripts' command line: the options that pick the cases, and ``--json``."""
    ap = argparse.ArgumentParser(description=description.split("\n")[0])
    ap.add_argument("--scenes", type=Path, help="abTEM scenes the weights did not train on (HDF5)")
    ap.add_argument("--n-scenes", type=int, default=16)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--json", type=Path, help="write the rows and the summary here")
    return ap


def calibration_cases(a: argparse.Namespace, rng: np.random.Generator, *, cmos: bool = False) -> list:
    """The simulator's cases, the CMOS ones with ``cmos``, the abTEM scenes of ``--scenes``
    and the movies unlike the training data."""
    cases = list(simulator_cases(rng))
    if cmos:
        cases += list(cmos_cases(rng))
    if a.scenes:
        cases += list(abtem_cases(a.scenes, a.n_scenes, rng))
    return cases + list(unseen_cases(a.shared))


def split_unseen(rows: list[dict], shared: Path) -> dict[str, list[dict]]:
    """The rows of all cases, of the training-like ones and of the movies unlike the
    training data (:func:`unseen_cases`), by their ``"case"`` name."""
    unseen = {name for name, *_ in unseen_cases(shared)}
    return {
        "all": rows,
        "training_like": [r for r in rows if r["case"] not in unseen],
        "unseen": [r for r in rows if r["case"] in unseen],
    }


@dataclass
class Group:
    """One case's first B frames coded as the decoders get them: ``y`` (1, h, w) and masks
    ``C`` (1, B, h, w), the measurement divided by ``scale``; ``ref`` the frames' reference."""

    name: str
    y: np.ndarray
    C: np.ndarray
    scale: float
    ref: np.ndarray
    data_range: float
    gain: float | None

    @property
    def electrons_per_unit(self) -> float:
        return self.scale / (self.gain or 1.0)

    @property
    def told(self) -> tuple:
        """The finishing's measurement arguments where the noise is known, else none."""
        return (self.y, self.C, self.electrons_per_unit) if self.gain is not None else ()

    def psnr(self, tile: np.ndarray) -> float:
        """PSNR of a decoded (1, B, h, w) tile, in the scale of ``ref``."""
        return psnr(self.ref, tile[0] * self.scale, data_range=self.data_range)


def coded_groups(cases: list, B: int) -> Iterator[Group]:
    """The cases with at least B frames, coded with the seeded masks of B."""
    C = masks(B, B, (SIZE, SIZE)).astype(np.float32)
    for name, noisy, clean, gain in cases:
        if len(noisy) < B:
            continue
        y = encode(noisy[:B], C).astype(np.float32)
        scale = float(np.percentile(y / np.maximum(C.sum(0), 1), 99.9)) or 1.0
        ref = clean[:B]
        yield Group(name, (y / scale)[None], C[None], scale, ref, float(ref.max() - ref.min()) or 1.0, gain)


def calibration_groups(a: argparse.Namespace, *, cmos: bool = True) -> Iterator[tuple[int, Iterator[Group]]]:
    """For B = 10 and then 20: B and the calibration cases coded at B (made once, seeded)."""
    cases = calibration_cases(a, np.random.default_rng(0), cmos=cmos)
    for B in GROUP_SIZES:
        yield B, coded_groups(cases, B)


def margins(rows: list[dict]) -> list[dict]:
    """For every margin tau: mean PSNR of choosing GapUNet where its score is at most tau times
    GAP-TV's, the worst loss against GAP-TV and the tiles losing more than 0.2 dB."""
    out = []
    for tau in TAUS:
        chosen = [r["psnr_net"] if r["score_net"] <= tau * r["score_tv"] else r["psnr_tv"] for r in rows]
        loss = [c - r["psnr_tv"] for c, r in zip(chosen, rows)]
        out.append(
            {
                "tau": tau,
                "mean_psnr": float(np.mean(chosen)),
                "worst_vs_gaptv": float(min(loss)),
                "losses_over_0.2dB": int(sum(v < -0.2 for v in loss)),
            }
        )
    return out


def blends(rows: list[dict]) -> list[dict]:
    """At select's margin, for every lower bound and weight: the mean PSNR of blending the
    tiles whose score ratio lies between the bound and the margin (GapUNet below the bound,
    GAP-TV above the margin), the worst loss against GAP-TV and the tiles blended."""
    out = []
    for lo, w in itertools.product(BLEND_FROMS, WEIGHTS):
        chosen, n = [], 0
        for r in rows:
            ratio = r["score_net"] / r["score_tv"]
            if not ratio <= MARGIN:
                chosen.append(r["psnr_tv"])
            elif ratio >= lo:
                chosen.append(r["psnr_blend"][str(w)])
                n += 1
            else:
                chosen.append(r["psnr_net"])
        loss = [c - r["psnr_tv"] for c, r in zip(chosen, rows)]
        out.append(
            {
                "blend_from": lo,
                "weight": w,
                "mean_psnr": float(np.mean(chosen)),
                "worst_vs_gaptv": float(min(loss)),
                "blended": n,
            }
        )
    return out


def main() -> None:
    ap = calibration_parser(__doc__)
    ap.add_argument("--unseen-only", action="store_true", help="only the movies unlike the training data")
    a = ap.parse_args()
    cases = list(unseen_cases(a.shared)) if a.unseen_only else calibration_cases(a, np.random.default_rng(0))
    rows = []
    for B in GROUP_SIZES:
        sel = get_decoder("select", B=B, device="cpu")
        for g in coded_groups(cases, B):
            dec = for_noise(sel, measured=g.gain is not None)
            net, tv = dec._both(g.y, g.C, per_tile(g.electrons_per_unit, len(g.y)))
            dec.decode(g.y, g.C, g.electrons_per_unit)  # for its scores
            row = {
                "case": g.name,
                "B": B,
                "score_net": float(dec.scores[0, 0]),
                "score_tv": float(dec.scores[0, 1]),
                "psnr_net": g.psnr(net),
                "psnr_tv": g.psnr(tv),
                "psnr_blend": {str(w): g.psnr(w * net + (1 - w) * tv) for w in WEIGHTS},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    parts = split_unseen(rows, a.shared)
    summary = {
        f"{name}{'' if group == 'all' else '_' + group}": table(part)
        for name, table in (("margins", margins), ("blends", blends))
        for group, part in parts.items()
        if part
    }
    for key, table in summary.items():
        print(key, json.dumps(table))
    best = {
        "net": float(np.mean([r["psnr_net"] for r in rows])),
        "tv": float(np.mean([r["psnr_tv"] for r in rows])),
        "oracle": float(np.mean([max(r["psnr_net"], r["psnr_tv"]) for r in rows])),
    }
    print(json.dumps(best))
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, **summary, "always": best}, indent=1))


if __name__ == "__main__":
    main()
