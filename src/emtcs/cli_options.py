"""Click options shared by several ``emtcs`` commands (``compress``, ``bench``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["device_option", "quantise_options", "quantise_settings"]


def device_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--device auto|cpu|cuda``: where learned decoders (and training) run."""
    return click.option(
        "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help=help
    )


def quantise_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--quantise SIGMA`` and ``--gain G`` (:mod:`emtcs.quantise`)."""
    command = click.option(
        "--gain",
        type=float,
        default=None,
        help="Detector gain for --quantise, in pixel values per electron [default: 1, for counting detectors].",
    )(command)
    return click.option(
        "--quantise",
        type=float,
        default=0.0,
        show_default=True,
        metavar="SIGMA",
        help="Store measurements quantised with a step of SIGMA times their shot noise (e.g. 1: about half "
        "the bytes at high dose); 0 stores them exactly. Needs a movie of counts (see --gain).",
    )(command)


def quantise_settings(quantise: float, gain: float | None) -> tuple[float, float]:
    """(step, gain) from the two options; ``--gain`` without ``--quantise`` is an error
    rather than silently ignored."""
    from .errors import InputError

    if gain is not None and not quantise:
        raise InputError("--gain applies only with --quantise (exact measurements need no gain)")
    return quantise, 1.0 if gain is None else gain
