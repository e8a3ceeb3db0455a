"""The whole campaign's learning curve: every kept GapUNet weights file scored on one set of clips.

Each phase of the campaign validated on the clips of its time (the clips changed with the
patch size, the doses and the zoom), so the phases' own numbers do not line up.  This
scores the weights that were shipped (taken from git history) and those kept in
``training/lineage/`` on today's validation clips (phase 101's: 24 clips of 256 x 256 x B,
B = 10 and 20, at 20 and 200 e/px, from the abTEM scenes with seeds 0-31, which training
never sees), and places each at the campaign's cumulative CPU-hours when it was made (the
model card's phase table summed in its order, up to the weights' row):

    python training/campaign_curve.py --figure docs/figures/gapunet-campaign-curve.png \
        --json docs/figures/gapunet-campaign-curve.json

Scores already in the JSON (same file contents, same clips) are reused, so after a new
phase only its weights are scored (about a minute of one core per file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
from functools import cache
from pathlib import Path

from emtcs.nets import load
from emtcs.training import TrainConfig, evaluate, validation_set

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "models" / "gapunet-w24s2.md"
SHIPPED_PATH = "models/gapunet-w24s2.safetensors"
#: the commit that shipped each of the campaign's weights, by the model card's phase row (phase
#: 1's transposed convolutions, replaced in phase 2, no longer load)
SHIPPED = {
    "2": "6c8716b",
    "3": "62db1ea",
    "4": "64a3fa7",
    "9": "5dc9d19",
    "11": "e21e494",
    "12": "ce8c657",
    "13": "300c101",
    "93": "85decd1",
    "93 + 101": "ddeb508",
    "93 + 101 + 106": "7f9351d",
}
CLIPS = {"patch": 256, "B": [10, 20], "val_doses": [20.0, 200.0], "val_samples": 24}


def phase_hours(card: Path = CARD) -> dict[str, float]:
    """Cumulative CPU-hours at the end of each row of the model card's phase table (rows
    without hours, such as GPU runs and weight means, add none)."""
    hours, total = {}, 0.0
    for line in card.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or len(cells) != 7 or cells[0] == "phase":
            continue
        number = re.search(r"\d+(\.\d+)?", cells[4])
        total += float(number.group()) if number else 0.0
        hours[cells[0]] = total
    return hours


def weights_files(scratch: Path) -> list[tuple[str, Path, bool]]:
    """(phase row, file, shipped) for every shipped weights file (written out of git into
    ``scratch``) and every lineage file."""
    scratch.mkdir(parents=True, exist_ok=True)
    out = []
    for phase, commit in SHIPPED.items():
        path = scratch / f"shipped-{commit}.safetensors"
        if not path.exists():
            blob = subprocess.run(
                ["git", "show", f"{commit}:{SHIPPED_PATH}"], cwd=ROOT, check=True, capture_output=True
            ).stdout
            path.write_bytes(blob)
        out.append((phase, path, True))
    for path in sorted((ROOT / "training" / "lineage").glob("gapunet-p*.safetensors")):
        out.append((path.stem.removeprefix("gapunet-p"), path, False))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "figures" / "gapunet-campaign-curve.json")
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--scratch", type=Path, default=ROOT / "scratch" / "campaign-curve")
    a = ap.parse_args()

    scenes = a.shared / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
    if not scenes.exists():
        raise SystemExit(f"campaign_curve.py: the validation scenes are not at {scenes}")
    cfg = TrainConfig(arch="gapunet", val_scene_files=[str(scenes)], **CLIPS)

    @cache
    def clips() -> list[dict]:  # built only when something is to be scored
        return validation_set(cfg, cfg.val_samples)

    def score(path: Path) -> dict[str, float]:
        """The validation scores of a weights file's network."""
        return evaluate(load(path), clips(), by_dose=True)

    old = json.loads(a.json.read_text()) if a.json.exists() else {}
    known = {e["sha256"]: e for e in old.get("weights", []) if old.get("clips") == CLIPS}
    hours = phase_hours()

    entries = []
    for phase, path, shipped in weights_files(a.scratch):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in known:
            scores = known[digest]["scores"]
        else:
            scores = score(path)
        entry = {"phase": phase, "shipped": shipped, "cpu_hours": round(hours[phase], 2), "sha256": digest}
        entries.append({**entry, "scores": scores})
        kind = "shipped" if shipped else "lineage"
        print(f"phase {phase:>15} {kind:8} {hours[phase]:6.2f} h  {scores['psnr']:.3f} dB", flush=True)
    baselines = old.get("baselines") if old.get("clips") == CLIPS else None
    if baselines is None:
        baselines = {"GAP-TV": evaluate(None, clips(), by_dose=True)}
        baselines["TCS-DL (shipped)"] = score(ROOT / "models" / "tcsdl-w24.safetensors")
    for name, v in baselines.items():
        print(f"{name}: {v['psnr']:.3f} dB")
    a.json.write_text(json.dumps({"clips": CLIPS, "weights": entries, "baselines": baselines}, indent=1) + "\n")
    if a.figure:
        draw(entries, baselines, a.figure)


def draw(entries: list[dict], baselines: dict[str, dict[str, float]], figure: Path) -> None:
    """Shipped weights as a line (the campaign's best so far), lineage files as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=120)
    shipped = sorted((e for e in entries if e["shipped"]), key=lambda e: e["cpu_hours"])
    kept = [e for e in entries if not e["shipped"]]
    for part, style, ms, color, label in (
        (kept, "o", 3, "0.6", "kept fine-tunes (training/lineage)"),
        (shipped, "o-", 4, "C0", "shipped weights"),
    ):
        hours, psnr = [e["cpu_hours"] for e in part], [e["scores"]["psnr"] for e in part]
        ax.plot(hours, psnr, style, ms=ms, color=color, label=label)
    for i, e in enumerate(shipped):  # labels below and above in turn: the last ones are close together
        ax.annotate(
            e["phase"].replace(" ", ""),
            (e["cpu_hours"], e["scores"]["psnr"]),
            fontsize=6,
            textcoords="offset points",
            xytext=(2, -9 if i % 2 == 0 else 5),
        )
    for (name, v), (color, ls) in zip(baselines.items(), (("k", "--"), ("C3", ":"))):
        ax.axhline(v["psnr"], color=color, ls=ls, lw=1, label=name)
    ax.set_xlabel("campaign, cumulative CPU-hours (one core; the model card's phase table)")
    ax.set_ylabel("validation PSNR (dB)")
    ax.set_title("GapUNet: 24 clips 256 x 256 x B (B = 10, 20; 20 and 200 e/px), abTEM seeds 0-31", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    fig.savefig(figure)


if __name__ == "__main__":
    main()
