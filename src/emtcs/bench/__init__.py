"""``emtcs bench``: emtcs against JPEG, JPEG 2000, HTJ2K and JPEG XL at the same size.

The library never imports this package; it needs the ``bench`` extra (imagecodecs,
matplotlib, PyWavelets).  :func:`run_bench` measures, :mod:`.report` prints and writes
the results (one JSON format), :mod:`.plot` draws them.  Importing the package is
light (the ``emtcs`` command imports it on every call); :mod:`.run` loads on first use.
"""

from typing import Any

__all__ = ["SIM_DOSE", "SIM_FRAMES", "SIM_SHAPE", "BenchConfig", "BenchResult", "run_bench"]

#: The built-in input: a simulated HRTEM movie, sized for a run of about a minute on 2 cores.
SIM_FRAMES = 30
SIM_SHAPE = (192, 192)
SIM_DOSE = 100.0


def __getattr__(name: str) -> Any:
    if name in ("BenchConfig", "BenchResult", "run_bench"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
