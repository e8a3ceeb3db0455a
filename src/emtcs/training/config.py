"""What defines a training run: :class:`TrainConfig`, stored (as JSON) with its
checkpoints and weights, and compared when a run is resumed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in checkpoints and weights)."""

    arch: str = "tcsdl"
    net: dict[str, Any] = field(default_factory=dict)
    #: group sizes drawn for each step; a size listed twice is drawn twice as often
    B: list[int] = field(default_factory=lambda: [10, 20, 30])
    steps: int = 2000
    patch: int = 64
    batch: int = 4
    lr: float = 1e-3
    dose_range: tuple[float, float] = (1.0, 1000.0)
    #: Temporal variety of the clips: drift of real-frame crops (pixels per frame, standard
    #: deviation), per-frame intensity changes (standard deviation of a log-normal factor),
    #: the probability that a clip cuts to another scene part-way, that it holds still
    #: (its first frame throughout, each frame counted anew: a specimen that does not move),
    #: and that it drifts slowly (its first frame moved rigidly by SLOW_DRIFT px a frame).
    motion: float = 0.4
    flicker: float = 0.0
    cuts: float = 0.0
    still: float = 0.0
    slow: float = 0.0
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
    #: range of the coding masks' density (probability of a 1), drawn per sample; (0.5, 0.5):
    #: the density of ``emtcs-hash32-v1``, as in every run before session 60
    mask_density: tuple[float, float] = (0.5, 0.5)
    #: probability that a sample's masks have the density compress gives a movie that moves
    #: (:func:`emtcs.density.density_for`: 5/B for B = 11 ... 30; groups of other B keep theirs)
    sparse_masks: float = 0.0
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
    #: error (scaled by :data:`~.losses.LOG_MSE_SCALE`), what a mean PSNR over doses rewards: every
    #: sample's relative improvement weighs the same, at 1 e/px as at 1,000; "rmse": the mean
    #: over samples of each one's root-mean-square error (scaled to match), halfway between:
    #: a sample pulls with the square root of its error relative to the others'.
    loss: str = "mse"
    #: weight of a loss on the frames as ``auto`` finishes them (NL-means, :mod:`emtcs.finish`,
    #: at :data:`~.losses.FINISHED_STRENGTH`, on the central :data:`~.losses.FINISHED_CROP` pixels of each clip):
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
    #: weight of :func:`~.losses.spectral_excess` (spectral peaks that the frames show more strongly
    #: than the truth, relative to the spectrum around them: a reflection shown before it
    #: appears, which the validation suite counts as invented, where the squared errors weigh
    #: a few Fourier bins' excess as little as any other error of the same energy), as the
    #: most it may pull a sample's frames: this many times as hard as the reconstruction
    #: loss does (a log contrast's own gradient is of no fixed size)
    spectral_weight: float = 0.0
    #: how far a bin's contrast may rise over the larger of the truth's (highest within 2 bins)
    #: and the suite's bar for a reflection that is present (:data:`emtcs.metrics.PEAK_PRESENT`)
    #: before :func:`~.losses.spectral_excess` counts it, as a factor: residual noise passes
    #: 10 times its background's geometric mean in about 1 bin in 300, 20 times in about 1 in
    #: 70,000.  The suite counts a reflection from 30 on, in frames larger than the clips,
    #: where a fringe stands out more over its background than in a 128-pixel crop.
    spectral_margin: float = 2.0
    #: the frame side (px) at which a peak's contrast is judged against
    #: :data:`~emtcs.metrics.PEAK_PRESENT` (the suite's frames: 192-256): a fringe's contrast over a
    #: broadband background grows with the frame's area, so in a 128-pixel clip the bar
    #: falls to a quarter of it (None: the clip's own size, the bar unscaled, as before)
    spectral_frame: int | None = None

    @property
    def net_config(self) -> dict[str, Any]:
        return {"arch": self.arch, **self.net}


#: Losses :func:`~.loop.train` knows (``TrainConfig.loss``).
LOSSES = ("mse", "rmse", "log-mse")
