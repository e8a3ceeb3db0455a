"""Decompression throughput on dask.distributed: one process vs local clusters of N workers.

Simulates a small movie, compresses it, then decodes it with GAP-TV in one process and
on local clusters (single-threaded worker processes), checking that every output is
identical.  Decode time is measured on a running cluster; cluster start-up separately.
Also records the load average and the CPU used by other processes during the runs,
since on a shared machine they compete for the cores.

    python benchmarks/scaleout.py --workers 1 2 --json distributed.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import psutil
import tifffile

import emtcs
from emtcs import distributed as dist


def _cpu() -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds so far of (this process and its children: the workers, other processes)."""
    mine = {os.getpid(), *(c.pid for c in psutil.Process().children(recursive=True))}
    own, other = {}, {}
    for p in psutil.process_iter():
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        (own if p.pid in mine else other)[p.pid] = t.user + t.system
    return own, other


def _timed(fn) -> dict[str, float]:
    (own0, other0), t0 = _cpu(), time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    own1, other1 = _cpu()
    used = {
        name: sum(after[p] - before.get(p, 0.0) for p in after)
        for name, before, after in (("own", own0, own1), ("other", other0, other1))
    }
    return {
        "wall_s": wall,
        "emtcs_cpu_s": used["own"],
        "other_processes_cores": used["other"] / wall,
        "loadavg_1min": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 256))
    ap.add_argument("-B", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        emtcs.codec.write_simulation(d / "m.tif", n_frames=args.frames, shape=tuple(args.size), seed=1)
        emtcs.compress(d / "m.tif", d / "m.tcs", B=args.B)
        results = {
            "frames": args.frames,
            "size": list(args.size),
            "B": args.B,
            "cpu_count": os.cpu_count(),
            "decoder": "gaptv (40 iterations)",
            "runs": [],
        }
        run = _timed(partial(emtcs.decompress, d / "m.tcs", d / "plain.tif", decoder="gaptv"))
        results["runs"].append({"mode": "single process", **run, "frames_per_s": args.frames / run["wall_s"]})
        reference = tifffile.imread(d / "plain.tif")
        for n in args.workers:
            t0 = time.perf_counter()
            with dist.cluster_client(n, None) as client:
                startup = time.perf_counter() - t0
                address = client.scheduler.address
                out = d / f"w{n}.tif"
                run = _timed(partial(emtcs.decompress, d / "m.tcs", out, decoder="gaptv", scheduler=address))
            assert np.array_equal(tifffile.imread(out), reference), "distributed output differs"
            results["runs"].append(
                {
                    "mode": f"{n} local worker{'s' if n > 1 else ''}",
                    **run,
                    "frames_per_s": args.frames / run["wall_s"],
                    "cluster_startup_s": startup,
                }
            )
    for r in results["runs"]:
        print(
            f"{r['mode']:>16}: {r['wall_s']:6.2f} s, {r['frames_per_s']:5.2f} frames/s, "
            f"emtcs CPU {r['emtcs_cpu_s']:.1f} s (other processes used {r['other_processes_cores']:.2f} cores, "
            f"load {r['loadavg_1min']:.2f})"
            + (f", cluster start-up {r['cluster_startup_s']:.1f} s" if "cluster_startup_s" in r else "")
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    logging.getLogger("distributed").setLevel(logging.ERROR)
    main()
