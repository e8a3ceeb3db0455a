"""Peak memory of tiled decoding does not follow the frame size of the group.

Compresses one group of B = 20 frames of 4096 x 4096 uint16 (1.3 GB as float32 frames)
and decodes it with GAP-TV cut to 1 iteration (the memory pattern is the decoder's
tiling, not its iteration count), reporting peak RSS of the decoding process.

Usage: python benchmarks/decode_memory.py [--size 4096] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import tifffile

import emtcs
from _measure import peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--B", type=int, default=20)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    n, B = args.size, args.B
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        src, tcs, out = Path(tmp) / "m.tif", Path(tmp) / "m.tcs", Path(tmp) / "o.tif"
        rng = np.random.default_rng(0)
        base = rng.integers(500, 3500, size=(n, n), dtype=np.uint16)
        tifffile.imwrite(src, (np.roll(base, t, axis=1) for t in range(B)), shape=(B, n, n), dtype=np.uint16)
        emtcs.compress(src, tcs, B=B)
        rss, wall = peak_rss_mb(
            f"import emtcs; emtcs.decompress({str(tcs)!r}, {str(out)!r}, decoder='gaptv', "
            "decoder_options={'iterations': 1})"
        )
        frames_gb = B * n * n * 4 / 1e9
        print(
            f"decode 1 group of {B} x {n} x {n}: peak RSS {rss:.0f} MB "
            f"(the group as float32 frames would be {frames_gb:.2f} GB), {wall:.0f} s with 1 GAP-TV iteration"
        )


if __name__ == "__main__":
    main()
