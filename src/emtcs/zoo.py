"""Shipped and user weights for the learned decoders: lookup, saving and safe loading.

A weights file is a safetensors file (loading it executes no code) whose metadata
holds the network config (``emtcs_config``, JSON) and what the weights serve
(``emtcs_serves``: a JSON list of B values, or ``"any"``).  Shipped weights live in
the ``emtcs.models`` package (the repository's ``models/`` folder); a folder named
by the environment variable ``EMTCS_MODELS`` is searched first.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import DecoderError
from .optional import require

__all__ = ["WeightsInfo", "find_weights", "read_info", "save_weights", "load_weights", "weights_bytes"]

ENV_VAR = "EMTCS_MODELS"


class WeightsInfo(dict):
    """Metadata of a weights file: ``config``, ``serves`` and free-form provenance."""

    def serves(self, B: int) -> bool:
        s = self.get("serves", "any")
        return s == "any" or int(B) in s


def _search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    try:
        dirs.append(Path(str(resources.files("emtcs.models"))))
    except ModuleNotFoundError:
        pass
    return dirs


def find_weights(arch: str, B: int | None = None) -> Path | None:
    """The first ``<arch>*.safetensors`` in the search folders that serves ``B``."""
    for folder in _search_dirs():
        for path in sorted(folder.glob(f"{arch}*.safetensors")):
            info = read_info(path)
            if info["config"].get("arch") == arch and (B is None or info.serves(B)):
                return path
    return None


def read_info(path: str | os.PathLike[str] | bytes) -> WeightsInfo:
    """The metadata of a weights file (or of its bytes), without loading the tensors."""
    if isinstance(path, bytes):
        meta = _metadata(path)
        path = "weights"
    else:
        safetensors = require("safetensors", purpose="reading weights files")
        try:
            with safetensors.safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as exc:  # safetensors raises its own error types
            raise DecoderError(f"{path}: not a weights file ({exc})") from None
    if "emtcs_config" not in meta:
        raise DecoderError(f"{path}: weights file without an emtcs config")
    info = WeightsInfo({k[len("emtcs_") :]: json.loads(v) for k, v in meta.items() if k.startswith("emtcs_")})
    return info


def _metadata(data: bytes) -> dict[str, str]:
    """The metadata of safetensors bytes: a little-endian u64 header length, then the JSON
    header, whose ``__metadata__`` it is."""
    try:
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
    except (ValueError, AttributeError) as exc:
        raise DecoderError(f"not a weights file ({exc})") from None
    return meta if isinstance(meta, dict) else {}


def weights_bytes(
    state: dict[str, Any], config: dict[str, Any], serves: list[int] | str = "any", **provenance: Any
) -> bytes:
    """A state dict and its config as the bytes of a weights file."""
    to_bytes = require("safetensors.torch", purpose="writing weights files").save

    meta = {"emtcs_config": json.dumps(config), "emtcs_serves": json.dumps(serves)}
    meta.update({f"emtcs_{k}": json.dumps(v) for k, v in provenance.items()})
    return to_bytes({k: v.detach().cpu().contiguous() for k, v in state.items()}, metadata=meta)


def save_weights(
    path: str | os.PathLike[str],
    state: dict[str, Any],
    config: dict[str, Any],
    serves: list[int] | str = "any",
    **provenance: Any,
) -> None:
    """Write a state dict and its config as safetensors."""
    # written here rather than by safetensors' save_file, which makes files only their owner can read
    Path(path).write_bytes(weights_bytes(state, config, serves, **provenance))


def load_weights(path: str | os.PathLike[str] | bytes) -> tuple[WeightsInfo, dict[str, Any]]:
    """(metadata, state dict) of a weights file, or of its bytes."""
    info = read_info(path)
    st = require("safetensors.torch", purpose="reading weights files")
    return info, st.load(path) if isinstance(path, bytes) else st.load_file(str(path))
