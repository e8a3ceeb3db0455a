"""Progress where stderr is a log (a batch job's file): plain lines now and then, never control codes."""

from __future__ import annotations

import pytest

from emtcs.progress import _duration, progress_bar


def test_a_log_gets_plain_lines_with_rate_and_time_left(capsys):
    with progress_bar("decompress", 4, unit="frames", log_every=0) as advance:
        advance(1)
        advance(0, status="group 0: residual 0.0100")
        advance(2)
        advance(1)  # the end: the command's own summary follows, not a line here
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("decompress: 1/4 frames (25 %), ") and "left" in lines[0]
    assert lines[1].endswith("group 0: residual 0.0100")
    assert lines[2].startswith("decompress: 3/4 frames (75 %), ") and lines[2].endswith("residual 0.0100")
    assert "\x1b" not in "".join(lines)


def test_short_work_and_quiet_runs_write_nothing(capsys):
    with progress_bar("compress", 10, log_every=3600) as advance:
        for _ in range(10):
            advance(1)
    with progress_bar("compress", 10, quiet=True, log_every=0) as advance:
        advance(10)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("seconds", "text"), [(12.4, "12 s"), (250, "4 min 10 s"), (3900, "1 h 05 min")])
def test_durations_read_as_a_person_writes_them(seconds, text):
    assert _duration(seconds) == text


def test_a_total_not_known_is_counted_without_a_share(capsys):
    with progress_bar("train", 0, unit="steps", log_every=0) as advance:
        advance(2)
    assert capsys.readouterr().err.startswith("train: 2 steps, ")
