"""The bench's results: the terminal table (rich) and the JSON file, from one format.

The table is drawn from the same JSON-ready rows that are written, column by column
through :func:`columns`, so the file holds every field the table shows.  JSON has no
infinity: an infinite PSNR (identical images) is written as the string ``"inf"``
and read back by :func:`number`; NaN is written as null.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from ..atomic import atomic_output

__all__ = ["Column", "cell", "columns", "jsonable", "number", "print_report", "read_json", "write_json"]


@dataclass(frozen=True)
class Column:
    """A table column: its header, the paths of its fields in a row, how to print each."""

    header: str
    paths: tuple[tuple[str, ...], ...]
    fmts: tuple[str, ...] = ("{}",)


def _col(header: str, *path: str, fmt: str = "{}") -> Column:
    return Column(header, (path,), (fmt,))


def columns(references: list[str]) -> list[Column]:
    """The table's columns for the references of a run, in order."""
    cols = [
        _col("codec", "title"),
        _col("B", "B"),
        _col("setting", "setting"),
        _col("bytes", "bytes", fmt="{:,}"),
        _col("ratio", "compression_ratio", fmt="{:.1f}"),
        _col("bits/px", "bits_per_pixel", fmt="{:.3f}"),
    ]
    cols += [
        Column(
            f"{ref}\nPSNR / SSIM / FRC px",
            (("quality", ref, "psnr"), ("quality", ref, "ssim"), ("quality", ref, "frc_px")),
            ("{:.2f}", "{:.3f}", "{:.1f}"),
        )
        for ref in references
    ]
    return cols + [
        _col("enc\nMB/s", "encode_MBps", fmt="{:.1f}"),
        _col("dec\nMB/s", "decode_MBps", fmt="{:.2f}"),
        _col("status", "status"),
        _col("note", "note"),
    ]


def _get(row: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = row
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def number(value: Any) -> float | None:
    """A float from a results field: ``"inf"``/``"-inf"`` strings as infinities, None as None."""
    if value is None:
        return None
    return float(value)


def _text(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str) and value in ("inf", "-inf"):
        value = float(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def cell(row: dict[str, Any], col: Column) -> str:
    """The text of one table cell ("-" where the row has no value)."""
    return " / ".join(_text(_get(row, path), fmt) for path, fmt in zip(col.paths, col.fmts))


def jsonable(obj: Any) -> Any:
    """``obj`` with infinities as ``"inf"``/``"-inf"``, NaN as None and tuples as lists."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return jsonable(obj.item())
    return obj


def write_json(path: str | os.PathLike[str], runs: list[dict[str, Any]], *, force: bool = False) -> None:
    """Write the results of one or more runs as strict JSON, atomically."""
    text = json.dumps({"runs": jsonable(runs)}, indent=1, allow_nan=False)
    with atomic_output(path, force=force) as tmp:
        tmp.write_text(text + "\n")


def read_json(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The runs of a results file written by :func:`write_json`."""
    with open(path) as fh:
        return json.load(fh)["runs"]


def _summary(run: dict[str, Any]) -> Iterator[str]:
    inp = run["input"]
    h, w = inp["frame_shape"]
    yield (
        f"input: {inp['name']}: {inp['frames']} frames of {h}x{w} {inp['dtype']}, "
        f"values {inp['value_range'][0]:g}..{inp['value_range'][1]:g}, {inp['raw_bytes']:,} bytes raw"
        + (f", cropped to {inp['crop'][2]}x{inp['crop'][3]}" if inp.get("crop") else "")
        + (f" ({inp['split']})" if inp.get("split") else "")
    )
    for name, ref in run["references"].items():
        yield f"reference {name}: {ref['description']}; data_range {ref['data_range']:g} ({run['rules']['data_range']})"
    d = run["denoiser"]
    yield (
        f"'+ {d['name']}' rows: {d['function']}, patch_size {d['patch_size']}, patch_distance "
        f"{d['patch_distance']}, h = {d['h_sigma']} x sigma, sigma = {d['sigma']:.4g} ({d['sigma_from']})"
    )
    yield f"budget rule: {run['rules']['budget']}"
    yield f"emtcs measurements stored: {run['config'].get('measurement_coding', 'exact')}"
    maps = {r["codec"]: r["input_map"] for r in run["rows"] if r.get("input_map")}
    for name, c in run["codecs"].items():
        yield (
            f"{c['title']}: {c['library']}, knob {c['knob']}, options {c['options']}"
            + (f"; input {maps[name]}" if name in maps else "")
        )
    m, v = run["machine"], run["versions"]
    load = run["load_average"]
    yield (
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_GB']} GB, GPU {m['gpu'] or 'none'}; "
        f"load average {load['start']} at start, {load['end']} at end"
    )
    yield f"versions: {', '.join(f'{k} {val}' for k, val in v.items() if val)}"
    yield f"wall time {run['wall_s']:.1f} s"


def print_report(run: dict[str, Any], console: Console | None = None) -> None:
    """Print a run's table and what it was measured on."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=200)
    cols = columns(list(run["references"]))
    table = Table(title=f"emtcs bench: {run['input']['name']}", show_lines=False, header_style="bold")
    for col in cols:
        left = col.paths[0][0] in ("title", "setting", "note", "status")
        table.add_column(col.header, justify="left" if left else "right", overflow="fold")
    for row in run["rows"]:
        style = "dim" if row["status"] != "ok" else ("bold" if row["codec"] == "emtcs" else None)
        table.add_row(*(cell(row, col) for col in cols), style=style)
    console.print(table)
    for line in _summary(run):
        console.print(line, highlight=False, soft_wrap=True)
