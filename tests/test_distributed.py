"""Decompression and compression on dask.distributed: the same output as one process,
whatever happens to the workers."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

import emtcs
from conftest import drifting_movie
from emtcs.decoding import DecodeSettings
from emtcs.errors import DecoderError, FormatError, InputError, MissingDependencyError
from test_cli import CliRunnerNoCatch, _leftovers

distributed = pytest.importorskip("distributed")
from emtcs import distributed as dist

TILING = {"decoder": "gaptv", "tile": 64, "overlap": 16}


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, shared by the tests of this file."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
    ) as c:
        yield c


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 30-frame 96 x 80 movie compressed with B=4 (8 groups, the last one short) and
    its single-process decompression: (folder, .tcs, frames, report)."""
    d = tmp_path_factory.mktemp("dist")
    tifffile.imwrite(d / "m.tif", drifting_movie(30, (96, 80)))
    emtcs.compress(d / "m.tif", d / "m.tcs", B=4)
    report = emtcs.decompress(d / "m.tcs", d / "plain.tif", **TILING)
    return d, d / "m.tcs", tifffile.imread(d / "plain.tif"), report


def test_two_workers_decode_the_same_frames(cluster, small, tmp_path):
    _, tcs, plain, plain_report = small
    groups = []
    report = emtcs.decompress(
        tcs, tmp_path / "d.tif", scheduler=cluster.scheduler_address, on_group=lambda g, r: groups.append(g), **TILING
    )
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "d.tif"), plain)
    assert report.residuals == plain_report.residuals  # bit for bit, summed in the same order
    assert groups == list(range(8)) and report.decoder == plain_report.decoder
    part = emtcs.decompress(tcs, tmp_path / "p.tif", scheduler=cluster.scheduler_address, frames="6:17", **TILING)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tif"), plain[6:17])
    assert sorted(part.residuals) == [1, 2, 3, 4]


def test_row_blocks_of_large_frames_match(cluster, small, tmp_path, monkeypatch):
    _, tcs, plain, plain_report = small
    monkeypatch.setattr(dist, "BLOCK_BYTES", 40 * 4 * 80 * 4)  # 40 rows of 4 frames of 80 float32
    with emtcs.open(tcs) as r:
        plan = dist.plan_decode(
            str(tcs),
            r.header,
            range(30),
            decoder="gaptv",
            settings=DecodeSettings(tile=64, overlap=16, batch=8, guard=0.0, device="cpu"),
            block_bytes=dist.BLOCK_BYTES,
        )
    assert [t.rows for t, _, _ in plan[:2]] == [(0, 32), (32, 96)]  # two row blocks per group
    assert [t.bands for t, _, _ in plan[:2]] == [(0, 1), (1, 2)]
    report = emtcs.decompress(tcs, tmp_path / "b.mrc", scheduler=cluster.scheduler_address, **TILING)
    with emtcs.io.open_movie(tmp_path / "b.mrc") as movie:
        np.testing.assert_array_equal(movie.read(0, 30), plain)
    assert report.residuals == plain_report.residuals


def test_compress_many_on_workers(cluster, tmp_path, run):
    inputs = []
    for k in range(3):
        inputs.append(tmp_path / f"m{k}.tif")
        tifffile.imwrite(inputs[-1], drifting_movie(6 + k, (16, 24), seed=k))
    infos = emtcs.codec.compress_many([(p, None) for p in inputs], 3, scheduler=cluster.scheduler_address)
    assert [i["n_frames"] for i in infos] == [6, 7, 8]
    for p in inputs:
        emtcs.compress(p, p.with_suffix(".ref.tcs"), B=3)
        with emtcs.open(p.with_suffix(".tcs")) as a, emtcs.open(p.with_suffix(".ref.tcs")) as b:
            for g in range(a.n_groups):
                np.testing.assert_array_equal(a.measurement(g), b.measurement(g))
    r = run("compress", *inputs, "-B", "3", "--scheduler", cluster.scheduler_address, "--force", "-q")
    assert r.exit_code == 0, r.output


def test_cli_on_a_local_cluster(small, tmp_path, run):
    _, tcs, plain, _ = small
    r = run(
        "decompress",
        tcs,
        "-o",
        tmp_path / "c.tif",
        "--workers",
        "2",
        "--decoder",
        "gaptv",
        "--tile",
        "64",
        "--overlap",
        "16",
        "-q",
    )
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "c.tif"), plain)


def test_a_failing_task_stops_the_run_and_leaves_nothing(cluster, small, tmp_path):
    _, tcs, _, _ = small
    bad = tmp_path / "bad.tcs"
    bad.write_bytes(tcs.read_bytes())
    with h5py.File(bad, "r") as f:
        offset = f["measurements"].id.get_chunk_info(3).byte_offset
    data = bytearray(bad.read_bytes())
    data[offset + 8] ^= 0x55
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="corrupted measurement of group 3"):
        emtcs.decompress(bad, tmp_path / "o.tif", scheduler=cluster.scheduler_address, **TILING)
    assert not (tmp_path / "o.tif").exists() and _leftovers(tmp_path) == []


def test_option_errors(small, tmp_path, monkeypatch):
    _, tcs, _, _ = small
    with pytest.raises(InputError, match="either --workers N or --scheduler ADDRESS"):
        emtcs.decompress(tcs, tmp_path / "o.tif", workers=2, scheduler="tcp://127.0.0.1:9")
    monkeypatch.setattr(dist, "CONNECT_TIMEOUT", 1)
    r = CliRunnerNoCatch().invoke(
        [
            "decompress",
            str(tcs),
            "-o",
            str(tmp_path / "o.tif"),
            "--decoder",
            "gaptv",
            "--scheduler",
            "tcp://127.0.0.1:9",
        ]
    )
    assert r.exit_code == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.tif").exists()
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask were not installed
    with pytest.raises(MissingDependencyError, match=r"needs distributed: pip install 'emtcs\[distributed\]'"):
        emtcs.decompress(tcs, tmp_path / "o.tif", workers=2)


class _Client:
    def __init__(self, workers):
        self.workers = workers

    def scheduler_info(self):
        return {"workers": self.workers}


def test_gpu_workers_are_declared_through_resources():
    gpu = {"a": {"nthreads": 4, "resources": {"GPU": 1}}, "b": {"nthreads": 4, "resources": {"GPU": 1}}}
    cpu = {"c": {"nthreads": 8, "resources": {}}}
    assert dist._placement(_Client(gpu), "gapnet", "auto") == ({"GPU": 1}, "cuda", 2)
    assert dist._placement(_Client(cpu), "gapnet", "auto") == (None, "auto", 8)
    assert dist._placement(_Client(gpu), "gaptv", "auto") == (None, "auto", 8)
    with pytest.raises(DecoderError, match="--resources GPU=1"):
        dist._placement(_Client(cpu), "gapnet", "cuda")


def test_killing_a_worker_mid_run_gives_the_same_output(cluster, tmp_path):
    """Runs last: the nanny restarts the killed worker."""
    tifffile.imwrite(tmp_path / "k.tif", drifting_movie(48, (128, 128)))
    emtcs.compress(tmp_path / "k.tif", tmp_path / "k.tcs", B=4)
    plain = emtcs.decompress(tmp_path / "k.tcs", tmp_path / "plain.tif", decoder="gaptv")
    killed = []
    with distributed.Client(cluster) as client:
        pids = client.run(os.getpid)

        def kill_a_busy_worker(g: int, residual: float) -> None:
            if not killed:
                busy = [w for w, keys in client.processing().items() if keys]
                assert busy, "no task in flight to lose"
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append((g, busy[0]))

        report = emtcs.decompress(
            tmp_path / "k.tcs",
            tmp_path / "d.tif",
            decoder="gaptv",
            scheduler=cluster.scheduler_address,
            on_group=kill_a_busy_worker,
        )
    assert killed and killed[0][0] == 0  # killed after the first of 12 groups
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "d.tif"), tifffile.imread(tmp_path / "plain.tif"))
    assert report.residuals == plain.residuals


def test_guarded_learned_decoder_and_quantised_file_on_workers(cluster, tmp_path):
    pytest.importorskip("torch", reason="the learned decoders need PyTorch")
    movie, tcs = tmp_path / "q.tif", tmp_path / "q.tcs"
    # bright field, unlike TCS-DL's training data, and a low threshold: some tiles fall back
    emtcs.codec.write_simulation(movie, n_frames=16, shape=(64, 72), dose=100.0, seed=2, mode="bright-field")
    emtcs.compress(movie, tcs, B=8, quantise=1.0, gain=1.0)
    opts = {"decoder": "tcsdl", "device": "cpu", "tile": 64, "overlap": 16, "guard": 0.5}
    plain = emtcs.decompress(tcs, tmp_path / "plain.tif", **opts)
    spread = emtcs.decompress(tcs, tmp_path / "d.tif", scheduler=cluster.scheduler_address, **opts)
    np.testing.assert_allclose(
        tifffile.imread(tmp_path / "d.tif").astype(float), tifffile.imread(tmp_path / "plain.tif"), atol=1
    )
    assert spread.fallback == plain.fallback and sum(r for r, _ in plain.fallback.values()) > 0
    assert spread.decoder["guard"] == 0.5


def test_select_and_its_holdout_scores_on_workers(cluster, tmp_path):
    pytest.importorskip("torch", reason="the learned decoders need PyTorch")
    from emtcs import zoo

    if zoo.find_weights("gapunet", 8) is None:
        pytest.skip("no GapUNet weights serve B=8")
    movie, tcs = tmp_path / "s.tif", tmp_path / "s.tcs"
    emtcs.codec.write_simulation(movie, n_frames=16, shape=(64, 72), dose=100.0, seed=2)
    emtcs.compress(movie, tcs, B=8, gain=1.0)
    opts = {"decoder": "select", "device": "cpu", "tile": 64, "overlap": 16}
    plain = emtcs.decompress(tcs, tmp_path / "plain.tif", **opts)
    spread = emtcs.decompress(tcs, tmp_path / "d.tif", scheduler=cluster.scheduler_address, **opts)
    np.testing.assert_allclose(
        tifffile.imread(tmp_path / "d.tif").astype(float), tifffile.imread(tmp_path / "plain.tif"), atol=1
    )
    assert len(plain.holdout_scores()) == 2
    for g, score in plain.holdout_scores().items():
        assert spread.holdout_scores()[g] == pytest.approx(score, rel=1e-3)
    # a liquid-cell movie at 200 e/px, where the shipped weights and GAP-TV score alike: blended tiles
    emtcs.codec.write_simulation(movie, n_frames=16, shape=(64, 72), dose=200.0, seed=2, mode="liquid-cell", force=True)
    emtcs.compress(movie, tcs, B=8, gain=1.0, force=True)
    plain = emtcs.decompress(tcs, tmp_path / "plain.tif", force=True, **opts)
    spread = emtcs.decompress(tcs, tmp_path / "d.tif", scheduler=cluster.scheduler_address, force=True, **opts)
    assert spread.blended == plain.blended and sum(plain.blended.values()) > 0, plain.blended


def test_still_tiles_on_workers(cluster, tmp_path):
    """Fringes held still for three groups: each group's still test reads its neighbours on
    the worker that decodes it, whichever frames are asked for."""
    pytest.importorskip("torch", reason="the learned decoders need PyTorch")
    from emtcs import zoo

    if zoo.find_weights("gapunet", 8) is None:
        pytest.skip("no GapUNet weights serve B=8")
    yy, xx = np.mgrid[0:64, 0:72]
    fringes = 200 * (1 + 0.5 * np.cos(2 * np.pi * (xx * np.cos(0.3) + yy * np.sin(0.3)) / 5))
    movie, tcs = tmp_path / "s.tif", tmp_path / "s.tcs"
    tifffile.imwrite(movie, np.random.default_rng(3).poisson(np.repeat(fringes[None], 24, axis=0)).astype(np.uint16))
    emtcs.compress(movie, tcs, B=8, gain=1.0)
    opts = {"decoder": "select", "device": "cpu", "tile": 64, "overlap": 16}
    plain = emtcs.decompress(tcs, tmp_path / "plain.tif", **opts)
    assert plain.still == {0: 2, 1: 2, 2: 2}
    part = emtcs.decompress(tcs, tmp_path / "d.tif", frames="8:16", scheduler=cluster.scheduler_address, **opts)
    assert part.still == {1: 2}
    np.testing.assert_allclose(
        tifffile.imread(tmp_path / "d.tif").astype(float), tifffile.imread(tmp_path / "plain.tif")[8:16], atol=1
    )


def test_groups_cut_to_scenes_on_workers(cluster, tmp_path):
    """A version-3 file (groups of 3, 1, 4 and 1 frames) decodes on workers as in one process."""
    example = Path(__file__).resolve().parents[1] / "formats" / "example-v3.tcs"
    emtcs.decompress(example, tmp_path / "plain.tif", decoder="gaptv")
    part = emtcs.decompress(
        example, tmp_path / "d.tif", decoder="gaptv", frames="2:9", scheduler=cluster.scheduler_address
    )
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "d.tif"), tifffile.imread(tmp_path / "plain.tif")[2:9])
    assert sorted(part.residuals) == [0, 1, 2, 3]


def test_a_network_fitted_to_the_file_decodes_on_workers(cluster, tmp_path):
    """``adapt``: the client fits the network, the workers decode with its weights."""
    pytest.importorskip("torch", reason="the learned decoders need PyTorch")
    from emtcs import zoo

    if zoo.find_weights("gapunet", 8) is None:
        pytest.skip("no GapUNet weights serve B=8")
    movie, tcs = tmp_path / "s.tif", tmp_path / "s.tcs"
    emtcs.codec.write_simulation(movie, n_frames=16, shape=(64, 72), dose=200.0, seed=2, mode="liquid-cell")
    emtcs.compress(movie, tcs, B=8, gain=1.0)
    opts = {"decoder": "select", "device": "cpu", "tile": 64, "overlap": 16, "adapt": 8}
    plain = emtcs.decompress(tcs, tmp_path / "plain.tif", **opts)
    spread = emtcs.decompress(tcs, tmp_path / "d.tif", scheduler=cluster.scheduler_address, **opts)
    assert plain.adaptation.kept > 0 and spread.adaptation.kept == plain.adaptation.kept
    assert "fitted to s.tcs" in spread.decoder["weights"]
    np.testing.assert_allclose(
        tifffile.imread(tmp_path / "d.tif").astype(float), tifffile.imread(tmp_path / "plain.tif"), atol=1
    )
