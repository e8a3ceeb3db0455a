"""A weight soup: the mean of fine-tunes of the same network, tensor by tensor.

    python training/soup.py runs/gpu2/head.safetensors runs/gpu2/head-log.safetensors -o runs/gpu2/soup.safetensors
    python training/soup.py runs/soup-p55-p58.safetensors models/gapunet-w24s2.safetensors --shares 1,1 -o w.safetensors

Fine-tunes that start from the same weights stay in one basin, and their mean is often a
better decoder than either (the G1 soup of session 31: the best candidate on the screen
finished as `auto` finishes, session 32); a fine-tune's mean with its start (``--shares``:
a weighted mean) moves part of the way from the start towards it.  The config and what
the weights serve are the first file's; the training record names the partners, their
shares, steps and CPU-hours, and has no steps or validation score of its own.  A later
file may lack parts of the first one's network that start with no effect
(``optional_parts``, e.g. the full-resolution head added to the shipped weights): it
counts as holding them with no effect, its zero output layer zero and the layers behind
it the mean of the files that hold them, so that the part's output is scaled by the
holders' share.
Partners must start alike in every part, added ones included: before session 39 `--seed`
also drew a fine-tune's added head, and the mean of phases 81 and 82 (seeds 0 and 1, each
26.35 dB on the clips; their start 26.04) scored 26.20.
Screen the result with ``training/whole_movies.py --finish``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from emtcs import zoo
from emtcs.nets import build


def full_state(path: Path, config: dict | None = None) -> tuple[dict, dict[str, torch.Tensor], set[str]]:
    """(metadata, state, names of the tensors the file lacks) of a weights file in the
    network ``config`` builds (default: its own): parts that older files lack (a network's
    ``optional_parts``) at the values the network starts them with."""
    info, state = zoo.load_weights(path)
    net = build(config or info["config"])
    missing, unexpected = net.load_state_dict(state, strict=False)
    optional = tuple(getattr(net, "optional_parts", ()))
    if unexpected or any(not k.startswith(optional) for k in missing):
        raise SystemExit(f"{path}: not the network of the first file ({config or info['config']})")
    return info, net.state_dict(), set(missing)


def soup(paths: list[Path], shares: list[float] | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """(the first file's metadata, the weighted mean state) of weights files of one network."""
    shares = shares or [1.0] * len(paths)
    first, _, _ = full_state(paths[0])
    loaded = [full_state(p, first["config"]) for p in paths]
    total = sum(shares)
    mean = {}
    for k, v in loaded[0][1].items():
        if not v.is_floating_point():
            mean[k] = v
            continue
        held = [(s[k].float(), w) for (_, s, lacks), w in zip(loaded, shares) if k not in lacks]
        if len(held) < len(loaded) and not any(s[k].any() for _, s, lacks in loaded if k in lacks):
            # an output layer that starts at zero: the files that lack it add nothing
            mean[k] = (sum(t * w for t, w in held) / total).to(v.dtype)
        else:  # a layer behind it, or one every file holds
            mean[k] = (sum(t * w for t, w in held) / sum(w for _, w in held)).to(v.dtype)
    return first, mean


def soup_record(paths: list[Path], shares: list[float]) -> dict:
    """The training record of a soup: the network's description and each partner's steps,
    CPU-hours and share; no steps or validation of its own (it had no training)."""
    records = [zoo.read_info(p).get("training", {}) for p in paths]
    partners = [
        {"file": p.name, "share": w / sum(shares), "steps": t.get("steps"), "cpu_hours": t.get("cpu_hours")}
        for p, w, t in zip(paths, shares, records)
    ]
    network = {k: records[0][k] for k in ("arch", "net", "parameters") if k in records[0]}
    return {**network, "steps": 0, "soup_of": partners}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--shares", help="comma-separated weight of each file in the mean (default: equal)")
    a = ap.parse_args()
    if len(a.weights) < 2:
        ap.error("a soup needs two weights files or more")
    shares = [float(v) for v in a.shares.split(",")] if a.shares else None
    if shares is not None and (len(shares) != len(a.weights) or min(shares) <= 0):
        ap.error("--shares: one positive number per weights file")
    info, state = soup(a.weights, shares)
    training = soup_record(a.weights, shares or [1.0] * len(a.weights))
    zoo.save_weights(a.output, state, info["config"], serves=info["serves"], training=training)
    print(f"{a.output}: the mean of {len(a.weights)} weights files")


if __name__ == "__main__":
    main()
