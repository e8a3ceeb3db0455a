"""The torch twin of :mod:`emtcs.sensing`: mask generator and forward model on tensors.

The mask generator reproduces ``emtcs-hash32-v1`` and ``-v2`` bit for bit with int64 arithmetic
(torch has no full uint32 support); it is tested against the numpy generator and the
test vectors in ``formats/``.
"""

from __future__ import annotations

import torch

from ..sensing import _COL_SALT, _FRAME_SALT, _MUL1, _MUL2, _ROW_SALT, _SEED_SALT, DEFAULT_DENSITY, check_density

__all__ = ["masks", "forward", "adjoint", "mask_sum", "normalised_measurement"]

_M32 = 0xFFFFFFFF


def _mix32(h: torch.Tensor) -> torch.Tensor:
    h = h ^ (h >> 16)
    h = (h * _MUL1) & _M32
    h = h ^ (h >> 15)
    h = (h * _MUL2) & _M32
    return h ^ (h >> 15)


def masks(
    seed: int,
    nb: int,
    shape: tuple[int, int],
    origin: tuple[int, int] = (0, 0),
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    density: float = DEFAULT_DENSITY,
) -> torch.Tensor:
    """(nb, h, w) masks of ``seed`` over a window, identical to :func:`emtcs.sensing.masks`."""
    threshold = 2**32 - round(check_density(density) * 2.0**32)
    h, w = shape
    y0, x0 = origin
    kw = {"device": device, "dtype": torch.int64}
    seed_t = torch.tensor(int(seed) & _M32, **kw)
    k = _mix32(seed_t ^ _SEED_SALT)
    b = torch.arange(nb, **kw)
    kb = _mix32(k ^ _mix32(b ^ _FRAME_SALT))
    rows = _mix32(kb[:, None] ^ _mix32(torch.arange(y0, y0 + h, **kw) ^ _ROW_SALT)[None, :])
    cols = _mix32(torch.arange(x0, x0 + w, **kw) ^ _COL_SALT)
    bits = _mix32(rows[:, :, None] ^ cols[None, None, :]) >= threshold
    return bits.to(dtype)


def forward(x: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Y = sum_b C_b * X_b over the frame axis (dim -3)."""
    return (C * x).sum(dim=-3)


def adjoint(y: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """A^T y = C_b * y for each frame."""
    return C * y.unsqueeze(-3)


def mask_sum(C: torch.Tensor) -> torch.Tensor:
    """sum_b C_b, guarded to at least 1 where no mask covers a pixel."""
    return C.sum(dim=-3).clamp(min=1.0)


def normalised_measurement(y: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Y-bar = Y / sum_b C_b (Equation 2), the per-pixel mean of the frames."""
    return y / mask_sum(C)
