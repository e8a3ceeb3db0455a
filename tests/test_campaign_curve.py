"""training/campaign_curve.py: the model card's phase table read as the campaign's hours."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def curve():
    return load_script("training/campaign_curve.py")


def test_hours_add_up_row_by_row(curve, tmp_path):
    card = tmp_path / "card.md"
    card.write_text(
        "| phase | session | what changed | steps | CPU-hours | best validation (dB) | outcome |\n"
        "|---|---|---|---|---|---|---|\n"
        "| 1 | 1 | a | 10 | 1.25 | 20 | shipped |\n"
        "| G1 | 2 | a GPU | 10 | – | 21 | not shipped |\n"
        "| 2 | 3 | b | 10 | about 0.5 | 22 | not shipped |\n"
        "| 1 + 2 | 3 | the mean | – | – | – | shipped |\n"
        "\n| a | table | of | two |\n"
    )
    assert curve.phase_hours(card) == {"1": 1.25, "G1": 1.25, "2": 1.75, "1 + 2": 1.75}


def test_every_scored_file_has_a_row_in_the_model_card(curve):
    """A phase shipped or kept in lineage that the card's table lacks would have no place on the curve."""
    hours = curve.phase_hours()
    lineage = [p.stem.removeprefix("gapunet-p") for p in (ROOT / "training" / "lineage").glob("gapunet-p*.safetensors")]
    missing = [phase for phase in [*curve.SHIPPED, *lineage] if phase not in hours]
    assert not missing, f"no row in models/gapunet-w24s2.md for phase(s) {missing}"
    shipped = [hours[phase] for phase in curve.SHIPPED]  # in the order they shipped
    assert shipped == sorted(shipped) and max(hours.values()) > 90  # cumulative: the campaign's 90-odd hours
