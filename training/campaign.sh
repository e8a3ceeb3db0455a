#!/usr/bin/env bash
# The CPU training campaign for the GapUNet decoder: one background process on ONE core,
# resuming from the last checkpoint when there is one.  Generated data stays out of git:
# physics-simulated scenes come from training/make_scenes.sh (scratch/abtem/*.h5), the
# validation scenes (abTEM seeds 0-31, never trained on) from ../shared.
#
#   training/campaign.sh [STEPS [OPTIONS]]     # default 20000 steps; run it again to resume
#   EMTCS_WIDTH=28 training/campaign.sh 40000   # a wider network, from scratch (runs/gapunet-w28)
#   EMTCS_RUN=runs/gapunet-dt training/campaign.sh 6000 --discrepancy
#                                               # other `emtcs train` options, in a run of their own
#
# The network is the shipped one's (temporal mixing, accelerated GAP-TV start; phase 9; the
# full-resolution head since phase 93), and so is the recipe (128 x 128 clips, batch 2, the
# equivariance loss; phase 13; rmse, edges weighed 3 times, the spectral loss at the suite's
# frame size, simulated lattices 4.5-12 px apart, abTEM scenes zoomed out to 0.4; phase 93,
# shipped in session 44; since session 47 the shipped weights are its mean with phases 101 and
# 106, which continued that recipe on 256 x 256 clips): later options win.
#   EMTCS_INIT=runs/gapunet.safetensors ...     # a new run fine-tunes these weights instead of the shipped ones
#   EMTCS_ARCH=tcsdl training/campaign.sh 3000 --lr 1e-4   # the paper's TCS-DL (runs/tcsdl), from its
#                                               # shipped weights, on the same data and recipe (session 52)
#   EMTCS_WIDTH=32 EMTCS_INIT=models/gapunet-w24s2.safetensors training/campaign.sh 2000 --lr 2e-4
#                                               # a wider network that starts with the shipped one's output
#                                               # (its new channels start with no effect; phase 21)
#   EMTCS_STAGES=3 training/campaign.sh 1700 --lr 1e-4 --stage-lr 50   # runs/gapunet-s3
#                                               # more unfolded stages, started with the shipped
#                                               # weights' output (added stages start closed, and
#                                               # open at 50x the learning rate; phase 22)
#
# A fresh checkout has no runs/ and no scratch/: first training/make_scenes.sh 1000 645 (about
# 55 minutes of one core; rename the result to scratch/abtem/train_1000.h5), then this, which
# starts from the shipped weights (width 24; other widths start from scratch), or with
# EMTCS_INIT=training/lineage/FILE from the line of fine-tunes kept in git (training/lineage/README.md).
#
# Validation clips are at the suite's doses, 20 and 200 e/px (since session 15; a run started
# before validated at drawn doses: resume it with EMTCS_VAL_DOSES= training/campaign.sh ...);
# their scene cuts and flicker are the campaign's whatever --cuts/--flicker say
# (emtcs.training.data.VALIDATION_CLIPS, since session 21), so every phase is scored on the same clips.
#
# Writes runs/gapunet.{safetensors,ckpt,log.jsonl} and runs/gapunet.out (runs/gapunet-wN.* at width N,
# -sK added with K stages, runs/tcsdl.* for TCS-DL, $EMTCS_RUN.* when that is set).  `python training/whole_movies.py
# models/gapunet-w24s2.safetensors RUN.safetensors --simulated 8 --finish` screens a run's weights
# against the shipped ones on 30 whole abTEM validation movies and 32 simulated ones of four kinds,
# finished as `auto` finishes (the clip scores have not ranked runs as the suite does, sessions
# 29-30, nor has the unfinished screen, session 32), `python benchmarks/grid_alias.py` (with EMTCS_MODELS set
# to a candidate folder) measures the network's pixel grid, which costs the README demo most,
# and `python training/candidate.py RUN` then measures them through the suite (the model card's rule).
# Before the suite, 16 s screen the reflection that has held back every sharper fine-tune since
# session 33 (`training/candidate.py RUN --write-only`, then with EMTCS_MODELS set to its folder
# `python benchmarks/peak_timeline.py --seed 17 --dose 20 -B 20 --bin 16,-6 --decoders gapunet,auto`:
# `auto`'s frame 0 at 30 or more is counted as invented; the shipped weights 26.8), and the
# README demo's weak reflection likewise (`... peak_timeline.py --demo -B 20 --bin 8,-105`, session 40).
# What a run learns follows the lattices it sees: `whole_movies.py SHIPPED RUN.safetensors --seeds ""
# --spacings 4.5-5.5,6-7,11-12 --finish` (5 minutes) shows which spacings it gained and lost; the
# simulator's scenes take `--column-spacing LO HI` (px; default 6 12), the abTEM scenes' lattices are
# mostly coarser (session 41); scenes 320 px wide (`training/make_scenes.sh FIRST N 320`) let
# `--zoom 0.4 1.7` bring them down to 4-6 px, averaged as pixels 1/zoom wide would (session 42).
# `training/screen.sh RUN` runs these screens and the README demo in one go (15 minutes; session 42).
# The suite's flags are one draw of the masks: judge a candidate on two draws too
# (`benchmarks/validation.py --mask-seed 1`, and the shipped weights on the same draw; session 38).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20000}
shift || true
SHARED=${EMTCS_SHARED:-../shared/data}
WIDTH=${EMTCS_WIDTH:-24}
STAGES=${EMTCS_STAGES:-2}
ARCH=${EMTCS_ARCH:-gapunet}
if [ "$ARCH" = tcsdl ]; then
  # the paper's decoder on the same data and recipe; it serves B = 8 ... 30 (`auto` uses it
  # where no GapUNet weights serve B: 21 ... 30)
  RUN=runs/tcsdl; SHIPPED=models/tcsdl-w24.safetensors
  net=(--arch tcsdl --width "$WIDTH" -B 8,10,15,20,25,30)
else
  RUN=runs/gapunet
  [ "$WIDTH" = 24 ] || RUN=runs/gapunet-w$WIDTH
  [ "$STAGES" = 2 ] || RUN=$RUN-s$STAGES
  SHIPPED=models/gapunet-w24s2.safetensors
  net=(--arch gapunet --width "$WIDTH" --stages "$STAGES" --temporal --no-discrepancy -B 6,10,20 --head 16)
fi
RUN=${EMTCS_RUN:-$RUN}
mkdir -p runs
scenes=()
for f in scratch/abtem/train_*.h5; do [ -e "$f" ] && scenes+=(--scene-file "$f"); done
# real single images (never the benchmark movies: liquid-cell, nanoporous gold, STEM-ABF movie)
data=()
for f in stem-haadf_srtio3_1x1024x1024_uint16.tif stem-haadf_au-nanoparticles_1x2048x2048_uint16.tif \
         tem-ceta-camera_low-signal_1x512x512_int16.tif tem_tvips-bin4_1x1024x1024_uint8.tif \
         stem-madf_graphene-grain-boundary_1x512x512_float32.tif stem-haadf_se-implanted-mos2_1x1024x1024_uint32.tif \
         stem_srtio3-team_1x1024x1024_uint16.tif sem-inlens_zeiss-fib-lamella_2x1536x2048_uint8.tif; do
  [ -e "$SHARED/em/$f" ] && data+=(--data "$SHARED/em/$f")
done
# continue this machine's run, else (a fresh checkout) fine-tune the shipped weights
resume=(); LR=1e-3
if [ -e "$RUN.ckpt" ]; then resume=(--resume "$RUN.ckpt")
elif [ -n "${EMTCS_INIT:-}" ] || { [ "$WIDTH" = 24 ] && [ -e "$SHIPPED" ]; }; then
  resume=(--init "${EMTCS_INIT:-$SHIPPED}"); LR=5e-5
fi
# bfloat16 autocast is `emtcs train`'s default where the CPU computes in bf16 natively: 1.9x
# faster per training step on an Intel Xeon with AMX (session 26) and on an AMD EPYC with
# avx512_bf16 (session 46: 1.46 s against 2.75 s a forward + backward at 256 px, B = 10, one
# core); 9x slower on an AMD EPYC without either (session 5), where it stays off
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nohup .venv/bin/emtcs train "${net[@]}" --steps "$STEPS" \
  --patch 128 --batch 2 --equivariance 10 --lr "$LR" --scenes 24 --modes hrtem,bright-field,liquid-cell,stem \
  --flicker 0.05 --cuts 0.05 --jpeg 0.1 --val-every 250 --val-doses "${EMTCS_VAL_DOSES-20,200}" \
  --loss rmse --edge-weight 3 --spectral-weight 4 --spectral-frame 256 --spectral-margin 3 \
  --column-spacing 4.5 12 --zoom 0.4 1.0 \
  "${scenes[@]}" --val-scene-file "$SHARED/abtem-hrtem/hrtem_scenes_0-31.h5" "${data[@]}" \
  "${resume[@]}" "$@" --threads 1 --device cpu --quiet -o "$RUN" >> "$RUN.out" 2>&1
