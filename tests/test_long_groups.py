"""benchmarks/long_groups.py: each bench run reduced to its rows' PSNR and invented peaks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def long_groups():
    sys.path.insert(0, str(BENCHMARKS))  # it imports the suite's validation.py
    try:
        spec = importlib.util.spec_from_file_location("long_groups", BENCHMARKS / "long_groups.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_a_run_is_reduced_to_every_row_that_ran_with_the_emtcs_file_s_bytes(long_groups):
    from emtcs.bench.run import BenchConfig, run_bench
    from emtcs.simulate import simulate

    noisy, clean = simulate(8, (32, 32), seed=1)
    config = BenchConfig(B=(8,), decoders=("gaptv",), codecs=("jpeg",), device="cpu", references=("clean",))
    run = run_bench(noisy, clean, config=config).to_json()
    out = long_groups.row(run)
    ok = [r for r in run["rows"] if r["status"] == "ok"]
    emtcs_row = next(r for r in ok if r["codec"] == "emtcs")
    assert out["bytes"] == emtcs_row["bytes"]
    assert set(out) == {"bytes"} | {r["title"] for r in ok}
    assert out["emtcs / gaptv"]["psnr"] == emtcs_row["quality"]["clean"]["psnr"]
    assert out["emtcs / gaptv"]["invented_peaks"] == emtcs_row["quality"]["clean"]["invented_peaks"]
