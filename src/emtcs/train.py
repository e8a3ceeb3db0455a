"""Training the learned decoders: data made on the fly, Adam, validation, checkpoints.

Training samples are clips of B clean frames (relative intensity, mean about 1) from

* the movie simulator (:mod:`emtcs.simulate`): a pool of simulated movies with random
  scenes, rendered once, from which random time windows and crops are drawn; and/or
* real EM frames given by the user, turned into movies with synthetic motion
  (sub-pixel drift, small rotation and shear, slow intensity change); and/or
* physics-simulated movies in HDF5 files (``scene_files``: one dataset per scene, clean
  intensities of shape (T, H, W), as made by abTEM multislice in
  ``shared/data/abtem-hrtem``), resampled by a random zoom so that the clips cover
  pixel sizes beyond the files' own.

Each sample gets fresh noise (Poisson at a dose drawn log-uniformly in ``dose_range``
electrons per pixel, Gaussian read noise, sometimes 8-bit quantisation), fresh
Bernoulli(0.5) masks, sometimes detector blur (of the image, or of the image and its
noise, as a scintillator spreads each electron: ``noise_blur``) or JPEG compression of
8-bit frames (``jpeg``), and the same intensity normalisation as
decoding; noise-aware networks are also told the noise level (electrons per normalised
unit, with a random error, as a decoder's estimate has).  The loss
compares with the clean frames, so the networks learn to denoise as they reconstruct.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter, map_coordinates, zoom

from . import zoo
from .atomic import atomic_output
from .decoders.gaptv import gap_tv
from .errors import InputError
from .metrics import PEAK_MIN_FREQ, PEAK_PRESENT, psnr, ssim
from .nets import build
from .noise import noise_spread

__all__ = ["TrainConfig", "ClipPool", "train"]


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in checkpoints and weights)."""

    arch: str = "tcsdl"
    net: dict[str, Any] = field(default_factory=dict)
    B: list[int] = field(default_factory=lambda: [10, 20, 30])
    steps: int = 2000
    patch: int = 64
    batch: int = 4
    lr: float = 1e-3
    dose_range: tuple[float, float] = (1.0, 1000.0)
    #: Temporal variety of the clips: drift of real-frame crops (pixels per frame, standard
    #: deviation), per-frame intensity changes (standard deviation of a log-normal factor)
    #: and the probability that a clip cuts to another scene part-way.
    motion: float = 0.4
    flicker: float = 0.0
    cuts: float = 0.0
    read_noise: tuple[float, float] = (0.5, 3.0)
    simulate: bool = True
    #: imaging modes of the simulated scenes (:attr:`emtcs.simulate.SimulationConfig.mode`), taken in turn
    modes: list[str] = field(default_factory=lambda: ["hrtem"])
    #: range of the simulated HRTEM and STEM scenes' lattice spacing in pixels, the sampling
    #: they cover (None: the simulator's, :attr:`emtcs.simulate.SimulationConfig.column_spacing_px`)
    column_spacing_px: tuple[float, float] | None = None
    data: list[str] = field(default_factory=list)
    scenes: int = 48
    scene_frames: int = 64
    #: side of the simulated scenes (at least twice the patch)
    scene_size: int = 128
    val_every: int = 250
    val_samples: int = 24
    #: doses (e/px) the validation clips take in turn; empty: drawn like the training's.  A
    #: log-uniform draw over 1-1,000 e/px averages a loss at one end away (phase 14 lost
    #: 0.2 dB at 200 e/px unseen), the validation suite has 20 and 200 e/px
    val_doses: list[float] = field(default_factory=list)
    seed: int = 0
    #: weights file (.safetensors) to start from instead of a random initialisation (fine-tuning)
    init: str | None = None
    #: HDF5 files of clean simulated movies to train on, and to validate on instead of the simulator
    scene_files: list[str] = field(default_factory=list)
    val_scene_files: list[str] = field(default_factory=list)
    #: magnification range applied to ``scene_files`` clips (covers other pixel sizes); a scene
    #: zooms out no further than its side allows (``P / side``)
    zoom: tuple[float, float] = (0.6, 1.7)
    #: probability of Gaussian detector blur (sigma 0.3-1.0 px) on a clip
    blur: float = 0.3
    #: probability that a sample's frames are 8-bit JPEG (quality 50-95)
    jpeg: float = 0.0
    #: probability that a sample's noise is the same at every intensity: Gaussian, with the
    #: variance Poisson noise has at the clip's mean.  Movies whose noise compress measures as
    #: one sigma (8-bit exports: ``gaussian-v1``) have such noise, and their decoders are told
    #: the Poisson level at the group's mean (``emtcs.decoding.noise_gain``), as these samples are.
    flat_noise: float = 0.0
    #: probability that a sample's noise is blurred with its image (Gaussian, sigma drawn
    #: from ``noise_blur_sigma`` px), as a scintillator-coupled camera spreads each electron over
    #: neighbouring pixels: the noise is correlated between neighbours and its per-pixel
    #: variance lower, so compress measures fewer electrons than arrived, and the network is
    #: told that lower level as a decoder would be; the target is the blurred clean clip.
    noise_blur: float = 0.0
    #: range of that blur (px): neighbouring pixels' noise then correlates by about 0.25-0.8
    noise_blur_sigma: tuple[float, float] = (0.5, 1.0)
    #: "reconstruct" (end to end, from measurements) or "denoise" (pretraining the denoiser
    #: of a network that has one, ``denoise(noisy, epu)``: noisy frames in, no masks)
    task: str = "reconstruct"
    #: standard deviation of the log error of the noise level told to noise-aware networks
    noise_error: float = 0.25
    #: minutes between checkpoints (besides one at every validation)
    checkpoint_minutes: float = 10.0
    #: weight of a loss on how the output changes when the measurement moves by one pixel:
    #: networks on a pixel-unshuffled input are not shift-equivariant by construction and
    #: can imprint their own 2 x 2 grid on the frames (``benchmarks/grid_alias.py``)
    equivariance: float = 0.0
    #: decay of an exponential moving average of the weights, which is what is validated
    #: and saved (0: the weights themselves).  Where the validation wanders by more than a
    #: step moves it (the campaign's plateau), the average of the recent weights is a
    #: better decoder than any one of them.
    ema: float = 0.0
    #: learning-rate factor for the parameters a network names as one number per stage
    #: (``per_stage``: GapUNet's steps and gates).  Adam moves a parameter by about the
    #: learning rate per step, so a stage added closed (gate 0) at a fine-tuning rate of
    #: 2e-4 had opened to 0.025 after 500 steps (session 23).
    stage_lr: float = 1.0
    #: train only the parameters whose names contain this, the others fixed (empty: all).
    #: ``spread``: GapUNet's spread conditioning, which is the identity for white noise, so
    #: a run cannot change how white noise is decoded.
    only: str = ""
    #: "mse": the mean squared error over the batch, which low-dose samples dominate (their
    #: errors are largest); "log-mse": the mean over samples of the log of each one's squared
    #: error (scaled by :data:`LOG_MSE_SCALE`), what a mean PSNR over doses rewards: every
    #: sample's relative improvement weighs the same, at 1 e/px as at 1,000; "rmse": the mean
    #: over samples of each one's root-mean-square error (scaled to match), halfway between:
    #: a sample pulls with the square root of its error relative to the others'.
    loss: str = "mse"
    #: weight of a loss on the frames as ``auto`` finishes them (NL-means, :mod:`emtcs.finish`,
    #: at :data:`FINISHED_STRENGTH`, on the central :data:`FINISHED_CROP` pixels of each clip):
    #: the finish removes the noise a network leaves, and with it most of what fine-tunes
    #: gained over the shipped weights (session 32); this rewards what the finish cannot do.
    finished_loss: float = 0.0
    #: consecutive groups of a training sample, decoded as one run (``decompress --run``):
    #: each clip is ``run`` groups long, and the loss covers all their frames (GapUNet only)
    run: int = 1
    #: share of the steps whose clips are runs of ``run`` groups; the others train single
    #: groups, which every one-group movie and each block's first and last group still need
    #: (all runs moved the network away from them, sessions 34-35)
    run_share: float = 1.0
    #: weight of each group's first and last frames in the reconstruction loss (the others'
    #: 1, the mean kept at 1): the frames with context on one side only, which the learned
    #: decoders decode 1.4 dB worse and where a reflection shown early has been flagged
    edge_weight: float = 1.0
    #: weight of :func:`spectral_excess` (spectral peaks that the frames show more strongly
    #: than the truth, relative to the spectrum around them: a reflection shown before it
    #: appears, which the validation suite counts as invented, where the squared errors weigh
    #: a few Fourier bins' excess as little as any other error of the same energy), as the
    #: most it may pull a sample's frames: this many times as hard as the reconstruction
    #: loss does (a log contrast's own gradient is of no fixed size)
    spectral_weight: float = 0.0

    @property
    def net_config(self) -> dict[str, Any]:
        return {"arch": self.arch, **self.net}


# -- data -------------------------------------------------------------------------


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
        if cfg.simulate:
            from .simulate import MovieSimulator, SimulationConfig

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


def _load_real_frames(path: str) -> list[np.ndarray]:
    from .io import open_movie

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
    C = (rng.random(clips.shape) < 0.5).astype(np.float32)
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


#: Network config keys that shape the weights: ``--init`` needs them equal, and may change
#: the others (e.g. how GapUNet's GAP-TV start works, or adding its temporal mixing, whose
#: parameters the weights may lack: see ``optional_parts``).
_SHAPE_KEYS = ("arch", "width", "stages")
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


def run_net(net: torch.nn.Module, batch: dict[str, torch.Tensor], run: int = 1, **kwargs: Any) -> Any:
    """The network on a batch, with the noise level and spread for networks that take them
    (and the run length for those that decode runs: only they are given one)."""
    if run > 1:
        kwargs["run"] = run
    if getattr(net, "noise_aware", False):
        kwargs["epu"] = batch["epu"]
    if getattr(net, "spread_aware", False):
        kwargs["spread"] = batch["spread"]
    return net(batch["y"], batch["C"], **kwargs)


# -- loop ---------------------------------------------------------------------------


def lr_factor(step: int, total: int, warmup: float = 0.03, floor: float = 0.05) -> float:
    """Linear warm-up, then cosine decay to ``floor``; resuming with more steps stretches the decay."""
    w = max(1, int(warmup * total))
    if step < w:
        return (step + 1) / w
    p = min(1.0, (step - w) / max(1, total - w))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))


#: The one-pixel moves of the equivariance loss, one drawn per step.
SHIFTS = ((0, 1), (1, 0), (1, 1))
#: Pixels along each border left out of it: the move wraps the measurement around there.
SHIFT_MARGIN = 8


#: Losses :func:`train` knows (``TrainConfig.loss``).
LOSSES = ("mse", "rmse", "log-mse")
#: Scale of the "log-mse" and "rmse" losses: a typical per-sample squared error of the
#: campaign's GapUNet (normalised frames), so that their gradients are of the "mse" loss's
#: size and the clipping at norm 1 and the learning rate mean what they did.
LOG_MSE_SCALE = 4e-3


def _error(out: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor:
    """The reconstruction loss of ``out`` against ``x`` (see ``TrainConfig.loss``)."""
    if loss == "mse":
        return F.mse_loss(out.float(), x)
    per_sample = _per_sample_mse(out, x) + 1e-10
    if loss == "rmse":  # d/dm of 2 sqrt(S m) is sqrt(S / m): 1 where m is the typical S
        return 2 * torch.sqrt(LOG_MSE_SCALE * per_sample).mean()
    return LOG_MSE_SCALE * torch.log(per_sample).mean()


def _sample_weight(out: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor | float:
    """How much more than under "mse" each sample's squared error counts in ``loss``, held
    fixed: (S / m)^q with m its error, S :data:`LOG_MSE_SCALE`, q = 0, 1/2, 1 for "mse",
    "rmse", "log-mse"."""
    if loss == "mse":
        return 1.0
    ratio = LOG_MSE_SCALE / (_per_sample_mse(out, x).detach() + 1e-10)
    return ratio.sqrt() if loss == "rmse" else ratio


#: The finish's strength and the crop (px) of ``TrainConfig.finished_loss``: the median of
#: the guided finish's choices on the calibration tiles (the shipped weights' frames, 128
#: tiles; session 32), and a crop that keeps the differentiable filter's cost to about half
#: a step's (one core).
FINISHED_STRENGTH = 1.25
FINISHED_CROP = 64


def finished(out: torch.Tensor, crop: int = FINISHED_CROP) -> tuple[torch.Tensor, slice]:
    """The central ``crop`` pixels of (n, B, h, w) frames finished as ``auto`` does at
    :data:`FINISHED_STRENGTH` (differentiable; the noise estimate held fixed), and the slice
    of each axis they come from."""
    from .finish import H_RATIO, TEMPORAL, noise_sigma, nonlocal_means

    n, B, h, w = out.shape
    size = min(crop, h, w)
    start = (min(h, w) - size) // 2
    part = slice(start, start + size)
    with torch.autocast(out.device.type, enabled=False):
        frames = out[..., part, part].float().reshape(n * B, size, size)
        sigma = FINISHED_STRENGTH * noise_sigma(frames.detach()).clamp(min=1e-6)
        done = nonlocal_means(frames, sigma, H_RATIO * sigma, group=B, temporal=TEMPORAL)
    return done.reshape(n, B, *done.shape[-2:]), part


def _per_sample_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).square().flatten(1).mean(dim=1)


def edge_scale(B: int, edge_weight: float) -> torch.Tensor:
    """(1, B, 1, 1) factors on a group's frames that weigh its first and last frames'
    squared errors ``edge_weight`` times the others' (``TrainConfig.edge_weight``), the mean
    weight 1."""
    w = torch.ones(B)
    w[0] = w[-1] = edge_weight
    return (w / w.mean()).sqrt().reshape(1, B, 1, 1)


#: :func:`spectral_excess` counts a bin where the frames' contrast exceeds this many times
#: the larger of the truth's and the suite's bar for a reflection that is present
#: (:data:`emtcs.metrics.PEAK_PRESENT`): residual noise passes 10 times its background's
#: geometric mean in about 1 bin in 300, 20 times in about 1 in 70,000.
SPECTRAL_MARGIN = 2.0


def spectral_excess(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per sample, how much more strongly the frames ``out`` (n, B, h, w) show spectral peaks
    than the truth ``x``.  A bin's contrast is its log power (mean removed, Hann taper, as
    :func:`emtcs.metrics.peak_contrast`) less the mean log power of the 9 x 9 bins around it
    (held fixed for ``out``: the gradient only lowers the peak); the excess is how far
    ``out``'s contrast rises over :data:`SPECTRAL_MARGIN` times the larger of the truth's
    highest within 2 bins and :data:`~emtcs.metrics.PEAK_PRESENT`, squared, summed over the
    bins from :data:`~emtcs.metrics.PEAK_MIN_FREQ` to Nyquist and averaged over the frames."""
    n, B, h, w = out.shape
    dev = out.device
    taper = torch.outer(torch.hann_window(h, periodic=False), torch.hann_window(w, periodic=False)).to(dev)
    fy, fx = torch.fft.fftfreq(h, device=dev)[:, None], torch.fft.fftfreq(w, device=dev)[None, :]
    radius = torch.sqrt(fy**2 + fx**2)
    band = (radius >= PEAK_MIN_FREQ) & (radius <= 0.5)

    def log_contrast(frames: torch.Tensor) -> torch.Tensor:
        f = frames.float().reshape(n * B, 1, h, w)
        power = torch.fft.fft2((f - f.mean((-2, -1), keepdim=True)) * taper).abs().square()
        log_power = torch.log(power + 1e-8 * power.detach().amax((-2, -1), keepdim=True) + 1e-30)
        around = F.avg_pool2d(F.pad(log_power.detach(), (4, 4, 4, 4), mode="circular"), 9, stride=1)
        return log_power - around

    with torch.autocast(dev.type, enabled=False):
        with torch.no_grad():
            near = F.max_pool2d(F.pad(log_contrast(x), (2, 2, 2, 2), mode="circular"), 5, stride=1)
        bar = near.clamp(min=math.log(PEAK_PRESENT)) + math.log(SPECTRAL_MARGIN)
        excess = F.relu(log_contrast(out) - bar) * band
        return excess.square().sum((-2, -1)).reshape(n, B).mean(1)


def _pull(loss: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Per sample, the norm of ``loss``'s gradient with respect to its frames ``out``."""
    (grad,) = torch.autograd.grad(loss, out, retain_graph=True)
    return grad.float().flatten(1).norm(dim=1)


class _BoundedPull(torch.autograd.Function):
    """The identity, whose backward pass scales each sample's gradient down to at most
    ``bound`` (one per sample) in norm: a term so wrapped pulls a sample's frames no harder
    than the bound, whatever its own scale."""

    @staticmethod
    def forward(ctx: Any, out: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(bound)
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (bound,) = ctx.saved_tensors
        norm = grad.float().flatten(1).norm(dim=1).clamp(min=1e-30)
        scale = (bound / norm).clamp(max=1.0).to(grad.dtype)
        return grad * scale.reshape(-1, *([1] * (grad.dim() - 1))), None


def _loss(
    net: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    cfg: TrainConfig,
    shift: tuple[int, int] = SHIFTS[0],
    run: int = 1,
) -> torch.Tensor:
    """The training loss of one batch under ``cfg``'s task and loss terms; ``shift``: the
    equivariance term's move, ``run``: the batch's run length (:class:`Step`)."""
    kind = cfg.loss
    if cfg.task == "denoise":  # pretraining the denoiser inside the network on the noisy frames
        denoised = net.denoise(batch["noisy"], batch["epu"], batch["spread"])  # type: ignore[operator]
        return _error(denoised, batch["x"], kind)
    # a network with a fixed start (GapUNet's GAP-TV) computes it once for both decodes
    start = None
    if cfg.equivariance > 0 and hasattr(net, "start"):
        start = net.start(batch["y"], batch["C"], batch["epu"])
    if start is not None:
        final, extra = net.refine(batch["y"], batch["C"], start, batch["epu"], True, batch["spread"], run=run)
    else:
        final, extra = run_net(net, batch, run, return_all=True)
    w = edge_scale(final.shape[1], cfg.edge_weight).to(final.device)
    loss = _error(final * w, batch["x"] * w, kind)
    inter = extra if isinstance(extra, list) else [extra]
    if inter:
        loss = loss + 0.5 * sum(_error(o * w, batch["x"] * w, kind) for o in inter) / len(inter)
    if cfg.equivariance > 0:
        penalty = shift_penalty(net, batch, final, shift, start, run)
        # each sample's penalty weighed as its error is
        loss = loss + cfg.equivariance * (penalty * _sample_weight(final, batch["x"], kind)).mean()
    if cfg.finished_loss > 0:
        done, part = finished(final)
        loss = loss + cfg.finished_loss * _error(done, batch["x"][..., part, part], kind)
    if cfg.spectral_weight > 0:
        # a log contrast's gradient grows as the spectrum's amplitude falls: unbounded (0.01
        # times the term), one well-denoised sample outpulled the batch's errors 150 times
        bound = cfg.spectral_weight * _pull(loss, final)  # the other terms' pull on the frames
        loss = loss + spectral_excess(_BoundedPull.apply(final, bound), batch["x"]).mean()
    return loss


def shift_penalty(
    net: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    out: torch.Tensor,
    shift: tuple[int, int],
    start: torch.Tensor | None = None,
    run: int = 1,
) -> torch.Tensor:
    """Per sample, the mean squared difference between ``out`` and the network's output for
    the measurement moved by ``shift`` pixels and moved back, away from the borders.  The moved decode runs
    without gradients (one more forward pass per step, no backward pass): the penalty pulls
    ``out`` towards it, and the moves drawn at random make that symmetric.  Given the
    parameter-free ``start`` of ``out``'s decode, the moved decode refines that start, moved,
    instead of computing its own: only the learned part has to move with the data."""
    dims = (-2, -1)
    y, C = torch.roll(batch["y"], shift, dims), torch.roll(batch["C"], shift, dims)
    with torch.no_grad():
        if start is not None:
            moved = net.refine(y, C, torch.roll(start, shift, dims), batch["epu"], spread=batch["spread"], run=run)
        else:
            moved = run_net(net, {**batch, "y": y, "C": C}, run)
    back = torch.roll(moved, (-shift[0], -shift[1]), dims)
    m = SHIFT_MARGIN
    return _per_sample_mse(out[..., m:-m, m:-m], back[..., m:-m, m:-m])


#: The validation clips' own scene cuts, flicker, drift and zoom, whatever training uses
#: (the campaign's settings since its phase 15, ``training/campaign.sh``), so that runs
#: trained with other degradations or pixel sizes are scored on the same clips.
VALIDATION_CLIPS = {"cuts": 0.05, "flicker": 0.05, "motion": 0.4, "zoom": (0.6, 1.7)}


def _embedding(old: int, new: int, groups: int) -> torch.Tensor:
    """Where ``old`` channels sit among ``new``: each of ``groups`` equal blocks keeps its
    old channels first."""
    if old % groups or new % groups:
        raise InputError(f"cannot widen {old} channels in {groups} blocks to {new}")
    return torch.cat([g * (new // groups) + torch.arange(old // groups) for g in range(groups)])


def widened(weights: dict[str, torch.Tensor], net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights of a narrower network of ``net``'s architecture, embedded in its wider shapes
    so that it computes the same output (for ``--init`` at a larger width).

    Old channels keep their weights; new channels keep ``net``'s initialisation but their
    weights into old channels are zero, so they change nothing until training makes use of
    them: the wider network starts where the narrower one ended, with room to grow.
    The network names the weights whose inputs are two feature maps side by side
    (``concatenated_inputs``: a U-Net's skip connections)."""
    halves = set(getattr(net, "concatenated_inputs", ()))
    state = net.state_dict()
    out = {k: v for k, v in weights.items() if k not in state}  # for loading to refuse
    for name, new in state.items():
        old = weights.get(name)
        if old is None or old.shape == new.shape:
            if old is not None:
                out[name] = old
            continue
        if old.dim() != new.dim() or any(o > n for o, n in zip(old.shape, new.shape)):
            raise InputError(f"{name}: weights of shape {tuple(old.shape)} do not fit {tuple(new.shape)}")
        if old.shape[2:] != new.shape[2:]:
            raise InputError(f"{name}: kernel {tuple(old.shape[2:])} differs from {tuple(new.shape[2:])}")
        t = new.detach().clone()
        rows = _embedding(old.shape[0], new.shape[0], 1)
        if old.dim() == 1:
            t[rows] = old.to(t.dtype)
        else:
            cols = _embedding(old.shape[1], new.shape[1], 2 if name in halves else 1)
            t[rows] = 0  # new inputs into old outputs
            t[rows[:, None], cols[None, :]] = old.to(t.dtype)
        out[name] = t
    return out


def deepened(weights: dict[str, torch.Tensor], net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights of a network with fewer unfolded stages, placed among ``net``'s stages so
    that it computes the same output (for ``--init`` with more ``--stages``).

    The old stages keep their steps, gates and stage codes and spread out over the new
    ones, the last staying last; each added stage has a zero step and a zero gate, so it
    changes nothing until training opens it, and a stage code between its neighbours'.
    The stages share every other weight."""
    state = net.state_dict()
    new = state["step"].numel()
    old = weights["step"].numel()
    if old > new:
        raise InputError(f"weights of {old} stages do not fit a network of {new}")
    gate = weights.get("gate", torch.ones(old))
    code = weights.get("code", torch.arange(1, old + 1, dtype=torch.float32) / old)
    at = [(i + 1) * new // old - 1 for i in range(old)]  # where each old stage goes
    out = dict(weights)
    out["step"] = torch.zeros_like(state["step"])
    out["gate"] = torch.zeros_like(state["gate"])
    out["step"][at], out["gate"][at] = weights["step"].to(out["step"].dtype), gate.to(out["gate"].dtype)
    codes = np.interp(np.arange(new), [-1, *at], [0.0, *code.tolist()])
    out["code"] = torch.as_tensor(codes, dtype=state["code"].dtype)
    return out


def validation_set(cfg: TrainConfig, n: int) -> list[dict[str, torch.Tensor]]:
    """Held-apart samples: scenes and noise from seeds the training pool never uses, with
    the degradations of :data:`VALIDATION_CLIPS`, the same whatever ``cfg.seed``."""
    if cfg.val_scene_files:
        vcfg = TrainConfig(**{**asdict(cfg), "simulate": False, "data": [], **VALIDATION_CLIPS})
        pool = ClipPool(vcfg, seed_offset=0, scenes=0, scene_files=cfg.val_scene_files)
    else:
        vcfg = TrainConfig(**{**asdict(cfg), "scenes": max(2, n // 4), **VALIDATION_CLIPS})
        pool = ClipPool(vcfg, seed_offset=10_000_000, scenes=vcfg.scenes, scene_files=[])
    rng = np.random.default_rng(99)
    # the same samples whatever the training degradations
    fixed = replace(cfg, jpeg=0.0, flat_noise=0.0, noise_blur=0.0)
    out = []
    for i in range(n):
        B = cfg.B[i % len(cfg.B)]
        if cfg.val_doses:  # each dose with every B in turn
            dose = cfg.val_doses[(i // len(cfg.B)) % len(cfg.val_doses)]
            fixed = replace(fixed, dose_range=(dose, dose))
        out.append(make_batch(pool.clip(rng, B, cfg.patch)[None], rng, fixed))
    return out


def evaluate(
    net: torch.nn.Module | None,
    samples: list[dict[str, torch.Tensor]],
    task: str = "reconstruct",
    *,
    by_dose: bool = False,
) -> dict[str, float]:
    """Mean PSNR/SSIM against the clean frames (data range: each clip's clean range) of the
    reconstructions, or with ``task="denoise"`` of the denoised noisy frames.

    The network runs where its weights are.  With ``net=None`` it evaluates the baseline
    the model card compares with: GAP-TV, or the noisy frames themselves.  With ``by_dose``
    (samples at a few fixed doses, ``--val-doses``) the mean PSNR at each dose is added as
    ``psnr_DOSE``: a loss at one dose that a gain at another hides in the mean shows there.
    """
    dev = next(net.parameters()).device if net is not None else None
    ps, ss = [], []
    for s in samples:
        x = s["x"][0].numpy()
        if net is None:
            out = s["noisy"][0].numpy() if task == "denoise" else gap_tv(s["y"][0].numpy(), s["C"][0].numpy())
        else:
            s = {k: v.to(dev) for k, v in s.items()}
            with torch.inference_mode():
                denoised = net.denoise(s["noisy"], s["epu"], s["spread"]) if task == "denoise" else None
                out = (run_net(net, s) if denoised is None else denoised)[0].cpu().numpy()
        rng = float(x.max() - x.min())
        ps.append(psnr(x, out, data_range=rng))
        ss.append(np.mean([ssim(a, b, data_range=rng) for a, b in zip(x, out)]))
    scores = {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))}
    if by_dose:
        doses = [float(s["dose"][0]) for s in samples]
        for dose in sorted(set(doses)):
            scores[f"psnr_{dose:g}"] = float(np.mean([p for p, d in zip(ps, doses) if d == dose]))
    return scores


def _parameter_groups(net: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Adam's parameter groups: the network's per-stage numbers at ``stage_lr`` times the
    learning rate (one group, as before that option, when the factor is 1); with
    ``cfg.only``, only the parameters it names, the others frozen."""
    trained = [(n, p) for n, p in net.named_parameters() if cfg.only in n]
    if not trained:
        raise InputError(f"--only {cfg.only!r} names none of {cfg.arch}'s parameters")
    for n, p in net.named_parameters():
        p.requires_grad_(cfg.only in n)
    names = tuple(getattr(net, "per_stage", ()))
    if cfg.stage_lr == 1.0 or not names:
        return [{"params": [p for _, p in trained]}]
    fast = [p for n, p in trained if n in names]
    rest = [p for n, p in trained if n not in names]
    return [g for g in ({"params": rest}, {"params": fast, "lr": cfg.lr * cfg.stage_lr}) if g["params"]]


def train(
    cfg: TrainConfig,
    output: str | os.PathLike[str],
    *,
    resume: str | os.PathLike[str] | None = None,
    device: str = "auto",
    threads: int | None = None,
    workers: int = 0,
    bf16: bool | None = None,
    max_minutes: float | None = None,
    force: bool = False,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a network; writes ``OUTPUT.safetensors`` (the best weights by validation PSNR so
    far, refreshed at each validation), ``OUTPUT.ckpt`` (resumable checkpoint, refreshed at
    each validation and every ``cfg.checkpoint_minutes``) and ``OUTPUT.log.jsonl``.

    ``threads`` caps the CPU threads torch uses (training in the background on one core
    while the machine does other work); ``workers`` processes make the training batches
    beside it (0: this process makes them), which a GPU needs to be kept busy.  ``bf16``
    runs the network under bfloat16 autocast (default: on CUDA only; on CPUs without
    native bf16 it is several times slower).
    ``max_minutes`` stops the run after that much wall time (validating and saving first).
    Returns the summary stored with the weights.
    """
    out = Path(output)
    weights_path, ckpt_path, log_path = (out.with_suffix(s) for s in (".safetensors", ".ckpt", ".log.jsonl"))
    if resume and cfg.init:
        raise InputError("give --init (start a new run from weights) or --resume (continue a run), not both")
    if not out.parent.is_dir():
        raise InputError(f"output folder {out.parent} does not exist")
    if weights_path.exists() and not (force or resume):
        raise InputError(f"{weights_path} exists; use --force to overwrite it or --resume to continue its run")
    if cfg.task not in ("reconstruct", "denoise"):
        raise InputError(f"unknown training task {cfg.task!r} (reconstruct or denoise)")
    if cfg.loss not in LOSSES:
        raise InputError(f"unknown loss {cfg.loss!r} (known: {', '.join(LOSSES)})")
    if cfg.run < 1 or (cfg.run > 1 and (cfg.arch != "gapunet" or cfg.task != "reconstruct")):
        raise InputError(f"--run {cfg.run}: runs of groups (at least 1) are for GapUNet's reconstruction only")
    if cfg.edge_weight <= 0:
        raise InputError(f"--edge-weight {cfg.edge_weight}: a weight above 0")
    if cfg.spectral_weight < 0:
        raise InputError(f"--spectral-weight {cfg.spectral_weight}: a weight of 0 or more")
    if not 0 < cfg.run_share <= 1:
        raise InputError(f"--run-share {cfg.run_share}: a share of the steps, above 0 and at most 1")
    if not (cfg.simulate or cfg.data or cfg.scene_files):
        raise InputError(NO_DATA)
    if not (cfg.simulate or cfg.val_scene_files):
        raise InputError("nothing to validate on: --no-simulate needs --val-scene-file FILES")
    if workers < 0:
        raise InputError(f"workers must be 0 or more, got {workers}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if threads:
        torch.set_num_threads(threads)
    # a fine-tune's added parts (a zero-started head, new channels) start alike whatever the
    # seed, so that runs differing in their samples only stay averageable (training/soup.py)
    torch.manual_seed(0 if cfg.init else cfg.seed)
    net = build(cfg.net_config).to(dev)
    if cfg.task == "denoise" and not hasattr(net, "denoise"):
        raise InputError(f"--task denoise pretrains a network's denoiser; {cfg.arch} has none (gapunet has)")
    opt = torch.optim.Adam(_parameter_groups(net, cfg), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.steps))
    if not 0 <= cfg.ema < 1:
        raise InputError(f"the weights' moving average needs a decay in [0, 1), got {cfg.ema}")
    step, elapsed, cpu_s, history = 0, 0.0, 0.0, []
    averaged: dict[str, torch.Tensor] | None = None
    if resume:
        state = torch.load(resume, map_location=dev, weights_only=True)
        saved = TrainConfig(**json.loads(state["config"]))
        if saved.net_config != cfg.net_config:
            raise InputError(f"{resume} was trained with {saved.net_config}, not {cfg.net_config}")
        if saved.val_doses != cfg.val_doses:  # the best checkpoint is chosen by one validation
            raise InputError(
                f"{resume} was validated at doses {saved.val_doses or 'drawn'}: resume with the same --val-doses"
            )
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        cpu_s = float(state.get("cpu_s", elapsed))
        history = json.loads(state["history"])
        averaged = state.get("ema") if cfg.ema > 0 else None
    elif cfg.init:
        info, weights = zoo.load_weights(cfg.init)
        shape = {k: v for k, v in cfg.net_config.items() if k in _SHAPE_KEYS}
        given = {k: v for k, v in info["config"].items() if k in _SHAPE_KEYS}
        if given != shape:
            # a GapUNet may grow: in width (widened) and in stages (deepened)
            wider = given.get("width", 0) < shape.get("width", 0) and hasattr(net, "concatenated_inputs")
            deeper = given.get("stages", 0) < shape.get("stages", 0) and hasattr(net, "gate")
            grown = dict(given)
            if wider:
                grown["width"] = shape["width"]
            if deeper:
                grown["stages"] = shape["stages"]
            if grown != shape:
                raise InputError(f"{cfg.init} holds a {info['config']} network, not {cfg.net_config}")
            if deeper:
                weights = deepened(weights, net)
            if wider:
                weights = widened(weights, net)
        missing, unexpected = net.load_state_dict(weights, strict=False)
        optional = tuple(getattr(net, "optional_parts", ()))
        if unexpected or any(not k.startswith(optional) for k in missing):
            raise InputError(f"{cfg.init} does not fit a {cfg.net_config} network")
    if cfg.ema > 0 and averaged is None:  # a new run, or one that ran without the average
        averaged = {k: v.detach().clone() for k, v in net.state_dict().items()}
    say = log or (lambda msg: None)
    say(
        f"building training pool ({cfg.scenes if cfg.simulate else 0} simulated scenes, "
        f"{len(cfg.data)} data files, {len(cfg.scene_files)} scene files)"
    )
    val = validation_set(cfg, cfg.val_samples)
    baseline = evaluate(None, val, cfg.task, by_dose=bool(cfg.val_doses))
    baseline_name = "noisy frames" if cfg.task == "denoise" else "GAP-TV"
    say(f"{baseline_name} on the validation set: {baseline['psnr']:.2f} dB, SSIM {baseline['ssim']:.4f}")
    n_params = sum(p.numel() for p in net.parameters())
    t_start = time.perf_counter() - elapsed
    cpu_start = time.process_time() - cpu_s
    best = max((h["val_psnr"] for h in history if "val_psnr" in h), default=-math.inf)
    hardware = (
        torch.cuda.get_device_name(0)
        if dev.type == "cuda"
        else f"{platform.machine()} {platform.processor() or 'CPU'}, {torch.get_num_threads()} thread(s)"
    )

    def summary() -> dict[str, Any]:
        top = max((h for h in history if "val_psnr" in h), key=lambda h: h["val_psnr"], default={})
        return {
            "arch": cfg.arch,
            "net": cfg.net_config,
            "parameters": n_params,
            "steps": top.get("step", step),
            "samples": top.get("step", step) * cfg.batch,
            "wall_s": top.get("elapsed_s", time.perf_counter() - t_start),
            "cpu_hours": top.get("cpu_hours"),
            "hardware": hardware,
            "train_config": asdict(cfg),
            "validation": {
                "psnr": top.get("val_psnr"),
                "ssim": top.get("val_ssim"),
                "gaptv_psnr": baseline["psnr"],  # for task "denoise": the noisy frames'
                "gaptv_ssim": baseline["ssim"],
                "baseline": baseline_name,
                "samples": len(val),
                "reference": "clean (noise-free) frames",
                "psnr_by_dose": {  # e/px: (this network, baseline)
                    k.removeprefix("psnr_"): (top.get(f"val_{k}"), v)
                    for k, v in baseline.items()
                    if k.startswith("psnr_")
                },
            },
        }

    def validated() -> torch.nn.Module:
        """The weights that are validated and saved: the moving average where there is one."""
        if averaged is None:
            return net
        shadow = build(cfg.net_config)
        shadow.load_state_dict(averaged)
        return shadow.to(dev)

    def save_weights(weights: dict[str, torch.Tensor]) -> None:
        with atomic_output(weights_path, force=True) as tmp:
            # the networks do not depend on B; they serve the range of B they were trained on
            zoo.save_weights(
                tmp,
                weights,
                cfg.net_config,
                serves=list(range(min(cfg.B), max(cfg.B) + 1)),
                training=summary(),
            )

    def checkpoint() -> None:
        state = {
            "model": net.state_dict(),
            "optim": opt.state_dict(),
            "sched": sched.state_dict(),
            "step": step,
            "elapsed": time.perf_counter() - t_start,
            "cpu_s": time.process_time() - cpu_start,
            "config": json.dumps(asdict(cfg)),
            "history": json.dumps(history),
        }
        if averaged is not None:
            state["ema"] = averaged
        with atomic_output(ckpt_path, force=True) as tmp:
            torch.save(state, tmp)

    use_bf16 = dev.type == "cuda" if bf16 is None else bf16
    last_ckpt = t_run = time.perf_counter()
    with open(log_path, "a") as logf, Batches(cfg, step, workers) as batches:
        while step < cfg.steps:
            net.train()
            shift, run, cpu_batch = next(batches)
            batch = {k: v.to(dev, non_blocking=True) for k, v in cpu_batch.items()}
            B = int(batch["C"].shape[1])
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = _loss(net, batch, cfg, shift, run)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            if averaged is not None:
                with torch.no_grad():
                    for k, v in net.state_dict().items():
                        if v.is_floating_point():
                            averaged[k].lerp_(v, 1 - cfg.ema)
                        else:
                            averaged[k].copy_(v)
            step += 1
            rec: dict[str, float] = {"step": step, "loss": float(loss.detach()), "B": B, "lr": sched.get_last_lr()[0]}
            out_of_time = max_minutes is not None and time.perf_counter() - t_run > 60 * max_minutes
            if step % cfg.val_every == 0 or step == cfg.steps or out_of_time:
                judged = validated().eval()
                scores = evaluate(judged, val, cfg.task, by_dose=bool(cfg.val_doses))
                rec.update({f"val_{k}": v for k, v in scores.items()})
                rec["elapsed_s"] = time.perf_counter() - t_start
                rec["cpu_hours"] = (time.process_time() - cpu_start) / 3600
                history.append(rec)
                if rec["val_psnr"] > best:
                    best = rec["val_psnr"]
                    save_weights(judged.state_dict())
                checkpoint()
                last_ckpt = time.perf_counter()
            elif time.perf_counter() - last_ckpt > 60 * cfg.checkpoint_minutes:
                checkpoint()
                last_ckpt = time.perf_counter()
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            if on_step:
                on_step(step, rec)
            if out_of_time:
                say(f"stopped after {max_minutes:g} minutes, at step {step}")
                break
    if not weights_path.exists():
        save_weights(validated().state_dict())
    return summary()
