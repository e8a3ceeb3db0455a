"""Run Python code in a fresh process and report its own peak resident memory.

The peak is read from /proc/self/status (VmHWM) inside the child: unlike
``ru_maxrss``, it is not inherited from the parent across fork/exec.
"""

from __future__ import annotations

import subprocess
import sys
import time

_REPORT = "print(next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM')))"


def peak_rss_mb(code: str) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of running ``code`` in a new interpreter."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", f"{code}\n{_REPORT}"], capture_output=True, text=True, check=True)
    return int(proc.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - t0
