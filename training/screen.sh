#!/usr/bin/env bash
# The campaign's screens for a run's weights, before the validation suite (session 42):
#
#   training/screen.sh runs/gapunet-p91 [--last]   # about 15 minutes of one core
#   training/screen.sh scratch/candidates/NAME     # a candidate folder made otherwise, e.g. a
#                                                  # mean by training/soup.py -o scratch/candidates/NAME/gapunet-w24s2.safetensors
#
# Writes the candidate folder (training/candidate.py --write-only), then, against the
# shipped weights: HRTEM movies in four bands of lattice spacing (training/whole_movies.py
# --spacings, finished as `auto` finishes), the two weak reflections that held back the
# sharper fine-tunes (benchmarks/peak_timeline.py: abTEM seed 17 and the README demo, four
# mask draws; a frame at 30 or more where the truth is under 10 counts as invented; the
# shipped weights (the mean of phases 93, 101 and 106 since session 47) count 1 and 0, as phase 93 did;
# phase 13 none), and the README demo decoded as the README does at B = 10 and 20 (shipped:
# 27.54 and 25.13 dB; the mean of phases 93 and 101 27.47 and 25.07; phase 93 27.31 and
# 24.98; phase 13 27.30 and 25.05).  The report goes to stdout and to
# scratch/notes/screen-CANDIDATE.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=${1:?a run stem, e.g. runs/gapunet-p91, or a candidate folder}
shift
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=$ROOT/.venv/bin/python
if [ -d "$RUN" ]; then cand=$(cd "$RUN" && pwd)
else cand=$("$PY" training/candidate.py "$RUN" "$@" --write-only | sed -n 's/^candidate: //p' | tail -1); fi
[ -d "$cand" ] || { echo "screen.sh: no candidate folder from $RUN" >&2; exit 1; }
mkdir -p scratch/notes scratch/demo
report=$ROOT/scratch/notes/screen-$(basename "$cand").txt
demo=$ROOT/scratch/demo
if [ ! -e "$demo/demo20.tcs" ]; then
  (cd "$demo" && "$ROOT/.venv/bin/emtcs" simulate demo.tif --clean demo-clean.tif --force -q \
    && "$ROOT/.venv/bin/emtcs" compress demo.tif -B 10 --force -q \
    && "$ROOT/.venv/bin/emtcs" compress demo.tif -B 20 -o demo20.tcs --force -q)
fi
{
  echo "== $cand against models/gapunet-w24s2.safetensors"
  "$PY" training/whole_movies.py models/gapunet-w24s2.safetensors "$cand/gapunet-w24s2.safetensors" \
    --seeds "" --spacings 4.5-5.5,6-7,8.5-9.5,11-12 --finish
  for args in "--seed 17 --dose 20 -B 20 --bin 16,-6" "--demo -B 20 --bin 8,-105"; do
    # shellcheck disable=SC2086
    (cd benchmarks && EMTCS_MODELS=$cand "$PY" peak_timeline.py $args --decoders auto --mask-seeds 0,1,2,3)
  done
  for tcs in demo.tcs demo20.tcs; do
    echo "README demo, $tcs:"
    (cd "$demo" && EMTCS_MODELS=$cand "$ROOT/.venv/bin/emtcs" decompress "$tcs" -o restored.tif \
      --reference demo-clean.tif --force 2>&1 | grep "quality vs")
  done
} 2>&1 | tee "$report"
