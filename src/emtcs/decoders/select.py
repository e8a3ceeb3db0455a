"""``select``: GapUNet or GAP-TV, chosen per tile by which predicts withheld measurements better.

A network can beat GAP-TV by several dB on data like its training data and lose as
much on data unlike it (docs/decoders.md).  The measurement itself can tell which
happened, without a reference: withhold a seeded 10 % of a tile's measurement pixels,
reconstruct from the rest with both decoders, and ask each to predict the withheld
pixels (:func:`emtcs.decoders.guard.holdout_score`).  The tile keeps the network's
frames unless its prediction error exceeds :data:`MARGIN` times GAP-TV's; where the two
errors are too close to tell the decoders apart (the network's at least
:data:`BLEND_FROM` times GAP-TV's), it gets a weighted mean of both frames, mostly the
network's (:data:`BLEND_WEIGHT`): two good estimates with different errors average to a
better one.

GAP-TV here is the noise-aware one (its acceleration ends at the noise level, where the
noise was measured): it predicts withheld pixels about as well as its frames are good,
so the margin is small.  Measured by ``benchmarks/select_margin.py`` on tiles apart
from the validation suite (docs/decoders.md; the phase-9 weights, projection bound 2.5):
at 1.05, choosing kept 25.69 of the 25.70 dB an oracle would on 96 training-like tiles
(GAP-TV 22.21), and all of the oracle's 28.19 dB on five unseen tiles, where a HAADF tilt
series on which GapUNet fails (-5.5 dB) scores 1.91 times GAP-TV.  Blending from 0.9
raised the mean over all 101 tiles from 25.82 to 25.89 dB and the worst loss against
GAP-TV from -0.68 dB to none.

GapUNet starts from GAP-TV (:meth:`emtcs.nets.gapunet.GapUNet.start`), so the hold-out
decodes and the tile's own cost two GapUNet decodes and one noise-aware GAP-TV: the
tile's own noise-aware GAP-TV runs only where the tile falls back to it or blends.  Both scores
share one noise normalisation, so the choice does not depend on the noise model.  The
hold-out decode is GapUNet's on the tile as it is (in its run of groups where the
groups are decoded in runs); the frames kept average its views (the
tile, its mirror images, the grid one pixel over) as the decoder's ``mirrors`` and
``shift`` say (:func:`emtcs.decoders.learned.views`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import per_tile, register
from .guard import HOLDOUT_FRACTION, holdout_pixels, prediction_error, withhold
from .learned import GapUNetDecoder

__all__ = ["SelectingDecoder", "MARGIN", "BLEND_FROM", "BLEND_WEIGHT"]

#: A tile goes to GAP-TV when GapUNet's hold-out score exceeds this many times GAP-TV's.
MARGIN = 1.05
#: Scores this close (GapUNet's from BLEND_FROM to MARGIN times GAP-TV's) do not tell the
#: decoders apart: the tile gets BLEND_WEIGHT of GapUNet's frames plus the rest of GAP-TV's.
BLEND_FROM = 0.9
BLEND_WEIGHT = 0.75


@register
class SelectingDecoder(GapUNetDecoder):
    """Per tile, GapUNet's frames or its GAP-TV start, by hold-out prediction error.

    ``tiles``, ``replaced`` and ``blended`` count the tiles seen, those given to GAP-TV and
    those blended with it (``last_gap_tv`` and ``last_blended``: which tiles of the last
    batch), ``scores`` keeps the last batch's (network, GAP-TV) hold-out scores
    (``last_holdout``: of the frames kept, NaN where not scored), and
    ``holdout`` sums the scores of the frames kept (a blended tile's from the same blend of
    the hold-out decodes) and counts them, where told the noise
    (``electrons_per_unit``): a no-reference quality figure, the RMS error with which the
    frames predict the withheld measurements in units of their noise (about 1 at best).
    """

    name = "select"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.tiles = self.replaced = self.blended = 0
        self.scores: np.ndarray = np.zeros((0, 2))
        self.holdout: tuple[float, int] = (0.0, 0)
        self.last_gap_tv = self.last_blended = np.zeros(0, dtype=bool)
        self.last_holdout = np.zeros(0)

    def decode(
        self, y: np.ndarray, masks: np.ndarray, electrons_per_unit: float | np.ndarray | None = None, run: int = 1
    ) -> np.ndarray:
        told = per_tile(electrons_per_unit, len(y))
        hold = holdout_pixels(y.shape[-2:], HOLDOUT_FRACTION)
        use_tv = blend = np.zeros(len(y), dtype=bool)
        self.last_holdout = np.full(len(y), np.nan)
        if hold.any():
            y_seen, masks_seen = withhold(y, masks, hold)
            net_h, tv_h = self._both(y_seen, masks_seen, told, single=True, run=run)
            # the shared normalisation cancels in the comparison: any positive value will do
            epu = np.ones(len(y)) if told is None else told
            self.scores = np.stack([prediction_error(y, masks, f, hold, epu) for f in (net_h, tv_h)], axis=1)
            use_tv = ~(self.scores[:, 0] <= MARGIN * self.scores[:, 1])  # a NaN score loses
            blend = ~use_tv & (self.scores[:, 0] >= BLEND_FROM * self.scores[:, 1])
            if told is not None:  # in noise units only when told the noise
                kept = np.where(use_tv, self.scores[:, 1], self.scores[:, 0])
                if blend.any():  # the blend of the hold-out decodes predicts for the blended frames
                    mixed = BLEND_WEIGHT * net_h[blend] + (1 - BLEND_WEIGHT) * tv_h[blend]
                    kept[blend] = prediction_error(y[blend], masks[blend], mixed, hold, epu[blend])
                self.last_holdout = np.where(np.isfinite(kept), kept, np.nan)
                kept = kept[np.isfinite(kept)]
                self.holdout = (self.holdout[0] + float(kept.sum()), self.holdout[1] + len(kept))
        # GAP-TV from all measurements only for the tiles that fall back to it or blend
        net, tv = self._both(y, masks, told, tv_for=use_tv | blend, run=run)
        w = np.where(blend, BLEND_WEIGHT, 0.0)[use_tv | blend].reshape(-1, 1, 1, 1)
        net[use_tv | blend] = w * net[use_tv | blend] + (1 - w) * tv
        self.tiles += len(y)
        self.replaced += int(use_tv.sum())
        self.blended += int(blend.sum())
        self.last_gap_tv, self.last_blended = use_tv, blend
        return net

    def _both(
        self,
        y: np.ndarray,
        masks: np.ndarray,
        electrons_per_unit: np.ndarray | None,
        tv_for: np.ndarray | None = None,
        single: bool = False,
        run: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(GapUNet frames, GAP-TV frames) of a batch of tiles; GAP-TV's only for the tiles
        in ``tv_for`` (all when None); GapUNet's averaged over the decoder's views
        (:meth:`GapUNetDecoder.refine`), or with ``single`` one decode, of runs of ``run``
        groups.  GAP-TV's are the
        network's start, or, for a network
        that starts from the accelerated GAP-TV (the shipped weights), the noise-aware
        GAP-TV of :mod:`emtcs.decoders.gaptv` where the noise was measured: the better of
        the two classical decoders is the one to fall back to."""
        import torch

        from ..nets.gapunet import GapUNet, gap_tv

        net = self.net
        assert isinstance(net, GapUNet)  # the weights' arch was checked when they were loaded
        which = slice(None) if tv_for is None else torch.from_numpy(np.flatnonzero(tv_for)).to(self.device)
        with torch.inference_mode():
            yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(self.device)
            ct = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32)).to(self.device)
            epu = None
            if electrons_per_unit is not None:
                epu = torch.tensor(electrons_per_unit, dtype=torch.float32, device=self.device)
            start = self.start(yt, ct, epu)
            out = self.refine(yt, ct, start, epu, single, run)
            tv = start[which]
            if not net.discrepancy and self.noise_measured and epu is not None and len(tv):
                yt, ct = yt[which], ct[which]
                noise = yt.clamp(min=0).mean((-2, -1)) / epu[which]
                tv = gap_tv(yt, ct, net.gap_iterations, net.tv_weight, net.tv_iterations, noise)
            return out.float().cpu().numpy(), tv.float().cpu().numpy()

    def get_config(self) -> dict[str, Any]:
        blend = f"blend {BLEND_WEIGHT:g}:{1 - BLEND_WEIGHT:g} from {BLEND_FROM:g}"
        rule = f"hold-out {HOLDOUT_FRACTION:g}, margin {MARGIN:g}, {blend}"
        return {**super().get_config(), "rule": rule}
