#!/usr/bin/env bash
# Physics-simulated training scenes (abTEM multislice) for the campaign, in a venv of their own:
# abTEM is a tool for making training data, never a dependency of emtcs.
#
#   training/make_scenes.sh FIRST_SEED N [SIZE]   # writes scratch/abtem/next_FIRST.h5 (about 5 s of one core per scene)
#
# SIZE (default 192) is the scenes' side in pixels: 320 (about 15 s a scene) leaves room for the
# training's zoom to go down to 0.4 (`emtcs train --zoom 0.4 1.7`), which puts the scenes' lattices
# at the 4-6 px of coarsely sampled movies as well as the 8-34 px they are stored at.
#
# Seeds 0-31 are the validation scenes: never train on them; 1800-1815 are the calibration tiles
# of the benchmarks (scratch/abtem/calib_1800.h5, made with `training/make_scenes.sh 1800 16`):
# keep them out of training files (session 28 dropped them from train_1565.h5); so are 1816-1863,
# on which session 62 checked the density rule (scratch/abtem/verify_1816.h5 and verify_1848.h5:
# `training/make_scenes.sh 1816 32`, `training/make_scenes.sh 1848 16`).
# When it has finished, rename the file to scratch/abtem/train_FIRST.h5 and the next campaign
# run trains on it.
set -euo pipefail
cd "$(dirname "$0")/.."
FIRST=${1:?first seed (1000 or more)}; N=${2:?number of scenes}; SIZE=${3:-192}
[ "$FIRST" -ge 32 ] || { echo "seeds 0-31 are for validation" >&2; exit 2; }
SCRIPT=${EMTCS_SHARED:-../shared/data}/abtem-hrtem/make_scenes.py
[ -d scratch/abtem-venv ] || { python -m venv scratch/abtem-venv && scratch/abtem-venv/bin/pip install -q abtem h5py; }
mkdir -p scratch/abtem
OMP_NUM_THREADS=1 exec nice -n 19 scratch/abtem-venv/bin/python "$SCRIPT" "scratch/abtem/next_$FIRST.h5" "$FIRST" "$N" --size "$SIZE"
