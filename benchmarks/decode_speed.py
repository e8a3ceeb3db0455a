"""Decode time per 1024 x 1024 x B group, and where the time goes.

For each decoder and B, compresses one group (``--groups``: several) of a simulated
1024 x 1024 movie and decodes it with ``emtcs.decompress`` under cProfile, splitting the
wall time per group into the decoder itself, mask generation, finishing
(:mod:`emtcs.finish`), stitching/residual (tiling), and file I/O.  ``--run`` is
decompress's (GapUNet decodes that many groups together; it matters with ``--groups``).

Usage: python benchmarks/decode_speed.py [--decoders gaptv,gapnet,tcsdl] [-B 10,20,30] [--size 1024] [--finish nlm]
       python benchmarks/decode_speed.py --decoders select,tcsdl -B 10 --groups 4 --run 1,4
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from pathlib import Path

import emtcs
from emtcs.bench.run import environment
from emtcs.codec import write_simulation
from emtcs.decoding import RUN

# cProfile function names (file suffix, function) -> bucket
BUCKETS = {
    "decoder": [("decoders/gaptv.py", "decode"), ("decoders/learned.py", "decode"), ("decoders/select.py", "decode")],
    "masks": [("emtcs/sensing.py", "masks_at")],
    "finishing": [("emtcs/finish.py", "finish")],
}


def _cumulative(stats: pstats.Stats, file_suffix: str, func: str) -> float:
    return sum(v[3] for (f, _, fn), v in stats.stats.items() if f.endswith(file_suffix) and fn == func)


def measure(
    decoder: str, B: int, size: int, workdir: Path, finish: str = "nlm", groups: int = 1, run: int = RUN
) -> dict:
    """Seconds per group of decoding ``groups`` groups of B frames, in all and by part."""
    movie, tcs, out = workdir / f"m{B}.tif", workdir / f"m{B}.tcs", workdir / f"o{B}.tif"
    if not tcs.exists():
        write_simulation(movie, n_frames=B * groups, shape=(size, size), dose=100.0, seed=1, force=True)
        emtcs.compress(movie, tcs, B=B, force=True)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    emtcs.decompress(tcs, out, decoder=decoder, force=True, finish=finish, run=run)
    prof.disable()
    wall = (time.perf_counter() - t0) / groups
    stats = pstats.Stats(prof)
    parts = {name: sum(_cumulative(stats, f, fn) for f, fn in keys) / groups for name, keys in BUCKETS.items()}
    parts["stitching, residual, I/O"] = wall - sum(parts.values())
    return {
        "decoder": decoder,
        "B": B,
        "size": size,
        "finish": finish,
        "groups": groups,
        "run": run,
        "wall_s": wall,
        "parts_s": parts,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decoders", default="gaptv,gapnet,tcsdl")
    ap.add_argument("-B", default="10,20,30")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--finish", default="nlm", help="finishing of the decoded tiles: nlm (default) or none")
    ap.add_argument("--groups", type=int, default=1, help="groups of the movie decoded (default 1)")
    ap.add_argument("--run", default=str(RUN), help=f"decompress --run, comma-separated values (default {RUN})")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for B in (int(b) for b in args.B.split(",")):
            for dec in args.decoders.split(","):
                for run in (int(r) for r in args.run.split(",")):
                    r = measure(dec, B, args.size, Path(tmp), args.finish, args.groups, run)
                    results.append(r)
                    parts = ", ".join(f"{k} {v:.1f} s" for k, v in r["parts_s"].items())
                    print(
                        f"{dec:7s} B={B:2d} run {run} {args.size}x{args.size}: {r['wall_s']:.1f} s per group ({parts})",
                        flush=True,
                    )
    if args.json:
        machine = environment()["machine"]
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
