"""Decoders: classical and learned reconstructions behind one interface."""

from .base import Decoder, available_decoders, get_decoder, register
from . import gaptv  # noqa: F401  (registers "gaptv")

__all__ = ["Decoder", "available_decoders", "get_decoder", "register"]
