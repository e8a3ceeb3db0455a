"""Encoder cost and memory: the numbers behind docs/performance.md.

1. Throughput of the group encoder on a 2048 x 2048 x 20 uint16 group, in GB/s of raw
   input and as a ratio to a plain numpy copy of the same bytes, measured in one run;
   storing the measurement exactly and quantised at one noise sigma (``anscombe-v1``:
   a counting detector; ``anscombe-v2``: with offset and read noise), and ``anscombe-v2``
   with the row prediction compress writes (formats/tcs.md §11).
2. Whole-process ``emtcs compress`` (reading the TIFF, measuring the noise, encoding,
   writing the .tcs; default and ``--exact``) against reading the same frames and
   encoding each with libjpeg-turbo at 12 bits (imagecodecs, quality 90), on a
   2048 x 2048 x 100 movie of 12-bit counts, in one run; and the noise estimate's share of
   the default compress (``estimate_noise`` on the frames it measures, median of three),
   and that of choosing the masks' density (``emtcs.density.moving_share`` on the first group).
3. Peak RSS of ``emtcs compress`` on 40 and 400 frames of 2048 x 2048 uint16
   (written here as TIFF files; about 3.4 GB of disk for the larger one).

Usage: python benchmarks/encoder.py [--workdir DIR] [--skip-rss] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from _measure import peak_rss_mb
from emtcs.density import moving_share
from emtcs.encoder import GroupEncoder, ValueMap
from emtcs.noise import MAX_FRAMES, estimate_noise
from emtcs.quantise import MeasurementCoding


def throughput(
    B: int = 20,
    shape: tuple[int, int] = (2048, 2048),
    repeats: int = 7,
    coding: MeasurementCoding | None = None,
    predict: bool = False,
) -> dict:
    rng = np.random.default_rng(0)
    group = rng.integers(0, 4096, size=(B, *shape), dtype=np.uint16)
    copy = np.empty_like(group)
    enc = GroupEncoder(0, B, shape, ValueMap.for_source(group.dtype), coding or MeasurementCoding(), predict=predict)
    enc.encode(group)
    np.copyto(copy, group)  # first touch of the destination pages
    t_enc, t_copy = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine state
        t0 = time.perf_counter()
        np.copyto(copy, group)
        t_copy.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        enc.encode(group)
        t_enc.append(time.perf_counter() - t0)
    gb = group.nbytes / 1e9
    te, tc = statistics.median(t_enc), statistics.median(t_copy)
    return {
        "coding": enc.coding.describe() + ("" if enc.prediction == "none" else f", {enc.prediction}"),
        "group": [B, *shape],
        "bytes": group.nbytes,
        "encode_s": te,
        "copy_s": tc,
        "encode_GBps": gb / te,
        "copy_GBps": gb / tc,
        "ratio_to_copy": tc / te,
    }


def write_movie(path: Path, n: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(500, 3500, size=shape, dtype=np.uint16)

    def frames():
        for t in range(n):
            yield np.roll(base, t, axis=1) + rng.integers(0, 64, size=shape, dtype=np.uint16)

    tifffile.imwrite(path, frames(), shape=(n, *shape), dtype=np.uint16, bigtiff=True)


def against_jpeg(folder: Path, n: int = 100, shape: tuple[int, int] = (2048, 2048), B: int = 20) -> dict:
    """Whole-process compress against read + libjpeg-turbo 12-bit encode of the same frames."""
    import imagecodecs

    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    electrons = 400 * (1 + 0.4 * np.sin(xx / 9.0) * np.cos(yy / 13.0))  # counts up to about 1200 + offset
    movie = folder / "counts.tif"
    tifffile.imwrite(
        movie,
        _frames(rng, electrons, n),
        shape=(n, *shape),
        dtype=np.uint16,
        bigtiff=True,
    )
    out: dict = {"movie": [n, *shape], "bytes": movie.stat().st_size}
    import emtcs

    for label, step in (("emtcs default", None), ("emtcs --exact", 0.0)):
        t0 = time.perf_counter()
        info = emtcs.compress(movie, folder / "m.tcs", B, quantise=step, force=True)
        out[label] = {"s": time.perf_counter() - t0, "coding": info["coding"], "tcs_bytes": info["file_bytes"]}
    # the shares of the default compress taken by the noise estimate (on the frames compress
    # measures it from) and by choosing the masks' density (emtcs.density, on the first group)
    with tifffile.TiffFile(movie) as tif:
        frames = np.stack([page.asarray() for page in tif.pages[: max(MAX_FRAMES, B)]])
    first = frames[:MAX_FRAMES].astype(np.float32)
    for label, work in (
        ("noise_estimate", lambda: estimate_noise(first)),
        ("moving_share", lambda: moving_share(frames[:B])),
    ):
        seconds = _median_seconds(work)
        out[label] = {"s": seconds, "share": seconds / out["emtcs default"]["s"]}
    t0 = time.perf_counter()
    jpeg_bytes = 0
    with tifffile.TiffFile(movie) as tif:
        for page in tif.pages:
            jpeg_bytes += len(imagecodecs.jpeg_encode(page.asarray(), level=90))
    out["libjpeg-turbo 12-bit"] = {"s": time.perf_counter() - t0, "jpeg_bytes": jpeg_bytes}
    for label in ("emtcs default", "emtcs --exact"):
        out[label]["speed_vs_jpeg"] = out["libjpeg-turbo 12-bit"]["s"] / out[label]["s"]
    movie.unlink()
    return out


def _median_seconds(step, repeats: int = 3) -> float:
    """Median wall time of ``step()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _frames(rng: np.random.Generator, electrons: np.ndarray, n: int):
    for _ in range(n):
        yield (100 + rng.poisson(electrons)).astype(np.uint16)


def peak_rss(movie: Path, B: int = 20) -> dict:
    out = movie.with_suffix(".tcs")
    rss, wall = peak_rss_mb(f"import emtcs; emtcs.compress({str(movie)!r}, {str(out)!r}, B={B}, force=True)")
    size = out.stat().st_size
    out.unlink()
    return {"peak_rss_MB": rss, "wall_s": wall, "input_bytes": movie.stat().st_size, "tcs_bytes": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "throughput": throughput(),
        "throughput_quantised": throughput(coding=MeasurementCoding.anscombe(1.0)),
        "throughput_quantised_v2": throughput(coding=MeasurementCoding.anscombe(1.0, 2.0, 100.0, 2.0)),
        "throughput_predicted_v2": throughput(coding=MeasurementCoding.anscombe(1.0, 2.0, 100.0, 2.0), predict=True),
    }
    rows = ("throughput", "throughput_quantised", "throughput_quantised_v2", "throughput_predicted_v2")
    for t in (result[r] for r in rows):
        print(
            f"encode ({t['coding']}) {t['encode_GBps']:.2f} GB/s, numpy copy {t['copy_GBps']:.2f} GB/s: "
            f"ratio {t['ratio_to_copy']:.2f}"
        )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        result["against_jpeg"] = j = against_jpeg(Path(tmp))
        for label in ("emtcs default", "emtcs --exact"):
            print(
                f"{label} ({j[label]['coding']}): {j[label]['s']:.1f} s, libjpeg-turbo 12-bit "
                f"{j['libjpeg-turbo 12-bit']['s']:.1f} s: emtcs {j[label]['speed_vs_jpeg']:.2f}x its speed"
            )
        n = j["noise_estimate"]
        print(f"noise estimate {n['s']:.2f} s: {n['share']:.0%} of the default compress")
        m = j["moving_share"]
        print(f"the masks' density (moving share) {m['s']:.2f} s: {m['share']:.0%} of the default compress")
    if not args.skip_rss:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            rss = {}
            for n in (40, 400):
                movie = Path(tmp) / f"movie{n}.tif"
                write_movie(movie, n, (2048, 2048))
                rss[n] = peak_rss(movie)
                movie.unlink()
                print(
                    f"compress {n} frames of 2048x2048 uint16: peak RSS {rss[n]['peak_rss_MB']:.0f} MB, "
                    f"{rss[n]['wall_s']:.1f} s ({rss[n]['input_bytes'] / 1e6 / rss[n]['wall_s']:.0f} MB/s)"
                )
            result["compress_rss"] = rss
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
