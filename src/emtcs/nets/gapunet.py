"""GapUNet: GAP-TV, then unfolded GAP stages with a learned spatio-temporal U-Net correction.

The network starts where the classical decoder ends and learns only what it misses:

1. GAP-TV (accelerated GAP with Chambolle TV, as :mod:`emtcs.decoders.gaptv`, fixed
   iteration counts, no parameters); with ``discrepancy``, told the noise, the acceleration
   stops once the residual has fallen to the noise, as in that decoder.
2. ``stages`` unfolded GAP stages.  Each projects the estimate towards the measurement
   with a learned step, then adds a correction from one multiscale U-Net shared by all
   frames and stages.  The U-Net sees each frame with its temporal neighbours, the mean
   of the group, its mask, the back-projected residual and the noise level, all on a
   variance-stabilised scale (square root with the Poisson offset), so one set of weights
   serves any dose; with ``temporal``, the frames also exchange features at its two
   coarse scales, and with ``fine_temporal`` at its finest (half the tile's resolution),
   where the frames' departures from each other are a pixel or two.  The steps and the
   U-Net's last layer start at zero: an untrained GapUNet *is* GAP-TV, and training can
   only add to it.  Each stage's correction has a learned gate (1 to start with), so that
   stages can be added to trained weights closed (:func:`emtcs.training.grow.deepened`).
3. A projection on the measurement: wherever the residual ``Y - sum_b C_b X_b`` exceeds
   ``kappa`` times the pixel's shot noise, the excess is put back into the frames, so no
   correction leaves the data by more than the noise.  ``kappa`` = 2.5 was chosen on
   tiles the suite does not use (``benchmarks/projection_bound.py``): a tighter bound
   pulls denoised frames back towards the noisy measurement at low dose.

The noise level comes in as ``epu``: electrons per normalised intensity unit, one per
tile (the decoder knows it from the file's gain and the tile's intensity scale); how much
of the noise is spread over neighbouring pixels (a scintillator camera's) as ``spread``,
one per tile: 1 less the share of the noise a 3 x 3 Laplacian sees (0 for white noise,
:func:`emtcs.noise.noise_spread`).  The spread scales and shifts the U-Net's features at
every scale (:class:`SpreadConditioning`), which does nothing for white noise: weights
trained on white noise alone, and older files without these parameters, decode white
noise exactly as before, and training them alone (``emtcs train --only spread``) cannot
change how white noise is decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .sensing_torch import adjoint as At
from .sensing_torch import forward as A
from .sensing_torch import mask_sum

__all__ = ["GapUNet", "UNet", "gap_tv", "tv_denoise"]


#: Elements per piece when TV-denoising on the CPU: the dozen passes of an iteration over
#: pieces of about 1 MB per buffer, which stay in cache, ran 2.2-2.4 times faster than over
#: a whole batch (256 x 256 and 48 x 48 frames, one core of an AMD EPYC); the frames are
#: independent, so the result is the same.
CPU_PIECE = 1 << 18


@torch.no_grad()
def tv_denoise(x: torch.Tensor, weight: float, iterations: int) -> torch.Tensor:
    """Chambolle's isotropic TV denoising of every frame of ``x`` (..., h, w), fixed iterations.

    The dual iteration of :func:`emtcs.decoders.gaptv.tv_denoise` without its early stop.
    On the CPU, a few frames at a time (:data:`CPU_PIECE`).
    """
    h, w = x.shape[-2:]
    if x.device.type != "cpu" or x.numel() <= CPU_PIECE:
        return _tv_denoise(x, weight, iterations)
    frames = x.reshape(-1, h, w)
    step = max(1, CPU_PIECE // (h * w))
    out = torch.empty_like(frames)
    for i in range(0, len(frames), step):
        out[i : i + step] = _tv_denoise(frames[i : i + step], weight, iterations)
    return out.reshape(x.shape)


def _tv_denoise(x: torch.Tensor, weight: float, iterations: int) -> torch.Tensor:
    """:func:`tv_denoise` in one piece.  It works in place in buffers of its own (the GAP-TV
    start is a fixed function: no gradients flow through it): about 2.5 times faster than a
    fresh tensor for every step."""
    tau = 0.25
    p0, p1 = torch.zeros_like(x), torch.zeros_like(x)
    # forward differences; the last row of g0 and the last column of g1 stay zero
    g0, g1 = torch.zeros_like(x), torch.zeros_like(x)
    norm, out = torch.empty_like(x), x
    for i in range(iterations):
        if i > 0:  # x minus the divergence of p (backward differences)
            if out is x:
                out = torch.empty_like(x)
            torch.sub(x, p0, out=out).sub_(p1)
            out[..., 1:, :] += p0[..., :-1, :]
            out[..., :, 1:] += p1[..., :, :-1]
        if i == iterations - 1:
            break
        torch.sub(out[..., 1:, :], out[..., :-1, :], out=g0[..., :-1, :])
        torch.sub(out[..., :, 1:], out[..., :, :-1], out=g1[..., :, :-1])
        # |g|: about 2.6 times faster than torch.hypot (one core of an Intel Xeon; differences
        # of values of order 1 neither overflow nor underflow when squared)
        torch.mul(g0, g0, out=norm).addcmul_(g1, g1).sqrt_().mul_(tau / weight).add_(1.0)
        p0.add_(g0, alpha=-tau).div_(norm)
        p1.add_(g1, alpha=-tau).div_(norm)
    return out


def gap_tv(
    y: torch.Tensor,
    C: torch.Tensor,
    iterations: int = 40,
    tv_weight: float = 0.3,
    tv_iterations: int = 5,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Accelerated GAP-TV on a batch: ``y`` (n, h, w), ``C`` (n, B, h, w) -> (n, B, h, w).

    ``noise``: each tile's measurement noise variance (n,); a tile stops accelerating once
    its mean squared residual has fallen to it (:func:`emtcs.decoders.gaptv.gap_tv`).
    """
    csum = mask_sum(C)
    x = At(y, C)
    y_acc = torch.zeros_like(y)
    accelerating = torch.ones(len(y), 1, 1, dtype=torch.bool, device=y.device)
    for _ in range(iterations):
        yb = A(x, C)
        if noise is not None:
            accelerating = accelerating & ((y - yb).square().mean((-2, -1)) > noise).reshape(-1, 1, 1)
        y_acc = torch.where(accelerating, y_acc + (y - yb), y_acc)
        target = torch.where(accelerating, y_acc, y)
        x = x + At((target - yb) / csum, C)
        x = tv_denoise(x, tv_weight, tv_iterations)
    return x


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
    )


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class TemporalMix(nn.Module):
    """Lets every frame's features see the whole group: a temporal convolution over the
    frame and its two neighbours plus the group's mean feature, added back through a layer
    that starts at zero (so adding it to trained weights leaves their output unchanged).
    With ``run`` > 1, the groups of the batch are runs of ``run`` consecutive groups, and the
    convolution runs across the boundaries inside a run (the group mean stays each group's own)."""

    def __init__(self, width: int):
        super().__init__()
        self.time = nn.Conv3d(width, width, (3, 1, 1))
        self.group = nn.Conv2d(width, width, 1)
        self.out = nn.Conv2d(width, width, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, f: torch.Tensor, frames: int, run: int = 1) -> torch.Tensor:
        nb, c, h, w = f.shape
        g = f.reshape(nb // frames, frames, c, h, w)
        runs = f.reshape(nb // (frames * run), frames * run, c, h, w)
        t = self.time(F.pad(runs.transpose(1, 2), (0, 0, 0, 0, 1, 1), mode="replicate")).transpose(1, 2)
        m = self.group(g.mean(1))[:, None]
        return f + self.out(F.leaky_relu((t.reshape(g.shape) + m).reshape(nb, c, h, w), 0.1))


class SpreadConditioning(nn.Module):
    """Features ``f`` scaled and shifted channel by channel in proportion to the noise's
    spread ``s`` (one per input): ``f (1 + s g) + s b``, with ``g`` and ``b`` starting at
    zero.  For white noise (``s`` = 0) it is the identity, exactly."""

    def __init__(self, width: int):
        super().__init__()
        self.gain = nn.Parameter(torch.zeros(width))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, f: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        if s is None:
            return f
        s = s.reshape(-1, 1, 1, 1).to(f.dtype)
        return f * (1 + s * self.gain.reshape(1, -1, 1, 1).to(f.dtype)) + s * self.bias.reshape(1, -1, 1, 1).to(f.dtype)


class UNet(nn.Module):
    """A small U-Net on a 2x2 pixel-unshuffled input: three scales (1/2, 1/4, 1/8 of the
    frame), widths ``width``, 2x and 3x, bilinear upsampling; the output layer starts at zero.

    With ``temporal``, the frames of a group (consecutive inputs, ``frames`` at a time)
    exchange features at the two coarse scales (:class:`TemporalMix`), with ``fine_temporal``
    also the encoder's features at the finest scale, before they go down and across.  Each scale's
    encoder and decoder features are conditioned on the noise's spread
    (:class:`SpreadConditioning`), one number per input or None (white noise).

    The unshuffle makes the output depend on where a feature falls on the 2 x 2 pixel grid
    (``benchmarks/grid_alias.py``).  With ``head`` > 0, a full-resolution head of that width,
    which has no grid, sees the output beside the input and adds a correction; its last
    layer starts at zero, so a head added to trained weights leaves their output unchanged."""

    def __init__(
        self, cin: int, cout: int, width: int, temporal: bool = False, head: int = 0, fine_temporal: bool = False
    ):
        super().__init__()
        w1, w2, w3 = width, 2 * width, 3 * width
        self.enc1 = _block(4 * cin, w1)
        self.down1 = nn.Conv2d(w1, w2, 2, stride=2)
        self.enc2 = _block(w2, w2)
        self.down2 = nn.Conv2d(w2, w3, 2, stride=2)
        self.mid = _block(w3, w3)
        # bilinear upsampling then a 1 x 1 convolution: a stride-2 transposed convolution here
        # printed a 4-pixel grid into the frames (spectral peaks the truth lacks)
        self.up2 = nn.Conv2d(w3, w2, 1)
        self.dec2 = _block(2 * w2, w2)
        self.up1 = nn.Conv2d(w2, w1, 1)
        self.dec1 = _block(2 * w1, w1)
        self.out = nn.Conv2d(w1, 4 * cout, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.head: nn.Sequential | None = None
        if head:
            self.head = nn.Sequential(
                nn.Conv2d(cin + cout, head, 3, padding=1),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(head, cout, 3, padding=1),
            )
            nn.init.zeros_(self.head[2].weight)
            nn.init.zeros_(self.head[2].bias)
        self.mix1 = TemporalMix(w1) if fine_temporal else None
        self.mix2 = TemporalMix(w2) if temporal else None
        self.mix3 = TemporalMix(w3) if temporal else None
        scales = {"enc1": w1, "enc2": w2, "mid": w3, "dec2": w2, "dec1": w1}
        self.spread = nn.ModuleDict({name: SpreadConditioning(c) for name, c in scales.items()})

    def forward(
        self, x: torch.Tensor, frames: int = 1, spread: torch.Tensor | None = None, run: int = 1
    ) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8  # three halvings
        c = self.spread

        # channels-last (NHWC) features, which the convolutions keep: on one core of an AMD
        # EPYC a 256 x 256 x 10 tile's stages ran 1.2x and a training step 1.3x faster than
        # in NCHW (session 22)
        def encode1(x: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            return c["enc1"](self.enc1(F.pixel_unshuffle(x, 2).contiguous(memory_format=torch.channels_last)), s)

        def encode2(e1: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
            return c["enc2"](self.enc2(self.down1(e1)), s)

        def decode(
            m: torch.Tensor, e2: torch.Tensor, e1: torch.Tensor, given: torch.Tensor, s: torch.Tensor | None
        ) -> torch.Tensor:
            d2 = c["dec2"](self.dec2(torch.cat([self.up2(_upsample(m)), e2], 1)), s)
            d1 = c["dec1"](self.dec1(torch.cat([self.up1(_upsample(d2)), e1], 1)), s)
            out = F.pixel_shuffle(self.out(d1), 2)[..., :h, :w].contiguous()
            if self.head is not None:
                both = torch.cat([out, given], 1).contiguous(memory_format=torch.channels_last)
                out = out + self.head(both).contiguous()
            return out

        # only the temporal mixing joins frames: on the CPU everything else runs a group at a
        # time, whose features stay in cache (a run of 8 groups of 10 256 x 256 frames: 1.45x
        # the time of its groups one by one in one piece, 1.25x a group at a time; session 35)
        piece = frames if x.device.type == "cpu" else len(x)
        e1 = _in_pieces(encode1, piece, x, spread)
        if self.mix1 is not None:
            e1 = self.mix1(e1, frames, run)
        e2 = _in_pieces(encode2, piece, e1, spread)
        if self.mix2 is not None:
            e2 = self.mix2(e2, frames, run)
        m = _in_pieces(lambda e2, s: c["mid"](self.mid(self.down2(e2)), s), piece, e2, spread)
        if self.mix3 is not None:
            m = self.mix3(m, frames, run)
        return _in_pieces(decode, piece, m, e2, e1, x, spread)


def _in_pieces(fn: Callable[..., Any], piece: int, *tensors: torch.Tensor | None) -> Any:
    """``fn`` of ``tensors`` (None passes as is), ``piece`` inputs at a time, the results
    joined along the first axis (a tuple of results joined element by element)."""
    n = len(next(t for t in tensors if t is not None))
    if piece >= n:
        return fn(*tensors)
    parts = [fn(*(t if t is None else t[i : i + piece] for t in tensors)) for i in range(0, n, piece)]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(p) for p in zip(*parts))
    return torch.cat(parts)


class GapUNet(nn.Module):
    """GAP-TV start, ``stages`` unfolded GAP + U-Net corrections, projection on the measurement."""

    #: the decoder passes the noise level (``epu``) to networks that set this...
    noise_aware = True
    #: ...and the noise's spread (``spread``)
    spread_aware = True
    #: parameters that weights to start from (``--init``) may lack: they start with no effect
    optional_parts = ("unet.mix1.", "unet.mix2.", "unet.mix3.", "unet.spread.", "unet.head.")
    #: weights whose input channels are two equal-width feature maps side by side (the
    #: U-Net's skip connections), for starting a wider network from narrower weights
    concatenated_inputs = ("unet.dec2.0.weight", "unet.dec1.0.weight")
    #: parameters with one number per stage (``emtcs train --stage-lr``)
    per_stage = ("step", "gate")
    _CHANNELS = 8  # u_{b-1}, u_b, u_{b+1}, group mean of u, C_b, back-projected residual, noise, stage

    def __init__(
        self,
        stages: int = 2,
        width: int = 24,
        gap_iterations: int = 40,
        tv_weight: float = 0.3,
        tv_iterations: int = 5,
        kappa: float = 2.5,
        discrepancy: bool = False,
        temporal: bool = False,
        head: int = 0,
        fine_temporal: bool = False,
    ):
        super().__init__()
        self.stages = stages
        self.gap_iterations, self.tv_weight, self.tv_iterations = gap_iterations, tv_weight, tv_iterations
        self.kappa = kappa
        self.discrepancy = discrepancy
        self.unet = UNet(self._CHANNELS, 1, width, temporal, head, fine_temporal)
        self.step = nn.Parameter(torch.zeros(stages))
        #: how much of each stage's correction is added: 1, except in stages added to trained
        #: weights of fewer stages, which start at 0 (:func:`emtcs.training.grow.deepened`)
        self.gate = nn.Parameter(torch.ones(stages))
        #: the stage code the U-Net is told, (k + 1) / stages, or the one a stage had in the
        #: weights it came from
        self.register_buffer("code", torch.arange(1, stages + 1, dtype=torch.float32) / stages)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        # weights saved before stages had gates and codes (every file up to session 23)
        for name, default in (("gate", self.gate), ("code", self.code)):
            state_dict.setdefault(prefix + name, default.detach().clone())
        # ...and before the spread conditioned the features (up to session 27): none
        for name, value in self.unet.spread.state_dict(prefix=prefix + "unet.spread.").items():
            state_dict.setdefault(name, torch.zeros_like(value))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self,
        y: torch.Tensor,
        C: torch.Tensor,
        epu: torch.Tensor | None = None,
        return_all: bool = False,
        spread: torch.Tensor | None = None,
        run: int = 1,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Frames (n, B, h, w) of the tiles' measurements ``y`` (n, h, w) and masks ``C``.
        With ``run`` > 1, the n groups are n / run runs of ``run`` consecutive groups in time
        at one tile position: inside a run, each group's first and last frames see the
        frames beside them in the groups before and after, as its other frames see theirs
        (``benchmarks/group_context.py``)."""
        return self.refine(y, C, self.start(y, C, epu), epu, return_all, spread, run)

    def start(self, y: torch.Tensor, C: torch.Tensor, epu: torch.Tensor | None = None) -> torch.Tensor:
        """The GAP-TV reconstruction the stages start from (no parameters: equal to GAP-TV;
        with ``discrepancy`` and the noise level ``epu``, the noise-aware GAP-TV)."""
        noise = None
        if self.discrepancy and epu is not None:
            noise = y.clamp(min=0).mean((-2, -1)) / epu.reshape(-1).to(y.dtype)
        with torch.no_grad():
            return gap_tv(y, C, self.gap_iterations, self.tv_weight, self.tv_iterations, noise)

    def denoise(self, x: torch.Tensor, epu: torch.Tensor, spread: torch.Tensor | None = None) -> torch.Tensor:
        """The U-Net as a plain denoiser of noisy frames ``x`` (n, B, h, w): its context as
        in a stage with every pixel measured and nothing left to fit (masks of ones, zero
        residual).  Pretraining it this way needs no masks and no GAP; the unfolded
        network then starts from a denoiser that has seen the data (:func:`emtcs.training.train`,
        ``task="denoise"``)."""
        n, B, h, w = x.shape
        epu = epu.reshape(n, 1, 1, 1).to(x.dtype)
        u = torch.sqrt(x.clamp(min=0) + 3.0 / (8.0 * epu))
        inp = self._context(u, torch.ones_like(u), torch.zeros_like(u), 0.5 / torch.sqrt(epu), self.stages - 1)
        return x + self.unet(inp, B, _per_frame(spread, B)).reshape(n, B, h, w)

    def _context(
        self, u: torch.Tensor, C: torch.Tensor, r: torch.Tensor, sigma_u: torch.Tensor, k: int, run: int = 1
    ) -> torch.Tensor:
        """The U-Net's input at stage ``k``: each frame on the sqrt scale with its neighbours
        (across the groups' boundaries inside a ``run``), the group mean, its mask, the
        residual, the noise level and the stage."""
        n, B, h, w = u.shape
        runs = u.reshape(n // run, run * B, h, w)
        prev = torch.cat([runs[:, :1], runs[:, :-1]], 1).reshape(u.shape)
        nxt = torch.cat([runs[:, 1:], runs[:, -1:]], 1).reshape(u.shape)
        ctx = [
            prev,
            u,
            nxt,
            u.mean(1, keepdim=True).expand_as(u),
            C,
            r,
            sigma_u.expand_as(u),
            self.code[k].to(u.dtype).expand_as(u),
        ]
        return torch.stack(ctx, 2).reshape(n * B, self._CHANNELS, h, w)

    def refine(
        self,
        y: torch.Tensor,
        C: torch.Tensor,
        x: torch.Tensor,
        epu: torch.Tensor | None = None,
        return_all: bool = False,
        spread: torch.Tensor | None = None,
        run: int = 1,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """The unfolded stages and the final projection, from the start ``x`` (``run``: as
        :meth:`forward`)."""
        n, B, h, w = C.shape
        if run < 1 or n % run:
            raise ValueError(f"{n} groups are not runs of {run}")
        if epu is None:  # no noise model: assume a modest dose of ~100 electrons per unit
            epu = y.new_full((n,), 100.0)
        epu = epu.reshape(n, 1, 1, 1).to(y.dtype)
        csum = mask_sum(C)
        offset = 3.0 / (8.0 * epu)
        sigma_u = 0.5 / torch.sqrt(epu)  # noise of sqrt(x + 3/(8 epu)) for Poisson counts
        spread = _per_frame(spread, B)
        outs = []
        for k in range(self.stages):
            r = (y - A(x, C)) / csum
            x = x + self.step[k] * At(r, C)
            u = torch.sqrt(x.clamp(min=0) + offset)
            residual = At(r, C) / (2 * u)  # on the same sqrt scale
            inp = self._context(u, C, residual, sigma_u, k, run)
            x = x + self.gate[k] * self.unet(inp, B, spread, run).reshape(n, B, h, w)
            outs.append(x)
        x = self.project(x, y, C, csum, epu)
        return (x, outs) if return_all else x

    def project(
        self, x: torch.Tensor, y: torch.Tensor, C: torch.Tensor, csum: torch.Tensor, epu: torch.Tensor
    ) -> torch.Tensor:
        """Put back the part of each pixel's residual beyond ``kappa`` times its shot noise."""
        r = y - A(x, C)
        bound = self.kappa * torch.sqrt(y.clamp(min=0) / epu[:, 0])
        excess = r - torch.maximum(torch.minimum(r, bound), -bound)
        return x + At(excess / csum, C)


def _per_frame(spread: torch.Tensor | None, frames: int) -> torch.Tensor | None:
    """The noise's spread, one per tile (n,), repeated for each of its ``frames`` (the
    U-Net's inputs); None (white noise) stays None."""
    return None if spread is None else spread.reshape(-1).repeat_interleave(frames)
