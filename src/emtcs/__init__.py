"""emtcs: temporal compressive sensing for electron-microscopy movies.

Encode groups of B frames into one coded measurement each (``compress``), store them
in a ``.tcs`` file, and reconstruct the frames later (``decompress``) with GAP-TV or a
learned decoder.  Importing emtcs and encoding need no torch.
"""

from ._version import __version__
from .codec import compress, decompress, reconstruct
from .container import TcsReader
from .container import open_tcs as open
from .decoders import available_decoders, get_decoder
from .errors import (
    DecoderError,
    EmtcsError,
    FormatError,
    InputError,
    OutputError,
    OutputExistsError,
)
from .sensing import encode, masks

__all__ = [
    "__version__",
    "compress",
    "decompress",
    "reconstruct",
    "open",
    "TcsReader",
    "encode",
    "masks",
    "available_decoders",
    "get_decoder",
    "EmtcsError",
    "InputError",
    "FormatError",
    "OutputError",
    "OutputExistsError",
    "DecoderError",
]
