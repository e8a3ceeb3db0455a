"""Learned decoders: a network from :mod:`emtcs.nets` with weights from the zoo.

Tiles arrive in batches; the network runs on CUDA when present (a batch at a time, with
bf16 autocast), else on the CPU with all its cores, one tile at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..errors import DecoderError
from ..optional import require
from .base import Decoder, per_tile, register

__all__ = [
    "LearnedDecoder",
    "TcsdlDecoder",
    "GapNetDecoder",
    "GapUNetDecoder",
    "MIRRORS",
    "SHIFT",
    "View",
    "views",
    "missing_for_networks",
]

#: GapUNet's default number of mirror images of the tile averaged (:class:`GapUNetDecoder`)...
MIRRORS = 1
#: ...and whether the decodes on its pixel grid moved by one pixel take half the weight.
SHIFT = True


def _cpu_threads() -> int:
    """Threads for a CPU network: ``OMP_NUM_THREADS`` when set (a shared machine), else every core."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else os.cpu_count() or 1


def missing_for_networks() -> str | None:
    """The first package the learned decoders need that does not import here, or None."""
    for module in ("torch", "safetensors"):
        try:
            __import__(module)
        except ImportError:
            return module
    return None


class LearnedDecoder(Decoder):
    """Base of the network decoders: loads weights, picks the device, runs batches.

    ``noise_measured`` is False for a file whose noise level the decoders are told is only
    a guess (:func:`emtcs.decoders.for_noise`): a noise-aware GAP-TV start then ignores it.
    ``noise_spread`` is how much of the file's noise is spread over neighbouring pixels
    (:func:`emtcs.noise.noise_spread`; 0, white, where compress did not measure it), which
    networks that take it are told.
    """

    batched = True
    arch: ClassVar[str]
    noise_measured: bool = True
    noise_spread: float = 0.0

    def __init__(
        self, *, weights: str | os.PathLike[str] | bytes | None = None, device: str = "auto", B: int | None = None
    ):
        require("torch", purpose=f"decoder {self.name!r}")
        require("safetensors", purpose=f"decoder {self.name!r}")
        import torch

        from .. import zoo
        from ..nets import build

        # bytes: the weights themselves (a network fitted to a file, sent to dask workers)
        path = weights if isinstance(weights, bytes) else Path(weights) if weights else zoo.find_weights(self.arch, B)
        if path is None:
            raise DecoderError(f"no {self.name} weights" + (f" for B={B}" if B else "") + " found")
        info, state = zoo.load_weights(path)
        name = info.get("fitted_to", "the given weights") if isinstance(path, bytes) else str(path)
        if info["config"].get("arch") != self.arch:
            raise DecoderError(f"{name} holds {info['config'].get('arch')!r} weights, not {self.arch!r}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise DecoderError("--device cuda asked for, but PyTorch sees no CUDA device")
        self.device = torch.device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(_cpu_threads())
        try:
            self.net = build(info["config"])
            self.net.load_state_dict(state)
        except (TypeError, KeyError, RuntimeError) as exc:  # config or tensors of another version
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DecoderError(f"{name}: weights do not fit emtcs's {self.arch} network ({reason})") from None
        self.net.eval().to(self.device)
        self.weights = name
        self.info = info

    def decode(
        self, y: np.ndarray, masks: np.ndarray, electrons_per_unit: float | np.ndarray | None = None, run: int = 1
    ) -> np.ndarray:
        """The network on a batch of tiles (in runs of ``run`` groups for a network that
        :attr:`sees_runs`); noise-aware networks are told ``electrons_per_unit`` (without
        it they assume a moderate dose)."""
        import torch

        with torch.inference_mode():
            yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(self.device)
            ct = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32)).to(self.device)
            epu = per_tile(electrons_per_unit, len(yt))
            told = None
            if epu is not None and getattr(self.net, "noise_aware", False):
                told = torch.tensor(epu, dtype=torch.float32, device=self.device)
            return self._run(yt, ct, told, run).float().cpu().numpy()

    def _run(self, y: Any, C: Any, epu: Any, run: int = 1) -> Any:
        """The network's output for torch tiles (this one decodes each group alone)."""
        return self._per_device(lambda y, C, epu: self.net(y, C) if epu is None else self.net(y, C, epu=epu), y, C, epu)

    def spread(self, n: int) -> Any:
        """The noise's spread for ``n`` tiles, as a tensor for a network that takes it, else None."""
        import torch

        if not getattr(self.net, "spread_aware", False):
            return None
        return torch.full((n,), float(self.noise_spread), device=self.device)

    def _per_device(self, fn: Callable[..., Any], *tiles: Any, run: int = 1) -> Any:
        """``fn`` of torch tensors whose first axis is the tile (None passes as is): on a GPU
        on the whole batch with bf16 autocast; on the CPU one tile (one run of ``run``
        tiles) at a time, where the convolutions' working set then stays in cache
        (GapUNet's stages 1.9x, TCS-DL 1.2x faster than four 256 x 256 tiles at once, one
        core of an AMD EPYC; the frames differ by float32 rounding)."""
        import torch

        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return fn(*tiles)
        n = len(tiles[0])
        if n <= run:
            return fn(*tiles)
        return torch.cat([fn(*(t if t is None else t[i : i + run] for t in tiles)) for i in range(0, n, run)])

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "weights": self.weights, "device": str(self.device)}


@register
class TcsdlDecoder(LearnedDecoder):
    """The paper's network: first-frame CNN, forward and backward RNN."""

    name = "tcsdl"
    arch = "tcsdl"


@register
class GapNetDecoder(LearnedDecoder):
    """Deep-unfolded GAP with a learned spatio-temporal denoiser."""

    name = "gapnet"
    arch = "gapnet"


#: Flips of a tile whose decodes GapUNet averages, in order: none, left-right, up-down, both.
_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


class View(NamedTuple):
    """One decode GapUNet averages: of the tile on the grid one pixel over (``shifted``),
    mirrored along ``flip`` (tensor dims), with this ``weight`` in the mean."""

    shifted: bool
    flip: tuple[int, ...]
    weight: float


def views(mirrors: int, shift: bool) -> tuple[View, ...]:
    """The decodes :class:`GapUNetDecoder` averages: the tile and its first ``mirrors - 1``
    mirror images, equally.  With ``shift`` these take half the weight and the same views
    of the tile one pixel over the other half, so the two parities of the network's grid
    weigh the same; a lone tile's half one pixel over is two decodes, as it is and mirrored
    up-down (which keeps the columns' parity), so that it too averages two opinions."""
    own = _FLIPS[:mirrors]
    if not shift:
        return tuple(View(False, dims, 1 / mirrors) for dims in own)
    over = own if mirrors > 1 else ((), (-2,))
    return (
        *(View(False, dims, 0.5 / len(own)) for dims in own),
        *(View(True, dims, 0.5 / len(over)) for dims in over),
    )


@register
class GapUNetDecoder(LearnedDecoder):
    """GAP-TV followed by unfolded stages with a noise-aware spatio-temporal U-Net.

    The frames are a weighted mean of several decodes (:func:`views`, :attr:`views`).
    ``mirrors`` (1, 2 or 4): the stages run on the tile and on its first ``mirrors - 1``
    mirror images (left-right, up-down, both), flipped back.  The network's errors differ
    between mirror images more than its signal does, so the mean is closer to the truth;
    each decode keeps the residual within the projection's bound pixel by pixel, so their
    mean does too.

    ``shift`` (default :data:`SHIFT`): as many decodes again (two for a lone tile), of the
    tile widened by one reflected column on each side (measurement, masks and start
    alike), so that the network's 2 x 2 pixel grid falls one pixel over, cropped back;
    they take half the weight.  The grid's faint copy of a lattice half the sampling
    rate away changes sign with the grid, so with both grids weighing the same it cancels
    and does not show as a reflection the specimen lacks (docs/decoders.md, "The pixel
    grid one pixel over").
    """

    name = "gapunet"
    arch = "gapunet"
    sees_runs = True

    def __init__(self, *, mirrors: int = MIRRORS, shift: bool = SHIFT, **kwargs: Any):
        if mirrors not in (1, 2, 4):
            raise DecoderError(f"mirrors must be 1, 2 or 4 (got {mirrors!r})")
        if not isinstance(shift, bool):
            raise DecoderError(f"shift must be True or False (got {shift!r})")
        super().__init__(**kwargs)
        self.mirrors = mirrors
        self.shift = shift
        #: the decodes averaged (benchmarks may set other views to compare)
        self.views = views(mirrors, shift)

    def start(self, y: Any, C: Any, epu: Any) -> Any:
        """The network's GAP-TV start, told the noise only where it was measured."""
        return self.net.start(y, C, epu if self.noise_measured else None)

    def _run(self, y: Any, C: Any, epu: Any, run: int = 1) -> Any:
        start = self.start(y, C, epu)
        return self.refine(y, C, start, epu, run=run)

    def refine(self, y: Any, C: Any, start: Any, epu: Any, single: bool = False, run: int = 1) -> Any:
        """The network's stages from ``start``, averaged over the decoder's :attr:`views`;
        with ``single`` the stages once, on the tiles as they are; the tiles are runs of
        ``run`` groups (:meth:`emtcs.nets.gapunet.GapUNet.forward`)."""
        import torch.nn.functional as F

        spread = self.spread(len(y))

        def stages(y: Any, C: Any, start: Any, epu: Any, spread: Any) -> Any:
            return self.net.refine(y, C, start, epu, spread=spread, run=run)

        if single:
            return self._per_device(stages, y, C, start, epu, spread, run=run)
        out = None
        for view in self.views:
            tensors = (y, C, start)
            if view.shifted:  # one reflected column each side: the grid falls one pixel over
                tensors = tuple(F.pad(t, (1, 1, 0, 0), mode="reflect") for t in tensors)
            if view.flip:
                tensors = tuple(t.flip(view.flip) for t in tensors)
            decoded = self._per_device(stages, *tensors, epu, spread, run=run)
            if view.flip:
                decoded = decoded.flip(view.flip)
            if view.shifted:
                decoded = decoded[..., 1:-1]
            out = decoded * view.weight if out is None else out.add_(decoded, alpha=view.weight)
        return out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mirrors": self.mirrors, "shift": self.shift}
