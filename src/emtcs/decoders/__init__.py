"""Decoders: classical and learned reconstructions behind one interface."""

from __future__ import annotations

import copy
import inspect
from typing import Any

from ..errors import DecoderError
from . import gaptv, learned, select  # noqa: F401  (register "gaptv", "tcsdl", "gapnet", "gapunet", "select")
from .base import Decoder, Unmasked, available_decoders, decoder_class, get_decoder, register

__all__ = [
    "Decoder",
    "available_decoders",
    "get_decoder",
    "register",
    "decoder_for",
    "resolve_decoder",
    "is_learned",
    "AUTO_ORDER",
    "decoder_for_group",
    "for_noise",
]

#: Learned decoders in the order ``auto`` tries them, best first (docs/benchmarks.md):
#: ``select`` (GapUNet or GAP-TV per tile, by hold-out score) needs GapUNet weights.
AUTO_ORDER = ("select", "tcsdl", "gapnet")


def resolve_decoder(name: str, B: int, *, device: str = "auto") -> tuple[str, str | None]:
    """The registered decoder ``name`` stands for with groups of ``B`` frames, without building it,
    and a one-line notice if ``auto`` fell back to GAP-TV.

    ``auto`` takes the first learned decoder of :data:`AUTO_ORDER` whose weights serve
    ``B``, else GAP-TV.  Raises :class:`DecoderError` for an unknown name, or for
    ``device="cuda"`` with a CPU-only decoder.
    """
    if name == "auto":
        missing = learned.missing_for_networks()
        if missing:
            return "gaptv", f"{missing} does not import here (pip install {missing}): decoding with GAP-TV"
        from .. import zoo

        for candidate in AUTO_ORDER:
            if zoo.find_weights(getattr(decoder_class(candidate), "arch", candidate), B) is not None:
                return candidate, None
        return "gaptv", f"no learned weights serve B={B}: decoding with GAP-TV"
    if not is_learned(name) and device == "cuda":
        raise DecoderError(f"decoder {name!r} runs on the CPU only; --device cuda applies to learned decoders")
    return name, None


def is_learned(name: str) -> bool:
    """Whether the registered decoder ``name`` is a network (takes ``B`` and ``device``)."""
    return issubclass(decoder_class(name), learned.LearnedDecoder)


def decoder_for(name: str, B: int, *, device: str = "auto", **options: Any) -> tuple[Decoder, str | None]:
    """The decoder to use for groups of ``B`` frames, and a one-line notice if ``auto`` fell back
    (see :func:`resolve_decoder`).  ``device`` applies to learned decoders; GAP-TV runs on the CPU.

    With ``auto``, options go to the decoder it chooses where that one takes them (e.g.
    ``mirrors`` to ``select``, not to GAP-TV), the others are named in the notice; an option
    none of auto's decoders takes is a :class:`DecoderError`.
    """
    asked = name
    name, notice = resolve_decoder(name, B, device=device)
    if asked == "auto":
        unknown = set(options) - set().union(*(_keywords(decoder_class(n)) for n in (*AUTO_ORDER, "gaptv")))
        if unknown:
            raise DecoderError(f"no decoder auto chooses takes the option(s) {', '.join(map(repr, sorted(unknown)))}")
        ignored = sorted(set(options) - _keywords(decoder_class(name)))
        if ignored:
            options = {k: v for k, v in options.items() if k not in ignored}
            note = f"{name} takes no option {', '.join(map(repr, ignored))}: ignored"
            notice = f"{notice}; {note}" if notice else note
    if is_learned(name):
        return get_decoder(name, B=B, device=device, **options), notice
    return get_decoder(name, **options), notice


def _keywords(cls: type) -> set[str]:
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def decoder_for_group(
    dec: Decoder, nb: int, *, unmasked: bool = False, noise_measured: bool = True, noise_spread: float = 0.0
) -> Decoder:
    """``dec``, or GAP-TV for a group of ``nb`` frames its weights were not trained for, or
    a copy for a frame stored ``unmasked`` (a group of one, formats/tcs.md §3).

    A learned decoder trained for B = 8..30 meets a short group of, say, 3 frames (the
    end of the movie or of a scene); outside its range it can do worse than GAP-TV,
    which serves every length.  Without ``noise_measured`` the noise level decoders are
    told is a guess, which GAP-TV's discrepancy rule must not stop at; ``noise_spread``
    is how much of the noise is spread over neighbouring pixels, which networks that take
    it are told (:func:`for_noise`).
    """
    if unmasked:
        return Unmasked()
    if isinstance(dec, learned.LearnedDecoder) and not dec.info.serves(nb):
        return gaptv.GapTV(discrepancy=noise_measured)
    return for_noise(dec, noise_measured, noise_spread)


def for_noise(dec: Decoder, measured: bool, spread: float = 0.0) -> Decoder:
    """``dec`` for a file's noise: where it was not ``measured`` (nor given) a copy that does
    not use the guessed noise level it will be told to stop GAP-TV's acceleration (GAP-TV's
    discrepancy rule off; a network's noise-aware GAP-TV start likewise); a network told
    the noise's ``spread`` over neighbouring pixels (``LearnedDecoder.noise_spread``)."""
    if not measured and isinstance(dec, gaptv.GapTV) and dec.discrepancy:
        options = {k: v for k, v in dec.get_config().items() if k != "name"}
        return gaptv.GapTV(**{**options, "discrepancy": False})
    if isinstance(dec, learned.LearnedDecoder):
        told = (dec.noise_measured and measured, spread)
        if told != (dec.noise_measured, dec.noise_spread):
            dec = copy.copy(dec)  # shares the network
            dec.noise_measured, dec.noise_spread = told
    return dec
