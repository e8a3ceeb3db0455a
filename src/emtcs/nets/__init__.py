"""Networks for the learned decoders: plain ``torch.nn.Module`` s, no training machinery.

Every network takes normalised measurements ``y`` (n, h, w) and masks ``C`` (n, B, h, w)
and returns frames (n, B, h, w); it is fully convolutional (any tile size) and takes
the masks as input, so one set of weights decodes any seed's masks.  Networks are
built from a config dict (``build``), which is stored beside the weights (``load``).
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from .. import zoo
from .gapnet import GapNet
from .gapunet import GapUNet
from .tcsdl import TCSDL

__all__ = ["GapNet", "GapUNet", "TCSDL", "ARCHITECTURES", "build", "load"]

ARCHITECTURES: dict[str, type[nn.Module]] = {"tcsdl": TCSDL, "gapnet": GapNet, "gapunet": GapUNet}


def build(config: dict[str, Any]) -> nn.Module:
    """Instantiate the network a config describes (``{"arch": name, **kwargs}``)."""
    kwargs = dict(config)
    arch = kwargs.pop("arch")
    return ARCHITECTURES[arch](**kwargs)


def load(path: str | os.PathLike[str]) -> nn.Module:
    """The network a weights file holds (:func:`emtcs.zoo.load_weights`), in eval mode."""
    info, state = zoo.load_weights(path)
    net = build(info["config"])
    net.load_state_dict(state)
    return net.eval()
