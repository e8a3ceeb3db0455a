"""Fitting GapUNet to one file before decoding it (test-time adaptation, ``--adapt``).

A network trained on simulated and other movies meets each user's movie for the first
time at decode time; the file itself can teach it more.  Withhold a share of a
measurement's pixels, decode from the rest, and the error with which the frames predict
the withheld pixels, ``Y - sum_b C_b X_b`` there, estimates how wrong the frames are
without a reference (the withheld noise is independent of what the network saw, so it
only adds a constant).  A few dozen Adam steps on that error, over tiles sampled across
the file, fit the weights to it.  The weights are checked every :data:`CHECK_EVERY` steps
on a validation share of pixels that no step fits; the best are kept, or the shipped ones
where none predicts the validation share better.

Pixels that ``select``'s hold-out rule withholds (:func:`emtcs.decoders.guard.holdout_pixels`)
are never used here, neither seen nor fitted, so its choice between the adapted network and
GAP-TV stays an honest test.  Everything is seeded: a file adapts to the same weights, and
decodes to the same frames, on every run (on one kind of device).

Measured in docs/decoders.md ("Fitting the network to the file").
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .container import TcsReader
from .decoders import Decoder, decoder_for, decoder_for_group
from .decoders.guard import holdout_pixels
from .decoders.learned import GapUNetDecoder
from .decoding import DecodeSettings, noise_gain, noise_pedestal
from .errors import InputError
from .tiling import decoder_tiles, intensity_scale, tile_starts

__all__ = [
    "ADAPT_LR",
    "ADAPT_TILE",
    "ADAPT_TILES",
    "CHECK_EVERY",
    "FITTED",
    "Adaptation",
    "Sample",
    "adapt",
    "adapt_to_file",
    "file_samples",
    "fit_for_file",
]

#: Adam's learning rate: the networks trained at 1e-4-1e-3 on batches of clips; a single
#: movie's tiles are fewer and noisier, so the steps are smaller.
ADAPT_LR = 3e-5
#: The parameters fitted: the U-Net's finest decoder scale and output layer, and the
#: stages' steps and gates (17,648 of 286,976 numbers).  Fitting all of them gained more on
#: some tiles and lost up to 0.8 dB on lattices (docs/decoders.md).
FITTED = ("unet.dec1.", "unet.up1.", "unet.out.", "step", "gate")
#: Side of the tiles fitted (pixels), and how many, spread over the groups and the frame.
ADAPT_TILE = 128
ADAPT_TILES = 16
#: Steps between checks of the validation share.
CHECK_EVERY = 8
#: Shares of the pixels outside ``select``'s hold-out: one validates, the others are fitted
#: in turn (a step withholds one of them, and the validation share, from the decode).  Ten:
#: a step's decode misses 28 % of the pixels (select's 10 % and two shares of 9 %); the
#: network then fitted decodes all of them.
SPLITS = 10


class Sample(NamedTuple):
    """One tile as the decoder sees it: normalised measurement ``y`` (1, h, w), masks ``C``
    (1, nb, h, w), electrons per normalised unit ``epu`` (1,), the group's decoder (with the
    noise settings of its group), as torch tensors."""

    y: Any
    C: Any
    epu: Any
    decoder: GapUNetDecoder


@dataclass
class Adaptation:
    """What :func:`adapt` did."""

    steps: int
    """Steps run."""
    kept: int
    """The step whose weights were kept; 0: the shipped weights."""
    ratio: float
    """Mean squared prediction error on the validation share, kept weights over shipped."""
    tiles: int
    """Tiles fitted."""
    seconds: float
    weights: bytes | None = field(default=None, repr=False)
    """The fitted weights as a weights file's bytes (:func:`fit_for_file`), where kept."""

    def summary(self) -> str:
        """One line for the log."""
        if not self.tiles:
            return "adapt: no group the network serves, nothing fitted"
        done = f"{self.steps} steps on {self.tiles} tiles, {self.seconds:.0f} s"
        if not self.kept:
            return f"adapt: kept the shipped weights, no step predicted withheld measurements better ({done})"
        return (
            f"adapt: the network fitted to this file predicts withheld measurements with "
            f"{self.ratio:.3f}x the shipped weights' squared error (step {self.kept}; {done})"
        )


def fit_for_file(
    reader: TcsReader,
    decoder: str,
    steps: int,
    settings: DecodeSettings,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[Decoder, str | None, Adaptation | None]:
    """The decoder ``decoder`` for an open ``.tcs`` (:func:`emtcs.decoders.decoder_for`), its
    network fitted to the file by ``steps`` steps (:func:`adapt_to_file`);
    with its notice, and what the fitting did.  ``auto`` where it falls back to a decoder
    without GapUNet gets no fitting (None, said in the notice); a decoder named explicitly
    without it is an :class:`~emtcs.errors.InputError`.  ``on_step(k, steps)`` after each step."""
    from . import zoo

    if steps < 0:
        raise InputError(f"--adapt takes a number of steps >= 0 (got {steps})")
    dec, notice = decoder_for(decoder, reader.header.B, device=settings.device, **settings.decoder_options)
    if not isinstance(dec, GapUNetDecoder):
        if decoder != "auto":
            raise InputError(f"--adapt fits GapUNet's weights: decoder {decoder!r} has none (gapunet, select or auto)")
        why = f"--adapt ignored: {dec.name} has no GapUNet to fit"
        return dec, f"{notice}; {why}" if notice else why, None
    done = adapt_to_file(reader, dec, steps, on_step)
    if done.kept:
        fitted = f"{dec.weights} fitted to {reader.path.name} ({done.kept} steps)"
        serves = dec.info.get("serves", "any")
        done.weights = zoo.weights_bytes(dec.net.state_dict(), dec.info["config"], serves, fitted_to=fitted)
        dec.weights = fitted
    return dec, notice, done


def adapt_to_file(
    reader: TcsReader,
    dec: GapUNetDecoder,
    steps: int,
    on_step: Callable[[int, int], None] | None = None,
) -> Adaptation:
    """Fit ``dec``'s network to an open ``.tcs`` (:func:`file_samples` of all its groups,
    :func:`adapt`): whichever frames are then decoded, the fit is the same."""
    samples = file_samples(reader, dec, range(reader.header.n_groups))
    return adapt(dec, samples, steps, on_step=on_step)


def file_samples(
    reader: TcsReader, dec: GapUNetDecoder, groups: Sequence[int], *, tiles: int = ADAPT_TILES, tile: int = ADAPT_TILE
) -> list[Sample]:
    """Up to ``tiles`` tiles of side ``tile`` from the groups ``groups`` that the decoder
    serves, spread evenly over those groups and over each frame, normalised as the decoder
    gets them (:func:`emtcs.tiling.decoder_tiles`)."""
    import torch

    hd = reader.header
    served = [g for g in groups if (n := len(hd.group_frames(g))) > 1 and dec.info.serves(n)]
    if not served or tiles < 1:
        return []
    H, W = hd.frame_shape
    th, tw = min(tile, H), min(tile, W)
    places = [(y0, x0) for y0 in tile_starts(H, th, 0) for x0 in tile_starts(W, tw, 0)]
    # tile k: group k * len(served) // tiles, place (k * golden ratio) mod 1 of the list
    picks = [(served[k * len(served) // tiles], places[int(len(places) * ((k * 0.618034) % 1))]) for k in range(tiles)]
    if len(served) * len(places) <= tiles:
        picks = [(g, p) for g in served for p in places]
    out = []
    for g in sorted({g for g, _ in picks}):
        y = reader.measurement(g)
        masks = hd.group_masks(g)
        gain, measured = noise_gain(reader, g, y)
        pedestal = noise_pedestal(hd)
        scale = intensity_scale(y, masks, pedestal=pedestal)
        group_dec = decoder_for_group(dec, masks.nb, noise_measured=measured, noise_spread=hd.noise_spread)
        assert isinstance(group_dec, GapUNetDecoder)  # served: the same network
        for y0, x0 in sorted({p for gg, p in picks if gg == g}):
            yt, C = decoder_tiles(y, masks, slice(y0, y0 + th), [slice(x0, x0 + tw)], scale, pedestal)
            epu = torch.tensor([scale / gain], dtype=torch.float32)
            out.append(Sample(torch.from_numpy(yt), torch.from_numpy(C), epu, group_dec))
    return out


def adapt(
    dec: GapUNetDecoder,
    samples: Sequence[Sample],
    steps: int,
    *,
    lr: float = ADAPT_LR,
    fit: Callable[[str], bool] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> Adaptation:
    """Fit ``dec``'s network to ``samples`` by withheld-measurement prediction (module
    docstring), ``steps`` Adam steps, one tile at a time; the network ends with the best
    checked weights.  ``dec`` gets a network of its own first: decoders that shared its
    network keep theirs.  ``fit(name)`` says which parameters are fitted (by default
    those named in :data:`FITTED`).
    ``on_step(k, steps)`` after each step."""
    import torch

    if steps < 0:
        raise InputError(f"--adapt takes a number of steps >= 0 (got {steps})")
    t0 = time.perf_counter()
    dec.net = copy.deepcopy(dec.net)
    for s in samples:
        s.decoder.net = dec.net
    if not steps or not samples:
        return Adaptation(0, 0, 1.0, len(samples), time.perf_counter() - t0)
    shares = [_Shares(s, dec.device) for s in samples]

    def validation_error() -> float:
        with torch.no_grad():
            return float(np.mean([_error(s, dec, *sh[0]).item() for s, sh in zip(samples, shares)]))

    net = dec.net
    fit = fit or (lambda name: name.startswith(FITTED))
    fitted = [p for name, p in net.named_parameters() if fit(name)]
    first = best = validation_error()
    kept, best_state = 0, copy.deepcopy(net.state_dict())
    net.requires_grad_(False)
    for p in fitted:
        p.requires_grad_(True)
    opt = torch.optim.Adam(fitted, lr=lr)
    net.train()
    try:
        for k in range(1, steps + 1):
            i = (k - 1) % len(samples)
            loss = _error(samples[i], dec, *shares[i][1 + (k - 1) // len(samples) % (SPLITS - 1)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if k % CHECK_EVERY == 0 or k == steps:
                now = validation_error()
                if now < best:
                    best, kept, best_state = now, k, copy.deepcopy(net.state_dict())
            if on_step is not None:
                on_step(k, steps)
    finally:
        net.load_state_dict(best_state)
        net.eval()
        net.requires_grad_(False)
    return Adaptation(steps, kept, best / first if first > 0 else 1.0, len(samples), time.perf_counter() - t0)


class _Shares:
    """A tile's shares of pixels (:data:`SPLITS`, the validation share first), each as
    (share, measurement and masks without it and without the validation share, the
    decoder's GAP-TV start from them), made when first asked for."""

    def __init__(self, s: Sample, device: Any):
        import torch

        h, w = s.y.shape[-2:]
        never = torch.from_numpy(holdout_pixels((h, w)))  # select's hold-out
        part = torch.from_numpy(np.random.default_rng(1).integers(0, SPLITS, size=(h, w)))
        part[never] = -1
        self.part, self.never = part.to(device), never.to(device)
        self.y, self.C, self.epu = s.y.to(device), s.C.to(device), s.epu.to(device)
        self.start = s.decoder.start
        self.made: dict[int, tuple[Any, Any, Any, Any]] = {}

    def __getitem__(self, j: int) -> tuple[Any, Any, Any, Any]:
        import torch

        if j not in self.made:
            share = self.part == j
            off = share | (self.part == 0) | self.never
            ys, Cs = torch.where(off, 0, self.y), torch.where(off, 0, self.C)
            with torch.no_grad():
                self.made[j] = (share, ys, Cs, self.start(ys, Cs, self.epu))
        return self.made[j]


def _error(s: Sample, dec: GapUNetDecoder, share: Any, ys: Any, Cs: Any, start: Any) -> Any:
    """Mean squared error of the frames decoded without ``share`` in predicting it, in units
    of its shot-noise variance."""
    from .nets.sensing_torch import forward

    y, C, epu = s.y.to(start.device), s.C.to(start.device), s.epu.to(start.device)
    frames = dec.net.refine(ys, Cs, start, epu, spread=s.decoder.spread(len(ys)))
    err = (y - forward(frames, C))[:, share]
    noise = y[:, share].clamp(min=0).mean() / epu[0]
    return err.square().mean() / noise.clamp(min=1e-12)
