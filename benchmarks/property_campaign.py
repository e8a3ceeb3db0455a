"""A long run of the property-based tests of tests/test_properties.py.

The test suite runs each property with a few dozen to a few hundred examples so that it
finishes in about a minute; this script runs the same properties (the code lives only in
the test module) with many more, e.g. before a release or after a change to the
container, the readers or the writers:

    python benchmarks/property_campaign.py --examples 5000
    python benchmarks/property_campaign.py --examples 20000 -k damaged --seed 7

Failing examples are shrunk, printed with the edits or movie that triggers them, and
saved in hypothesis's example database (.hypothesis/ in the repository), so that the
next plain ``pytest tests/test_properties.py`` replays them first.  Exit status: pytest's
(0 when every property held).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="examples per property (default 2000)")
    parser.add_argument("-k", dest="keyword", help="only the properties whose test name matches (pytest -k)")
    parser.add_argument("--seed", type=int, help="hypothesis seed, to repeat a campaign")
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failing property")
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error("--examples must be at least 1")

    import pytest

    # read by tests/test_properties.py when it is imported: every property's max_examples
    os.environ["EMTCS_PROPERTY_EXAMPLES"] = str(args.examples)
    pytest_args = [
        str(ROOT / "tests" / "test_properties.py"),
        "-q",
        "--hypothesis-show-statistics",
        "--durations=0",
        "-p",
        "no:randomly",
    ]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.seed is not None:
        pytest_args.append(f"--hypothesis-seed={args.seed}")
    if args.exitfirst:
        pytest_args.append("-x")
    return int(pytest.main(pytest_args))


if __name__ == "__main__":
    sys.exit(main())
