"""No traceback when an optional piece is missing: PyTorch installed, safetensors not.

(``emtcs bench`` used to end in ``ModuleNotFoundError: No module named 'safetensors'``
from ``emtcs.zoo.read_info``.)  Every path that needs the weights must end in a one-line
:class:`EmtcsError` naming what to install, or, for ``auto``, decode with GAP-TV and say why.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

import emtcs
from emtcs import zoo
from emtcs.cli import main
from emtcs.errors import EmtcsError

pytest.importorskip("torch")


@pytest.fixture
def no_safetensors(monkeypatch):
    """Make ``import safetensors`` (and its submodules) fail as if it were not installed."""
    for name in [m for m in sys.modules if m == "safetensors" or m.startswith("safetensors.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("safetensors", "safetensors.torch", "safetensors.numpy"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError):
        import safetensors  # noqa: F401


@pytest.fixture
def tcs(tmp_path):
    frames = np.random.default_rng(0).integers(100, 400, size=(10, 24, 24), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", frames, photometric="minisblack")
    emtcs.compress(tmp_path / "m.tif", tmp_path / "m.tcs", B=10)
    return tmp_path / "m.tcs"


def _names_the_fix(exc: BaseException) -> None:
    text = str(exc)
    assert isinstance(exc, EmtcsError), f"{type(exc).__name__}: {text}"
    assert "\n" not in text and "safetensors" in text and "pip install" in text, text


def test_find_weights(no_safetensors):
    with pytest.raises(Exception) as info:
        zoo.find_weights("tcsdl", 10)
    _names_the_fix(info.value)


@pytest.mark.parametrize("decoder", ["tcsdl", "gapnet"])
def test_named_learned_decoder(no_safetensors, tcs, tmp_path, decoder):
    with pytest.raises(Exception) as info:
        emtcs.decompress(tcs, tmp_path / "o.tif", decoder=decoder, device="cpu")
    _names_the_fix(info.value)
    assert not (tmp_path / "o.tif").exists()


def test_auto_falls_back_to_gaptv_or_says_what_to_install(no_safetensors, tcs, tmp_path):
    notes = []
    try:
        report = emtcs.decompress(tcs, tmp_path / "o.tif", decoder="auto", device="cpu", log=notes.append)
    except Exception as exc:  # noqa: BLE001 - which kind is the point of the test
        _names_the_fix(exc)
        return
    assert report.decoder["name"] == "gaptv"
    assert report.notice and "safetensors" in report.notice and notes == [report.notice]


@pytest.mark.parametrize("decoder", ["auto", "tcsdl"])
def test_cli_decompress(no_safetensors, tcs, tmp_path, decoder):
    result = CliRunner().invoke(
        main, ["decompress", str(tcs), "-o", str(tmp_path / "o.tif"), "--decoder", decoder, "-q"]
    )
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code:
        assert result.output.startswith("emtcs: error: ") and result.output.count("\n") == 1, result.output
        assert "safetensors" in result.output and "pip install" in result.output
    else:
        assert decoder == "auto" and "safetensors" in result.output  # the fallback notice


def test_bench_with_auto(no_safetensors, tmp_path):
    frames = np.random.default_rng(1).integers(100, 400, size=(10, 16, 16), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", frames, photometric="minisblack")
    result = CliRunner().invoke(main, ["bench", str(tmp_path / "m.tif"), "-B", "10", "--codecs", "jpeg8", "-q"])
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    if result.exit_code:
        assert result.output.count("\n") == 1 and "safetensors" in result.output, result.output


def test_installed_command_says_what_to_install(tcs, tmp_path):
    """As a user sees it: ``emtcs decompress`` in a fresh interpreter without safetensors."""
    code = (
        "import sys; sys.modules['safetensors'] = None; sys.modules['safetensors.torch'] = None; "
        "from emtcs.cli import main; "
        f"main(['decompress', {str(tcs)!r}, '-o', {str(tmp_path / 'o.tif')!r}, '--decoder', 'tcsdl', '-q'])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "safetensors" in proc.stderr
