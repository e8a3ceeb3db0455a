#!/usr/bin/env bash
# One command for a lent GPU (H100/H200): at most ~8 minutes.  Continues the GapUNet campaign from
# the best weights committed in models/ (when there are some) with bf16 autocast and large batches,
# then times decoding of one 4096 x 4096 x 20 group (the new weights, select and TCS-DL) and
# fitting the network to it (decompress --adapt 48).  Needs a
# python with CUDA torch, numpy, scipy, h5py, tifffile, click, rich, scikit-image and safetensors
# (the device image has them); emtcs runs from src/ without installing.
#
#   training/gpu.sh OUT_DIR [MINUTES]
#
# The device sees the working tree, not ../shared: copy the validation scenes (the CPU campaign's,
# so the two learning curves compare) into scratch/ first and carry them; the 64 MiB carry limit
# leaves room for them (32 MB) but not for a scene file of training data too (the simulator's
# scenes are made there):
#   cp ../shared/data/abtem-hrtem/hrtem_scenes_0-31.h5 scratch/abtem/val_0-31.h5
#   run(command="training/gpu.sh $OUT 7", carry=["scratch/abtem/val_0-31.h5"])
#
# Writes OUT_DIR/gapunet-gpu.{safetensors,ckpt,log.jsonl}, OUT_DIR/train.out and OUT_DIR/decode-4k.json.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?output folder}; MINUTES=${2:-7}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=src EMTCS_MODELS=models
scenes=(); for f in scratch/abtem/train_*.h5; do [ -e "$f" ] && scenes+=(--scene-file "$f"); done  # what was carried
init=(); w=$(ls models/gapunet*.safetensors 2>/dev/null | head -1 || true); if [ -n "$w" ]; then init=(--init "$w"); fi
val=()
for f in "${EMTCS_SHARED:-../shared/data}/abtem-hrtem/hrtem_scenes_0-31.h5" scratch/abtem/val_0-31.h5; do
  if [ -e "$f" ]; then val=(--val-scene-file "$f"); break; fi
done
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0))"
# the CPU campaign's current recipe (phase 13: 128 x 128 clips, the equivariance loss), at a
# GPU's batch; the cosine schedule is planned over 3,000 steps so that it anneals within the
# lease (--minutes stops it earlier on a slower device)
"$PY" -m emtcs.cli train --arch gapunet --width 24 --stages 2 --temporal --no-discrepancy -B 6,10,20 --steps 3000 --patch 128 --batch 16 \
  --lr 2e-4 --equivariance 10 --scenes 48 --modes hrtem,bright-field,liquid-cell,stem --flicker 0.05 --cuts 0.05 --val-every 200 --val-doses 20,200 --device cuda --bf16 --minutes "$MINUTES" \
  "${scenes[@]}" "${val[@]}" "${init[@]}" --quiet --force -o "$OUT/gapunet-gpu" 2>&1 | tee "$OUT/train.out"
"$PY" - "$OUT" <<'PY'
import json, sys, time
import numpy as np, torch
import emtcs
from emtcs import zoo
from emtcs.sensing import masks
out = sys.argv[1]
weights = f"{out}/gapunet-gpu.safetensors"
C = masks(0, 20, (4096, 4096))
y = emtcs.encode(np.random.default_rng(0).poisson(50, (20, 4096, 4096)).astype(np.uint16), C).astype(np.float32)
res = {"gpu": torch.cuda.get_device_name(0), "group": "4096 x 4096 x 20, 50 e/px, gain 1"}
# the new weights, what `auto` runs (select, shipped weights) and TCS-DL, for the 2x budget's ratio
runs = [("gapunet", {"weights": weights}, 256, 32), ("gapunet", {"weights": weights}, 512, 8),
        ("select", {}, 256, 32), ("tcsdl", {}, 256, 32)]
for name, opts, tile, batch in runs:
    kw = dict(device="cuda", tile=tile, batch=batch, gain=1.0, **opts)
    emtcs.reconstruct(y[:512, :512], C[:, :512, :512], name, **kw)  # warm-up
    torch.cuda.synchronize(); t = time.perf_counter()
    emtcs.reconstruct(y, C, name, **kw)
    torch.cuda.synchronize(); res[f"{name}_tile{tile}_batch{batch}_s"] = time.perf_counter() - t
    print(res, flush=True)
# `decompress --adapt 48`'s fitting, which a file pays once: 16 tiles of 128 x 128 of the group
from emtcs.adapt import ADAPT_TILE, Sample, adapt
from emtcs.decoders import get_decoder
from emtcs.sensing import ArrayMasks
from emtcs.tiling import decoder_tiles, intensity_scale
dec = get_decoder("select", B=20, device="cuda")
scale = intensity_scale(y, ArrayMasks(C))
places = [(r, c) for r in range(0, 4096, 1024) for c in range(0, 4096, 1024)]
tiles = [decoder_tiles(y, ArrayMasks(C), slice(r, r + ADAPT_TILE), [slice(c, c + ADAPT_TILE)], scale) for r, c in places]
samples = [Sample(torch.from_numpy(yt), torch.from_numpy(Ct), torch.tensor([scale]), dec) for yt, Ct in tiles]
torch.cuda.synchronize(); t = time.perf_counter()
done = adapt(dec, samples, 48)
torch.cuda.synchronize(); res["adapt_48_steps_16_tiles_s"] = time.perf_counter() - t
res["adapt_kept_step"], res["adapt_ratio"] = done.kept, done.ratio
print(res, flush=True)
json.dump(res, open(f"{out}/decode-4k.json", "w"), indent=1)
PY
