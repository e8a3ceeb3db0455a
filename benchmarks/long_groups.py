"""Groups longer than the network was trained on: which decoder should ``auto`` give them?

The shipped GapUNet weights were trained on B = 6, 10 and 20 and declare the B they
serve; ``auto`` gives longer groups to another decoder (TCS-DL behind its guard up to
session 55, GAP-TV beyond what any weights serve).  The network does not depend on B,
so this measures it at a longer B, on movies no training run drew:

* ``emtcs simulate`` movies of each imaging mode (HRTEM, bright-field, liquid-cell, STEM;
  60 frames of 192 x 192, B frames where B is longer; seeds from 20,000,100 on) at 20 and
  200 e/px;
* the README demo (``emtcs simulate``'s defaults: 40 frames of 256 x 256 at 100 e/px;
  all of them as one group where B is longer);
* abTEM validation scenes (seeds 0-31, which training never draws; the suite's 3 and 17
  and four more) at 20 and 200 e/px, as one group of min(B, the scene's length) frames.
  ``../shared/data/abtem-hrtem``'s scenes have 24 frames; ``--abtem-scenes`` takes longer
  ones, made by its ``make_scenes.py OUT.h5 0 32 --frames 60`` (or 100; their first 24
  frames are the shared scenes' but where particles coalesce, at a pace the script sets by
  the movie's length).

Each movie goes through the bench (:func:`emtcs.bench.run.run_bench`: compressed as
``emtcs compress`` does at ``-B``, decoded by ``emtcs decompress``, every other codec at
the bytes of the ``.tcs`` file) with each of ``--decoders``; PSNR against the clean truth
and the hallucination check's invented peaks.  About 25 minutes of one core at B = 30.
``EMTCS_MODELS`` picks the weights as for ``emtcs decompress``.

    python benchmarks/long_groups.py --json docs/figures/long-groups.json   # session 55: B = 30
    python benchmarks/long_groups.py -B 60 --decoders gaptv,auto --abtem-scenes long.h5 --json ...
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
#: above every training pool's seeds (emtcs.training.data) and training/whole_movies.py's
SIMULATOR_SEEDS = 20_000_100
DECODERS = ("gaptv", "tcsdl", "auto")


def movies(B: int, scenes: Path | None) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """(name, B, noisy frames, clean truth) of every movie, with abTEM ``scenes`` where given."""
    out = []
    noisy, clean = simulate()
    out.append(("README demo (emtcs simulate), 100 e/px", min(B, len(noisy)), noisy, clean))
    for k, mode in enumerate(MODES):
        for dose in DOSES:
            noisy, clean = simulate(max(60, B), (192, 192), dose=dose, seed=SIMULATOR_SEEDS + k, mode=mode)
            out.append((f"emtcs simulate {mode}, {dose:g} e/px", B, noisy, clean))
    if scenes is not None:
        import h5py

        with h5py.File(scenes, "r") as f:
            n = min(B, len(f[f"scene_{ABTEM_SEEDS[0]:05d}"]))
        for seed in ABTEM_SEEDS:
            for dose in DOSES:
                noisy, clean = abtem_movie(scenes, seed, dose, n_frames=n)
                out.append((f"abTEM seed {seed}, {dose:g} e/px", n, noisy, clean))
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
    ap.add_argument("-B", type=int, default=30, help="frames per group (default 30)")
    ap.add_argument("--abtem-scenes", type=Path, default=SCENES, help=f"abTEM validation scenes (default {SCENES})")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--decoders", default=",".join(DECODERS), help=f"emtcs decoders (default {','.join(DECODERS)})")
    a = ap.parse_args()
    decoders = tuple(a.decoders.split(","))
    results: list[dict[str, Any]] = []
    doc = {"environment": environment(), "B": a.B, "decoders": decoders, "results": results}
    scenes = a.abtem_scenes if a.abtem_scenes.exists() else None
    if scenes is None:
        print(f"no abTEM scenes at {a.abtem_scenes}: skipped", file=sys.stderr)
    for name, B, noisy, clean in movies(a.B, scenes):
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
