"""Every figure of the catalog is readable without the code, checked on artist extents (not
pixels): no empty axes, no legend over an axes or another legend, no title or axis label over
another, and no parameter in the texts that the tables do not hold.

Each figure is built (``catalog.Figure.builder``, nothing saved) from a small synthetic result
set with the real column names; the tables come from the helpers of the studies' own tests.
"""

from __future__ import annotations

import functools
import itertools
import re

import numpy as np
import pandas as pd
import pytest
import test_chizat_figures as cft
import test_chizat_note as cnt
import test_deep_phase as dpt
import test_figures as aft
import test_kernel_baselines as kbt
import test_lr_phase as lrt
import test_phase as pt
from matplotlib.backends.backend_agg import FigureCanvasAgg

from lazyphase.stats import fit_exponents, function_exponents, thresholds, with_function_threshold
from lazyphase.studies.catalog import FIGURES
from lazyphase.studies.deep_phase.analysis import deep_phase_table
from lazyphase.studies.phase.analysis import phase_table
from lazyphase.studies.phase.condensation import condensation_summary
from lazyphase.studies.plotting import plot_style
from lazyphase.studies.theta_lazy.concentration import concentration_table, summarize

D, M0 = 7, 2  # the input dimension of the chizat tables (and an m0 the code must not invent)


# ----------------------------------------------------------------------------- tables
@functools.cache
def _theta_lazy():
    runs = aft._with_fdist(aft._runs(schemes=("lecun",)))
    exps, boot = fit_exponents(runs, n_boot=20)
    fexps, fthr = function_exponents(runs, n_boot=20)
    thr = with_function_threshold(thresholds(exps, boot), fthr)
    traj = aft._traj(runs)
    return runs, exps, thr, fexps, traj.assign(train_loss_lin=traj["train_loss"] * 0.8)


@functools.cache
def _concentration():
    table = concentration_table("relu", 1, [16, 32, 64], 3, n=5, d=4)[0]
    return table, summarize(table, n_boot=10)


@functools.cache
def _phase():
    runs = pt.synthetic_runs(pt.luo_exponent, (-0.5, 0.0, 0.5), (0.55, 0.8, 1.05, 1.3))
    return phase_table(runs, n_boot=20)


@functools.cache
def _function_phase():
    return phase_table(kbt.b1_runs(noise=0.05), n_boot=20)


@functools.cache
def _baselines():
    """A kernel_baselines.csv of B1 at γ' = 0: three regimes, three widths, two seeds."""
    rows = []
    for s, m, seed in itertools.product((0.5, 0.0, -0.5), (32, 128, 512), (0, 1)):
        net = 0.01 * (1 + s) * (1 + 0.1 * seed)
        rows.append({"m": m, "depth": 1, "d": 8, "n": 32, "s": s, "scheme": "luo:0",
                     "activation": "relu", "centering": "none", "seed": seed, "replica": seed,
                     "status": "converged", "test_loss_network": net, "note_network": np.nan,
                     "test_loss_theta0": 0.014 * (1 + 0.5 * s), "note_theta0": np.nan,
                     "test_loss_after": 0.5 * (net + 0.014), "note_after": np.nan,
                     "test_loss_ntk_inf": 0.014, "note_ntk_inf": np.nan,
                     "ntk_inf_is_limit_of_theta0": s < 0.5})  # fmt: skip
    return (pd.DataFrame(rows),)


@functools.cache
def _deep_condensation():
    rows = []
    for gh, s, m, seed, layer in itertools.product((0.25, 0.75), (-0.5, 0.0, 0.5), (16, 64), (0, 1), (1, 2)):
        init = 3.9 if layer == 1 else m / 2
        ratio = 1.0 if s > 0 else 1.0 - (0.2 if layer == 1 else gh / 2) * (0.5 - s)
        rows.append({"activation": "relu", "depth": 2, "scheme": f"deep:{gh}", "gamma_h": gh,
                     "s": s, "m": m, "seed": seed, "replica": seed, "status": "converged",
                     "layer": layer, "layer_name": f"W{layer}", "fan_in": 4 if layer == 1 else m,
                     "n_eff_init": init, "n_eff_final": init * ratio, "n_eff_ratio": ratio,
                     "n_eff_random": init})  # fmt: skip
    return (pd.DataFrame(rows),)


@functools.cache
def _deep_phase():
    star = lambda layer, gh: -0.3 + 0.1 * layer + 0.2 * gh
    runs = dpt._synthetic(star, [0.0, 1.0], [-0.5, 0.0, 0.5])
    # a depth-1 group too: its row has no W2 panel (that axes must not exist)
    one = runs[runs["layer"] != 2].assign(depth=1)
    one.loc[one["layer"] == 3, "layer"] = 2
    return deep_phase_table(pd.concat([runs, one], ignore_index=True), n_boot=0)


@functools.cache
def _condensation():
    rng = np.random.default_rng(0)
    neurons, circle = [], []
    for (s, gamma, regime), seed in itertools.product(
        ((0.5, 0.5, "linear"), (-0.5, 1.5, "condensed")), (0, 1)
    ):
        key = dict(s=s, gamma=gamma, gamma_prime=0.0, regime=regime, seed=seed)
        for stage in ("init", "final"):
            neurons.append(pd.DataFrame(dict(key, stage=stage, neuron=np.arange(12),
                                             angle=rng.uniform(-np.pi, np.pi, 12),
                                             amplitude=rng.uniform(0.1, 1, 12),
                                             sign=rng.choice([-1.0, 1.0], 12))))  # fmt: skip
        ang = np.linspace(-np.pi, np.pi, 40)
        circle.append(pd.DataFrame(dict(key, angle=ang, f_init=0.1 * np.sin(ang),
                                        f_final=np.cos(ang), target=np.cos(ang),
                                        train=np.arange(40) % 8 == 0)))  # fmt: skip
    neurons = pd.concat(neurons, ignore_index=True)
    return neurons, pd.concat(circle, ignore_index=True), condensation_summary(neurons, n_bins=12)


def _chizat_runs() -> pd.DataFrame:
    return cft._runs(d=D)


def _c7_runs() -> pd.DataFrame:
    return pd.concat([cft._runs(d=D), cft._runs(d=D, policy="chizat_alpha")], ignore_index=True)


def _c6_runs() -> pd.DataFrame:
    return cnt.synthetic_c6(2.0, seeds=range(3)).assign(m=16, d=D, lr_policy="chizat_alpha",
                                                        lr_c=cft.LR_C, lr0=np.nan)  # fmt: skip


def _cover():
    rows, teacher = [], []
    for tau, seed in itertools.product((0.1, 1.0), (0,)):
        for k in range(6):
            ang = 2 * np.pi * k / 6
            for step in (0, 40, 80):
                r = 0.2 + 0.004 * step / (1 + 5 * tau)
                rows.append(dict(tau=tau, seed=seed, neuron=k, step=step, x1=r * np.cos(ang),
                                 x2=r * np.sin(ang), sign=1.0 if k % 2 else -1.0))  # fmt: skip
        teacher += [dict(tau=tau, seed=seed, x1=np.cos(a), x2=np.sin(a), sign=sg)
                    for a, sg in ((0.3, 1.0), (2.0, -1.0))]  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(teacher)


def _landscape():
    grid, points = [], []
    for m, power in itertools.product((8, 16), (0.5, 1.0)):
        u = np.linspace(-3, 3, 9)
        key = dict(m=m, chizat_alpha_power=power, chizat_multiplier=m**-power)
        for (i, uu), (j, vv) in itertools.product(enumerate(u), enumerate(u)):
            # the scales differ between panels: one shared colour scale must span them all
            grid.append(dict(key, i=i, j=j, u=uu, v=vv, test_loss=10 ** (power * (uu**2 + vv**2) / 9 - m / 8)))  # fmt: skip
        for seed in range(3):
            points.append(dict(key, seed=seed, u=0.5 * seed - 0.5, v=0.3 - 0.3 * seed,
                               test_loss=0.1, sigma_u=1.0, sigma_v=1.0))  # fmt: skip
    return pd.DataFrame(grid), pd.DataFrame(points)


TABLES = {
    "theta_lazy_rd": lambda: _theta_lazy()[:2],
    "theta_lazy_threshold": lambda: (_theta_lazy()[1], _theta_lazy()[2]),
    "loss_decay": lambda: (_theta_lazy()[4],),
    "gram_concentration": _concentration,
    "gram_drift": lambda: (_theta_lazy()[0],),
    "function_distance": lambda: (_theta_lazy()[0], _theta_lazy()[3], _theta_lazy()[2]),
    "phase_diagram": _phase,
    "deep_phase_diagram": _deep_phase,
    "condensation": _condensation,
    "chizat_tau": lambda: (_chizat_runs(),),
    "chizat_width": lambda: (_chizat_runs(),),
    "chizat_population": lambda: (_chizat_runs(),),
    "chizat_cover": _cover,
    "chizat_trajectories": lambda: (cft._traj(),),
    "chizat_alpha_tau": lambda: (_c6_runs(),),
    "chizat_stepsize": lambda: (_c7_runs(),),
    "chizat_landscape": _landscape,
    "lr_phase_portrait": lambda: (lrt.synthetic_runs(),),
    "function_phase_diagram": _function_phase,
    "kernel_baselines": _baselines,
    "deep_condensation": _deep_condensation,
}


def test_every_catalog_figure_has_tables_here():
    assert set(TABLES) == set(FIGURES)


# ----------------------------------------------------------------------------- extents
@functools.cache
def _built(name: str):
    """The figure ``name`` built from :data:`TABLES` and laid out, with its renderer."""
    with plot_style():
        fig = FIGURES[name].builder()(*TABLES[name]())
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
    return fig, canvas.get_renderer()


def _is_colorbar(ax) -> bool:
    return ax.get_label() == "<colorbar>"


def _overlap(a, b, tol: float = 1.0) -> bool:
    """Whether two display boxes overlap by more than ``tol`` pixels each way."""
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > tol) and (min(a.y1, b.y1) - max(a.y0, b.y0) > tol)


def _legends(fig) -> list:
    return [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]


def _texts(fig) -> list[tuple[str, object]]:
    """``(kind, Text)`` of the suptitle, axes titles, axis labels and colour bar labels."""
    out = [("suptitle", fig._suptitle)] if fig._suptitle else []
    for ax in fig.axes:
        cb = _is_colorbar(ax)
        for t in (ax.title, ax._left_title, ax._right_title):
            out.append(("title", t))
        out += [("cbar" if cb else "label", ax.xaxis.label), ("cbar" if cb else "label", ax.yaxis.label)]
    return [(k, t) for k, t in out if t.get_text().strip() and t.get_visible()]


def _all_text(fig) -> str:
    texts = [t.get_text() for _, t in _texts(fig)]
    texts += [t.get_text() for leg in _legends(fig) for t in leg.get_texts()]
    texts += [leg.get_title().get_text() for leg in _legends(fig)]
    texts += [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]
    return "\n".join(texts)


NAMES = sorted(FIGURES)


@pytest.mark.parametrize("name", NAMES)
def test_no_empty_axes(name):
    fig, _ = _built(name)
    panels = [ax for ax in fig.axes if ax.get_visible() and not _is_colorbar(ax)]
    assert panels, f"{name}: no panel"
    for ax in panels:
        assert ax.lines or ax.collections or ax.images or ax.patches, (
            f"{name}: empty panel {ax.get_title()!r}"
        )


@pytest.mark.parametrize("name", NAMES)
def test_legends_clear_of_axes_and_of_each_other(name):
    fig, r = _built(name)
    legends = _legends(fig)
    boxes = [leg.get_window_extent(r) for leg in legends]
    for k, box in enumerate(boxes):
        for ax in fig.axes:
            if not _is_colorbar(ax):
                assert not _overlap(box, ax.get_window_extent(r)), (
                    f"{name}: legend {k} over the panel {ax.get_title()!r}"
                )
        for other in boxes[k + 1 :]:
            assert not _overlap(box, other), f"{name}: two legends overlap"


@pytest.mark.parametrize("name", NAMES)
def test_titles_and_labels_do_not_overlap(name):
    fig, r = _built(name)
    texts = [(kind, t, t.get_window_extent(r)) for kind, t in _texts(fig)]
    for (k1, t1, b1), (k2, t2, b2) in itertools.combinations(texts, 2):
        pair = {k1, k2}
        checked = pair in ({"suptitle", "title"}, {"title"}, {"label", "cbar"}, {"suptitle", "cbar"})
        assert not (checked and _overlap(b1, b2)), (
            f"{name}: {k1} {t1.get_text()!r} overlaps {k2} {t2.get_text()!r}"
        )


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("chizat")])
def test_chizat_texts_state_only_the_tables_parameters(name):
    text = _all_text(_built(name)[0])
    assert "100" not in text and "min(10" not in text
    assert not re.search(r"m0\s*=\s*3", text) and "m0" not in text
    if name in ("chizat_tau", "chizat_width", "chizat_population", "chizat_alpha_tau",
                "chizat_stepsize"):  # fmt: skip
        assert f"d={D}" in text, f"{name} does not state the tables' d"
    if name in ("chizat_tau", "chizat_stepsize"):
        assert f"min({cft.LR_MAX:g}, " in text  # the cap the runs show, not a literal


def test_theta_lazy_texts_read_the_widths_and_gaps():
    text = _all_text(_built("loss_decay")[0])
    m_max = int(_theta_lazy()[4]["m"].max())
    assert f"$m$ = {m_max}" in text
    assert not re.search(r"\d{5,}\.\d", text)  # no ratio printed as ×4636173.09
    a5 = _all_text(_built("gram_drift")[0])
    assert "GW" not in a5 and "G^{[1]}" in a5


def test_deep_phase_has_no_axes_for_a_missing_layer():
    fig, _ = _built("deep_phase_diagram")
    titles = [ax.get_title() for ax in fig.axes if not _is_colorbar(ax)]
    assert len(titles) == 3 + 2  # depth 2: W1, W2, a; depth 1: W1, a
    assert sum(1 for ax in fig.axes if _is_colorbar(ax)) == 1


def test_landscape_panels_share_one_colour_scale():
    fig, _ = _built("chizat_landscape")
    panels = [ax for ax in fig.axes if not _is_colorbar(ax)]
    limits = {tuple(np.round(ax.collections[0].get_clim(), 9)) for ax in panels}
    assert len(panels) == 4 and len(limits) == 1
    assert sum(1 for ax in fig.axes if _is_colorbar(ax)) == 1
