"""Starting a network from another's weights: fine-tuning (``--init``), and growing a
network wider or deeper so that it starts by computing what the smaller one did."""

from __future__ import annotations

import numpy as np
import torch

from .. import zoo
from ..errors import InputError
from .config import TrainConfig

#: Network config keys that shape the weights: ``--init`` needs them equal, and may change
#: the others (e.g. how GapUNet's GAP-TV start works, or adding its temporal mixing, whose
#: parameters the weights may lack: see ``optional_parts``).
_SHAPE_KEYS = ("arch", "width", "stages")


def _embedding(old: int, new: int, groups: int) -> torch.Tensor:
    """Where ``old`` channels sit among ``new``: each of ``groups`` equal blocks keeps its
    old channels first."""
    if old % groups or new % groups:
        raise InputError(f"cannot widen {old} channels in {groups} blocks to {new}")
    return torch.cat([g * (new // groups) + torch.arange(old // groups) for g in range(groups)])


def widened(weights: dict[str, torch.Tensor], net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights of a narrower network of ``net``'s architecture, embedded in its wider shapes
    so that it computes the same output (for ``--init`` at a larger width).

    Old channels keep their weights; new channels keep ``net``'s initialisation but their
    weights into old channels are zero, so they change nothing until training makes use of
    them: the wider network starts where the narrower one ended, with room to grow.
    The network names the weights whose inputs are two feature maps side by side
    (``concatenated_inputs``: a U-Net's skip connections)."""
    halves = set(getattr(net, "concatenated_inputs", ()))
    state = net.state_dict()
    out = {k: v for k, v in weights.items() if k not in state}  # for loading to refuse
    for name, new in state.items():
        old = weights.get(name)
        if old is None or old.shape == new.shape:
            if old is not None:
                out[name] = old
            continue
        if old.dim() != new.dim() or any(o > n for o, n in zip(old.shape, new.shape)):
            raise InputError(f"{name}: weights of shape {tuple(old.shape)} do not fit {tuple(new.shape)}")
        if old.shape[2:] != new.shape[2:]:
            raise InputError(f"{name}: kernel {tuple(old.shape[2:])} differs from {tuple(new.shape[2:])}")
        t = new.detach().clone()
        rows = _embedding(old.shape[0], new.shape[0], 1)
        if old.dim() == 1:
            t[rows] = old.to(t.dtype)
        else:
            cols = _embedding(old.shape[1], new.shape[1], 2 if name in halves else 1)
            t[rows] = 0  # new inputs into old outputs
            t[rows[:, None], cols[None, :]] = old.to(t.dtype)
        out[name] = t
    return out


def deepened(weights: dict[str, torch.Tensor], net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights of a network with fewer unfolded stages, placed among ``net``'s stages so
    that it computes the same output (for ``--init`` with more ``--stages``).

    The old stages keep their steps, gates and stage codes and spread out over the new
    ones, the last staying last; each added stage has a zero step and a zero gate, so it
    changes nothing until training opens it, and a stage code between its neighbours'.
    The stages share every other weight."""
    state = net.state_dict()
    new = state["step"].numel()
    old = weights["step"].numel()
    if old > new:
        raise InputError(f"weights of {old} stages do not fit a network of {new}")
    gate = weights.get("gate", torch.ones(old))
    code = weights.get("code", torch.arange(1, old + 1, dtype=torch.float32) / old)
    at = [(i + 1) * new // old - 1 for i in range(old)]  # where each old stage goes
    out = dict(weights)
    out["step"] = torch.zeros_like(state["step"])
    out["gate"] = torch.zeros_like(state["gate"])
    out["step"][at], out["gate"][at] = weights["step"].to(out["step"].dtype), gate.to(out["gate"].dtype)
    codes = np.interp(np.arange(new), [-1, *at], [0.0, *code.tolist()])
    out["code"] = torch.as_tensor(codes, dtype=state["code"].dtype)
    return out


def initialise(net: torch.nn.Module, cfg: TrainConfig) -> None:
    """Load ``cfg.init``'s weights into ``net`` (a new run's start): weights of the same
    shape as they are, those of a narrower or shallower GapUNet grown to fit (:func:`widened`,
    :func:`deepened`); parts the network names optional (``optional_parts``) may be missing."""
    if not cfg.init:
        return
    info, weights = zoo.load_weights(cfg.init)
    shape = {k: v for k, v in cfg.net_config.items() if k in _SHAPE_KEYS}
    given = {k: v for k, v in info["config"].items() if k in _SHAPE_KEYS}
    if given != shape:
        # a GapUNet may grow: in width (widened) and in stages (deepened)
        wider = given.get("width", 0) < shape.get("width", 0) and hasattr(net, "concatenated_inputs")
        deeper = given.get("stages", 0) < shape.get("stages", 0) and hasattr(net, "gate")
        grown = dict(given)
        if wider:
            grown["width"] = shape["width"]
        if deeper:
            grown["stages"] = shape["stages"]
        if grown != shape:
            raise InputError(f"{cfg.init} holds a {info['config']} network, not {cfg.net_config}")
        if deeper:
            weights = deepened(weights, net)
        if wider:
            weights = widened(weights, net)
    missing, unexpected = net.load_state_dict(weights, strict=False)
    optional = tuple(getattr(net, "optional_parts", ()))
    if unexpected or any(not k.startswith(optional) for k in missing):
        raise InputError(f"{cfg.init} does not fit a {cfg.net_config} network")
