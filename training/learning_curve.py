"""The learning curve of a training run for its model card: validation PSNR against CPU-hours.

Reads RUN.ckpt (the run's config and validation history), scores GAP-TV and the shipped
networks on the same validation samples, and writes a figure and a markdown table:

    python training/learning_curve.py runs/gapunet --figure docs/figures/gapunet-learning-curve.png
    python training/learning_curve.py runs/gapunet --earlier runs/archive/phase1-gapunet runs/archive/phase2-gapunet-bl
    python training/learning_curve.py runs/gapunet-temporal --beside runs/gapunet-dt   # branches on one figure

Hours are the training process's CPU time (what a one-core campaign spends), summed over
every resumed session of the run; ``--earlier`` runs (phases the run started from, oldest
first) come before it on the hours axis, with their own validation numbers (the figure
marks where a phase begins: its validation clips may differ).  ``--beside`` runs (other
branches, validated on the same clips) are drawn on the same axes from their own start.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from emtcs import zoo
from emtcs.nets import load
from emtcs.training import TrainConfig, evaluate, validation_set


def compare(cfg: TrainConfig) -> dict[str, dict[str, float]]:
    """Validation scores of GAP-TV and of each shipped network on the run's validation samples
    (with fixed doses, the PSNR at each as ``psnr_DOSE``)."""
    val = validation_set(cfg, cfg.val_samples)
    by_dose = bool(cfg.val_doses)
    scores = {"GAP-TV": evaluate(None, val, by_dose=by_dose)}
    for arch in ("tcsdl", "gapnet", "gapunet"):
        path = zoo.find_weights(arch)
        if path is None:
            continue
        scores[f"shipped {path.stem}"] = evaluate(load(path), val, by_dose=by_dose)
    return scores


def _per_dose(scores: dict[str, float], prefix: str = "") -> str:
    """``" (20 e/px: a, 200 e/px: b)"`` from the ``psnr_DOSE`` keys, or nothing."""
    key = prefix + "psnr_"
    parts = [f"{k.removeprefix(key)} e/px: {v:.2f}" for k, v in scores.items() if k.startswith(key)]
    return f" ({', '.join(parts)})" if parts else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="run stem (RUN.ckpt)")
    ap.add_argument("--earlier", type=Path, nargs="*", default=[], help="earlier phases' run stems, oldest first")
    ap.add_argument("--beside", type=Path, nargs="*", default=[], help="other runs' stems, drawn beside it")
    ap.add_argument("--figure", type=Path)
    a = ap.parse_args()
    state = torch.load(a.run.with_suffix(".ckpt"), map_location="cpu", weights_only=True)
    cfg = TrainConfig(**json.loads(state["config"]))
    history: list[dict[str, float]] = []
    starts = []
    for phase, stem in enumerate([*a.earlier, a.run], 1):
        ck = torch.load(stem.with_suffix(".ckpt"), map_location="cpu", weights_only=True)
        offset = history[-1]["cpu_hours"] if history else 0.0
        starts.append(offset)
        for h in json.loads(ck["history"]):
            if "val_psnr" in h:
                history.append({**h, "cpu_hours": offset + h["cpu_hours"], "phase": phase})
    beside = {}
    for stem in a.beside:
        ck = torch.load(stem.with_suffix(".ckpt"), map_location="cpu", weights_only=True)
        part = beside[stem.name] = [h for h in json.loads(ck["history"]) if "val_psnr" in h]
        print(f"{stem.name}: " + ", ".join(f"{h['val_psnr']:.2f} dB at {h['cpu_hours']:.2f} h" for h in part))
    others = compare(cfg)
    print("| phase | step | CPU-hours | validation PSNR (dB) | SSIM |")
    print("|---|---|---|---|---|")
    for h in history:
        print(
            f"| {h['phase']} | {h['step']} | {h['cpu_hours']:.2f} | {h['val_psnr']:.2f}{_per_dose(h, 'val_')} "
            f"| {h['val_ssim']:.3f} |"
        )
    print()
    for name, v in others.items():
        print(f"- {name}: {v['psnr']:.2f} dB{_per_dose(v)} on the same samples")
    if a.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
        for phase in sorted({h["phase"] for h in history}):
            part = [h for h in history if h["phase"] == phase]
            label = f"{cfg.arch}, phase {phase}" if len(starts) > 1 else cfg.arch
            label = a.run.name if a.beside and len(starts) == 1 else label
            ax.plot([h["cpu_hours"] for h in part], [h["val_psnr"] for h in part], "o-", ms=3, label=label)
        for name, part in beside.items():
            ax.plot([h["cpu_hours"] for h in part], [h["val_psnr"] for h in part], "s-", ms=3, label=name)
        for x in starts[1:]:
            ax.axvline(x, color="0.6", lw=0.8)
        for (name, v), (color, ls) in zip(others.items(), (("k", "--"), ("C3", ":"), ("C4", ":"), ("C5", "-."))):
            ax.axhline(v["psnr"], color=color, ls=ls, lw=1, label=f"{name} (final clips)")
        ax.set_xlabel("training, CPU-hours (one core)")
        ax.set_ylabel("validation PSNR (dB)")
        source = "abTEM scenes (seeds 0-31)" if cfg.val_scene_files else "simulated scenes"
        ax.set_title(f"{a.run.name}: {cfg.val_samples} validation clips from {source}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(a.figure)


if __name__ == "__main__":
    main()
