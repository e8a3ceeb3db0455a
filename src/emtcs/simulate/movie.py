"""The simulated movie: :class:`MovieSimulator` draws the imaging model of the movie's mode
(:mod:`.modes`) and its detector from the seed and renders any frame; :func:`simulate`
makes a small movie in memory and :func:`write_movie` streams one to TIFF."""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from typing import Any

import numpy as np

from .config import SimulationConfig
from .detector import Detector
from .modes import ImagingModel, build_model
from .optics import Optics
from .scene import Scene

__all__ = ["MovieSimulator", "simulate", "write_movie"]


class MovieSimulator:
    """Renders a seeded synthetic in-situ movie frame by frame, in the imaging mode
    ``config.mode`` (phase-contrast HRTEM by default).

    The scene (particles, trajectories, optics, support) is built from
    ``config.seed`` in the constructor; :meth:`clean_frame` and :meth:`noisy_frame`
    then render any frame ``t`` independently, so a movie can be streamed with
    constant memory.  Gain and offset follow the rules of
    :class:`~emtcs.simulate.detector.Detector`.
    """

    def __init__(self, config: SimulationConfig) -> None:
        if not isinstance(config, SimulationConfig):
            raise ValueError(f"config must be a SimulationConfig, got {type(config).__name__}")
        self.config = config
        self.n_frames = int(config.n_frames)
        self.shape = (int(config.shape[0]), int(config.shape[1]))
        self.model: ImagingModel = build_model(config)
        self.detector = Detector.for_config(config, getattr(self.model, "headroom", 2.5))
        self._scale: float | None = None  # intensity normalisation, from frame 0

    @property
    def mode(self) -> str:
        """The imaging mode (``config.mode``)."""
        return self.config.mode

    @property
    def optics(self) -> Optics | None:
        """The drawn lens and sampling of an ``"hrtem"`` or ``"stem"`` movie (None in other modes)."""
        return getattr(self.model, "optics", None)

    @property
    def scene(self) -> Scene | None:
        """The drawn nanoparticles of an ``"hrtem"`` or ``"stem"`` movie (None in other modes)."""
        return getattr(self.model, "scene", None)

    @property
    def dtype(self) -> np.dtype:
        """dtype of the noisy frames."""
        return self.detector.dtype

    @property
    def gain(self) -> float:
        """ADU per electron."""
        return self.detector.gain

    @property
    def offset(self) -> float:
        """ADU added to every pixel."""
        return self.detector.offset

    def _check_t(self, t: int) -> int:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise ValueError(f"frame index must be an integer, got {t!r}")
        if not 0 <= t < self.n_frames:
            raise ValueError(f"frame index {t} out of range 0..{self.n_frames - 1}")
        return int(t)

    def electrons(self, t: int) -> np.ndarray:
        """Expected electrons per pixel of frame t (float32, mean of frame 0 = dose)."""
        t = self._check_t(t)
        if self._scale is None:
            i0 = self.model.intensity(0)
            self._scale = float(self.config.dose) / max(float(i0.mean(dtype=np.float64)), 1e-12)
            if t == 0:
                return (i0 * self._scale).astype(np.float32)
        return (self.model.intensity(t) * self._scale).astype(np.float32)

    @property
    def full_well(self) -> float | None:
        """Electrons per pixel at which the camera saturates (None: never)."""
        if self.model.full_well is None:
            return None
        if self._scale is None:
            self.electrons(0)
        assert self._scale is not None
        return float(self.model.full_well) * self._scale

    def _noisy(self, electrons: np.ndarray, t: int) -> np.ndarray:
        if self.model.full_well is None:
            return self.detector.noisy(electrons, t)
        return self.detector.noisy(electrons, t, full_well=self.full_well)

    def clean_frame(self, t: int) -> np.ndarray:
        """Noise-free expected detector value of frame t, float32 ADU (gain * e + offset)."""
        return self.detector.clean(self.electrons(t))

    def noisy_frame(self, t: int) -> np.ndarray:
        """A noisy realisation of frame t in ``config.dtype``; deterministic given (seed, t)."""
        return self._noisy(self.electrons(t), int(t))

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (noisy, clean) for t = 0 .. n_frames - 1, rendering each frame once."""
        for t in range(self.n_frames):
            e = self.electrons(t)
            yield self._noisy(e, t), self.detector.clean(e)

    def clip(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(noisy, clean) stacks of frames start .. start+length-1, e.g. a training sample."""
        self._check_t(start)
        if length < 1 or start + length > self.n_frames:
            raise ValueError(f"clip {start}..{start + length - 1} out of range 0..{self.n_frames - 1}")
        noisy = np.empty((length, *self.shape), self.dtype)
        clean = np.empty((length, *self.shape), np.float32)
        for k in range(length):
            e = self.electrons(start + k)
            noisy[k] = self._noisy(e, start + k)
            clean[k] = self.detector.clean(e)
        return noisy, clean

    @property
    def pixel_size_nm(self) -> float:
        """Pixel size in nm (drawn per movie by the imaging mode)."""
        return float(self.model.pixel_size_nm)

    def describe(self) -> dict[str, Any]:
        """The drawn scene and imaging parameters (for logs and file metadata)."""
        return self.model.describe(self.detector)


def simulate(
    n_frames: int = 40,
    shape: tuple[int, int] = (256, 256),
    *,
    dose: float = 100.0,
    seed: int = 0,
    dtype: str = "uint16",
    **options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a small movie in memory: (noisy (N, H, W) dtype, clean (N, H, W) float32).

    ``options`` are further :class:`SimulationConfig` fields (e.g. ``mode="stem"``).  For long or large
    movies use :class:`MovieSimulator` or :func:`write_movie`, which stream."""
    valid = {f.name for f in fields(SimulationConfig)} - {"n_frames", "shape", "dose", "seed", "dtype"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown simulation option(s) {unknown}; valid options are {sorted(valid)}")
    config = SimulationConfig(n_frames=n_frames, shape=shape, dose=dose, seed=seed, dtype=dtype, **options)
    sim = MovieSimulator(config)
    return sim.clip(0, sim.n_frames)


def _imagej_kwargs(sim: MovieSimulator) -> dict[str, Any]:
    px = sim.pixel_size_nm
    info = json.dumps({"emtcs_simulation": {**asdict(sim.config), **sim.describe()}}, default=str)
    return {
        "resolution": (1.0 / px, 1.0 / px),
        "metadata": {"axes": "TYX", "unit": "nm", "finterval": float(sim.config.frame_interval), "Info": info},
    }


def write_movie(
    path: str | os.PathLike[str],
    config: SimulationConfig,
    *,
    clean_path: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Stream a simulated movie to a multi-page ImageJ TIFF, one frame at a time.

    The noisy frames are written in ``config.dtype`` to ``path``; if ``clean_path``
    is given, the clean frames go there as float32.  Both files carry ImageJ
    metadata: pixel size (``resolution`` in pixels per nm, ``unit='nm'``), frame
    interval (``finterval`` in s) and the configuration as JSON in ``Info``.
    ``progress(k)`` is called with the number of frames written so far.
    Memory stays constant whatever the number of frames.
    """
    import tifffile  # local import: keeps "import emtcs.simulate" light

    if not isinstance(config, SimulationConfig):
        raise ValueError(f"config must be a SimulationConfig, got {type(config).__name__}")
    if clean_path is not None and os.path.abspath(os.fspath(clean_path)) == os.path.abspath(os.fspath(path)):
        raise ValueError("clean_path must differ from path")
    sim = MovieSimulator(config)
    n, (h, w) = sim.n_frames, sim.shape
    kwargs = _imagej_kwargs(sim)
    done = 0

    def report(k: int) -> None:
        nonlocal done
        if progress is not None and k > done:
            done = k
            progress(k)
        done = max(done, k)

    if clean_path is None:

        def noisy_pages() -> Iterator[np.ndarray]:
            for t, (noisy, _clean) in enumerate(sim.frames()):
                yield noisy
                report(t + 1)  # runs once tifffile has written page t and asks for more

        with tifffile.TiffWriter(path, imagej=True) as tw:
            tw.write(noisy_pages(), shape=(n, h, w), dtype=sim.dtype, **kwargs)
        report(n)
        return

    # Two files at once: the clean file is written by a helper thread fed through a
    # small bounded queue, so each frame is rendered once and memory stays flat.
    q: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []
    stop = threading.Event()

    def clean_pages() -> Iterator[np.ndarray]:
        for _ in range(n):
            item = q.get()
            if item is None:
                raise RuntimeError("simulation aborted")
            yield item

    def clean_writer() -> None:
        try:
            with tifffile.TiffWriter(clean_path, imagej=True) as tw:
                tw.write(clean_pages(), shape=(n, h, w), dtype=np.float32, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            failure.append(exc)
            stop.set()

    def put(item: np.ndarray | None) -> None:
        while True:
            if stop.is_set():
                if failure:
                    raise failure[0]
                raise RuntimeError("writing the clean movie stopped")
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def noisy_pages() -> Iterator[np.ndarray]:
        for t, (noisy, clean) in enumerate(sim.frames()):
            put(clean)
            yield noisy
            report(t + 1)

    worker = threading.Thread(target=clean_writer, name="emtcs-simulate-clean-writer", daemon=True)
    worker.start()
    try:
        with tifffile.TiffWriter(path, imagej=True) as tw:
            tw.write(noisy_pages(), shape=(n, h, w), dtype=sim.dtype, **kwargs)
    except BaseException:
        stop.set()
        try:  # wake the helper thread: empty the queue, then send the abort marker
            while True:
                q.get_nowait()
        except queue.Empty:
            pass
        q.put_nowait(None)
        worker.join(timeout=10)
        raise
    worker.join()
    if failure:
        raise failure[0]
    report(n)
