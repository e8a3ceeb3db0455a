"""benchmarks/long_groups.py: each bench run reduced to its rows' PSNR and invented peaks."""

from __future__ import annotations

import pytest

from scripts import load_script


@pytest.fixture(scope="module")
def long_groups():
    return load_script("benchmarks/long_groups.py")


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
