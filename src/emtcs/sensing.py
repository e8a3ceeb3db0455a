"""The forward model of temporal compressive sensing, in numpy.

Everything that relates frames to measurements lives here once: the seeded mask
generator, the encoder ``Y = sum_b C_b * X_b`` (Equation 1 of the paper), its adjoint
and the mask sum.  Decoders (and the torch twin of the mask generator) are tested
against these functions.

The mask generator is counter based: bit(seed, b, y, x) is a pure function of its four
integers, so any tile of any mask is made without making the rest, and the bits do not
depend on numpy's random streams.  The algorithm is specified in ``formats/tcs.md``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MASK_GENERATOR",
    "DENSITY_GENERATOR",
    "DEFAULT_DENSITY",
    "check_density",
    "masks",
    "masks_at",
    "mask_bits",
    "encode",
    "masked_sum",
    "forward",
    "adjoint",
    "mask_sum",
    "accumulator_dtype",
    "SeededMasks",
    "ArrayMasks",
]

#: Name of the mask generator, as stored in ``.tcs`` files: bits that are 1 with probability 1/2.
MASK_GENERATOR = "emtcs-hash32-v1"
#: The same hash with the probability of a 1 (the density) a parameter; at 1/2 its masks are v1's.
DENSITY_GENERATOR = "emtcs-hash32-v2"
#: The density of v1's masks.
DEFAULT_DENSITY = 0.5

_M32 = 0xFFFFFFFF
# Multipliers are below 2**31 so that a 32-bit value times a multiplier fits in a
# signed 64-bit integer: the same arithmetic is then exact in torch (int64, no uint32).
_MUL1 = 0x7FEB352D
_MUL2 = 0x21F0AAAD
_SEED_SALT = 0x6A09E667
_FRAME_SALT = 0x3C6EF372
_ROW_SALT = 0xBB67AE85
_COL_SALT = 0xA54FF53A


def _mix32(h: np.ndarray) -> np.ndarray:
    """Bijective 32-bit integer hash (xorshift-multiply), on uint32 arrays, wrapping."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(_MUL1)
    h = h ^ (h >> np.uint32(15))
    h = h * np.uint32(_MUL2)
    h = h ^ (h >> np.uint32(15))
    return h


def _u32(v: int | np.ndarray) -> np.ndarray:
    return np.asarray(np.asarray(v, dtype=np.uint64) & np.uint64(_M32), dtype=np.uint32)


def _frame_key(seed: int, b: int) -> np.uint32:
    with np.errstate(over="ignore"):
        k = _mix32(_u32(seed) ^ np.uint32(_SEED_SALT))
        return _mix32(k ^ _mix32(_u32(b) ^ np.uint32(_FRAME_SALT)))


def check_density(density: float) -> float:
    """``density`` as a float, or ValueError unless it is a probability of a 1 that the
    generator can hold: a whole number of 2^-32 strictly between 0 and 1 (formats/tcs.md §5)."""
    p = float(density)
    if not (0.0 < p < 1.0) or not 1 <= round(p * 2.0**32) <= _M32:
        raise ValueError(f"mask density must be in (0, 1), got {density}")
    return p


def _bits(h: np.ndarray, density: float) -> np.ndarray:
    """The bits of 32-bit hashes ``h``: 1 where h >= 2^32 - round(density * 2^32) (at 1/2, the top bit)."""
    return (h >= np.uint32(2**32 - round(density * 2.0**32))).astype(np.uint8)


def mask_bits(
    seed: int, b: np.ndarray | int, y: np.ndarray | int, x: np.ndarray | int, density: float = DEFAULT_DENSITY
) -> np.ndarray:
    """Mask bit for each (b, y, x) under ``seed``; arguments broadcast. Returns uint8 {0, 1}."""
    density = check_density(density)
    b_arr, y_arr, x_arr = np.broadcast_arrays(np.asarray(b), np.asarray(y), np.asarray(x))
    out = np.empty(b_arr.shape, dtype=np.uint8)
    with np.errstate(over="ignore"):
        for bv in np.unique(b_arr):
            sel = b_arr == bv
            key = _frame_key(seed, int(bv))
            row = _mix32(key ^ _mix32(_u32(y_arr[sel]) ^ np.uint32(_ROW_SALT)))
            col = _mix32(_u32(x_arr[sel]) ^ np.uint32(_COL_SALT))
            out[sel] = _bits(_mix32(row ^ col), density)
    return out


def masks(
    seed: int,
    B: int,
    shape: tuple[int, int],
    origin: tuple[int, int] = (0, 0),
    *,
    first: int = 0,
    density: float = DEFAULT_DENSITY,
) -> np.ndarray:
    """Binary coding masks C_first..C_{first+B-1} over a window of the frame.

    ``shape`` is the window's (height, width) and ``origin`` its top-left pixel in frame
    coordinates, so ``masks(s, B, (h, w), (y0, x0))`` equals
    ``masks(s, B, (H, W))[:, y0:y0+h, x0:x0+w]``.  Returns a (B, h, w) uint8 array of 0/1,
    each 1 with probability ``density``.
    """
    h, w = (int(v) for v in shape)
    y0, x0 = (int(v) for v in origin)
    if h < 0 or w < 0 or y0 < 0 or x0 < 0:
        raise ValueError(f"invalid mask window: shape={shape}, origin={origin}")
    return masks_at(seed, B, np.arange(y0, y0 + h), np.arange(x0, x0 + w), first=first, density=density)


def masks_at(
    seed: int, B: int, rows: np.ndarray, cols: np.ndarray, *, first: int = 0, density: float = DEFAULT_DENSITY
) -> np.ndarray:
    """Masks at the crossings of pixel ``rows`` and ``cols`` (1-D coordinate arrays): (B, len(rows), len(cols))."""
    density = check_density(density)
    if B < 1:
        raise ValueError(f"B must be at least 1, got {B}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in 0..4294967295, got {seed}")
    out = np.empty((B, len(rows), len(cols)), dtype=np.uint8)
    with np.errstate(over="ignore"):
        r_hash = _mix32(_u32(rows) ^ np.uint32(_ROW_SALT))
        c_hash = _mix32(_u32(cols) ^ np.uint32(_COL_SALT))
        for i in range(B):
            r = _mix32(_frame_key(seed, first + i) ^ r_hash)
            out[i] = _bits(_mix32(r[:, None] ^ c_hash[None, :]), density)
    return out


def accumulator_dtype(source_max: int, B: int) -> np.dtype:
    """Smallest unsigned integer dtype that holds the sum of B values <= ``source_max``."""
    bound = int(source_max) * int(B)
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bound <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"group sums up to {bound} do not fit in 64 bits")


def encode(frames: np.ndarray, masks: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Measurement ``Y = sum_b masks[b] * frames[b]`` of one group (Equation 1).

    ``frames`` is (b, H, W) and ``masks`` at least (b, H, W) of 0/1 (extra masks are
    ignored, so a short last group uses the first b masks).  Unsigned integer frames are
    summed exactly in the smallest unsigned dtype that cannot overflow, signed ones in
    int64 and float ones in float64; pass ``out`` to choose the accumulator.
    """
    frames = np.asarray(frames)
    masks = np.asarray(masks)
    if frames.ndim != 3 or masks.ndim != 3 or masks.shape[1:] != frames.shape[1:]:
        raise ValueError(f"frames {frames.shape} and masks {masks.shape} must be (b, H, W) alike")
    nb = frames.shape[0]
    if masks.shape[0] < nb:
        raise ValueError(f"{nb} frames but only {masks.shape[0]} masks")
    if out is None:
        if frames.dtype.kind == "u":
            dtype = accumulator_dtype(np.iinfo(frames.dtype).max, nb)
        elif frames.dtype.kind in "ib":
            dtype = np.dtype(np.int64)
        else:
            dtype = np.dtype(np.float64)
        out = np.empty(frames.shape[1:], dtype=dtype)
    if frames.dtype.kind == "u" and masks.dtype == np.uint8:
        return masked_sum(frames, masks, out)
    np.einsum("bhw,bhw->hw", masks[:nb], frames, out=out, casting="unsafe", dtype=out.dtype)
    return out


def masked_sum(frames: np.ndarray, masks: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Fast exact ``out = sum_b masks[b] * frames[b]`` for unsigned frames and uint8 0/1 masks.

    Works on blocks of rows so that the accumulator and one product row block stay in
    cache: each frame and mask is read once from memory and ``out`` written once.
    This is the encoder's inner loop; it makes no copy of the group.
    """
    nb, H, W = frames.shape
    step = max(1, (1 << 19) // max(W, 1))
    tmp = np.empty((min(step, H), W), dtype=frames.dtype)
    for y0 in range(0, H, step):
        acc = out[y0 : y0 + step]
        prod = tmp[: acc.shape[0]]
        acc[...] = 0
        for i in range(nb):
            np.multiply(frames[i, y0 : y0 + step], masks[i, y0 : y0 + step], out=prod, casting="unsafe")
            np.add(acc, prod, out=acc, casting="unsafe")
    return out


def forward(x: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """A(x) = sum_b masks[b] * x[b] in float (the operator decoders iterate with)."""
    return np.einsum("bhw,bhw->hw", masks[: x.shape[0]], x, dtype=np.float32 if x.dtype == np.float32 else None)


def adjoint(y: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """A^T(y) = masks * y, one copy per frame."""
    return masks * y[None]


def mask_sum(masks: np.ndarray) -> np.ndarray:
    """Sum of the masks over frames, sum_b C_b (the diagonal of A A^T)."""
    return masks.sum(axis=0, dtype=np.float32)


class SeededMasks:
    """The masks of a ``.tcs`` group: ``nb`` seeded masks over a frame of ``shape``, or, for
    a frame stored alone (``unmasked``, a group of one in format 3), one mask of ones.

    :meth:`window` generates only the requested window, so memory follows the tile,
    not the frame.
    """

    def __init__(
        self,
        seed: int,
        nb: int,
        shape: tuple[int, int],
        *,
        unmasked: bool = False,
        density: float = DEFAULT_DENSITY,
    ):
        if unmasked and nb != 1:
            raise ValueError(f"only a group of one frame is stored unmasked (got {nb} frames)")
        self.seed, self.nb, self.shape = int(seed), int(nb), (int(shape[0]), int(shape[1]))
        self.unmasked = unmasked
        self.density = check_density(density)

    def window(self, rows: slice, cols: slice) -> np.ndarray:
        """(nb, h, w) uint8 masks over ``rows`` x ``cols`` (slices may have steps)."""
        ys, xs = np.arange(*rows.indices(self.shape[0])), np.arange(*cols.indices(self.shape[1]))
        if self.unmasked:
            return np.ones((1, len(ys), len(xs)), dtype=np.uint8)
        return masks_at(self.seed, self.nb, ys, xs, density=self.density)


class ArrayMasks:
    """Masks given as a (nb, H, W) array, e.g. the masks of a benchmark file."""

    def __init__(self, masks: np.ndarray):
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise ValueError(f"masks must be (B, H, W), got shape {masks.shape}")
        self.array = masks
        self.nb = masks.shape[0]
        self.shape = masks.shape[1:]

    def window(self, rows: slice, cols: slice) -> np.ndarray:
        return self.array[:, rows, cols]
