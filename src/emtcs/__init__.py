"""emtcs: temporal compressive sensing for electron-microscopy movies.

Encode groups of B frames into one coded measurement each (``compress``), store them
in a ``.tcs`` file, and reconstruct the frames later (``decompress``) with GAP-TV or a
learned decoder.  Importing emtcs and encoding need no torch.

The names below are imported when first used, so ``import emtcs`` itself is light (the
command line starts by importing it, and a Ctrl-C then is answered without a traceback).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # what the names below are, for type checkers (``X as X``: re-exported)
    from .codec import compress as compress
    from .codec import decompress as decompress
    from .codec import read_frames as read_frames
    from .codec import reconstruct as reconstruct
    from .codec import verify as verify
    from .container import TcsReader as TcsReader
    from .container import open_tcs as open  # noqa: F401
    from .decoders import available_decoders as available_decoders
    from .decoders import get_decoder as get_decoder
    from .errors import DecoderError as DecoderError
    from .errors import EmtcsError as EmtcsError
    from .errors import FormatError as FormatError
    from .errors import InputError as InputError
    from .errors import OutputError as OutputError
    from .errors import OutputExistsError as OutputExistsError
    from .quicklook import preview as preview
    from .sensing import encode as encode
    from .sensing import masks as masks

#: public name -> (module, name there)
_LAZY: dict[str, tuple[str, str]] = {
    **{name: (".codec", name) for name in ("compress", "decompress", "read_frames", "reconstruct", "verify")},
    "open": (".container", "open_tcs"),
    "TcsReader": (".container", "TcsReader"),
    **{name: (".decoders", name) for name in ("available_decoders", "get_decoder")},
    **{
        name: (".errors", name)
        for name in ("EmtcsError", "InputError", "FormatError", "OutputError", "OutputExistsError", "DecoderError")
    },
    **{name: (".sensing", name) for name in ("encode", "masks")},
    "preview": (".quicklook", "preview"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'emtcs' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
