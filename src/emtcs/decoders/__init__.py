"""Decoders: classical and learned reconstructions behind one interface."""

from __future__ import annotations

from typing import Any

from ..errors import DecoderError
from . import gaptv, learned  # noqa: F401  (register "gaptv", "tcsdl", "gapnet")
from .base import Decoder, available_decoders, decoder_class, get_decoder, register

__all__ = ["Decoder", "available_decoders", "get_decoder", "register", "decoder_for", "AUTO_ORDER"]

#: Learned decoders in the order ``auto`` tries them, best first (docs/benchmarks.md).
AUTO_ORDER = ("gapnet", "tcsdl")


def decoder_for(name: str, B: int, *, device: str = "auto", **options: Any) -> tuple[Decoder, str | None]:
    """The decoder to use for groups of ``B`` frames, and a one-line notice if ``auto`` fell back.

    ``auto`` takes the first learned decoder of :data:`AUTO_ORDER` whose weights serve
    ``B``, else GAP-TV.  ``device`` applies to learned decoders; GAP-TV runs on the CPU.
    """
    if name == "auto":
        if not learned.torch_available():
            return get_decoder("gaptv", **options), "PyTorch is not installed: decoding with GAP-TV"
        from .. import zoo

        for arch in AUTO_ORDER:
            if zoo.find_weights(arch, B) is not None:
                return get_decoder(arch, B=B, device=device, **options), None
        return get_decoder("gaptv", **options), f"no learned weights serve B={B}: decoding with GAP-TV"
    if issubclass(decoder_class(name), learned.LearnedDecoder):
        return get_decoder(name, B=B, device=device, **options), None
    if device == "cuda":
        raise DecoderError(f"decoder {name!r} runs on the CPU only; --device cuda applies to learned decoders")
    return get_decoder(name, **options), None
