"""The training loss and its terms: reconstruction error, equivariance, finish, spectrum."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..metrics import PEAK_MIN_FREQ, PEAK_PRESENT
from .config import TrainConfig
from .data import SHIFTS


def run_net(net: torch.nn.Module, batch: dict[str, torch.Tensor], run: int = 1, **kwargs: Any) -> Any:
    """The network on a batch, with the noise level and spread for networks that take them
    (and the run length for those that decode runs: only they are given one)."""
    if run > 1:
        kwargs["run"] = run
    if getattr(net, "noise_aware", False):
        kwargs["epu"] = batch["epu"]
    if getattr(net, "spread_aware", False):
        kwargs["spread"] = batch["spread"]
    return net(batch["y"], batch["C"], **kwargs)


#: Pixels along each border that the equivariance loss leaves out: the moves (:data:`~.data.SHIFTS`) wrap
#: the measurement around there.
SHIFT_MARGIN = 8


#: Scale of the "log-mse" and "rmse" losses: a typical per-sample squared error of the
#: campaign's GapUNet (normalised frames), so that their gradients are of the "mse" loss's
#: size and the clipping at norm 1 and the learning rate mean what they did.
LOG_MSE_SCALE = 4e-3


def _error(out: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor:
    """The reconstruction loss of ``out`` against ``x`` (see ``TrainConfig.loss``)."""
    if loss == "mse":
        return F.mse_loss(out.float(), x)
    per_sample = _per_sample_mse(out, x) + 1e-10
    if loss == "rmse":  # d/dm of 2 sqrt(S m) is sqrt(S / m): 1 where m is the typical S
        return 2 * torch.sqrt(LOG_MSE_SCALE * per_sample).mean()
    return LOG_MSE_SCALE * torch.log(per_sample).mean()


def _sample_weight(out: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor | float:
    """How much more than under "mse" each sample's squared error counts in ``loss``, held
    fixed: (S / m)^q with m its error, S :data:`LOG_MSE_SCALE`, q = 0, 1/2, 1 for "mse",
    "rmse", "log-mse"."""
    if loss == "mse":
        return 1.0
    ratio = LOG_MSE_SCALE / (_per_sample_mse(out, x).detach() + 1e-10)
    return ratio.sqrt() if loss == "rmse" else ratio


#: The finish's strength and the crop (px) of ``TrainConfig.finished_loss``: the median of
#: the guided finish's choices on the calibration tiles (the shipped weights' frames, 128
#: tiles; session 32), and a crop that keeps the differentiable filter's cost to about half
#: a step's (one core).
FINISHED_STRENGTH = 1.25
FINISHED_CROP = 64


def finished(out: torch.Tensor, crop: int = FINISHED_CROP) -> tuple[torch.Tensor, slice]:
    """The central ``crop`` pixels of (n, B, h, w) frames finished as ``auto`` does at
    :data:`FINISHED_STRENGTH` (differentiable; the noise estimate held fixed), and the slice
    of each axis they come from."""
    from ..finish import H_RATIO, TEMPORAL, noise_sigma, nonlocal_means

    n, B, h, w = out.shape
    size = min(crop, h, w)
    start = (min(h, w) - size) // 2
    part = slice(start, start + size)
    with torch.autocast(out.device.type, enabled=False):
        frames = out[..., part, part].float().reshape(n * B, size, size)
        sigma = FINISHED_STRENGTH * noise_sigma(frames.detach()).clamp(min=1e-6)
        done = nonlocal_means(frames, sigma, H_RATIO * sigma, group=B, temporal=TEMPORAL)
    return done.reshape(n, B, *done.shape[-2:]), part


def _per_sample_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).square().flatten(1).mean(dim=1)


def edge_scale(B: int, edge_weight: float) -> torch.Tensor:
    """(1, B, 1, 1) factors on a group's frames that weigh its first and last frames'
    squared errors ``edge_weight`` times the others' (``TrainConfig.edge_weight``), the mean
    weight 1."""
    w = torch.ones(B)
    w[0] = w[-1] = edge_weight
    return (w / w.mean()).sqrt().reshape(1, B, 1, 1)


def spectral_excess(
    out: torch.Tensor, x: torch.Tensor, margin: float = TrainConfig.spectral_margin, frame: int | None = None
) -> torch.Tensor:
    """Per sample, how much more strongly the frames ``out`` (n, B, h, w) show spectral peaks
    than the truth ``x``.  A bin's contrast is its log power (mean removed, Hann taper, as
    :func:`emtcs.metrics.peak_contrast`) less the mean log power of the 9 x 9 bins around it
    (held fixed for ``out``: the gradient only lowers the peak); the excess is how far
    ``out``'s contrast rises over ``margin`` times the larger of the truth's
    highest within 2 bins and :data:`~emtcs.metrics.PEAK_PRESENT` (scaled by the frames' area
    over ``frame`` squared where that is given), squared, summed over the bins from
    :data:`~emtcs.metrics.PEAK_MIN_FREQ` to Nyquist and averaged over the frames."""
    n, B, h, w = out.shape
    dev = out.device
    taper = torch.outer(torch.hann_window(h, periodic=False), torch.hann_window(w, periodic=False)).to(dev)
    fy, fx = torch.fft.fftfreq(h, device=dev)[:, None], torch.fft.fftfreq(w, device=dev)[None, :]
    radius = torch.sqrt(fy**2 + fx**2)
    band = (radius >= PEAK_MIN_FREQ) & (radius <= 0.5)

    def log_contrast(frames: torch.Tensor) -> torch.Tensor:
        f = frames.float().reshape(n * B, 1, h, w)
        power = torch.fft.fft2((f - f.mean((-2, -1), keepdim=True)) * taper).abs().square()
        log_power = torch.log(power + 1e-8 * power.detach().amax((-2, -1), keepdim=True) + 1e-30)
        around = F.avg_pool2d(F.pad(log_power.detach(), (4, 4, 4, 4), mode="circular"), 9, stride=1)
        return log_power - around

    with torch.autocast(dev.type, enabled=False):
        with torch.no_grad():
            near = F.max_pool2d(F.pad(log_contrast(x), (2, 2, 2, 2), mode="circular"), 5, stride=1)
        floor = PEAK_PRESENT * (h * w / frame**2 if frame else 1.0)
        bar = near.clamp(min=math.log(floor)) + math.log(margin)
        excess = F.relu(log_contrast(out) - bar) * band
        return excess.square().sum((-2, -1)).reshape(n, B).mean(1)


def _pull(loss: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Per sample, the norm of ``loss``'s gradient with respect to its frames ``out``."""
    (grad,) = torch.autograd.grad(loss, out, retain_graph=True)
    return grad.float().flatten(1).norm(dim=1)


class _BoundedPull(torch.autograd.Function):
    """The identity, whose backward pass scales each sample's gradient down to at most
    ``bound`` (one per sample) in norm: a term so wrapped pulls a sample's frames no harder
    than the bound, whatever its own scale."""

    @staticmethod
    def forward(ctx: Any, out: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(bound)
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (bound,) = ctx.saved_tensors
        norm = grad.float().flatten(1).norm(dim=1).clamp(min=1e-30)
        scale = (bound / norm).clamp(max=1.0).to(grad.dtype)
        return grad * scale.reshape(-1, *([1] * (grad.dim() - 1))), None


def training_loss(
    net: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    cfg: TrainConfig,
    shift: tuple[int, int] = SHIFTS[0],
    run: int = 1,
) -> torch.Tensor:
    """The training loss of one batch under ``cfg``'s task and loss terms; ``shift``: the
    equivariance term's move, ``run``: the batch's run length (:class:`~.data.Step`)."""
    kind = cfg.loss
    if cfg.task == "denoise":  # pretraining the denoiser inside the network on the noisy frames
        denoised = net.denoise(batch["noisy"], batch["epu"], batch["spread"])  # type: ignore[operator]
        return _error(denoised, batch["x"], kind)
    # a network with a fixed start (GapUNet's GAP-TV) computes it once for both decodes
    start = None
    if cfg.equivariance > 0 and hasattr(net, "start"):
        start = net.start(batch["y"], batch["C"], batch["epu"])
    if start is not None:
        final, extra = net.refine(batch["y"], batch["C"], start, batch["epu"], True, batch["spread"], run=run)
    else:
        final, extra = run_net(net, batch, run, return_all=True)
    w = edge_scale(final.shape[1], cfg.edge_weight).to(final.device)
    loss = _error(final * w, batch["x"] * w, kind)
    inter = extra if isinstance(extra, list) else [extra]
    if inter:
        loss = loss + 0.5 * sum(_error(o * w, batch["x"] * w, kind) for o in inter) / len(inter)
    if cfg.equivariance > 0:
        penalty = shift_penalty(net, batch, final, shift, start, run)
        # each sample's penalty weighed as its error is
        loss = loss + cfg.equivariance * (penalty * _sample_weight(final, batch["x"], kind)).mean()
    if cfg.finished_loss > 0:
        done, part = finished(final)
        loss = loss + cfg.finished_loss * _error(done, batch["x"][..., part, part], kind)
    if cfg.spectral_weight > 0:
        # a log contrast's gradient grows as the spectrum's amplitude falls: unbounded (0.01
        # times the term), one well-denoised sample outpulled the batch's errors 150 times
        bound = cfg.spectral_weight * _pull(loss, final)  # the other terms' pull on the frames
        loss = (
            loss
            + spectral_excess(
                _BoundedPull.apply(final, bound), batch["x"], cfg.spectral_margin, cfg.spectral_frame
            ).mean()
        )
    return loss


def shift_penalty(
    net: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    out: torch.Tensor,
    shift: tuple[int, int],
    start: torch.Tensor | None = None,
    run: int = 1,
) -> torch.Tensor:
    """Per sample, the mean squared difference between ``out`` and the network's output for
    the measurement moved by ``shift`` pixels and moved back, away from the borders.  The moved decode runs
    without gradients (one more forward pass per step, no backward pass): the penalty pulls
    ``out`` towards it, and the moves drawn at random make that symmetric.  Given the
    parameter-free ``start`` of ``out``'s decode, the moved decode refines that start, moved,
    instead of computing its own: only the learned part has to move with the data."""
    dims = (-2, -1)
    y, C = torch.roll(batch["y"], shift, dims), torch.roll(batch["C"], shift, dims)
    with torch.no_grad():
        if start is not None:
            moved = net.refine(y, C, torch.roll(start, shift, dims), batch["epu"], spread=batch["spread"], run=run)
        else:
            moved = run_net(net, {**batch, "y": y, "C": C}, run)
    back = torch.roll(moved, (-shift[0], -shift[1]), dims)
    m = SHIFT_MARGIN
    return _per_sample_mse(out[..., m:-m, m:-m], back[..., m:-m, m:-m])
