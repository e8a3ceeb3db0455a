"""benchmarks/suite_report.py: the issue's targets read from a suite run, on a hand-made one."""

from __future__ import annotations

import pytest

from scripts import load_script


@pytest.fixture(scope="module")
def report():
    return load_script("benchmarks/suite_report.py")


def movie(name: str, B: int, **psnr: float) -> dict:
    titles = {"gaptv": "emtcs / gaptv", "gapunet": "emtcs / gapunet", "select": "emtcs / select"}
    titles["jpeg"] = "JPEG (8-bit)"
    rows = [{"row": titles[k], "psnr": v, "invented_peaks": 0} for k, v in psnr.items()]
    return {"movie": name, "B": B, "rows": rows}


def test_targets_flag_the_row_short_of_gaptv_plus_3(report) -> None:
    run = [
        movie("HRTEM sim (abTEM seed 3), 20 e/px", 10, gaptv=25.0, gapunet=28.5, select=28.4, jpeg=20.0),
        movie("HRTEM sim (abTEM seed 3), 20 e/px", 20, gaptv=24.0, gapunet=26.9, select=26.8, jpeg=21.0),
    ]
    text = report.targets(run)
    assert "best decoder >= GAP-TV + 3 dB: NOT met (1 of 2 rows)" in text
    assert "-0.10  <- short" in text
    assert "best decoder >= JPEG: met (2 of 2 rows)" in text
    run[1]["rows"][2]["invented_peaks"] = 2
    assert "no invented peak for auto: NOT met (1 of 2 rows)" in report.targets(run)


def test_merged_takes_missing_rows_from_another_run_of_the_same_draw(report) -> None:
    learned = [movie("liquid-cell TEM (real)", 10, gapunet=20.9, select=21.0)]
    others = [movie("liquid-cell TEM (real)", 10, gaptv=20.7, select=99.0, jpeg=21.5)]
    (res,) = report.merged([learned, others])
    psnr = {r["row"]: r["psnr"] for r in res["rows"]}
    assert psnr == {"emtcs / gapunet": 20.9, "emtcs / select": 21.0, "emtcs / gaptv": 20.7, "JPEG (8-bit)": 21.5}
    text = report.targets([res])
    assert "auto >= GAP-TV - 0.2 dB: met (1 of 1 rows)" in text
    assert "real movies: auto >= JPEG: NOT met (0 of 1 rows)" in text
