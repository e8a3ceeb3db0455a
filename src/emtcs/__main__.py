"""``emtcs`` and ``python -m emtcs``: the command line, started so that a Ctrl-C while it
is still importing its libraries (about half a second) ends as any other does."""

from __future__ import annotations

import sys


def main() -> None:
    """Import and run :func:`emtcs.cli.main`; an interrupt during the import exits 130."""
    try:
        from .cli import main as cli
    except KeyboardInterrupt:
        sys.stderr.write("emtcs: error: interrupted; no output written\n")
        sys.exit(130)
    cli()


if __name__ == "__main__":
    main()
