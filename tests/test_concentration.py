"""A4 gram_concentration: G[l](θ0) → K[l] at rate m^{-1/2}, λ_min control, storage and figure."""

from __future__ import annotations

import functools
import re

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread

from lazyphase.cells import validate_cell
from lazyphase.core.kernels import normalization, per_layer_ntk
from lazyphase.core.limiting import limiting
from lazyphase.core.model import init_params, resolve_scales, standard_normal_init
from lazyphase.store.concentration import (
    COLUMNS,
    ConcentrationFileError,
    read_concentration,
    write_concentration,
)
from lazyphase.studies.theta_lazy.concentration import (
    _draw_grams,
    concentration_points,
    concentration_table,
    limit_kernels,
    summarize,
)
from lazyphase.studies.theta_lazy.figures import plot_gram_concentration

#: Test grid of the slope check. With 32 draws the fitted slope's spread over point sets and
#: input dimensions (d = 5 … 14) is 0.01–0.04 (largest: tanh, L = 2, W1), so the tolerance 0.1
#: is ≥ 2.5 standard deviations for every layer; the fixed seeds below give |slope + ½| ≤ 0.04.
SLOPE_GRID = {1: [64, 128, 256, 512, 1024, 2048, 4096], 2: [64, 128, 256, 512, 1024]}
SLOPE_DRAWS = 32
SLOPE_TOL = 0.1


@functools.cache
def _table(activation: str, depth: int) -> pd.DataFrame:
    table, _ = concentration_table(activation, depth, SLOPE_GRID[depth], SLOPE_DRAWS, seed=1)
    return table


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("depth", [1, 2])
def test_relative_error_decays_like_inverse_sqrt_width(activation, depth):
    summary = summarize(_table(activation, depth), n_boot=200, seed=0)
    fits = summary.drop_duplicates("layer").set_index("layer_name")
    assert list(fits.index) == [*[f"W{i}" for i in range(1, depth + 1)], "a"]
    for name, row in fits.iterrows():
        assert abs(row["slope"] + 0.5) < SLOPE_TOL, (name, row["slope"])
        assert row["ci_low"] < row["slope"] < row["ci_high"], name
        assert row["n_m"] == len(SLOPE_GRID[depth])
    # and the error itself is small at the largest width (measured: 0.02–0.10)
    top = summary[summary["m"] == max(SLOPE_GRID[depth])]
    assert (top["median_rel_error"] < 0.15).all()


def test_lambda_min_condition_holds_at_large_width_relu():
    summary = summarize(_table("relu", 1), n_boot=0)
    by_m = summary.pivot_table(index="m", columns="layer_name", values="frac_ok")
    assert (by_m.loc[max(SLOPE_GRID[1])] == 1.0).all()
    # not trivially true: at m = 64 the output layer's Gram often falls below ¾ λ_S
    assert by_m.loc[64].min() < 1.0
    assert set(summary["n_draws"]) == {SLOPE_DRAWS}


def test_table_columns_limit_and_gram():
    table, limit = concentration_table("tanh", 2, [32, 48], 3, n=6, d=5, seed=3, threads=1)
    assert tuple(table.columns) == COLUMNS
    assert len(table) == 2 * 3 * 3
    assert table["layer_name"].tolist()[:3] == ["W1", "W2", "a"]
    x = concentration_points(6, 5, 3)
    assert torch.equal(torch.as_tensor(limit["x"]), x)
    K = np.stack([k.numpy() for k in limiting(x, "tanh", 2)])
    np.testing.assert_allclose(limit["K"], K, rtol=1e-12, atol=1e-14)
    assert limit["lambda_S"] == pytest.approx(min(np.linalg.eigvalsh(K)[:, 0]), rel=1e-12)
    np.testing.assert_array_equal(table["ok"], table["lambda_min_G"] >= 0.75 * limit["lambda_S"])
    # rel_error of draw 1, m = 48, recomputed from the model's own initialization
    cell = validate_cell(dict(m=48, depth=2, d=5, activation="tanh", s=0.5, seeds=[0, 1, 2]))
    sc = resolve_scales(cell)
    params = init_params(cell, [sc] * 3, [0, 1, 2])
    theta = per_layer_ntk(params, x.expand(3, -1, -1), _act("tanh"), torch.ones(3), False)
    G = (theta * normalization([sc] * 3, 48)[:, :, None, None]).numpy()[1]
    rel = np.linalg.norm(G - K, axis=(1, 2)) / np.linalg.norm(K, axis=(1, 2))
    got = table[(table["m"] == 48) & (table["seed"] == 1)]["rel_error"].to_numpy()
    np.testing.assert_allclose(got, rel, rtol=1e-10)


def _act(name):
    from lazyphase.core import activations

    return activations.get(name)


def test_chunking_and_initialization_are_exact():
    cell = validate_cell(dict(m=40, depth=3, d=5, activation="relu", s=0.5, seeds=[0, 1, 2, 3]))
    sc = resolve_scales(cell)
    ours = init_params(cell, [sc] * 4, [0, 1, 2, 3])
    draws = [standard_normal_init(cell, seed) for seed in (0, 1, 2, 3)]
    ref = [torch.stack([dr[li] for dr in draws]) * sc.betas[li] for li in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))
    x = concentration_points(5, 5, 0)
    whole = _draw_grams(cell, x, [0, 1, 2, 3], 2**26)
    single = _draw_grams(cell, x, [0, 1, 2, 3], 1)  # one replica per chunk
    torch.testing.assert_close(whole, single, rtol=1e-13, atol=1e-15)


def test_threads_restored():
    before = torch.get_num_threads()
    concentration_table("relu", 1, [16], 2, n=4, d=3, threads=before + 1)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("scheme", "activation", "why"),
    [
        ("uniform:0", "softplus", "regime 'none'"),
        ("uniform:0", "tanh", "regime 'step'"),
        ("xavier", "sigmoid", "σ(0) = 0.5"),
        ("luo:0.5", "relu", "not supported"),
    ],
)
def test_no_limit_is_refused(scheme, activation, why):
    with pytest.raises(ValueError, match="gram_concentration") as err:
        concentration_table(activation, 2, [16], 1, scheme=scheme, n=4, d=3)
    assert scheme in str(err.value) and activation in str(err.value) and why in str(err.value)


def test_linearized_limit_does_not_depend_on_reference_width():
    x = concentration_points(6, 4, 0)
    a = limit_kernels(x, "tanh", 2, "xavier", 4, 100)
    b = limit_kernels(x, "tanh", 2, "xavier", 4, 10**6)
    for ka, kb in zip(a, b):
        torch.testing.assert_close(ka, kb, rtol=1e-12, atol=1e-14)


def test_hdf5_round_trip_and_incomplete_file(tmp_path):
    table, limit = concentration_table("relu", 2, [16, 32], 3, n=5, d=4)
    path = tmp_path / "a4" / "relu_L2.h5"
    write_concentration(path, table, limit, {"draws": 3, "n": 5})
    got, lim, attrs = read_concentration(path)
    pd.testing.assert_frame_equal(got, table)
    np.testing.assert_array_equal(lim["K"], limit["K"])
    np.testing.assert_array_equal(lim["x"], limit["x"])
    assert lim["lambda_S"] == limit["lambda_S"]
    assert (lim["activation"], lim["depth"], lim["scheme"]) == ("relu", 2, "lecun")
    assert attrs["draws"] == 3 and "complete" not in attrs
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    with h5py.File(path, "r") as f:
        assert h5py.check_string_dtype(f["table/layer_name"].dtype) is not None
        assert f["kernels/limit"].shape == (3, 5, 5)
    with h5py.File(path, "a") as f:
        del f.attrs["complete"]
    with pytest.raises(ConcentrationFileError, match=re.escape(str(path))):
        read_concentration(path)
    with pytest.raises(ConcentrationFileError, match=re.escape("missing.h5")):
        read_concentration(tmp_path / "missing.h5")


def test_plot_writes_pdf_and_png(tmp_path):
    tables = [concentration_table(a, 1, [16, 32, 64], 3, n=5, d=4)[0] for a in ("relu", "tanh")]
    table = pd.concat(tables, ignore_index=True)
    summary = summarize(table, n_boot=20)
    pdf, png = tmp_path / "a4.pdf", tmp_path / "a4.png"
    plot_gram_concentration(table, summary, pdf, png)
    assert pdf.stat().st_size > 1000 and pdf.read_bytes()[:5] == b"%PDF-"
    img = imread(png)
    assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0
