"""A weight soup: the mean of fine-tunes of the same network, tensor by tensor.

    python training/soup.py runs/gpu2/head.safetensors runs/gpu2/head-log.safetensors -o runs/gpu2/soup.safetensors

Fine-tunes that start from the same weights stay in one basin, and their mean is often a
better decoder than either (the G1 soup of session 31: the best candidate on the screen
finished as `auto` finishes, session 32).  The config and what the weights serve are the
first file's; every file's network must hold the same tensors.  The training record lists the parts.
Screen the result with ``training/whole_movies.py --finish``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from emtcs import zoo
from emtcs.nets import build


def full_state(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, state) of a weights file as its network holds it: parts that older files
    lack (a network's ``optional_parts``) at the values the network loads them with."""
    info, state = zoo.load_weights(path)
    net = build(info["config"])
    net.load_state_dict(state)
    return info, net.state_dict()


def soup(paths: list[Path]) -> tuple[dict, dict[str, torch.Tensor]]:
    """(the first file's metadata, the mean state) of weights files with the same tensors."""
    infos, states = zip(*(full_state(p) for p in paths))
    for path, state in zip(paths[1:], states[1:]):
        if state.keys() != states[0].keys() or any(state[k].shape != v.shape for k, v in states[0].items()):
            raise SystemExit(f"{path}: not the same tensors as {paths[0]}")
    mean = {k: torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) for k, v in states[0].items()}
    return infos[0], mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    a = ap.parse_args()
    if len(a.weights) < 2:
        ap.error("a soup needs two weights files or more")
    info, state = soup(a.weights)
    training = {**info.get("training", {}), "soup_of": [str(p) for p in a.weights]}
    zoo.save_weights(a.output, state, info["config"], serves=info["serves"], training=training)
    print(f"{a.output}: the mean of {len(a.weights)} weights files")


if __name__ == "__main__":
    main()
