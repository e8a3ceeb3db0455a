"""The bench's figure (matplotlib, imported only here): rate-distortion curves and one frame.

Top: PSNR against bits per pixel for each reference, one curve per codec (solid) and
per codec + denoiser (dashed), emtcs points at each B (and quantisation step) and
decoder: equal-bytes comparisons are read off the curves.  Bottom, as in
Figure 3 of the paper: one frame raw, (clean,) emtcs and JPEG at the same size, each
with a zoomed inset, and the magnitude of its 2-D Fourier transform.

:func:`frame_grid` draws the same kind of panels for several movies at once (the
validation suite's figure): per movie a row of frames and a row of their spectra.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..atomic import atomic_output
from .report import number

__all__ = ["plot", "frame_grid"]

_COLOURS = {
    "jpeg8": "tab:blue",
    "jpeg12": "tab:cyan",
    "jpeg2k": "tab:green",
    "htj2k": "tab:olive",
    "jpegxl": "tab:purple",
}
_EMTCS_MARKERS = "*PXDv^"


def _psnr(row: dict[str, Any], ref: str) -> float | None:
    value = number(row.get("quality", {}).get(ref, {}).get("psnr"))
    return value if value is not None and math.isfinite(value) else None


def _rd_panel(ax: Any, run: dict[str, Any], ref: str) -> None:
    rows = [r for r in run["rows"] if r["status"] == "ok"]
    for r in rows:
        if r["codec"] == "raw" and _psnr(r, ref) is not None:
            ax.axhline(_psnr(r, ref), color="grey", lw=0.8, ls={None: "-.", "nlm": ":"}.get(r.get("denoiser"), "--"))
            ax.annotate(
                r["title"],
                (1.0, _psnr(r, ref)),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=7,
                color="grey",
            )
    for name, colour in _COLOURS.items():
        for den, ls in ((None, "-"), ("nlm", "--")):
            pts = sorted(
                (r["bits_per_pixel"], _psnr(r, ref))
                for r in rows
                if r["codec"] == name and r.get("denoiser") == den and _psnr(r, ref) is not None
            )
            if pts:
                title = run["codecs"][name]["title"] + (f" + {den}" if den else "")
                ax.plot(*zip(*pts), ls=ls, marker="o", ms=3, color=colour, label=title)
    decoders = sorted({r["decoder"]["name"] for r in rows if r["codec"] == "emtcs"})
    for marker, dec in zip(_EMTCS_MARKERS, decoders):
        several = len(run["config"].get("quantise", [])) > 1
        pts = sorted(
            (
                r["bits_per_pixel"],
                _psnr(r, ref),
                f"B={r['B']}" + (f", {r['setting'].split(', ')[-1]}" if several else ""),
            )
            for r in rows
            if r["codec"] == "emtcs" and r["decoder"]["name"] == dec and _psnr(r, ref) is not None
        )
        if pts:
            x, y, _ = zip(*pts)
            ax.plot(x, y, color="tab:red", marker=marker, ms=10, lw=1.5, label=f"emtcs / {dec}")
            for xi, yi, label in pts:
                ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(5, 5), fontsize=7, color="tab:red")
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_minor_locator(LogLocator(subs="all"))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel("bits per pixel (per frame)")
    ax.set_ylabel(f"PSNR vs {ref} (dB)")
    ax.set_title(f"reference: {ref}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)


def _frame_rows(run: dict[str, Any], samples: Mapping[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(title, frame) for the comparison: raw, clean, emtcs and 8-bit JPEG at the figure's B."""
    B = run["figure"]["B"]
    ref = next(iter(run["references"]), None)
    picked = [("raw", "raw", None), ("clean", "clean truth", None)]
    for r in run["rows"]:
        if r["status"] != "ok" or r["B"] != B or r.get("denoiser"):
            continue
        if r["codec"] == "emtcs" and not any(k.startswith("emtcs") for k, _, _ in picked):
            picked.append((f"emtcs/{r['decoder']['name']}", f"emtcs / {r['decoder']['name']}, B={B}", r))
        if r["codec"] == "jpeg8":
            picked.append(("jpeg8", f"JPEG {r['setting']}, same bytes as B={B}", r))
    out = []
    for key, title, row in picked:
        if key not in samples:
            continue
        if row is not None and ref is not None and _psnr(row, ref) is not None:
            title += f"\n{row['bytes']:,} bytes, PSNR vs {ref} {_psnr(row, ref):.2f} dB"
        out.append((title, np.asarray(samples[key], dtype=np.float64)))
    return out


def _log_spectrum(frame: np.ndarray) -> np.ndarray:
    f = np.fft.fftshift(np.fft.fft2(frame - frame.mean()))
    return np.log10(np.abs(f) + 1e-9)


def plot(
    run: dict[str, Any], samples: Mapping[str, np.ndarray] | None, path: str | os.PathLike[str], *, force: bool = False
) -> None:
    """Draw a run's figure (the comparison panel needs ``samples``, the frames a run keeps) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs = list(run["references"])
    frames = _frame_rows(run, samples or {})
    ncols = max(len(refs), len(frames), 1)
    fig = plt.figure(figsize=(4.2 * ncols, 4.2 + (8.4 if frames else 0)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2]) if frames else (fig, None)
    axes = np.atleast_1d(top.subplots(1, len(refs)))
    for ax, ref in zip(axes, refs):
        _rd_panel(ax, run, ref)
    handles, labels = axes[0].get_legend_handles_labels()
    top.legend(handles, labels, fontsize=8, loc="outside right upper")
    inp = run["input"]
    coding = run["config"].get("measurement_coding", "exact")
    top.suptitle(
        f"{inp['name']}\n{inp['frames']} frames {inp['frame_shape'][0]}x{inp['frame_shape'][1]} "
        f"{inp['dtype']}; other codecs at the bytes of the .tcs file of each B"
        + (f" (measurements {coding})" if coding != "exact" else ""),
        fontsize=10,
    )
    if bottom is not None:
        _comparison(bottom, frames, run)
    _save_png(fig, path, force=force)
    plt.close(fig)


def frame_grid(
    movies: list[tuple[str, list[tuple[str, np.ndarray]]]],
    path: str | os.PathLike[str],
    *,
    crop: int = 96,
    force: bool = False,
) -> None:
    """Draw, for each ``(movie title, [(panel title, frame), ...])``, the central ``crop`` x
    ``crop`` pixels of every frame (grey levels of the first panel's) and below them the
    log-magnitude spectrum of the whole frame (one scale per movie), to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = max((len(panels) for _, panels in movies), default=1)
    fig = plt.figure(figsize=(1.9 * ncols, 4.2 * len(movies)), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(len(movies), 1))
    for sub, (title, panels) in zip(subs, movies):
        axes = sub.subplots(2, ncols, squeeze=False)
        first = np.asarray(panels[0][1], dtype=np.float64)
        vmin, vmax = np.percentile(first, [0.5, 99.5])
        spectra = [_log_spectrum(np.asarray(f, dtype=np.float64)) for _, f in panels]
        smin, smax = np.percentile(np.stack(spectra), [50, 99.99])  # one scale for the row
        h, w = first.shape
        y0, x0 = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
        for col in range(ncols):
            for ax in axes[:, col]:
                ax.set_xticks([])
                ax.set_yticks([])
                if col >= len(panels):
                    ax.set_axis_off()
        for col, ((name, frame), spec) in enumerate(zip(panels, spectra)):
            axes[0, col].imshow(np.asarray(frame)[y0 : y0 + crop, x0 : x0 + crop], cmap="gray", vmin=vmin, vmax=vmax)
            axes[0, col].set_title(name, fontsize=7)
            axes[1, col].imshow(spec, cmap="magma", vmin=smin, vmax=smax)
        sub.suptitle(title, fontsize=9)
    _save_png(fig, path, force=force)
    plt.close(fig)


def _save_png(fig: Any, path: str | os.PathLike[str], *, force: bool) -> None:
    """Save as a 256-colour PNG: noisy frames make full-colour PNGs of megabytes."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    image = Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    with atomic_output(path, force=force) as tmp:
        image.save(tmp, format="PNG", optimize=True)


def _comparison(sub: Any, frames: list[tuple[str, np.ndarray]], run: dict[str, Any]) -> None:
    axes = sub.subplots(2, len(frames), squeeze=False)
    raw = frames[0][1]
    vmin, vmax = np.percentile(raw, [0.5, 99.5])
    spectra = [_log_spectrum(f) for _, f in frames]
    smin, smax = np.percentile(spectra[0], [50, 99.99])
    h, w = raw.shape
    zh, zw = max(h // 6, 4), max(w // 6, 4)
    y0, x0 = (h - zh) // 2, (w - zw) // 2
    for col, ((title, frame), spec) in enumerate(zip(frames, spectra)):
        ax = axes[0, col]
        ax.imshow(frame, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        inset = ax.inset_axes([0.6, 0.6, 0.38, 0.38])
        inset.imshow(frame, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        inset.set_xlim(x0, x0 + zw)
        inset.set_ylim(y0 + zh, y0)
        inset.set_xticks([])
        inset.set_yticks([])
        ax.indicate_inset_zoom(inset, edgecolor="yellow")
        axes[1, col].imshow(spec, cmap="magma", vmin=smin, vmax=smax)
        axes[1, col].set_title("log |FFT|", fontsize=9)
        for a in axes[:, col]:
            a.set_xticks([])
            a.set_yticks([])
    sub.suptitle(f"frame {run['figure']['frame']}, zoom: central {zh}x{zw} px", fontsize=10)
