"""Groups of 21 to 30 frames: which decoder should ``auto`` give them?

Until session 55 the shipped GapUNet weights declared B = 2 ... 20 (the B they were
trained on, 6, 10 and 20, and the short groups measured in session 25), so ``auto`` gave
longer groups to TCS-DL behind its guard.  The network does not depend on B, so this
measures it there, on movies no training run drew:

* ``emtcs simulate`` movies of each imaging mode (HRTEM, bright-field, liquid-cell, STEM;
  60 frames of 192 x 192, seeds from 20,000,100 on) at 20 and 200 e/px, at B = 30 (two
  groups each);
* the README demo (``emtcs simulate``'s defaults: 40 frames of 256 x 256 at 100 e/px) at
  B = 30 (a group of 30 and one of 10);
* abTEM validation scenes (``../shared/data/abtem-hrtem``, seeds 0-31, which training
  never draws; the suite's 3 and 17 and four more) at 20 and 200 e/px, all 24 frames as
  one group (B = 24).

Each movie goes through the bench (:func:`emtcs.bench.run.run_bench`: compressed as
``emtcs compress`` does, decoded by ``emtcs decompress``, every other codec at the bytes
of the ``.tcs`` file) with GAP-TV, TCS-DL (behind its guard: what ``auto`` ran at these
B before) and ``auto``; PSNR against the clean truth and the hallucination check's
invented peaks.  About 25 minutes of one core.  ``EMTCS_MODELS`` picks the weights as for
``emtcs decompress``.

    python benchmarks/long_groups.py --json docs/figures/long-groups.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from emtcs.bench.run import BenchConfig, environment, run_bench
from emtcs.simulate import simulate
from validation import abtem_movie

ROOT = Path(__file__).resolve().parents[1]
SCENES = ROOT.parent / "shared" / "data" / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
MODES = ("hrtem", "bright-field", "liquid-cell", "stem")
DOSES = (20.0, 200.0)
ABTEM_SEEDS = (3, 17, 5, 11, 23, 29)
ABTEM_FRAMES = 24  # all a scene has
#: above every training pool's seeds (emtcs.training.data) and training/whole_movies.py's
SIMULATOR_SEEDS = 20_000_100
DECODERS = ("gaptv", "tcsdl", "auto")


def movies(with_abtem: bool) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """(name, B, noisy frames, clean truth) of every movie."""
    out = []
    noisy, clean = simulate()
    out.append(("README demo (emtcs simulate), 100 e/px", 30, noisy, clean))
    for k, mode in enumerate(MODES):
        for dose in DOSES:
            noisy, clean = simulate(60, (192, 192), dose=dose, seed=SIMULATOR_SEEDS + k, mode=mode)
            out.append((f"emtcs simulate {mode}, {dose:g} e/px", 30, noisy, clean))
    if with_abtem:
        for seed in ABTEM_SEEDS:
            for dose in DOSES:
                noisy, clean = abtem_movie(SCENES, seed, dose, n_frames=ABTEM_FRAMES)
                out.append((f"abTEM seed {seed}, {dose:g} e/px", ABTEM_FRAMES, noisy, clean))
    else:
        print(f"no abTEM scenes at {SCENES}: skipped", file=sys.stderr)
    return out


def row(run: dict[str, Any]) -> dict[str, Any]:
    """PSNR (dB) and invented peaks of each row of one bench run, by its title."""
    out: dict[str, Any] = {"bytes": next(r["bytes"] for r in run["rows"] if r["codec"] == "emtcs")}
    for r in run["rows"]:
        if r["status"] != "ok":
            continue
        q = r["quality"]["clean"]
        out[r["title"]] = {"psnr": q["psnr"], "invented_peaks": q["invented_peaks"], "note": r["note"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--decoders", default=",".join(DECODERS), help=f"emtcs decoders (default {','.join(DECODERS)})")
    a = ap.parse_args()
    decoders = tuple(a.decoders.split(","))
    results: list[dict[str, Any]] = []
    doc = {"environment": environment(), "decoders": decoders, "results": results}
    for name, B, noisy, clean in movies(SCENES.exists()):
        t0 = time.perf_counter()
        config = BenchConfig(B=(B,), decoders=decoders, codecs=("jpeg", "jpegxl"), device="cpu", references=("clean",))
        run = run_bench(noisy, clean, config=config, source={"name": name}).to_json()
        results.append({"movie": name, "B": B, **row(run)})
        emtcs_rows = {k: round(v["psnr"], 2) for k, v in results[-1].items() if k.startswith("emtcs")}
        print(f"{name}, B = {B}: {emtcs_rows} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if a.json:
            a.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
