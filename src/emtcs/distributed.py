"""Decompression (and compression of many movies) scaled out on dask.distributed.

The design, for one machine (``workers=N``, a local cluster of N processes) or many
(``scheduler="tcp://host:8786"``, a running Dask scheduler):

* Work: one task per run of groups of the ``.tcs`` (:func:`emtcs.decoding.group_runs`;
  one group for decoders that decode each group alone), or per row block of a run
  when its frames are large (more than :data:`BLOCK_BYTES` as float32); the row blocks
  are bands of tiles, decoded with their overlapping neighbours, so the frames are
  bit-identical to the single-process result (:func:`emtcs.tiling.decode_run_bands`).
* Data: a task carries only its description (path, groups, rows, frames, decoder
  name); **each worker reads the measurement from the ``.tcs`` itself**, so the file
  must be on a file system that every worker sees under the same path.  The decoded
  frames, in the source dtype, travel back to the client, which alone writes the
  output, in order, as results arrive.  At most two tasks per worker thread are
  submitted ahead of the next one to write, so the client's memory stays flat.
* Decoders: a worker builds the decoder on its first task and keeps one at a time.
  Learned decoders on GPUs: start one worker per GPU with ``--resources GPU=1``; the
  tasks then ask for ``{"GPU": 1}``, so each GPU holds one decoder and runs one task
  at a time.
* Failures: a task that raises is retried twice; the scheduler reschedules the tasks
  of a lost worker.  A task's result depends only on its inputs, so the output is
  the same however often it runs.

dask is the ``distributed`` extra, imported only here and only when used.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .container import TcsHeader, TcsReader
from .decoders import Decoder, decoder_for, is_learned
from .decoding import DecodedRows, DecodeSettings, decode_run, reported_config, wanted_runs
from .errors import DecoderError, EmtcsError, InputError
from .optional import require
from .tiling import tile_starts

__all__ = [
    "decode_on_cluster",
    "map_in_order",
    "cluster_client",
    "ordered_results",
    "plan_decode",
    "decode_task",
    "DecodeTask",
    "BLOCK_BYTES",
]

#: Largest run of groups (its frames as float32) decoded by one task; larger ones are split into row blocks.
BLOCK_BYTES = 256 * 2**20
#: Tasks submitted ahead of the next result to write, per worker thread (or GPU).
AHEAD = 2
#: How long to try to reach a remote scheduler, and to wait for its first worker (seconds).
CONNECT_TIMEOUT = 20
WORKER_TIMEOUT = 60


@dataclass(frozen=True)
class DecodeTask:
    """What a worker decodes: rows ``rows`` of the run of groups ``groups`` (first, stop) of
    ``path``, keeping the frames ``keep`` (one tuple per group of ``kept``), with the
    decoder ``decoder`` for groups of ``B`` frames, as ``settings`` say."""

    path: str
    groups: tuple[int, int]
    kept: tuple[int, ...]
    keep: tuple[tuple[int, ...], ...]
    rows: tuple[int, int]
    bands: tuple[int, int] | None
    decoder: str
    B: int
    settings: DecodeSettings


def decode_task(task: DecodeTask) -> list[dict[str, Any]]:
    """Run on a worker: decode one task; returns, for each group kept, its frames, residual
    terms, the guard's (replaced, tiles) counts, select's hold-out scores and blended tiles,
    the tiles given back still and the decoder config."""
    dec = _worker_decoder(task.decoder, task.B, task.settings)
    r0, r1 = task.rows
    config = reported_config(dec, task.settings)
    with TcsReader(task.path) as reader:
        W = reader.header.frame_shape[1]
        dtype = reader.header.value_map.source_dtype
        results = {
            g: {
                "frames": np.empty((len(keep), r1 - r0, W), dtype=dtype),
                "terms": [],
                "fallback": (0, 0),
                "holdout": (0.0, 0),
                "blended": 0,
                "still": 0,
                "decoder": config,
            }
            for g, keep in zip(task.kept, task.keep)
        }
        bands = range(*task.bands) if task.bands else None
        keep = {g: list(k) for g, k in zip(task.kept, task.keep)}
        for band in decode_run(reader, range(*task.groups), dec, task.settings, keep=keep, bands=bands):
            out = results[band.g]
            out["frames"][:, band.rows.start - r0 : band.rows.stop - r0] = band.frames
            out["terms"].append((band.num, band.den))
            out["fallback"] = tuple(a + b for a, b in zip(out["fallback"], band.fallback))
            out["holdout"] = tuple(a + b for a, b in zip(out["holdout"], band.holdout))
            out["blended"] += band.blended
            out["still"] += band.still
    return [results[g] for g in task.kept]


_decoder_cache: dict[str, Any] = {}
_decoder_lock = threading.Lock()


def _worker_decoder(name: str, B: int, settings: DecodeSettings) -> Decoder:
    """The worker's decoder, built once and kept (one at a time, so a GPU holds one)."""
    key = (name, B, settings.device, settings.options)
    with _decoder_lock:
        if _decoder_cache.get("key") != key:
            _decoder_cache.clear()  # free the previous decoder (and its GPU memory) first
            dec, _ = decoder_for(name, B, device=settings.device, **settings.decoder_options)
            if is_learned(name) and dec.device.type == "cpu":  # type: ignore[attr-defined]
                _share_cpu()
            _decoder_cache.update(key=key, decoder=dec)
        return _decoder_cache["decoder"]


def _share_cpu() -> None:
    """A CPU network uses the worker's threads, not every core (other workers share the node)."""
    import torch
    from distributed import get_worker

    try:
        torch.set_num_threads(max(1, get_worker().state.nthreads))
    except ValueError:  # not inside a worker
        pass


def plan_decode(
    path: str,
    hd: TcsHeader,
    sel: range,
    *,
    decoder: str,
    settings: DecodeSettings,
    block_bytes: int = BLOCK_BYTES,
) -> list[tuple[DecodeTask, list[list[int]], bool]]:
    """The tasks of a decompression in output order: (task, output frame indices of each
    group kept, last block of its run)."""
    H, W = hd.frame_shape
    ys = tile_starts(H, settings.tile, settings.overlap)
    ends = [*ys[1:], H]
    plan = []
    for groups, wanted in wanted_runs(hd, sel, settings.run):
        kept = list(wanted)
        row_bytes = len(groups) * len(hd.group_frames(groups.start)) * W * 4
        blocks, b0 = [], 0
        for b in range(len(ys)):
            if b > b0 and (ends[b] - ys[b0]) * row_bytes > block_bytes:
                blocks.append((b0, b))
                b0 = b
        blocks.append((b0, len(ys)))
        for k, (a, b) in enumerate(blocks):
            task = DecodeTask(
                path,
                (groups.start, groups.stop),
                tuple(kept),
                tuple(tuple(wanted[g][0]) for g in kept),
                (ys[a], ends[b - 1]),
                (a, b) if len(blocks) > 1 else None,
                decoder,
                hd.B,
                settings,
            )
            plan.append((task, [wanted[g][1] for g in kept], k == len(blocks) - 1))
    return plan


def decode_on_cluster(
    path: Path,
    hd: TcsHeader,
    sel: range,
    decoder: str,
    settings: DecodeSettings,
    *,
    workers: int | None,
    scheduler: str | None,
    block_bytes: int | None = None,
) -> Iterator[DecodedRows]:
    """The groups of ``path`` holding ``sel``, decoded on the cluster, in output order
    (what :func:`emtcs.codec.decompress` writes with ``workers`` or ``scheduler``)."""
    with cluster_client(workers, scheduler) as client:
        resources, device, slots = _placement(client, decoder, settings.device)
        plan = plan_decode(
            str(path),
            hd,
            sel,
            decoder=decoder,
            settings=replace(settings, device=device),
            block_bytes=block_bytes or BLOCK_BYTES,
        )
        tasks = [(task,) for task, _, _ in plan]
        for i, results in ordered_results(client, decode_task, tasks, ahead=AHEAD * slots, resources=resources):
            task, t_outs, last = plan[i]
            for g, t_out, result in zip(task.kept, t_outs, results):
                yield DecodedRows(
                    g,
                    t_out,
                    slice(*task.rows),
                    result["frames"],
                    result["terms"],
                    last,
                    result["decoder"],
                    result["fallback"],
                    result["holdout"],
                    result["blended"],
                    result["still"],
                )


def map_in_order(
    fn: Callable[..., Any],
    tasks: Sequence[tuple[Any, ...]],
    *,
    workers: int | None,
    scheduler: str | None,
) -> Iterator[Any]:
    """``fn(*task)`` for every task, computed on the cluster, yielded in task order
    (e.g. :func:`emtcs.codec.compress_many`: one movie per task, read and written by
    the workers, so inputs and outputs must be on a shared file system)."""
    with cluster_client(workers, scheduler) as client:
        _, _, slots = _placement(client, "gaptv", "cpu")
        for _, result in ordered_results(client, fn, tasks, ahead=AHEAD * slots):
            yield result


def _on_worker(fn: Callable[..., Any], *args: Any) -> Any:
    _tune_malloc()
    return fn(*args)


_malloc_tuned = False


def _tune_malloc() -> None:
    """Undo, in this worker process, Dask's default ``MALLOC_TRIM_THRESHOLD_=65536``.

    Any explicit glibc threshold turns off its adaptive mmap threshold, so every
    temporary array above 128 kB is mapped, zero-filled and unmapped again: GAP-TV ran
    3.4 times slower (benchmarks/scaleout.py).  Fixed thresholds of 256 MB (trim) and
    32 MB (mmap) give back the speed of a plain process.  Linux with glibc only.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return
    _malloc_tuned = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


# -- the cluster ----------------------------------------------------------------------


@contextmanager
def cluster_client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    """A ``distributed.Client``: to the scheduler at ``scheduler``, or to a new local cluster
    of ``workers`` single-threaded processes (closed on exit)."""
    distributed = require(
        "distributed", purpose="running on a Dask cluster (--workers, --scheduler)", extra="distributed"
    )
    if (workers is None) == (scheduler is None):
        raise InputError("give either --workers N or --scheduler ADDRESS")
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
        except ValueError as exc:  # dask's parsing of the address
            raise InputError(f"bad Dask scheduler address {scheduler!r} ({exc}; e.g. tcp://host:8786)") from None
        with client:
            try:
                client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
            except TimeoutError:
                raise InputError(
                    f"no Dask worker joined the scheduler at {scheduler} within {WORKER_TIMEOUT} s"
                ) from None
            yield client
        return
    if workers < 1:
        raise InputError(f"--workers must be at least 1 (got {workers})")
    with distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
    ) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def _placement(client: Any, decoder: str, device: str) -> tuple[dict[str, int] | None, str, int]:
    """(resources per task, device for the workers, how many tasks run at once)."""
    workers = client.scheduler_info()["workers"].values()
    gpus = int(sum(w.get("resources", {}).get("GPU", 0) for w in workers))
    threads = int(sum(w.get("nthreads", 1) for w in workers))
    if is_learned(decoder) and (device == "cuda" or (device == "auto" and gpus)):
        if not gpus:
            raise DecoderError(
                "--device cuda: no Dask worker declares a GPU "
                "(start one worker per GPU with: dask worker ADDRESS --resources GPU=1)"
            )
        return {"GPU": 1}, "cuda", gpus
    return None, device, max(threads, 1)


def ordered_results(
    client: Any,
    fn: Callable[..., Any],
    tasks: Sequence[tuple[Any, ...]],
    *,
    ahead: int,
    resources: dict[str, int] | None = None,
) -> Iterator[tuple[int, Any]]:
    """``(i, fn(*tasks[i]))`` in task order, computed on the cluster.

    At most ``ahead`` tasks are submitted or buffered beyond the next one to yield, so
    results that finish early wait in a bounded reorder buffer.  Failed tasks are
    retried twice; an error that persists is raised here, and the remaining tasks
    are cancelled.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    index: dict[str, int] = {}
    buffered: dict[int, Any] = {}
    pending = as_completed()
    submitted = next_out = 0

    def submit_more() -> None:
        nonlocal submitted
        while submitted < len(tasks) and submitted - next_out < max(ahead, 1):
            future = client.submit(_on_worker, fn, *tasks[submitted], pure=False, retries=2, resources=resources)
            index[future.key] = submitted
            pending.add(future)
            submitted += 1

    submit_more()
    try:
        for future in pending:
            i = index.pop(future.key)
            try:
                buffered[i] = future.result()
            except KilledWorker as exc:
                raise EmtcsError(f"task {i} killed its workers repeatedly ({exc}); giving up") from None
            except (OSError, TimeoutError) as exc:
                raise EmtcsError(f"lost the Dask cluster ({exc})") from None
            future.release()
            while next_out in buffered:
                yield next_out, buffered.pop(next_out)
                next_out += 1
            submit_more()
    finally:
        left = list(pending.futures)
        if left:
            client.cancel(left)
