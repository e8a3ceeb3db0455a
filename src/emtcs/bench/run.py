"""The bench: emtcs at each B and decoder against every other codec at the same bytes.

For each B, emtcs compresses the benchmark frames into a real ``.tcs`` file (its size
on disk is the budget) and decodes it with each decoder; each competing codec is then
run at the best setting whose total bytes over the same frames stay within that budget,
alone and followed by a denoiser.  Everything is scored against every reference
available (clean truth, denoised raw, raw) and timed on this machine in the same run.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .. import codec as emtcs_codec
from .._version import __version__
from ..decoders import decoder_for
from ..decoders.learned import GapUNetDecoder
from ..decoding import RUN
from ..errors import DecoderError, InputError, MissingDependencyError
from ..io import open_movie
from ..metrics import PEAK_FACTOR, frc_resolution, peak_contrast, psnr, ssim, unsupported_contrasts
from . import SIM_DOSE, SIM_FRAMES, SIM_SHAPE
from .codecs import Codec, codec_names, get_codec
from .denoise import Denoiser, NLMeans, Wavelet

__all__ = [
    "BUDGET_RULE",
    "FORMAT",
    "REFERENCES",
    "BenchConfig",
    "BenchResult",
    "count_steps",
    "load_movie",
    "run_bench",
    "simulated_movie",
]

FORMAT = "emtcs-bench/1"
REFERENCES = ("clean", "denoised", "raw", "next")
#: What the "next" reference is (it is used only when asked for: it halves the frames).
NEXT_RULE = (
    "the movie's odd frames as recorded; its even frames are what is compressed, decoded and scored. "
    "Where the scene holds nearly still each is an independent recording of the frame before it: its "
    "noise and the scene's change add to every row's error alike, so rows rank as against the truth "
    "(benchmarks/cross_frame.py: 24 of 24 simulated comparisons)"
)
BUDGET_RULE = (
    "each competing codec codes every frame on its own at one setting of its quality knob: the highest-quality "
    "setting, found by bisection, whose total bytes over the benchmark frames do not exceed the size on disk "
    "of the .tcs file of the same frames at that B (container included)"
)
#: What the "denoised" reference can and cannot rank (benchmarks/reference_check.py).
DENOISED_CAVEAT = (
    "it keeps the noise its threshold misses (more where the noise is correlated between pixels) and "
    "understates every row that removes more noise than it: by 1-9 dB for emtcs against JPEG on "
    "simulated 8-bit movies with a truth (docs/benchmarks.md, 'Can a denoised reference judge the real movies?')"
)
#: References made from the recording (besides the raw frames themselves), against which a
#: decoded frame's spectral peak that the raw frame given to the codecs holds is not invented.
RECORDED = ("denoised", "next")
RECORDED_PEAKS = (
    "a decoded frame's spectral peak is invented where neither the reference frame nor the raw frame "
    "the codecs were given holds it: a periodicity of the recording that one noisy or denoised "
    "reference frame shows weakly is not made up (docs/benchmarks.md, the invented_peaks rule)"
)
RANGE_RULE = "data_range = max - min of the reference over all benchmark frames (1 if constant)"

Progress = Callable[..., None]


@dataclass
class BenchConfig:
    """What to run: group sizes, emtcs decoders, competing codecs, references, denoiser."""

    B: tuple[int, ...] = (10, 20, 30)
    decoders: tuple[str, ...] = ("auto",)
    codecs: tuple[str, ...] = ("jpeg", "jpeg2k", "htj2k", "jpegxl")
    #: Subset of :data:`REFERENCES`; None: every one available.
    references: tuple[str, ...] | None = None
    seed: int = 0
    #: The coding masks' density (None: chosen for the movie, as compress does).
    density: float | None = None
    #: emtcs measurement quantisation steps in noise sigmas (None: compress's default, 0: exact), one
    #: emtcs point per B and step, and the detector gain and offset (None: measured)
    #: (:mod:`emtcs.quantise`, :mod:`emtcs.noise`).
    quantise: tuple[float | None, ...] = (None,)
    gain: float | None = None
    offset: float | None = None
    device: str = "auto"
    #: How emtcs finishes decoded tiles (:mod:`emtcs.finish`): nlm or none.
    finish: str = "nlm"
    #: Consecutive groups GapUNet decodes together (``decompress --run``).
    run: int = RUN
    #: Options per requested decoder name, e.g. ``{"gaptv": {"iterations": 5}}``.
    decoder_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Steps fitting GapUNet's weights to the movie before decoding (``decompress --adapt``;
    #: 0: off), for the decoders built on GapUNet.
    adapt: int = 0
    #: Follows every competing codec in its "+ denoiser" row (and the raw frames in a baseline row).
    denoiser: Denoiser = field(default_factory=NLMeans)
    #: Makes the "denoised" reference from the raw frames: another method than ``denoiser``.
    reference_denoiser: Denoiser = field(default_factory=Wavelet)
    #: Frame shown in the figure; None: the middle frame.
    sample_frame: int | None = None


@dataclass
class BenchResult:
    """The results (JSON-ready, :data:`FORMAT`) and the frames the figure shows."""

    data: dict[str, Any]
    samples: dict[str, np.ndarray]

    def to_json(self) -> dict[str, Any]:
        return self.data


@dataclass
class _Reference:
    frames: np.ndarray
    data_range: float
    description: str
    #: A reference whose spectral peaks count as held too (for references made from the
    #: recording: the raw frames the codecs were given).
    support: _Reference | None = None

    @cached_property
    def peaks(self) -> list[np.ndarray]:
        """Each frame's :func:`emtcs.metrics.peak_contrast`, found once for every row scored
        against it; with ``support``, bin by bin the higher of the frame's and its support's."""
        own = [peak_contrast(f).astype(np.float32) for f in self.frames]
        return own if self.support is None else [np.maximum(a, b) for a, b in zip(own, self.support.peaks)]


def simulated_movie(
    n_frames: int = SIM_FRAMES, shape: tuple[int, int] = SIM_SHAPE, *, dose: float = SIM_DOSE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The built-in input: a simulated HRTEM movie (uint16), its clean truth and a description."""
    from ..simulate import simulate

    noisy, clean = simulate(n_frames, shape, dose=dose, seed=seed, dtype="uint16")
    return (
        noisy,
        clean,
        {
            "name": "simulated",
            "kind": "simulated HRTEM movie (emtcs.simulate)",
            "simulation": {"n_frames": n_frames, "shape": list(shape), "dose": dose, "seed": seed, "dtype": "uint16"},
        },
    )


def load_movie(
    path: str | os.PathLike[str], n_frames: int | None = None, crop: tuple[int, int] | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The first ``n_frames`` frames of a movie (all by default), centrally cropped to ``crop``."""
    with open_movie(path) as movie:
        n = movie.n_frames if n_frames is None else min(n_frames, movie.n_frames)
        h, w = movie.frame_shape
        ch, cw = crop or (h, w)
        if not (0 < ch <= h and 0 < cw <= w):
            raise InputError(f"crop {ch}x{cw} does not fit the {h}x{w} frames of {path}")
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        frames = np.empty((n, ch, cw), dtype=movie.dtype)
        for t in range(n):
            frames[t] = movie.read_frame(t)[y0 : y0 + ch, x0 : x0 + cw]
        info = {
            "name": Path(path).name,
            "path": str(path),
            "frames_in_file": movie.n_frames,
            "frame_shape_in_file": [h, w],
            "crop": [y0, x0, ch, cw] if crop else None,
        }
    return frames, info


def run_bench(
    frames: np.ndarray,
    clean: np.ndarray | None = None,
    *,
    config: BenchConfig | None = None,
    source: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> BenchResult:
    """Run the bench on ``frames`` (n, H, W), with their noise-free ``clean`` truth if known."""
    return _Bench(frames, clean, config or BenchConfig(), source or {"name": "array"}, progress).run()


def _step_label(step: float | None) -> str:
    """How a quantisation step reads in tables: default, exact or the step in noise sigmas."""
    if step is None:
        return "default"
    return "exact" if step == 0 else f"step {step:g}"


def count_steps(config: BenchConfig, dtype: np.dtype) -> int:
    """Progress steps of a run: the references, then per B and step emtcs, its decoders and two per codec."""
    points = len(config.B) * len(config.quantise)
    return 1 + points * (1 + len(config.decoders) + 2 * len(codec_names(config.codecs, dtype)))


QUALITY_FIELDS = ("psnr", "psnr_min", "ssim", "frc_px", "invented_peaks", "unsupported_contrast", "unsupported_at")


def _fidelity(ref: _Reference, test: np.ndarray) -> dict[str, float | None]:
    """Movie PSNR (mean squared error over all frames), worst-frame PSNR, mean SSIM, mean FRC
    resolution (pixels, 0.5 threshold), the spectral peaks the reference lacks (all frames),
    and the strongest such peak, counted or not: its contrast and [frame, ky, kx]."""
    reference, data_range = ref.frames, ref.data_range
    per_frame = [psnr(r, t, data_range=data_range) for r, t in zip(reference, test)]
    mse = [data_range**2 / 10 ** (p / 10) for p in per_frame]
    mean_mse = float(np.mean(mse))
    movie = math.inf if mean_mse == 0 else 10 * math.log10(data_range**2 / mean_mse)
    s = [ssim(r, t, data_range=data_range) for r, t in zip(reference, test)]
    unsupported = [
        (c, i, ky, kx) for i, (t, k) in enumerate(zip(test, ref.peaks)) for c, ky, kx in unsupported_contrasts(k, t)
    ]
    strongest = max(unsupported, default=None)
    return {
        "psnr": movie,
        "psnr_min": float(min(per_frame)),
        "ssim": None if all(math.isnan(v) for v in s) else float(np.nanmean(s)),
        "frc_px": float(np.mean([frc_resolution(r, t) for r, t in zip(reference, test)])),
        "invented_peaks": sum(c >= PEAK_FACTOR for c, *_ in unsupported),
        "unsupported_contrast": 0.0 if strongest is None else strongest[0],
        "unsupported_at": None if strongest is None else list(strongest[1:]),
    }


def environment() -> dict[str, Any]:
    """Versions of what was measured and a description of this machine."""
    import h5py
    import scipy
    import skimage

    versions = {
        "emtcs": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "h5py": h5py.__version__,
    }
    try:
        import imagecodecs

        versions["imagecodecs"] = imagecodecs.__version__
    except ImportError:
        versions["imagecodecs"] = None
    gpu = None
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        versions["torch"] = torch.__version__
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    return {
        "versions": versions,
        "machine": {
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "memory_GB": _memory_gb(),
            "gpu": gpu,
        },
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1e6, 1)
    except OSError:
        pass
    return None


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


class _Bench:
    """One bench run; holds the frames, the references, the rows and the figure's frames."""

    def __init__(
        self,
        frames: np.ndarray,
        clean: np.ndarray | None,
        config: BenchConfig,
        source: dict[str, Any],
        progress: Progress | None,
    ):
        frames = np.asarray(frames)
        if frames.ndim != 3 or 0 in frames.shape:
            raise InputError(f"the bench needs (frames, height, width) data, got shape {frames.shape}")
        if frames.dtype.kind == "f" and not np.isfinite(frames).all():
            raise InputError("the movie contains NaN or infinite values")
        if clean is not None and np.shape(clean) != frames.shape:
            raise InputError(f"clean truth {np.shape(clean)} does not match the movie {frames.shape}")
        self.next: np.ndarray | None = None
        if config.references is not None and "next" in config.references:
            if frames.shape[0] < 4:
                raise InputError(f"reference 'next' needs at least 4 frames (got {frames.shape[0]})")
            half = frames.shape[0] // 2
            frames, self.next = frames[0 : 2 * half : 2], frames[1 : 2 * half : 2]
            clean = None if clean is None else np.asarray(clean)[0 : 2 * half : 2]
            source = {**source, "frames": half, "split": "even frames scored; odd frames the 'next' reference"}
        bad = sorted({b for b in config.B if b < 2})
        if bad:
            raise InputError(f"B must be at least 2 (got {bad[0]})")
        self.frames, self.clean, self.config, self.source = frames, clean, config, source
        self.n = frames.shape[0]
        self.codings: set[str] = set()  # how emtcs stored the measurements
        self.sampling = True  # keep frames for the figure (the first quantisation step only)
        self.raw_bytes = frames.nbytes
        self.codecs = codec_names(config.codecs, frames.dtype)
        self.lo, self.hi = float(frames.min()), float(frames.max())
        self.rows: list[dict[str, Any]] = []
        self.samples: dict[str, np.ndarray] = {}
        self.k = min(max(config.sample_frame if config.sample_frame is not None else self.n // 2, 0), self.n - 1)
        self.panel_B = max((b for b in config.B if b <= self.n), default=None)
        self._progress = progress or (lambda n=1, status=None: None)

    # ----------------------------------------------------------------- helpers

    def _step(self, status: str) -> None:
        self._progress(1, status=status)

    def _row(
        self,
        codec: str,
        title: str,
        *,
        B: int | None = None,
        setting: str = "",
        status: str = "ok",
        note: str | None = None,
        nbytes: int | None = None,
        test: np.ndarray | None = None,
        encode_s: float | None = None,
        decode_s: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        pixels = self.frames.size
        row = {
            "codec": codec,
            "title": title,
            "B": B,
            "setting": setting,
            "status": status,
            "note": note,
            "bytes": nbytes,
            "compression_ratio": self.raw_bytes / nbytes if nbytes else None,
            "bits_per_pixel": 8 * nbytes / pixels if nbytes else None,
            "quality": {
                name: _fidelity(ref, test) if test is not None else dict.fromkeys(QUALITY_FIELDS)
                for name, ref in self.refs.items()
            },
            "encode_s": encode_s,
            "decode_s": decode_s,
            "encode_MBps": self.raw_bytes / 1e6 / encode_s if encode_s else None,
            "decode_MBps": self.raw_bytes / 1e6 / decode_s if decode_s else None,
            "budget_bytes": nbytes if codec == "emtcs" else None,
            "denoiser": None,
            **extra,
        }
        self.rows.append(row)
        if test is not None and (B is None or B == self.panel_B) and self.sampling:
            self.samples[self._sample_key(row)] = np.array(test[self.k])
        return row

    @staticmethod
    def _sample_key(row: dict[str, Any]) -> str:
        return f"{row['codec']}{'+' + row['denoiser'] if row.get('denoiser') else ''}" + (
            f"/{row['decoder']['name']}" if row.get("decoder") else ""
        )

    # ----------------------------------------------------------------- stages

    def _references(self) -> None:
        wanted = self.config.references
        if wanted is not None:
            unknown = [r for r in wanted if r not in REFERENCES]
            if unknown:
                raise InputError(f"unknown reference {unknown[0]!r}; choose from {', '.join(REFERENCES)}")
            if "clean" in wanted and self.clean is None:
                raise InputError("reference 'clean' needs the clean truth (--clean CLEAN.tif)")
        names = [
            r
            for r in REFERENCES
            if (r in wanted if wanted is not None else r != "next") and (r != "clean" or self.clean is not None)
        ]
        ref_den = self.config.reference_denoiser.for_noise_of(self.frames)
        stacks = {
            "clean": (self.clean, "noise-free truth"),
            "denoised": (
                ref_den(self.frames) if "denoised" in names else None,
                f"raw frames denoised by {ref_den.name}: {ref_den.function}; {DENOISED_CAVEAT}",
            ),
            "raw": (self.frames, "raw frames as recorded"),
            "next": (self.next, NEXT_RULE),
        }
        # the raw frames' spectra are found once, whether they are a reference, support, or both
        given = _Reference(
            self.frames, float(np.max(self.frames)) - float(np.min(self.frames)) or 1.0, stacks["raw"][1]
        )
        self.refs: dict[str, _Reference] = {}
        for name in names:
            stack, text = stacks[name]
            span = float(np.max(stack)) - float(np.min(stack))
            if name == "raw":
                self.refs[name] = given
            elif name in RECORDED:
                self.refs[name] = _Reference(stack, span or 1.0, f"{text}; {RECORDED_PEAKS}", given)
            else:
                self.refs[name] = _Reference(stack, span or 1.0, text)
        self.samples["raw"] = np.array(self.frames[self.k])
        if self.clean is not None:
            self.samples["clean"] = np.array(self.clean[self.k])
        self._row("raw", "raw (uncompressed)", setting="-", nbytes=self.raw_bytes, test=self.frames)
        if "denoised" in self.refs:
            self._row(
                "raw",
                f"raw + {ref_den.name} (the denoised reference)",
                setting="-",
                nbytes=self.raw_bytes,
                test=self.refs["denoised"].frames,
                denoiser=ref_den.name,
            )
        t0 = time.perf_counter()
        self.denoiser = den = self.config.denoiser.for_noise_of(self.frames)
        denoised = den(self.frames)
        self._row(
            "raw",
            f"raw + {den.name}",
            setting="-",
            nbytes=self.raw_bytes,
            test=denoised,
            decode_s=time.perf_counter() - t0,
            denoiser=den.name,
        )
        self._step("references")

    def _emtcs(self, B: int, step: float | None, tmp: Path) -> int | None:
        """emtcs rows for B and quantisation ``step``; returns the .tcs size in bytes (the budget),
        None if skipped."""
        if B > self.n:
            self._row("emtcs", "emtcs", B=B, status="skipped", note=f"B={B} > {self.n} frames")
            self._progress(self._steps_per_B, status=f"B={B}: skipped")
            return None
        tcs = tmp / f"movie-B{B}.tcs"
        t0 = time.perf_counter()
        cfg = self.config
        info = emtcs_codec.compress(
            tmp / "movie.tif",
            tcs,
            B,
            seed=cfg.seed,
            density=cfg.density,
            quantise=step,
            gain=cfg.gain,
            offset=cfg.offset,
            force=True,
        )
        encode_s = time.perf_counter() - t0
        budget = int(info["file_bytes"])
        self.codings.add(info["coding"])
        point = {"quantise": step, "coding": info["coding"], "mask_density": info["mask_density"]}
        self._step(f"B={B}: emtcs compress")
        done: dict[str, dict[str, Any]] = {}
        for name in self.config.decoders:
            options = self.config.decoder_options.get(name, {})
            try:
                dec, notice = decoder_for(name, B, device=self.config.device, **options)
            except (DecoderError, MissingDependencyError) as exc:
                self._row(
                    "emtcs",
                    f"emtcs / {name}",
                    B=B,
                    setting=name,
                    status="unable",
                    note=str(exc),
                    nbytes=budget,
                    **point,
                )
                self._step(f"B={B}: emtcs {name} unable")
                continue
            if dec.name in done:
                also = f"also {name}" + (f" ({notice})" if notice else "")
                done[dec.name]["note"] = "; ".join(filter(None, [done[dec.name]["note"], also]))
                self._step(f"B={B}: emtcs {name} = {dec.name}")
                continue
            out = tmp / f"out-B{B}-{dec.name}.tif"
            t0 = time.perf_counter()
            report = emtcs_codec.decompress(
                tcs,
                out,
                decoder=dec.name,
                device=self.config.device,
                force=True,
                decoder_options=options,
                finish=self.config.finish,
                run=self.config.run,
                adapt=self.config.adapt if isinstance(dec, GapUNetDecoder) else 0,
            )
            decode_s = time.perf_counter() - t0
            with open_movie(out) as movie:
                restored = movie.read(0, movie.n_frames)
            out.unlink()
            note = (
                f"{name} -> {dec.name}: {notice}" if notice else (f"{name} -> {dec.name}" if name != dec.name else None)
            )
            fitted = report.adaptation.summary() if report.adaptation else None
            note = "; ".join(filter(None, [note, report.guard_summary(), report.still_summary(), fitted])) or None
            done[dec.name] = self._row(
                "emtcs",
                f"emtcs / {dec.name}",
                B=B,
                setting=dec.name if len(self.config.quantise) == 1 else f"{dec.name}, {_step_label(step)}",
                note=note,
                nbytes=budget,
                test=restored,
                encode_s=encode_s,
                decode_s=decode_s,
                decoder=report.decoder,
                **point,
            )
            self._step(f"B={B}: emtcs {dec.name}")
        tcs.unlink()
        return budget

    def _competitor(self, name: str, B: int, step: float | None, budget: int) -> None:
        codec: Codec = get_codec(name)
        title = codec.title
        reason = codec.unavailable()
        if reason:
            self._row(name, title, B=B, status="unable", note=reason, budget_bytes=budget, quantise=step)
            self._progress(2, status=f"B={B}: {name} unable")
            return
        try:
            coded = codec.at_budget(self.frames, budget, lo=self.lo, hi=self.hi)
        except (RuntimeError, ValueError, TypeError) as exc:
            self._row(
                name,
                title,
                B=B,
                status="unable",
                note=f"{type(exc).__name__}: {exc}",
                budget_bytes=budget,
                quantise=step,
            )
            self._progress(2, status=f"B={B}: {name} unable")
            return
        common = {
            "B": B,
            "quantise": step,
            "budget_bytes": budget,
            "search_evaluations": coded.evaluations,
            "input_map": coded.cmap.describe(),
        }
        if coded.value is None:
            self._row(
                name,
                title,
                status="over budget",
                note=f"its smallest output ({codec.knob.short}={codec.knob.low:g}) is {coded.nbytes:,} bytes",
                **common,
            )
            self._progress(2, status=f"B={B}: {name} over budget")
            return
        common.update(
            setting=f"{codec.knob.short}={coded.value:.4g}",
            nbytes=coded.nbytes,
            encode_s=coded.encode_s,
            knob={"name": codec.knob.name, "value": coded.value},
        )
        self._row(name, title, test=coded.decoded, decode_s=coded.decode_s, **common)
        self._step(f"B={B}: {name}")
        t0 = time.perf_counter()
        denoised = self.denoiser(coded.decoded)
        self._row(
            name,
            f"{title} + {self.denoiser.name}",
            test=denoised,
            decode_s=coded.decode_s + time.perf_counter() - t0,
            denoiser=self.denoiser.name,
            **common,
        )
        self._step(f"B={B}: {name} + {self.denoiser.name}")

    # ----------------------------------------------------------------- run

    @property
    def _steps_per_B(self) -> int:
        return (count_steps(self.config, self.frames.dtype) - 1) // len(self.config.B)

    def run(self) -> BenchResult:
        import tifffile

        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        load_start = _load()
        t_start = time.perf_counter()
        self._references()
        with tempfile.TemporaryDirectory(prefix="emtcs-bench-") as tmp_name:
            tmp = Path(tmp_name)
            tifffile.imwrite(tmp / "movie.tif", self.frames, photometric="minisblack")
            for B in self.config.B:
                for i, step in enumerate(self.config.quantise):
                    self.sampling = i == 0
                    budget = self._emtcs(B, step, tmp)
                    if budget is None:
                        break
                    for name in self.codecs:
                        self._competitor(name, B, step, budget)
            self.sampling = True
        n, h, w = self.frames.shape
        data = {
            "format": FORMAT,
            "started": started,
            "wall_s": time.perf_counter() - t_start,
            "input": {
                **self.source,
                "frames": n,
                "frame_shape": [h, w],
                "dtype": self.frames.dtype.name,
                "value_range": [self.lo, self.hi],
                "raw_bytes": self.raw_bytes,
                "clean_truth": self.clean is not None,
            },
            "config": {
                "B": list(self.config.B),
                "decoders": list(self.config.decoders),
                "codecs": self.codecs,
                "seed": self.config.seed,
                "density": "auto" if self.config.density is None else self.config.density,
                "quantise": [_step_label(q) for q in self.config.quantise],
                "gain": "auto" if self.config.gain is None else self.config.gain,
                "measurement_coding": "; ".join(sorted(self.codings)) or "exact",
                "device": self.config.device,
                "decoder_options": self.config.decoder_options,
                "adapt": self.config.adapt,
            },
            "rules": {
                "budget": BUDGET_RULE,
                "data_range": RANGE_RULE,
                "psnr": "scikit-image peak_signal_noise_ratio per frame; 'psnr' is the movie's, from the mean "
                "squared error over all frames, 'psnr_min' the worst frame's",
                "ssim": "scikit-image structural_similarity per frame (Gaussian window, sigma 1.5), mean",
                "bits_per_pixel": "8 * bytes / (frames * height * width)",
                "compression_ratio": "raw bytes (frames * height * width * bytes per source pixel) / bytes",
                "speed": "MB/s of raw input, wall time on this machine in this run; emtcs from emtcs.compress "
                "/ emtcs.decompress including TIFF and HDF5 file I/O, other codecs in memory "
                "(value mapping included), '+ denoiser' decode includes the denoiser",
            },
            "references": {
                name: {"description": ref.description, "data_range": ref.data_range} for name, ref in self.refs.items()
            },
            "denoiser": self.denoiser.describe(),
            "reference_denoiser": self.config.reference_denoiser.describe(),
            "codecs": {name: get_codec(name).describe() for name in self.codecs},
            "figure": {"frame": self.k, "B": self.panel_B},
            **environment(),
            "load_average": {"start": load_start, "end": _load()},
            "rows": self.rows,
        }
        return BenchResult(data, self.samples)
