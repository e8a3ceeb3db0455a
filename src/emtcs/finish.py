"""Finishing decoded tiles: non-local means at the strength of each frame's remaining noise.

The learned decoders leave fine-grained error in their frames: shot noise they did not remove
and texture of the masks.  Non-local means averages each pixel with the pixels whose
neighbourhoods look alike, which removes that error where the movie repeats itself
(lattices, amorphous texture, flat regions) and leaves edges and unique features alone.
Its strength follows each frame: the filter's noise level ``sigma`` is :data:`STRENGTH`
times the frame's noise sigma as estimated from the frame itself (:func:`noise_sigma`;
fine lattice fringes count in that estimate too, hence the factor), and ``h`` is
:data:`H_RATIO` times ``sigma``, so a frame the decoder has already cleaned is barely
touched and no noise model is needed.
``benchmarks/finish_strength.py`` chose the strength on scenes apart from the
validation suite (docs/decoders.md).

The filter, with patch radius ``p`` (:data:`PATCH` = 2p + 1) and search radius
:data:`SEARCH`: for each pixel ``i`` and each offset ``o`` within the search window,
``d²(i, o)`` is the sum over the patch of squared differences between the patches at
``i`` and ``i + o``; the weight is ``exp(-max(d² - 2 sigma² P², 0) / (h² P²))`` with
``P`` = :data:`PATCH`; the pixel becomes the weighted mean of ``x[i + o]``.  Frames are
padded by reflection.  It runs in PyTorch on the decoders' device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["FINISHES", "H_RATIO", "PATCH", "SEARCH", "STRENGTH", "finisher", "noise_sigma", "nonlocal_means"]

#: Finishing methods: ``nlm`` (the default) or ``none``.
FINISHES = ("nlm", "none")
#: The filter's ``sigma`` in units of the frame's estimated noise sigma.
STRENGTH = 0.5
#: ``h`` in units of the filter's ``sigma``.
H_RATIO = 0.8
#: Patch side and search radius in pixels.
PATCH = 5
SEARCH = 4
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


def nonlocal_means(frames: Any, sigma: Any, h: Any, patch: int = PATCH, search: int = SEARCH) -> Any:
    """Non-local means (module docstring) of (n, H, W) torch frames, ``sigma`` and ``h`` per frame.

    Offsets ``o`` and ``-o`` share their patch distances (shifted by ``o``), so each pair is
    computed once, on a grid extended by ``search`` pixels.
    """
    import torch
    import torch.nn.functional as F

    n, H, W = frames.shape
    c = patch // 2
    pad = 2 * search + c
    if min(H, W) <= pad:  # reflection needs the frame wider than the padding
        return frames
    xp = F.pad(frames[:, None], (pad, pad, pad, pad), mode="reflect")[:, 0]
    grid = (H + 2 * search + 2 * c, W + 2 * search + 2 * c)  # patch support of the extended grid
    start = pad - search - c
    core = xp[:, start : start + grid[0], start : start + grid[1]]
    acc = frames.clone()  # the pixel itself, with weight 1
    wsum = torch.ones_like(frames)
    floor = (2 * sigma**2 * patch**2).reshape(n, 1, 1)
    scale = (-1.0 / (h**2 * patch**2)).reshape(n, 1, 1)
    for dy in range(search + 1):
        for dx in range(-search, search + 1):
            if dy == 0 and dx <= 0:
                continue
            moved = xp[:, start + dy : start + dy + grid[0], start + dx : start + dx + grid[1]]
            d = core - moved
            w = _box(d.mul_(d), patch).sub_(floor).clamp_(min=0).mul_(scale).exp_()
            ahead = w[:, search : search + H, search : search + W]  # pair (i, i + o)
            behind = w[:, search - dy : search - dy + H, search - dx : search - dx + W]  # pair (i - o, i)
            acc.addcmul_(ahead, xp[:, pad + dy : pad + dy + H, pad + dx : pad + dx + W])
            acc.addcmul_(behind, xp[:, pad - dy : pad - dy + H, pad - dx : pad - dx + W])
            wsum += ahead
            wsum += behind
    return acc / wsum


def finisher(
    method: str, device: str = "auto", strength: float = STRENGTH
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The finishing of (n, B, h, w) float32 tiles by ``method`` (:data:`FINISHES`) on ``device``
    (auto: CUDA where PyTorch sees it), at ``strength`` times each frame's estimated noise
    sigma; None for ``none``."""
    if method == "none":
        return None
    if method != "nlm":
        raise ValueError(f"unknown finishing {method!r}; choose from {', '.join(FINISHES)}")
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)

    def finish(tiles: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)).to(dev)
        n, B, h, w = x.shape
        x = x.reshape(n * B, h, w)
        with torch.inference_mode():
            sigma = strength * noise_sigma(x)
            flat = sigma <= 0  # nothing to remove: the frame stays as it is
            out = nonlocal_means(x, sigma, torch.where(flat, 1.0, H_RATIO * sigma))
            out[flat] = x[flat]
        return out.reshape(n, B, h, w).cpu().numpy()

    return finish
