"""Fitting GapUNet to a file before decoding it (``--adapt``): it fits what it should, keeps
the shipped weights where fitting does not help, and decodes the same frames every run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

pytest.importorskip("torch")

import emtcs  # noqa: E402
from emtcs import zoo  # noqa: E402
from emtcs.adapt import SPLITS, Sample, adapt, file_samples  # noqa: E402
from emtcs.container import TcsReader  # noqa: E402
from emtcs.decoders import get_decoder  # noqa: E402
from emtcs.errors import DecoderError, InputError  # noqa: E402

B = 8
OPTS = {"device": "cpu", "tile": 64, "overlap": 16}


@pytest.fixture(scope="module")
def tcs(tmp_path_factory):
    """A 16-frame 96 x 96 liquid-cell movie at 50 e/px, compressed with B = 8."""
    if zoo.find_weights("gapunet", B) is None:
        pytest.skip(f"no GapUNet weights serve B={B}")
    d = tmp_path_factory.mktemp("adapt")
    emtcs.codec.write_simulation(
        d / "m.tif", clean_path=d / "c.tif", n_frames=16, shape=(96, 96), dose=50.0, seed=3, mode="liquid-cell"
    )
    emtcs.compress(d / "m.tif", d / "m.tcs", B=B, gain=1.0)
    return d / "m.tcs"


@pytest.fixture(scope="module")
def misfit(tcs, tmp_path_factory):
    """A models folder whose GapUNet fits :func:`tcs` badly: the shipped weights with the
    output layer 1.5 times too strong, so that fitting has something to find (phase 93's
    weights predict that movie's withheld measurements as well as a few steps can)."""
    info, state = zoo.load_weights(zoo.find_weights("gapunet", B))
    state = {k: v * 1.5 if k.startswith("unet.out.") else v for k, v in state.items()}
    d = tmp_path_factory.mktemp("misfit")
    zoo.save_weights(d / "gapunet-misfit.safetensors", state, info["config"], serves=info["serves"])
    return d


def test_samples_are_spread_over_groups_and_frame_and_normalised_as_decoded(tcs):
    dec = get_decoder("select", B=B, device="cpu")
    with TcsReader(tcs) as r:
        samples = file_samples(r, dec, range(2), tiles=4, tile=48)
        assert len(samples) == 4
        # two tiles from each group, at different places
        assert [float(s.y.sum()) for s in samples[:2]] != [float(s.y.sum()) for s in samples[2:]]
        for s in samples:
            assert s.y.shape == (1, 48, 48) and s.C.shape == (1, B, 48, 48) and s.epu.shape == (1,)
            assert 0 < float(s.y.max()) < 10 * B  # normalised: about 1 per frame
        # every place of every group when they are fewer than asked for
        assert len(file_samples(r, dec, range(2), tiles=100, tile=48)) == 2 * 4


def test_fitting_lowers_the_prediction_error_and_leaves_other_decoders_alone(tcs, misfit, monkeypatch):
    import torch

    monkeypatch.setenv(zoo.ENV_VAR, str(misfit))
    dec = get_decoder("gapunet", B=B, device="cpu")
    shared = dec.net
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    with TcsReader(tcs) as r:
        samples = file_samples(r, dec, range(2), tiles=2, tile=64)
    done = adapt(dec, samples, 16, lr=1e-4)
    assert done.steps == 16 and done.tiles == 2
    assert done.kept > 0 and done.ratio < 1  # a step predicted the validation share better
    assert dec.net is not shared  # the decoder fitted a network of its own...
    for k, v in shared.state_dict().items():  # ...and the one it had is as it was
        assert torch.equal(v, before[k])
    assert any(not torch.equal(v, before[k]) for k, v in dec.net.state_dict().items())
    assert all(s.decoder.net is dec.net for s in samples)
    assert not any(p.requires_grad for p in dec.net.parameters())


def test_nothing_better_keeps_the_shipped_weights(tcs):
    import torch

    dec = get_decoder("gapunet", B=B, device="cpu")
    before = {k: v.clone() for k, v in dec.net.state_dict().items()}
    with TcsReader(tcs) as r:
        samples = file_samples(r, dec, range(2), tiles=1, tile=64)
    done = adapt(dec, samples, 2, lr=1.0)  # a step this large only makes things worse
    assert done.kept == 0 and done.ratio == 1.0
    for k, v in dec.net.state_dict().items():
        assert torch.equal(v, before[k])
    assert "kept the shipped weights" in done.summary()


def test_select_s_holdout_pixels_are_never_seen_nor_fitted(tcs, monkeypatch):
    """Every share fitted or validated, and every decode while fitting, leaves out the
    pixels select withholds, so select's hold-out test of the fitted network stays honest."""
    import emtcs.adapt as adapt_module
    from emtcs.decoders.guard import holdout_pixels

    dec = get_decoder("gapunet", B=B, device="cpu")
    with TcsReader(tcs) as r:
        (sample,) = file_samples(r, dec, range(1), tiles=1, tile=64)
    never = holdout_pixels((64, 64))
    shares = adapt_module._Shares(sample, dec.device)
    parts = [shares[j] for j in range(SPLITS)]
    for share, ys, Cs, _ in parts:
        assert not (share.numpy() & never).any()
        assert not ys[0].numpy()[never].any() and not Cs[0].numpy()[:, never].any()
    validation = parts[0][0].numpy()
    for _, ys, _, _ in parts[1:]:
        assert not ys[0].numpy()[validation].any()  # nor is the validation share ever seen
    assert isinstance(sample, Sample)


def test_decompress_adapt_is_reproducible_and_reported(tcs, misfit, tmp_path, run, monkeypatch):
    monkeypatch.setenv(zoo.ENV_VAR, str(misfit))
    a = emtcs.decompress(tcs, tmp_path / "a.tif", decoder="select", adapt=8, **OPTS)
    emtcs.decompress(tcs, tmp_path / "b.tif", decoder="select", adapt=8, **OPTS)
    plain = emtcs.decompress(tcs, tmp_path / "p.tif", decoder="select", **OPTS)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), tifffile.imread(tmp_path / "b.tif"))
    assert a.adaptation is not None and a.adaptation.steps == 8 and plain.adaptation is None
    assert a.adaptation.kept > 0 and "fitted to m.tcs" in a.decoder["weights"]
    assert not np.array_equal(tifffile.imread(tmp_path / "a.tif"), tifffile.imread(tmp_path / "p.tif"))
    assert a.to_json()["adaptation"]["steps"] == 8 and "weights" not in a.to_json()["adaptation"]
    res = run("decompress", tcs, "-o", tmp_path / "c.tif", "--adapt", "4", "--tile", "64", "--device", "cpu")
    assert res.exit_code == 0 and "adapt:" in res.output
    res = run("decompress", tcs, "-o", tmp_path / "d.tif", "--adapt", "-1")
    assert res.exit_code != 0 and not (tmp_path / "d.tif").exists()


def test_adapt_needs_a_gapunet(tcs, tmp_path):
    with pytest.raises(InputError, match="--adapt fits GapUNet"):
        emtcs.decompress(tcs, tmp_path / "t.tif", decoder="gaptv", adapt=4)
    assert not (tmp_path / "t.tif").exists()
    with pytest.raises(InputError, match=">= 0"):
        emtcs.decompress(tcs, tmp_path / "t.tif", decoder="select", adapt=-1)


def test_weights_travel_as_bytes(tcs):
    """Fitted weights reach dask workers as a weights file's bytes: they load as the file does."""
    import torch

    path = zoo.find_weights("gapunet", B)
    info, state = zoo.load_weights(path)
    data = zoo.weights_bytes(state, info["config"], info["serves"], fitted_to="a test")
    info2, state2 = zoo.load_weights(data)
    assert info2["config"] == info["config"] and info2["fitted_to"] == "a test"
    assert all(torch.equal(state[k], state2[k]) for k in state)
    dec = get_decoder("gapunet", B=B, device="cpu", weights=data)
    assert dec.weights == "a test"
    with pytest.raises(DecoderError, match="not a weights file"):
        get_decoder("gapunet", B=B, device="cpu", weights=b"\xff" * 16)
    tcsdl_info, tcsdl_state = zoo.load_weights(zoo.find_weights("tcsdl", B))
    with pytest.raises(DecoderError, match="^the given weights holds 'tcsdl' weights"):
        get_decoder("gapunet", B=B, device="cpu", weights=zoo.weights_bytes(tcsdl_state, tcsdl_info["config"]))


def test_only_the_parameters_asked_for_are_fitted_and_a_fitted_decoder_fits_again(tcs):
    import torch

    dec = get_decoder("gapunet", B=B, device="cpu")
    before = {k: v.clone() for k, v in dec.net.state_dict().items()}
    with TcsReader(tcs) as r:
        samples = file_samples(r, dec, range(2), tiles=2, tile=64)
    done = adapt(dec, samples, 8, lr=1e-4, fit=lambda name: name.startswith("unet.out"))
    assert done.kept > 0
    changed = {k for k, v in dec.net.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"unet.out.weight", "unet.out.bias"}
    again = adapt(dec, samples, 4, lr=1e-4)  # its parameters were frozen after the first fit
    assert again.steps == 4


def test_a_file_without_groups_the_network_serves_is_decoded_as_shipped(tmp_path):
    if zoo.find_weights("gapunet", B) is None:
        pytest.skip(f"no GapUNet weights serve B={B}")
    dec = get_decoder("gapunet", B=B, device="cpu")
    long = next(n for n in range(B, 64) if not dec.info.serves(n))  # one group longer than the weights serve
    emtcs.codec.write_simulation(tmp_path / "m.tif", n_frames=long, shape=(64, 64), dose=50.0, seed=1)
    emtcs.compress(tmp_path / "m.tif", tmp_path / "m.tcs", B=long)
    with TcsReader(tmp_path / "m.tcs") as r:
        assert file_samples(r, dec, range(1)) == []
    done = adapt(dec, [], 8)
    assert done.tiles == 0 and done.kept == 0 and "nothing fitted" in done.summary()


def test_bench_fits_the_gapunet_decoders_and_leaves_the_others(run, tmp_path):
    if zoo.find_weights("gapunet", B) is None:
        pytest.skip(f"no GapUNet weights serve B={B}")
    emtcs.codec.write_simulation(tmp_path / "m.tif", n_frames=8, shape=(64, 64), dose=50.0, seed=1)
    out = tmp_path / "b.json"
    args = ("--decoder", "select,gaptv", "--codecs", "jpeg", "-B", str(B), "--adapt", "4", "--device", "cpu")
    res = run("bench", tmp_path / "m.tif", *args, "--json", out, "-q")
    assert res.exit_code == 0, res.output

    (run_,) = json.loads(out.read_text())["runs"]
    assert run_["config"]["adapt"] == 4
    rows = {r["setting"]: r for r in run_["rows"] if r["codec"] == "emtcs"}
    assert "adapt:" in rows["select"]["note"] and "adapt:" not in (rows["gaptv"].get("note") or "")


def test_the_fit_does_not_depend_on_the_frames_decoded(tcs, tmp_path):
    whole = emtcs.decompress(tcs, tmp_path / "w.tif", decoder="select", adapt=4, **OPTS)
    part = emtcs.decompress(tcs, tmp_path / "p.tif", decoder="select", adapt=4, frames="8:16", **OPTS)
    assert part.adaptation.tiles == whole.adaptation.tiles == 2  # a tile of each group, whichever are decoded
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tif"), tifffile.imread(tmp_path / "w.tif")[8:])
