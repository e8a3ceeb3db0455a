"""Fill ``scratch/gpu/`` with the training data that ``training/gpu.sh`` takes to a lent GPU.

The device machine sees the working tree, not ``../shared``, and what travels with it
(``carry``) is limited to 64 MiB in all.  This copies the campaign's real single images
(those ``training/campaign.sh`` trains on) and as many abTEM scenes of the campaign's
``scratch/abtem/train_*.h5`` as the rest of the budget holds, spread over their seeds, as
float16 (what training holds them as in memory) with gzip, into ``scratch/gpu/scenes.h5``.

    python training/gpu_data.py            # then: run(command="training/gpu.sh $OUT 7.5", carry=["scratch/gpu"])
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: what the device tool carries (the working tree and these files together), less a margin
CARRY_BYTES = 60 * 2**20


def campaign_images(shared: Path) -> list[Path]:
    """The real single images ``training/campaign.sh`` lists (every .tif it names), where
    ``shared`` has them."""
    names = re.findall(r"[\w.-]+\.tif\b", (ROOT / "training" / "campaign.sh").read_text())
    return [shared / "em" / n for n in dict.fromkeys(names) if (shared / "em" / n).exists()]


def tree_bytes() -> int:
    """Bytes of the files git would give the device: tracked and untracked, not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    return sum((ROOT / p.decode()).stat().st_size for p in listed if p and (ROOT / p.decode()).is_file())


def write_scenes(target: Path, names: list[tuple[Path, str]]) -> int:
    """Write the scenes ``names`` (file, dataset) to ``target`` as float16; its size in bytes."""
    with h5py.File(target, "w") as out:
        for src, name in names:
            with h5py.File(src, "r") as f:
                out.create_dataset(name, data=np.asarray(f[name], dtype=np.float16), compression="gzip", shuffle=True)
                out[name].attrs.update(f[name].attrs)
    return target.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "scratch" / "gpu")
    args = parser.parse_args()
    sources = sorted((ROOT / "scratch" / "abtem").glob("train_*.h5"))
    if not sources:
        raise SystemExit("no scratch/abtem/train_*.h5: make scenes first (training/make_scenes.sh)")
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    images = campaign_images(args.shared)
    for image in images:
        shutil.copy2(image, args.out / image.name)
    budget = CARRY_BYTES - tree_bytes() - sum(i.stat().st_size for i in images)
    names = []
    for src in sources:
        with h5py.File(src, "r") as f:
            names += [(src, name) for name in f]
    target = args.out / "scenes.h5"
    # every k-th scene: k from the size of a sample's, grown until the file fits
    sample = names[:: max(1, len(names) // 8)]
    per_scene = write_scenes(target, sample) / len(sample)
    k = max(1, math.ceil(len(names) * per_scene / budget))
    while write_scenes(target, names[::k]) > budget and k < len(names):
        k += 1
    size = target.stat().st_size
    if size > budget:
        raise SystemExit(f"scenes.h5 is {size / 2**20:.1f} MiB, over the {budget / 2**20:.1f} MiB left to carry")
    print(f"{args.out}: {len(images)} images, {len(names[::k])} of {len(names)} scenes ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
