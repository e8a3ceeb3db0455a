"""Training samples, made on the fly: clean clips, and the measurements a decoder gets.

Clips are B clean frames (relative intensity, mean about 1) from

* the movie simulator (:mod:`emtcs.simulate`): a pool of simulated movies with random
  scenes, rendered once, from which random time windows and crops are drawn; and/or
* real EM frames given by the user, turned into movies with synthetic motion
  (sub-pixel drift, small rotation and shear, slow intensity change); and/or
* physics-simulated movies in HDF5 files (``scene_files``: one dataset per scene, clean
  intensities of shape (T, H, W), as made by abTEM multislice in
  ``shared/data/abtem-hrtem``), resampled by a random zoom so that the clips cover
  pixel sizes beyond the files' own.

Each sample gets fresh noise (Poisson at a dose drawn log-uniformly in ``dose_range``
electrons per pixel, Gaussian read noise, sometimes 8-bit quantisation), fresh Bernoulli
masks (of density 1/2 unless ``mask_density`` or ``sparse_masks`` says otherwise), sometimes detector blur
(of the image, or of the image and its noise, as a scintillator spreads each electron:
``noise_blur``) or JPEG compression of 8-bit frames (``jpeg``), and the same intensity
normalisation as decoding; noise-aware networks are also told the noise level (electrons
per normalised unit, with a random error, as a decoder's estimate has). The targets are
the clean frames, so the networks learn to denoise as they reconstruct.
"""

from __future__ import annotations

import io
import math
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.ndimage import fourier_shift, gaussian_filter, map_coordinates, zoom

from ..density import density_for
from ..errors import InputError
from ..noise import noise_spread
from .config import TrainConfig


class ClipPool:
    """Clean movies to draw training clips from: simulated scenes and real frames."""

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        seed_offset: int,
        scenes: int,
        progress: Callable[[str], None] | None = None,
        scene_files: list[str] | None = None,
    ):
        self.movies: list[np.ndarray] = []
        self.frames: list[np.ndarray] = []
        self.motion, self.flicker, self.cuts = cfg.motion, cfg.flicker, cfg.cuts
        self.still, self.slow = cfg.still, cfg.slow
        if cfg.simulate:
            from ..simulate import MovieSimulator, SimulationConfig

            rng = np.random.default_rng(seed_offset)
            # clips are cut from one scene: at twice the patch there is room to place them
            # (a scene of the patch's size would give the same whole scene every time)
            size = max(cfg.scene_size, 2 * cfg.patch)
            spacing = {"column_spacing_px": tuple(cfg.column_spacing_px)} if cfg.column_spacing_px else {}
            for i in range(scenes):
                sim = MovieSimulator(
                    SimulationConfig(
                        n_frames=cfg.scene_frames,
                        shape=(size, size),
                        dose=1.0,
                        seed=int(seed_offset + i),
                        drift_speed=float(rng.uniform(0.05, 0.6)),
                        particle_speed=float(rng.uniform(0.02, 0.3)),
                        rotation_speed=float(rng.uniform(0.0, 0.3)),
                        background=float(rng.uniform(0.3, 1.2)),
                        mode=cfg.modes[i % len(cfg.modes)],
                        **spacing,
                    )
                )
                movie = np.stack([sim.electrons(t) for t in range(cfg.scene_frames)])
                self.movies.append((movie / movie.mean()).astype(np.float32))
                if progress:
                    progress(f"simulated scene {i + 1}/{scenes}")
        for path in cfg.data:
            self.frames.extend(_load_real_frames(path))
        self.scenes: list[np.ndarray] = []
        for path in scene_files if scene_files is not None else cfg.scene_files:
            self.scenes.extend(_load_scene_file(path))
        self.scene_frames = min((len(m) for m in self.scenes), default=0)
        self.zoom, self.blur = cfg.zoom, cfg.blur
        if not self.movies and not self.frames and not self.scenes:
            raise InputError(NO_DATA)

    def clip(self, rng: np.random.Generator, B: int, P: int) -> np.ndarray:
        """A (B, P, P) clean clip, randomly flipped/rotated, mean intensity about 1."""
        clip = self._one_clip(rng, B, P)
        if self.still > 0 and rng.random() < self.still:  # drawn only when asked: runs without it stay as they were
            clip = np.repeat(clip[:1], B, axis=0)
        elif self.slow > 0 and rng.random() < self.slow:
            clip = _slow_drift(clip[0], rng, B)
        if B > 2 and rng.random() < self.cuts:  # a scene change part-way through
            k = int(rng.integers(1, B))
            clip = np.concatenate([clip[:k], self._one_clip(rng, B - k, P)])
        if rng.random() < self.blur:
            sigma = float(rng.uniform(0.3, 1.0))
            clip = gaussian_filter(clip, (0, sigma, sigma), mode="reflect")
        if self.flicker > 0:
            clip = clip * np.exp(rng.normal(0.0, self.flicker, size=(B, 1, 1))).astype(np.float32)
        if rng.random() < 0.5:
            clip = clip[::-1]  # time reversal
        clip = np.rot90(clip, k=int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            clip = clip[:, :, ::-1]
        return np.ascontiguousarray(clip, dtype=np.float32)

    def _one_clip(self, rng: np.random.Generator, B: int, P: int) -> np.ndarray:
        # scene files, when given, make half the clips that fit them; simulator and real
        # frames share the rest (a longer clip of a scene would play it back and forth)
        others = bool(self.movies or self.frames)
        if self.scenes and (not others or (B <= self.scene_frames and rng.random() < 0.5)):
            return self._scene_clip(rng, B, P)
        if self.frames and (not self.movies or rng.random() < 0.5):
            return _moving_crop(self.frames[rng.integers(len(self.frames))], rng, B, P, self.motion)
        return self._sim_clip(rng, B, P)

    def _scene_clip(self, rng: np.random.Generator, B: int, P: int) -> np.ndarray:
        """B consecutive frames of a scene file's movie, magnified by a random zoom (time
        stride 2 when the movie is long enough, which doubles the motion)."""
        movie = self.scenes[rng.integers(len(self.scenes))]
        T, H, W = movie.shape
        stride = 2 if (B - 1) * 2 < T and rng.random() < 0.3 else 1
        if (B - 1) * stride >= T:  # longer groups than the movie: play it back and forth
            movie = np.concatenate([movie, movie[-2:0:-1]] * ((B // max(T, 1)) + 1))
            T = movie.shape[0]
        lo, hi = self.zoom
        z = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        src = min(H, W, max(4, int(round(P / z))))
        z = P / src
        t0 = int(rng.integers(0, T - (B - 1) * stride))
        y0, x0 = int(rng.integers(0, H - src + 1)), int(rng.integers(0, W - src + 1))
        clip = movie[t0 : t0 + (B - 1) * stride + 1 : stride, y0 : y0 + src, x0 : x0 + src].astype(np.float32)
        if src != P:
            if z < 1:  # a detector's pixels 1/z wide average over them (as much variance as a box)
                sigma = float(np.sqrt((1 / z**2 - 1) / 12))
                clip = gaussian_filter(clip, (0, sigma, sigma), mode="nearest")
            clip = zoom(clip, (1, z, z), order=1, grid_mode=True, mode="nearest")[:, :P, :P]
            if clip.shape[1] < P or clip.shape[2] < P:
                clip = np.pad(clip, ((0, 0), (0, P - clip.shape[1]), (0, P - clip.shape[2])), mode="edge")
        return np.maximum(clip, 0)

    def _sim_clip(self, rng: np.random.Generator, B: int, P: int) -> np.ndarray:
        movie = self.movies[rng.integers(len(self.movies))]
        T, H, W = movie.shape
        stride = int(rng.integers(1, max(1, min(3, (T - 1) // max(B - 1, 1))) + 1))
        t0 = int(rng.integers(0, T - (B - 1) * stride))
        y0, x0 = int(rng.integers(0, H - P + 1)), int(rng.integers(0, W - P + 1))
        return movie[t0 : t0 + (B - 1) * stride + 1 : stride, y0 : y0 + P, x0 : x0 + P]


#: The speeds of ``TrainConfig.slow``'s drift (px a frame; drawn log-uniformly): slower than
#: any simulated scene's drift (0.05-0.6).
SLOW_DRIFT = (0.005, 0.05)


def _slow_drift(frame: np.ndarray, rng: np.random.Generator, B: int) -> np.ndarray:
    """B frames of ``frame`` drifting rigidly in a random direction at a speed from
    :data:`SLOW_DRIFT`: shifted in Fourier space (no interpolation's blur), padded by
    reflection so that nothing wraps round from the far edge."""
    speed = float(np.exp(rng.uniform(*np.log(SLOW_DRIFT))))
    angle = float(rng.uniform(0, 2 * np.pi))
    pad = int(np.ceil(speed * (B - 1))) + 2
    padded = np.fft.rfft2(np.pad(frame, pad, mode="reflect"))
    h, w = frame.shape
    step = (speed * np.sin(angle), speed * np.cos(angle))
    out = np.empty((B, h, w), dtype=np.float32)
    for k in range(B):
        moved = fourier_shift(padded, (k * step[0], k * step[1]), n=w + 2 * pad)
        out[k] = np.fft.irfft2(moved, s=(h + 2 * pad, w + 2 * pad))[pad : pad + h, pad : pad + w]
    return np.maximum(out, 0)


def _load_real_frames(path: str) -> list[np.ndarray]:
    from ..io import open_movie

    out = []
    with open_movie(path) as movie:
        for frame in movie.frames():
            f = frame.astype(np.float32)
            f -= f.min()
            if f.mean() > 0:
                out.append(f / f.mean())
    return out


def _load_scene_file(path: str) -> list[np.ndarray]:
    """Every (T, H, W) dataset of an HDF5 file of clean movies, as float16 in memory."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            movies = [
                np.asarray(d, dtype=np.float16) for d in f.values() if isinstance(d, h5py.Dataset) and d.ndim == 3
            ]
    except OSError as exc:
        raise InputError(f"{path}: not an HDF5 file of movies ({exc})") from None
    if not movies:
        raise InputError(f"{path}: holds no (T, H, W) movies")
    return movies


def _moving_crop(image: np.ndarray, rng: np.random.Generator, B: int, P: int, motion: float = 0.4) -> np.ndarray:
    """B frames of a P x P window sliding over ``image`` with drift (``motion`` pixels per
    frame, standard deviation), rotation, shear, gain."""
    H, W = image.shape
    cy = rng.uniform(P, max(P + 1, H - P)) if H > 2 * P else H / 2
    cx = rng.uniform(P, max(P + 1, W - P)) if W > 2 * P else W / 2
    v = rng.normal(0, motion, 2)
    omega = math.radians(rng.normal(0, 0.2))
    shear = rng.normal(0, 0.002)
    gain = rng.normal(0, 0.01)
    yy, xx = np.mgrid[0:P, 0:P].astype(np.float64) - (P - 1) / 2
    out = np.empty((B, P, P), np.float32)
    for t in range(B):
        a = omega * t
        sy = yy * math.cos(a) - xx * math.sin(a) + shear * t * xx
        sx = yy * math.sin(a) + xx * math.cos(a)
        coords = [np.clip(cy + v[0] * t + sy, 0, H - 1), np.clip(cx + v[1] * t + sx, 0, W - 1)]
        # exp: a linear 1 + gain * t turned negative over 30 frames at a 3.5-sigma gain
        out[t] = map_coordinates(image, coords, order=1) * math.exp(gain * t)
    return out


def make_batch(clips: np.ndarray, rng: np.random.Generator, cfg: TrainConfig, run: int = 1) -> dict[str, torch.Tensor]:
    """Noisy measurement, masks and normalised target for a (n, B, P, P) stack of clean clips;
    with ``run`` > 1 each clip is ``run`` consecutive groups of B / run frames, whose dose,
    detector and noise are the clip's and whose measurement and normalisation are each
    group's own, as ``decompress`` decodes a run (samples in the order of the network's
    ``run``: each clip's groups in time order)."""
    n, B, P, _ = clips.shape
    lo, hi = cfg.dose_range
    dose = np.exp(rng.uniform(math.log(lo), math.log(hi), size=(n, 1, 1, 1)))
    read = rng.uniform(*cfg.read_noise, size=(n, 1, 1, 1))
    electrons = rng.poisson(clips * dose) + read * rng.standard_normal(clips.shape)
    # (no draw without: the validation samples stay the same)
    flat: np.ndarray = rng.random(n) < cfg.flat_noise if cfg.flat_noise > 0 else np.zeros(n, dtype=bool)
    if flat.any():
        mean = clips[flat] * dose[flat]
        sigma = np.sqrt(mean.mean(axis=(1, 2, 3), keepdims=True) + read[flat] ** 2)
        electrons[flat] = mean + sigma * rng.standard_normal(mean.shape)
    told = dose.copy()  # electrons per pixel as the noise measured on the frames says
    spread: np.ndarray = rng.random(n) < cfg.noise_blur if cfg.noise_blur > 0 else np.zeros(n, dtype=bool)
    if spread.any():
        clips = clips.copy()
        for i in np.flatnonzero(spread):
            s = float(rng.uniform(*cfg.noise_blur_sigma))
            spread_counts = gaussian_filter(rng.poisson(clips[i] * dose[i]).astype(np.float64), (0, s, s))
            electrons[i] = spread_counts + read[i] * rng.standard_normal(clips[i].shape)
            clips[i] = gaussian_filter(clips[i], (0, s, s))
            told[i] = dose[i] / _blur_energy(s)
    noisy = electrons / dose
    q8: np.ndarray = rng.random(n) < 0.3  # some samples quantised like an 8-bit detector
    # and some saved as 8-bit JPEG frames, as users' movies often are (no draw without: the
    # validation samples stay the same)
    jpeg: np.ndarray = rng.random(n) < cfg.jpeg if cfg.jpeg > 0 else np.zeros(n, dtype=bool)
    q8 |= jpeg
    if q8.any():
        g = 200.0 / np.maximum(noisy[q8].max(axis=(1, 2, 3), keepdims=True), 1e-6)
        noisy[q8] = np.rint(np.clip(noisy[q8] * g, 0, 255)) / g
        if jpeg.any():
            noisy[jpeg] = _jpeg_frames(noisy[jpeg], g[jpeg[q8]], rng.integers(*JPEG_QUALITY, size=int(jpeg.sum())))
    # how much of the noise is spread over neighbouring pixels, as compress measures it
    spread = np.array([noise_spread(noisy[i] - clips[i]) for i in range(n)])
    lo, hi = cfg.mask_density  # (a fixed density draws nothing: the validation samples stay the same)
    density = np.full((n, 1, 1, 1), lo) if lo == hi else rng.uniform(lo, hi, size=(n, 1, 1, 1))
    if cfg.sparse_masks > 0:  # the density compress gives a movie that moves (emtcs.density)
        density[rng.random(n) < cfg.sparse_masks] = density_for(B // run, 1.0)  # the whole field moves
    C = (rng.random(clips.shape) < density).astype(np.float32)
    if run > 1:  # the clip's groups become samples of their own
        n, B = n * run, B // run
        C, noisy, clips = (a.reshape(n, B, P, P) for a in (C, noisy, clips))
        told, dose, spread = (np.repeat(a, run, axis=0) for a in (told, dose, spread))
    y = (C * noisy).sum(axis=1)
    ybar = y / np.maximum(C.sum(axis=1), 1)
    scale = np.percentile(ybar.reshape(n, -1), 99.9, axis=1).reshape(n, 1, 1)
    scale = np.where(scale > 0, scale, 1.0)
    # electrons per normalised unit, as a decoder would estimate it (with an error, the run's)
    error = np.repeat(np.exp(rng.normal(0.0, cfg.noise_error, n // run)), run)
    epu = told[:, 0, 0, 0] * scale[:, 0, 0] * error
    return {
        "y": torch.from_numpy((y / scale).astype(np.float32)),
        "C": torch.from_numpy(C),
        "x": torch.from_numpy((clips / scale[:, None]).astype(np.float32)),
        "noisy": torch.from_numpy((noisy / scale[:, None]).astype(np.float32)),
        "epu": torch.from_numpy(epu.astype(np.float32)),
        "spread": torch.from_numpy(spread.astype(np.float32)),
        "dose": torch.from_numpy(dose[:, 0, 0, 0].astype(np.float32)),
    }


#: JPEG quality range (libjpeg's 1-100 scale, upper end excluded) of JPEG-degraded samples.
JPEG_QUALITY = (50, 96)


def _blur_energy(sigma: float) -> float:
    """Sum of the squared weights of ``gaussian_filter``'s 2-D kernel: the share of white
    noise's variance that the blur keeps."""
    delta = np.zeros((33, 33))
    delta[16, 16] = 1.0
    return float((gaussian_filter(delta, sigma) ** 2).sum())


def _jpeg_frames(clips: np.ndarray, gains: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """8-bit clips (values times ``gains`` are levels 0..255) through JPEG, frame by frame.

    Pillow (which scikit-image needs, so it is always there) encodes them: the same
    libjpeg-turbo at the same quality scale as imagecodecs, which gave identical frames
    (session 31), and no optional package to install where training runs."""
    from PIL import Image

    out = np.empty_like(clips)
    for i, (clip, g, q) in enumerate(zip(clips, gains.reshape(-1), quality)):
        for b, frame in enumerate(clip):
            buf = io.BytesIO()
            Image.fromarray(np.rint(frame * g).astype(np.uint8)).save(buf, format="JPEG", quality=int(q))
            out[i, b] = np.asarray(Image.open(buf)) / g
    return out


NO_DATA = "no training data: use --simulate, --data FILES and/or --scene-file FILES"


def training_pool(cfg: TrainConfig) -> ClipPool:
    """The clean movies a run's training clips come from (the same for the same ``cfg``)."""
    return ClipPool(cfg, seed_offset=1000 + cfg.seed, scenes=cfg.scenes)


#: The one-pixel moves of the equivariance loss, one drawn per step.
SHIFTS = ((0, 1), (1, 0), (1, 1))


class Step(NamedTuple):
    """One training step's input."""

    #: the move of the equivariance loss's second decode
    shift: tuple[int, int]
    #: groups per run in ``batch`` (1: single groups)
    run: int
    #: :func:`make_batch`'s tensors
    batch: dict[str, torch.Tensor]


def training_batch(pool: ClipPool, cfg: TrainConfig, step: int) -> Step:
    """Step ``step``'s batch, the length of its runs and the shift of its equivariance loss.

    A function of the seed and the step alone: workers can make steps in any order, and a
    resumed run sees the batches an unbroken one would have seen."""
    rng = np.random.default_rng([cfg.seed, step])
    B = int(rng.choice(cfg.B))
    # (no draw when every step is a run: the batches of runs trained before stay the same)
    run = cfg.run if cfg.run_share >= 1 or rng.random() < cfg.run_share else 1
    clips = np.stack([pool.clip(rng, B * run, cfg.patch) for _ in range(cfg.batch)])
    batch = make_batch(clips, rng, cfg, run=run)
    shift = SHIFTS[int(rng.integers(len(SHIFTS)))] if cfg.equivariance > 0 else SHIFTS[0]
    return Step(shift, run, batch)


#: each worker process's copy of the training pool (:class:`Batches`)
_worker_pool: ClipPool | None = None


def _start_worker(cfg: TrainConfig) -> None:
    global _worker_pool
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training process's to handle
    torch.set_num_threads(1)
    _worker_pool = training_pool(cfg)


def _worker_batch(cfg: TrainConfig, step: int) -> Step:
    assert _worker_pool is not None
    return training_batch(_worker_pool, cfg, step)


class Batches:
    """The training batches from step ``start`` on, in order: made here (``workers`` 0) or by
    worker processes a few steps ahead, each with a pool of its own (the same: it is
    seeded).  A context manager: leaving it stops the workers."""

    def __init__(self, cfg: TrainConfig, start: int, workers: int = 0):
        self.cfg, self.step = cfg, start
        self.pool = None if workers else training_pool(cfg)
        self.executor: Any = None
        self.ahead: deque[Any] = deque()
        if workers:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawned, not forked: the parent holds threads and may hold a CUDA context
            self.executor = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker, initargs=(cfg,)
            )
            for _ in range(2 * workers):
                self._queue()

    def _queue(self) -> None:
        # the steps queued run on from the one to be returned next
        self.ahead.append(self.executor.submit(_worker_batch, self.cfg, self.step + len(self.ahead)))

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> Step:
        if self.executor is None:
            assert self.pool is not None
            out = training_batch(self.pool, self.cfg, self.step)
            self.step += 1
            return out
        out = self.ahead.popleft().result()
        self.step += 1
        self._queue()
        return out

    def __enter__(self) -> Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)


#: The validation clips' own scene cuts, flicker, drift, stillness and zoom, whatever training uses
#: (the campaign's settings since its phase 15, ``training/campaign.sh``), so that runs
#: trained with other degradations or pixel sizes are scored on the same clips.
VALIDATION_CLIPS = {"cuts": 0.05, "flicker": 0.05, "motion": 0.4, "still": 0.0, "slow": 0.0, "zoom": (0.6, 1.7)}


def validation_set(cfg: TrainConfig, n: int) -> list[dict[str, torch.Tensor]]:
    """Held-apart samples: scenes and noise from seeds the training pool never uses, with
    the degradations of :data:`VALIDATION_CLIPS`, the same whatever ``cfg.seed``."""
    if cfg.val_scene_files:
        vcfg = replace(cfg, simulate=False, data=[], **VALIDATION_CLIPS)
        pool = ClipPool(vcfg, seed_offset=0, scenes=0, scene_files=cfg.val_scene_files)
    else:
        vcfg = replace(cfg, scenes=max(2, n // 4), **VALIDATION_CLIPS)
        pool = ClipPool(vcfg, seed_offset=10_000_000, scenes=vcfg.scenes, scene_files=[])
    rng = np.random.default_rng(99)
    # the same samples whatever the training degradations
    fixed = replace(cfg, jpeg=0.0, flat_noise=0.0, noise_blur=0.0, mask_density=(0.5, 0.5), sparse_masks=0.0)
    sizes = sorted(set(cfg.B))  # each size once, however often training draws it
    out = []
    for i in range(n):
        B = sizes[i % len(sizes)]
        if cfg.val_doses:  # each dose with every B in turn
            dose = cfg.val_doses[(i // len(sizes)) % len(cfg.val_doses)]
            fixed = replace(fixed, dose_range=(dose, dose))
        out.append(make_batch(pool.clip(rng, B, cfg.patch)[None], rng, fixed))
    return out
