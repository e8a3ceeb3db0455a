"""Turn a training run's weights into a candidate for shipping and measure it the way the
model card's rule asks (models/gapunet-w24s2.md: better on average over the validation
suite's rows, no row much worse).

    python training/candidate.py runs/gapunet-p160              # its best validation checkpoint
    python training/candidate.py runs/gapunet-p160 --last       # where it stopped (RUN.ckpt)
    python training/candidate.py runs/gapunet-p160 --write-only # only the weights file

Writes ``scratch/candidates/RUN_NAME-stepN/gapunet-wWsS.safetensors`` (the run's network, of
width W and S stages, with the shipped file's decode settings, e.g. its projection bound
``kappa``, and the group lengths it serves), then, in that
folder: ``grid-alias.json`` (``benchmarks/grid_alias.py``: the network's own pixel grid in
a lattice) and the validation suite's whole default run (``benchmarks/validation.py``:
``validation.json``, ``validation.md``, ``validation.png``, every row, so that a candidate
that ships brings the docs' files along), and prints ``benchmarks/suite_report.py compare``
against the shipped weights' suite run (``docs/figures/validation.json``) and ``targets``
(the issue's targets on the candidate's run: a candidate keeps those the shipped weights
meet on both mask draws).  About 20 minutes of one core with ``../shared``; shipping then
adds the ``--exact`` run (see the model card).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch

from emtcs import zoo

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "gapunet-w24s2.safetensors"


def write_candidate(run: Path, last: bool) -> Path:
    """The run's best (or last) weights as a models folder of their own; returns the folder."""
    info, best = zoo.load_weights(run.with_suffix(".safetensors"))
    state, steps = best, int(info["training"]["steps"])
    if last:
        checkpoint = torch.load(run.with_suffix(".ckpt"), map_location="cpu", weights_only=True)
        state, steps = checkpoint["model"], int(checkpoint["step"])
    shipped, _ = zoo.load_weights(SHIPPED)
    if info["config"]["arch"] != shipped["config"]["arch"]:
        raise SystemExit(f"{run}: a {info['config']['arch']} run, not {shipped['config']['arch']}")
    config = dict(info["config"])
    if "kappa" in shipped["config"]:  # the network is the run's, its projection bound the shipped one's
        config["kappa"] = shipped["config"]["kappa"]
    folder = ROOT / "scratch" / "candidates" / f"{run.name}-step{steps}"
    folder.mkdir(parents=True, exist_ok=True)
    training = {**info["training"], "steps": steps}
    name = f"{config['arch']}-w{config['width']}s{config['stages']}.safetensors"  # as models/ names them
    # served where the shipped weights are, so that the suite compares the same groups (a run's
    # own range, its training B, may be narrower: its short groups would fall back to the shipped file),
    # with the shipped file's note on where that range was measured
    note = {"serves_note": shipped["serves_note"]} if "serves_note" in shipped else {}
    zoo.save_weights(folder / name, state, config, serves=shipped["serves"], training=training, **note)
    return folder


def measure(folder: Path) -> None:
    """Grid alias, the suite's default run, the comparison with the shipped weights, the targets."""
    env = {**os.environ, "EMTCS_MODELS": str(folder), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    bench, shipped_suite = ROOT / "benchmarks", ROOT / "docs" / "figures" / "validation.json"
    steps = [
        [bench / "grid_alias.py", "--decoders", "gapunet", "--json", folder / "grid-alias.json"],
        [bench / "validation.py", "--json", folder / "validation.json", "--table", folder / "validation.md"]
        + ["--figure", folder / "validation.png"],
        [bench / "suite_report.py", "compare", shipped_suite, folder / "validation.json"],
        [bench / "suite_report.py", "targets", folder / "validation.json"],
    ]
    for args in steps:
        subprocess.run([sys.executable, *map(str, args)], env=env, cwd=ROOT, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="the run's stem (RUN.safetensors, RUN.ckpt)")
    ap.add_argument("--last", action="store_true", help="the checkpoint where the run stopped, not its best")
    ap.add_argument("--write-only", action="store_true", help="write the weights, measure nothing")
    a = ap.parse_args()
    folder = write_candidate(a.run, a.last)
    print(f"candidate: {folder}", flush=True)
    if not a.write_only:
        measure(folder)


if __name__ == "__main__":
    main()
