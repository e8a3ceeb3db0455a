"""Finishing decoded tiles: non-local means at the strength of each frame's remaining noise.

The learned decoders leave fine-grained error in their frames: shot noise they did not remove
and texture of the masks.  Non-local means averages each pixel with the pixels whose
neighbourhoods look alike, which removes that error where the movie repeats itself
(lattices, amorphous texture, flat regions) and leaves edges and unique features alone.
Its strength follows each frame: the filter's noise level ``sigma`` is a strength ``s``
times the frame's noise sigma as estimated from the frame itself (:func:`noise_sigma`;
fine lattice fringes count in that estimate too), and ``h`` is :data:`H_RATIO` times
``sigma``, so a frame the decoder has already cleaned is barely touched.

The strength is chosen per tile by the measurement (a discrepancy principle): of the
strengths in :data:`LADDER`, the strongest whose finished frames still explain the
measurement to within its shot noise, ``noise_ratio(finished) <= max(1, noise_ratio(decoded)
+ SLACK)`` (the guard's ratio, :func:`emtcs.decoders.guard.noise_ratio`), else the
weakest.  Removing noise the decoder left raises the residual towards the shot noise;
removing structure the measurement recorded raises it beyond.  Without the tile's
measurement and noise level the strength is :data:`STRENGTH`.
``benchmarks/finish_strength.py`` measured the rule and the ladder on scenes apart from
the validation suite (docs/decoders.md).

The filter, with patch radius ``p`` (:data:`PATCH` = 2p + 1) and search radius
:data:`SEARCH`: for each pixel ``i`` and each offset ``o`` within the search window,
``d²(i, o)`` is the sum over the patch of squared differences between the patches at
``i`` and ``i + o``; the weight is ``exp(-max(d² - 2 sigma² P², 0) / (h² P²))`` with
``P`` = :data:`PATCH`; the pixel becomes the weighted mean of ``x[i + o]``.  The search
also covers the :data:`TEMPORAL` frames before and after the pixel's frame in its tile's
group, at offsets up to :data:`TEMPORAL_SEARCH` pixels, with the same weights (the pixel's
frame's ``sigma`` and ``h``): a movie repeats itself from frame to frame more than within
one, and the decoders' errors change from frame to frame (``benchmarks/finish_temporal.py``).
Frames are padded by reflection.  It runs in PyTorch on the decoders' device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .decoders.guard import noise_ratio

__all__ = [
    "FINISHES",
    "H_RATIO",
    "LADDER",
    "PATCH",
    "SEARCH",
    "SLACK",
    "STRENGTH",
    "TEMPORAL",
    "TEMPORAL_SEARCH",
    "finisher",
    "noise_sigma",
    "nonlocal_means",
    "strongest_allowed",
]

#: Finishing methods: ``nlm`` (the default) or ``none``.
FINISHES = ("nlm", "none")
#: The filter's ``sigma`` in units of the frame's estimated noise sigma, where the noise
#: level is unknown.
STRENGTH = 0.5
#: Strengths the measurement-guided finishing chooses from, weakest first.
LADDER = (0.5, 0.75, 1.0, 1.25, 1.5)
#: How far the residual may rise above the unfinished tile's, in units of the shot noise.
SLACK = 0.1
#: ``h`` in units of the filter's ``sigma``.
H_RATIO = 0.8
#: Patch side and search radius in pixels.
PATCH = 5
SEARCH = 4
#: Frames before and after each frame of a tile's group that its pixels are also compared
#: with, and the search radius there (content moves little from one frame to the next).
TEMPORAL = 2
TEMPORAL_SEARCH = 1
_MAD_TO_SIGMA = 0.6745  # median |N(0, 1)|


def noise_sigma(frames: Any) -> Any:
    """Per-frame noise sigma of (n, h, w) torch frames: the median absolute diagonal Haar
    detail over 0.6745 (the detail of white noise of sigma s has sigma s; smooth content
    has almost none); 0 for frames narrower than 2 pixels."""
    h, w = frames.shape[-2] // 2 * 2, frames.shape[-1] // 2 * 2
    if not (h and w):
        return frames.new_zeros(frames.shape[:-2])
    x = frames[..., :h, :w]
    detail = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return detail.abs().flatten(-2).median(-1).values / _MAD_TO_SIGMA


def _box(a: Any, k: int) -> Any:
    """Sums over k x k windows of the last two axes (valid part only)."""
    import torch.nn.functional as F

    c = F.pad(a.cumsum(-1), (1, 0))
    a = c[..., k:] - c[..., :-k]
    c = F.pad(a.cumsum(-2), (0, 0, 1, 0))
    return c[..., k:, :] - c[..., :-k, :]


def nonlocal_means(
    frames: Any,
    sigma: Any,
    h: Any,
    patch: int = PATCH,
    search: int = SEARCH,
    *,
    group: int = 1,
    temporal: int = 0,
    temporal_search: int = TEMPORAL_SEARCH,
) -> Any:
    """Non-local means (module docstring) of (n, H, W) torch frames, ``sigma`` and ``h`` per
    frame, (n,), or per strength and frame, (k, n), giving (k, n, H, W): the strengths share
    the patch distances, the costly part.

    The frames come in runs of ``group`` consecutive frames (a tile's group); with
    ``temporal`` = R > 0 each pixel is also compared with the patches of the R frames before
    and after it in its run, at offsets up to ``temporal_search`` pixels.

    On the CPU the frames go a few at a time (:data:`_CPU_PIECE`): the same result, faster.
    """
    import torch
    import torch.nn.functional as F

    n, H, W = frames.shape
    single = sigma.dim() == 1
    sigma, h = sigma.reshape(-1, n), h.reshape(-1, n)
    k = len(sigma)
    c = patch // 2
    reach = max(search, temporal_search if temporal else 0)
    pad = 2 * reach + c
    if min(H, W) <= pad:  # reflection needs the frame wider than the padding
        out = frames.expand(k, n, H, W).clone()
    else:
        xp = F.pad(frames[:, None], (pad, pad, pad, pad), mode="reflect")[:, 0]
        acc = frames.expand(k, n, H, W).clone()  # the pixel itself, with weight 1
        wsum = torch.ones_like(acc)
        floor = (2 * sigma**2 * patch**2).reshape(k, n, 1, 1)
        scale = (-1.0 / (h**2 * patch**2)).reshape(k, n, 1, 1)
        grad = torch.is_grad_enabled() and frames.requires_grad  # (in-place arithmetic otherwise)
        pairs = _Pairs(xp, acc, wsum, floor, scale, (H, W), patch, pad, grad)
        step = max(1, _CPU_PIECE // (k * H * W)) if frames.device.type == "cpu" else n
        for i in range(0, n, step):
            piece = slice(i, min(i + step, n))
            for dy in range(search + 1):
                for dx in range(-search, search + 1):
                    if dy > 0 or dx > 0:  # o and -o share their patch distances
                        pairs.add(piece, 0, dy, dx, search)
            for dt in range(1, temporal + 1):  # frame t with t + dt of its run, both ways
                # every run of the piece in one pass (a GPU's kernels stay large); the pairs
                # that would reach into the next run are computed and weigh nothing
                t = np.arange(piece.start, min(piece.stop, n - dt))
                inside = np.flatnonzero(t % group < group - dt)
                if not len(inside):
                    continue
                ts = slice(int(t[inside[0]]), int(t[inside[-1]]) + 1)
                keep = t[inside[0] : inside[-1] + 1] % group < group - dt
                mask = None if keep.all() else torch.from_numpy(keep).to(acc).reshape(1, -1, 1, 1)
                for dy in range(-temporal_search, temporal_search + 1):
                    for dx in range(-temporal_search, temporal_search + 1):
                        pairs.add(ts, dt, dy, dx, temporal_search, mask)
        out = acc / wsum
    return out[0] if single else out


#: Elements (strengths x frames x pixels) per piece of :func:`nonlocal_means` on the CPU:
#: 256 x 256 frames one at a time ran 1.8-2.2 times faster than 40 at once (one core of an
#: AMD EPYC; the passes over each piece stay in cache).
_CPU_PIECE = 1 << 16


class _Pairs:
    """Adds the weighted pixels of patch pairs to :func:`nonlocal_means`' sums ``acc`` and
    ``wsum`` (k, n, H, W): pixel i of frame t with pixel i + o of frame t + dt, and (the same
    patch distance) pixel j of frame t + dt with j - o of frame t, each weighted with its own
    frame's ``floor`` and ``scale`` (k, n, 1, 1).  ``xp`` are the frames padded by ``pad``."""

    def __init__(
        self, xp: Any, acc: Any, wsum: Any, floor: Any, scale: Any, shape: tuple, patch: int, pad: int, grad: bool
    ):
        self.xp, self.acc, self.wsum, self.floor, self.scale = xp, acc, wsum, floor, scale
        self.H, self.W = shape
        self.patch, self.pad = patch, pad
        self.grad = grad

    def add(self, frames: slice, dt: int, dy: int, dx: int, reach: int, mask: Any = None) -> None:
        """Pairs of the frames t in ``frames`` with t + ``dt`` at offset (``dy``, ``dx``); the
        distances are computed on a grid extended by ``reach`` >= |dy|, |dx| pixels, which
        the pairs seen from the other frame need.  ``mask`` (1, len(frames), 1, 1), 0 or 1,
        multiplies each pair's weights: 0 leaves the sums exactly as they were."""
        H, W, pad, c = self.H, self.W, self.pad, self.patch // 2
        other = slice(frames.start + dt, frames.stop + dt)
        start = pad - reach - c
        rows, cols = H + 2 * reach + 2 * c, W + 2 * reach + 2 * c  # patch support of the extended grid
        core = self.xp[frames, start : start + rows, start : start + cols]
        moved = self.xp[other, start + dy : start + dy + rows, start + dx : start + dx + cols]
        d = core - moved
        dist = _box(d * d if self.grad else d.mul_(d), self.patch)
        w = None
        # the pair (i, i + o) seen from i in ``frames``, then from j = i + o in ``other``
        for mine, theirs, sy, sx, top, left in (
            (frames, other, dy, dx, reach, reach),
            (other, frames, -dy, -dx, reach - dy, reach - dx),
        ):
            if w is None or dt:  # within one frame both sides have its parameters
                # exp of a large negative argument takes a slow path on the CPU (10x); below
                # exp(-80) ~ 2e-35 a weight is lost in float32 sums that hold the pixel's own 1
                w = dist - self.floor[:, mine]
                if self.grad:
                    w = (w.clamp(min=0) * self.scale[:, mine]).clamp(min=-80.0).exp()
                else:
                    w = w.clamp_(min=0).mul_(self.scale[:, mine]).clamp_(min=-80.0).exp_()
                if mask is not None:
                    w = w * mask if self.grad else w.mul_(mask)
            side = w[..., top : top + H, left : left + W]
            self.acc[:, mine].addcmul_(side, self.xp[theirs, pad + sy : pad + sy + H, pad + sx : pad + sx + W])
            self.wsum[:, mine] += side


def strongest_allowed(unfinished: np.ndarray, finished: np.ndarray, slack: float = SLACK) -> np.ndarray:
    """The guided rule: per tile, the index of the strongest rung whose residual ratio
    (``finished``, (k, n), rungs weakest first) stays within ``max(1, unfinished + slack)``
    (``unfinished``, (n,)), else 0, the weakest."""
    ok = np.asarray(finished) <= np.maximum(np.asarray(unfinished) + slack, 1.0)
    return np.where(ok, np.arange(len(ok))[:, None], 0).max(axis=0)


def finisher(
    method: str,
    device: str = "auto",
    strength: float | None = None,
    temporal: int = TEMPORAL,
    temporal_search: int = TEMPORAL_SEARCH,
    ladder: tuple[float, ...] = LADDER,
) -> Callable[..., np.ndarray] | None:
    """The finishing of (n, B, h, w) float32 tiles by ``method`` (:data:`FINISHES`) on ``device``
    (auto: CUDA where PyTorch sees it); None for ``none``.

    The returned ``finish(tiles, y=None, masks=None, electrons_per_unit=None)`` filters at
    ``strength`` times each frame's estimated noise sigma when ``strength`` is given; else,
    told the tiles' measurements (n, h, w), masks (n, B, h, w) and electrons per unit, it
    takes per tile the strongest of ``ladder`` (weakest first; :data:`LADDER`) whose
    measurement residual stays at the noise (module docstring), and :data:`STRENGTH`
    without them.  ``temporal`` frames on either side of each frame in its group are
    searched too, ``temporal_search`` pixels around it (0 frames: each frame alone).
    """
    if method == "none":
        return None
    if method != "nlm":
        raise ValueError(f"unknown finishing {method!r}; choose from {', '.join(FINISHES)}")
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)

    def finish(
        tiles: np.ndarray,
        y: np.ndarray | None = None,
        masks: np.ndarray | None = None,
        electrons_per_unit: float | np.ndarray | None = None,
    ) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)).to(dev)
        n, B, h, w = x.shape
        frames = x.reshape(n * B, h, w)
        told = electrons_per_unit is not None and bool(np.all(np.asarray(electrons_per_unit) > 0))
        adaptive = strength is None and y is not None and masks is not None and told
        strengths = torch.tensor(ladder if adaptive else [STRENGTH if strength is None else strength], device=dev)
        with torch.inference_mode():
            sigma = strengths[:, None] * noise_sigma(frames)  # (k, n * B)
            flat = sigma <= 0  # nothing to remove: the frame stays as it is
            out = nonlocal_means(
                frames,
                sigma,
                torch.where(flat, 1.0, H_RATIO * sigma),
                group=B,
                temporal=temporal,
                temporal_search=temporal_search,
            )
            out = torch.where(flat[..., None, None], frames, out).reshape(len(strengths), n, B, h, w)
        done = out.cpu().numpy()
        if not adaptive:
            return done[0]
        unfinished = noise_ratio(y, masks, tiles, electrons_per_unit)
        pick = strongest_allowed(unfinished, np.stack([noise_ratio(y, masks, f, electrons_per_unit) for f in done]))
        return done[pick, np.arange(n)]

    return finish
