"""formats/tcs.md §11 (``rows-v1``) written from the specification, pixel by pixel in plain
Python, independently of emtcs.prediction: the oracle the tests hold emtcs to."""

from __future__ import annotations

import math

import numpy as np


def signal(v: int, k: int, coding: tuple) -> float | int:
    """e of §11; ``coding`` is ("exact",), ("gaussian-v1", step, sigma) or (name, step, gain,
    offset, read_noise)."""
    if coding[0] == "exact":
        return int(v)
    if coding[0] == "gaussian-v1":
        _, step, sigma = coding
        return v * ((step * sigma) * math.sqrt(k))
    _, step, gain, _, r = coding
    h = v * (step / 2)
    return gain * max((h * h - 0.375) - k * (r * r), 0.0)


def prediction(e_above: list, k_above: list, k: int, coding: tuple, top: int) -> int:
    """P of §11 from the neighbours' signals and counts (empty lists: no neighbours)."""
    if not e_above:
        return 0
    E = e_above[0]
    for e in e_above[1:]:
        E = E + e
    K = sum(k_above)
    if coding[0] == "exact":
        p = (2 * k * E + K) // (2 * K) if K else 0
    elif coding[0] == "gaussian-v1":
        _, step, sigma = coding
        z = E / K if K else 0.0
        unit = (step * sigma) * math.sqrt(k)
        p = math.floor((k * z) / unit + 0.5) if k else 0
    else:
        _, step, gain, _, r = coding
        z = E / K if K else 0.0
        p = math.floor(2 * math.sqrt(((k * z) / gain + k * (r * r)) + 0.375) / step + 0.5)
    return min(p, top)


def _neighbours(y: int, x: int, W: int) -> list[tuple[int, int]]:
    if y % 256 == 0:
        return []
    return [(y - 1, c) for c in (x - 1, x, x + 1) if 0 <= c < W and c // 256 == x // 256]


def residuals(v: np.ndarray, k: np.ndarray, coding: tuple, bits: int) -> np.ndarray:
    """The stored u of every pixel of the values ``v`` (counts ``k``) in a ``bits``-bit type."""
    M = 1 << bits
    H, W = v.shape
    e = [[signal(int(v[y, x]), int(k[y, x]), coding) for x in range(W)] for y in range(H)]
    out = np.zeros((H, W), dtype=np.uint64)
    for y in range(H):
        for x in range(W):
            nb = _neighbours(y, x, W)
            p = prediction([e[a][b] for a, b in nb], [int(k[a, b]) for a, b in nb], int(k[y, x]), coding, M - 1)
            d = (int(v[y, x]) - p) % M
            s = d if d < M // 2 else d - M
            out[y, x] = 2 * s if s >= 0 else -2 * s - 1
    return out


def values(u: np.ndarray, k: np.ndarray, coding: tuple, bits: int) -> np.ndarray:
    """The reader's side: v from the stored ``u``, row after row."""
    M = 1 << bits
    H, W = u.shape
    v = np.zeros((H, W), dtype=np.uint64)
    e = [[0] * W for _ in range(H)]
    for y in range(H):
        for x in range(W):
            nb = _neighbours(y, x, W)
            p = prediction([e[a][b] for a, b in nb], [int(k[a, b]) for a, b in nb], int(k[y, x]), coding, M - 1)
            uu = int(u[y, x])
            s = uu // 2 if uu % 2 == 0 else -(uu + 1) // 2
            v[y, x] = (s + p) % M
        for x in range(W):
            e[y][x] = signal(int(v[y, x]), int(k[y, x]), coding)
    return v
