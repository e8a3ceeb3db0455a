"""Rate and distortion: emtcs at several quantisation steps against the frame codecs at each size.

`emtcs compress` quantises each measurement at one standard deviation of its noise by
default (``--quantise 1``).  A coarser step makes a smaller file and a noisier
measurement; the frame codecs get the smaller budget too.  This asks where emtcs stands
against JPEG XL, JPEG and JPEG + NL-means along that curve, on the validation suite's
abTEM movies (clean truth known; never trained on) and the README demo movie:

    python benchmarks/rate_distortion.py --json docs/figures/rate-distortion.json \
        --table docs/figures/rate-distortion.md --figure docs/figures/rate-distortion.png

Each (movie, B, step) is one `emtcs bench` point: the `.tcs` file's bytes are every other
codec's budget, every codec scored against the same clean truth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from emtcs.bench.run import BenchConfig, environment, run_bench
from emtcs.simulate import simulate
from validation import SHARED, abtem_movie, best_within

STEPS = (0.5, 1.0, 2.0, 3.0)
CODECS = ("jpeg", "jpegxl")
#: JPEG XL at its best size up to the budget: against a clean truth a frame codec given
#: fewer bytes keeps less noise, so "at the same bytes" can understate it (validation.best_within)
ENVELOPE = "JPEG XL (best size <= budget)"


def points(run: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per quantisation step of a bench run: the file's bytes and every row's PSNR."""
    out: dict[Any, dict[str, Any]] = {}
    for r in run["rows"]:
        q = r["quality"].get("clean", {})
        if r["status"] != "ok" or q.get("psnr") is None or "quantise" not in r:  # raw frames, references
            continue
        p = out.setdefault(r["quantise"], {"step": r["quantise"], "psnr": {}})
        if r["codec"] == "emtcs":
            p["bytes"] = r["bytes"]
            p["coding"] = r.get("coding")
        p["psnr"][r["title"]] = q["psnr"]
    return sorted(out.values(), key=lambda p: p["bytes"] if "bytes" in p else 0, reverse=True)


def add_envelope(points_: list[dict[str, Any]], frames: np.ndarray, clean: np.ndarray) -> None:
    """Add JPEG XL's best PSNR at any size up to each point's budget."""
    for p in points_:
        best = best_within(frames, clean.astype(np.float64), p["bytes"])["best"]
        if best is not None:
            p["psnr"][ENVELOPE] = best["psnr"]


def markdown(results: list[dict[str, Any]]) -> str:
    """A table per movie: one line per (B, step), the PSNR of each row and emtcs's lead over the best other."""
    lines = []
    for res in results:
        titles = sorted({t for p in res["points"] for t in p["psnr"]}, key=lambda t: (not t.startswith("emtcs"), t))
        lines += [
            f"**{res['movie']}, B = {res['B']}** (raw {res['raw_bytes']:,} bytes)",
            "",
            "| step (σ) | ratio | " + " | ".join(titles) + " | emtcs − best other |",
            "|---|---|" + "---|" * (len(titles) + 1),
        ]
        for p in res["points"]:
            ours = max((v for t, v in p["psnr"].items() if t.startswith("emtcs")), default=np.nan)
            theirs = max((v for t, v in p["psnr"].items() if not t.startswith("emtcs")), default=np.nan)
            cells = [f"{p['psnr'][t]:.2f}" if t in p["psnr"] else "–" for t in titles]
            lines.append(
                f"| {p['step']:g} | {res['raw_bytes'] / p['bytes']:.1f} | "
                + " | ".join(cells)
                + f" | {ours - theirs:+.2f} |"
            )
        lines.append("")
    return "\n".join(lines)


def draw(results: list[dict[str, Any]], path: Path) -> None:
    """PSNR against compression ratio, one panel per (movie, B)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), dpi=110, squeeze=False)
    for ax, res in zip(axes.flat, results):
        titles = sorted({t for p in res["points"] for t in p["psnr"]}, key=lambda t: (not t.startswith("emtcs"), t))
        for t in titles:
            pts = [(res["raw_bytes"] / p["bytes"], p["psnr"][t]) for p in res["points"] if t in p["psnr"]]
            style = "o-" if t.startswith("emtcs") else ".--"
            ax.plot(*zip(*pts), style, ms=4, lw=1.2 if t.startswith("emtcs") else 0.9, label=t)
        ax.set_xscale("log")
        ax.set_title(f"{res['movie']}, B = {res['B']}", fontsize=7)
        ax.set_xlabel("compression ratio", fontsize=7)
        ax.set_ylabel("PSNR (dB)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=5)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=SHARED, help="folder holding abtem-hrtem/")
    ap.add_argument("--seeds", default="3,17", help="abTEM validation scenes (0-31)")
    ap.add_argument("--doses", default="20,200", help="e/px of the abTEM movies")
    ap.add_argument("-B", default="10,20", help="group sizes")
    ap.add_argument("--steps", default=",".join(f"{s:g}" for s in STEPS), help="quantisation steps in noise sigmas")
    ap.add_argument("--decoders", default="auto", help="emtcs decoders (comma-separated)")
    ap.add_argument("--no-demo", action="store_true", help="leave out the README demo movie")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--table", type=Path)
    ap.add_argument("--figure", type=Path)
    ap.add_argument(
        "--redraw",
        action="store_true",
        help="read --json instead of measuring, add JPEG XL's best size <= budget where it lacks it, "
        "and write the table and figure again",
    )
    a = ap.parse_args()

    movies: list[tuple[str, np.ndarray, np.ndarray]] = []
    scenes = a.shared / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
    if scenes.exists():
        for seed in (int(s) for s in a.seeds.split(",") if s):
            for dose in (float(d) for d in a.doses.split(",")):
                noisy, clean = abtem_movie(scenes, seed, dose)
                movies.append((f"abTEM seed {seed}, {dose:g} e/px", noisy, clean))
    else:
        print(f"no abTEM scenes at {scenes}: only the README demo", file=sys.stderr)
    if not a.no_demo:
        noisy, clean = simulate()
        movies.append(("README demo (emtcs simulate), 100 e/px", noisy, clean))
    if not movies:
        raise SystemExit("rate_distortion.py: no movie to measure")

    if a.redraw:
        if a.json is None or not a.json.exists():
            raise SystemExit("rate_distortion.py: --redraw reads the results of --json")
        doc = json.loads(a.json.read_text())
        by_name = {name: (frames, clean) for name, frames, clean in movies}
        for res in doc["results"]:
            missing = [p for p in res["points"] if ENVELOPE not in p["psnr"]]
            if missing:
                add_envelope(missing, *by_name[res["movie"]])
        a.json.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        results = doc["results"]
        if a.table:
            a.table.write_text(markdown(results))
        if a.figure:
            draw(results, a.figure)
        return

    steps = tuple(float(s) for s in a.steps.split(","))
    results = []
    doc = {"environment": environment(), "steps": steps, "results": results}
    t_start = time.perf_counter()
    for name, frames, clean in movies:
        for B in (int(b) for b in a.B.split(",")):
            config = BenchConfig(
                B=(B,), decoders=tuple(a.decoders.split(",")), codecs=CODECS, device="cpu", quantise=steps
            )
            config.references = ("clean",)
            t0 = time.perf_counter()
            run = run_bench(frames, clean, config=config, source={"name": name}).to_json()
            measured = points(run)
            add_envelope(measured, frames, clean)
            results.append(
                {
                    "movie": name,
                    "B": B,
                    "shape": list(frames.shape),
                    "raw_bytes": int(frames.nbytes),
                    "points": measured,
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(markdown(results[-1:]), flush=True)
            doc["seconds"] = time.perf_counter() - t_start
            if a.json:
                a.json.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    if a.table:
        a.table.write_text(markdown(results))
    if a.figure:
        draw(results, a.figure)


if __name__ == "__main__":
    main()
