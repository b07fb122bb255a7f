"""The data dictionary: every column of every table the pipeline writes, in one place.

``docs/tables.md`` is generated from :data:`TABLE_DOCS` (``lazyphase tables-reference >
docs/tables.md``); ``tests/test_tables_doc.py`` fails when the page is stale or when a table
the workflow writes has a column not described here. Types: ``int``, ``float``, ``str``,
``bool``. A column name with ``<layer>`` stands for one column per layer (``W1`` … ``WL``,
``a``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lazyphase.store.provenance import CODE_KEY, GIT_KEY

#: Column → (type, meaning) for the cell and setting columns shared by several tables.
_CELL = {
    "experiment": ("str", "experiment name (the key under `experiments:` of the configuration)"),
    "m": ("int", "width (neurons per hidden layer)"),
    "depth": ("int", "number of hidden layers L"),
    "d": ("int", "input dimension"),
    "n": ("int", "number of training points"),
    "s": ("float", "initialization exponent s = log κ / log m (realized value for `model: chizat`)"),
    "kappa": ("float", "κ = m^s, the output scale at initialization (docs/conventions.md §2)"),
    "alpha": ("float", "output divisor α actually used"),
    "scheme": ("str", "initialization scheme (lecun, xavier, uniform:γ, luo:γ', deep:γ_h, …)"),
    "activation": ("str", "activation function σ"),
    "centering": ("str", "output centering (`symmetric`: doubled network, f(θ0) = 0; `none`)"),
    "bias": ("bool", "whether the layers have biases"),
}
_SETTINGS = {
    "model": ("str", "model family (`lazyphase` or `chizat`); NaN in files before the key existed"),
    "tau": ("float", "Chizat's weight scale τ (std of both layers); NaN for other models"),
    "chizat_alpha": ("float", "Chizat's output scale A before the width power"),
    "chizat_alpha_power": ("float", "power p of A = chizat_alpha · m^(−p)"),
    "chizat_multiplier": ("float", "Chizat's output multiplier A = 1/α"),
    "step_on": ("str", "what the step-size rule applies to (R, note_c6, mean_field)"),
    "delta_on": ("str", "what the early-stopping δ is measured on (R, F_alpha)"),
    "init": ("str", "initialization of the Chizat model (gaussian, circle)"),
    "lr_policy": ("str", "step-size rule (docs/configuration.md)"),
    "lr_c": ("float", "constant c of the step-size rule"),
    "lr": ("float", "fixed step size (lr_policy: fixed)"),
    "teacher_scale": ("float", "teacher output scale"),
    "batch_size": ("float", "SGD batch size (NaN: full batch)"),
    "patience": ("float", "early-stopping patience in steps (NaN: none)"),
    "parameterization": ("str", "abc-parameterization (sp, ntp, mup, mfp, abc:a=..;b=..;c=..; "
                         "docs/conventions.md §7); NaN: none (scheme and s)"),
    "safeguard": ("str", "step safeguard: halve, or none (catapults kept); NaN in older files"),
}
_LAYER = {
    "layer": ("int", "layer index l = 1 … L+1 (L+1: the output layer a)"),
    "layer_name": ("str", "layer name W1 … WL, a"),
}
_REPLICA = {
    "seed": ("int", "replica seed"),
    "replica": ("int", "replica index within its run file"),
    "status": ("str", "how the replica stopped: converged, max_steps, early_stopped, diverged"),
}
_FIT = {
    "slope": ("float", "least-squares slope of log y against log m (the regime exponent)"),
    "intercept": ("float", "intercept of the fit log y = intercept + slope · log m"),
    "ci_low": ("float", "lower end of the seed-bootstrap percentile interval of the slope"),
    "ci_high": ("float", "upper end of that interval"),
    "r2": ("float", "R² of the fit"),
    "n_obs": ("int", "rows fitted"),
    "n_m": ("int", "distinct widths fitted"),
    "n_seeds": ("int", "distinct seeds"),
    "n_excluded": ("int", "rows dropped (diverged, non-positive or non-finite)"),
    "n_boot": ("int", "finite bootstrap replicates"),
}
_CROSS = {
    "frac_boot_cross": ("float", "fraction of bootstrap replicates that cross"),
    "n_crossings": ("int", "sign changes along the grid (several: the largest-s one is reported)"),
    "note": ("str", "why there is no value, or a caveat (empty otherwise)"),
}
_PROVENANCE = {
    CODE_KEY: ("str", "code fingerprint `<version>-<sha256[:12]>` of the package that wrote the "
               "table (CSV only: the same on every row; parquet keeps it in the file metadata)"),
    GIT_KEY: ("str", "`git describe --always --dirty` of that code's checkout; empty outside "
              "one (CSV only, as above)"),
}  # fmt: skip


@dataclass(frozen=True)
class TableDoc:
    """One table: its file name, the experiment kinds that write it, the function that builds
    it, a one-line description and its columns (name → (type, meaning))."""

    file: str
    kinds: tuple[str, ...]
    builder: str
    description: str
    columns: Mapping[str, tuple[str, str]]

    def pattern(self, name: str) -> re.Pattern[str]:
        return re.compile(re.escape(name).replace(re.escape("<layer>"), r"(W\d+|a)"))

    def describes(self, column: str) -> bool:
        """Whether ``column`` is one of :attr:`columns` (``<layer>`` patterns included)."""
        if column in self.columns:
            return True
        return any(self.pattern(c).fullmatch(column) for c in self.columns if "<" in c)


_RUNS_COLUMNS = {
    **_CELL,
    **_SETTINGS,
    **_REPLICA,
    **_LAYER,
    "final_step": ("int", "step at which the replica stopped"),
    "lambda_min_theta0": ("float", "smallest eigenvalue of the full NTK Gram Θ0 on the training "
                          "set at initialization (NaN when not computed: n > 256)"),
    "lambda_max_theta0": ("float", "largest eigenvalue of that Gram"),
    "lambda_min_limit": ("float", "λ_min predicted by the limiting kernels on the scale of Θ0 "
                         "(NaN where the scheme has no O(1) limit)"),
    "test_loss_best": ("float", "minimum test loss over every evaluation"),
    "best_step": ("float", "step of that minimum"),
    "tail_train_loss": ("float", "training loss averaged over the last `tail_steps` steps "
                        "(NaN if the replica stopped earlier)"),
    "rd_total_final": ("float", "‖Δθ‖/‖θ0‖ over all layers at the end"),
    "eta_lambda_final": ("float", "η · λ_max(Σ_l r_l Θ[l]/n_k) at the last Gram snapshot, on the "
                         "kernel set (stable below 2; docs/conventions.md §3, §7)"),
    "fdist": ("float", "‖f(θ_T) − f_lin(T)‖ / ‖f_lin(T) − f(θ0)‖ on the test set: distance to "
              "the linearized (kernel) predictor (docs/conventions.md §5); NaN where skipped"),
    "test_loss_lin": ("float", "test loss of the linearized run at the end"),
    "train_loss_lin_final": ("float", "training loss of the linearized run at the end"),
    "fdist_conv": ("float", "‖f(θ_T) − f_lin(∞)‖ / ‖f_lin(∞) − f(θ0)‖ on the test set: distance "
                   "to the converged Θ0 kernel predictor (docs/conventions.md §6); NaN where the "
                   "linearized run is skipped or the file predates it"),
    "test_loss_conv": ("float", "test loss of the converged Θ0 kernel predictor f_lin(∞)"),
    "rd_final": ("float", "relative displacement RD(W[l]) = ‖ΔW[l]‖_F / ‖W[l](0)‖_F at the end"),
    "gram_drift": ("float", "sup_t ‖G[l](t) − G[l](0)‖_F / ‖G[l](0)‖_F over the Gram snapshots"),
    "t_final": ("float", "continuous time t = Σ η at the replica's final step"),
    "train_loss0": ("float", "training loss R(θ0) = (1/2n) Σ (f − y)² at initialization"),
    "train_loss_final": ("float", "training loss at the end"),
    "test_loss_final": ("float", "test loss at the end"),
    "lr0": ("float", "initial step size"),
    "output_std0": ("float", "std of the initial outputs on the training set"),
    "file": ("str", "the run file the row comes from"),
}  # fmt: skip

_EXPONENT_KEYS = {k: v for k, v in {**_CELL, **_LAYER}.items() if k in
                  ("scheme", "activation", "depth", "s", "layer", "layer_name")}  # fmt: skip
_THRESHOLD = {
    **{k: v for k, v in _EXPONENT_KEYS.items() if k != "s"},
    "s_star": ("float", "s* where the RD exponent of the layer crosses 0 along s (linear "
               "interpolation; NaN without a crossing, see note)"),
    "s_star_low": ("float", "lower end of the bootstrap interval of s*"),
    "s_star_high": ("float", "upper end of that interval"),
    **{k: v for k, v in _CROSS.items() if k != "note"},
    "lazy_side_negative": ("bool", "every exponent at s > 0 is finite and < 0"),
    "lazy_side_ci_negative": ("bool", "the same with the interval's upper end < 0"),
    "s_min": ("float", "smallest s of the group"),
    "s_max": ("float", "largest s of the group"),
    "n_s": ("int", "s values with a finite exponent"),
    "note": _CROSS["note"],
    "s_star_f": ("float", "s*_f: where the exponent of fdist crosses 0 (function space; the "
                 "same on every layer of a group)"),
    "s_star_f_low": ("float", "lower end of the bootstrap interval of s*_f"),
    "s_star_f_high": ("float", "upper end of that interval"),
    "frac_boot_cross_f": ("float", "fraction of bootstrap replicates where fdist crosses"),
    "lazy_side_negative_f": ("bool", "every fdist exponent at s > 0 is finite and < 0"),
    "note_f": ("str", "note of the fdist crossing"),
}  # fmt: skip

_PHASE_B1 = {
    "gamma_prime": ("float", "Luo et al.'s γ' (input-layer exponent)"),
    "gamma": ("float", "Luo et al.'s γ = 1 − s"),
    "s": _CELL["s"],
    "scheme": _CELL["scheme"],
    "activation": _CELL["activation"],
    "S_w": ("float", "slope S_w of log RD(W) against log m (> 0: linear, < 0: condensed)"),
    "S_w_low": ("float", "lower end of its bootstrap interval"),
    "S_w_high": ("float", "upper end"),
    "r2": _FIT["r2"],
    "n_m": _FIT["n_m"],
    "m_min": ("int", "smallest width"),
    "m_max": ("int", "largest width"),
    "n_seeds": _FIT["n_seeds"],
    "n_replicas": ("int", "replicas in the cell"),
    "n_converged": ("int", "replicas that converged"),
    "n_diverged": ("int", "replicas that diverged"),
    "round": ("int", "0: coarse grid, r: bisection round r"),
    "regime": ("str", "linear (S_w > 0), condensed (< 0) or undetermined (NaN)"),
    "hatched": ("bool", "unreliable cell: R² < r2_min, a replica did not converge, or no exponent"),
}
_BOUNDARY_B1 = {
    "gamma_prime": _PHASE_B1["gamma_prime"],
    "gamma_star": ("float", "γ* where S_w changes sign from > 0 to ≤ 0 along γ (NaN: none, see "
                   "note)"),
    "gamma_star_low": ("float", "lower end of the bootstrap interval of γ*"),
    "gamma_star_high": ("float", "upper end"),
    **{k: v for k, v in _CROSS.items() if k != "note"},
    "bracket_low": ("float", "grid γ just below the crossing"),
    "bracket_high": ("float", "grid γ just above the crossing"),
    "n_gamma": ("int", "γ values of the grid (with bisection points)"),
    "luo_line": ("float", "Luo et al.'s boundary γ = 1 at this γ' (the candidate line)"),
    "scaling_line": ("float", "the scaling-argument line at this γ'"),
    "nearer": ("str", "the candidate line nearer to γ*"),
    "luo_in_ci": ("bool", "the Luo line lies in γ*'s interval"),
    "scaling_in_ci": ("bool", "the scaling line lies in γ*'s interval"),
    "note": _CROSS["note"],
}  # fmt: skip
_PHASE_B2 = {
    **{k: v for k, v in {**_CELL, **_LAYER}.items()
       if k in ("activation", "depth", "layer", "layer_name", "s", "scheme")},
    "gamma_h": ("float", "hidden-layer exponent γ_h of the deep:γ_h scheme"),
    "gamma_outer": ("float", "the output layer's exponent that makes κ = m^s"),
    **{k: _FIT[k] for k in ("slope", "ci_low", "ci_high", "r2", "n_m", "n_seeds")},
    "m_min": _PHASE_B1["m_min"],
    "m_max": _PHASE_B1["m_max"],
    "n_replicas": _PHASE_B1["n_replicas"],
    "n_converged": _PHASE_B1["n_converged"],
    "n_max_steps": ("int", "replicas stopped at max_steps"),
    "n_diverged": _PHASE_B1["n_diverged"],
    "median_final_step": ("float", "median final step of the replicas"),
    "max_final_step": ("int", "largest final step"),
    "round": _PHASE_B1["round"],
    "regime": ("str", "linear (exponent > 0), condensed (< 0) or undetermined"),
    "ci_contains_zero": ("bool", "the exponent's interval contains 0"),
    "hatched": _PHASE_B1["hatched"],
}  # fmt: skip
_BOUNDARY_B2 = {
    **{k: _PHASE_B2[k] for k in ("activation", "depth", "layer", "layer_name", "gamma_h")},
    "s_star": ("float", "s* where the layer's exponent changes sign along s (NaN: none)"),
    "s_star_low": ("float", "lower end of its bootstrap interval"),
    "s_star_high": ("float", "upper end"),
    **{k: v for k, v in _CROSS.items() if k != "note"},
    "bracket_low": ("float", "grid s just below the crossing"),
    "bracket_high": ("float", "grid s just above the crossing"),
    "n_s": ("int", "s values with a finite exponent"),
    "linear_above_0": ("bool", "every cell with s > 0 of this layer and γ_h is linear "
                       "(theta-lazy's prediction)"),
    "note": _CROSS["note"],
}  # fmt: skip

#: The function-space criteria of B1/B2: tag → (runs column, what it measures).
_F_CRITERIA = {
    "f": ("fdist", "the distance to the linearized run at equal time"),
    "fconv": ("fdist_conv", "the distance to the converged Θ0 kernel predictor f_lin(∞)"),
}


def _function_phase() -> dict[str, tuple[str, str]]:
    """The ``phase.csv`` columns of the function-space exponents (B1, B2)."""
    out = {}
    for col, what in _F_CRITERIA.values():
        out[f"{col}_slope"] = ("float", f"exponent (slope of log against log m) of {col}, {what}"
                               " (docs/conventions.md §6); > 0: the network leaves its kernel")
        out[f"{col}_ci_low"] = ("float", f"lower end of the bootstrap interval of {col}_slope")
        out[f"{col}_ci_high"] = ("float", f"upper end of the bootstrap interval of {col}_slope")
    return out


def _function_boundary(star: str, axis: str) -> dict[str, tuple[str, str]]:
    """The ``boundary.csv`` columns of the function-space boundaries: ``star`` is ``gamma_star``
    (B1, along γ) or ``s_star`` (B2, along s)."""
    out = {}
    for tag, (col, what) in _F_CRITERIA.items():
        out[f"{star}_{tag}"] = ("float", f"where the exponent of {col} ({what}) changes sign "
                                f"along {axis} (NaN: none, see note_{tag})")
        out[f"{star}_{tag}_low"] = ("float", f"lower end of the bootstrap interval of {star}_{tag}")
        out[f"{star}_{tag}_high"] = ("float", "upper end of that interval")
        out[f"frac_boot_cross_{tag}"] = ("float", f"fraction of bootstrap replicates where {col}"
                                         " crosses")
        out[f"bracket_{tag}_low"] = ("float", f"grid {axis} just below that crossing")
        out[f"bracket_{tag}_high"] = ("float", f"grid {axis} just above that crossing")
        out[f"note_{tag}"] = ("str", f"note of the {col} crossing")
    out["refined_on"] = ("str", "the criteria whose sign changes the bisection refined "
                         "(config key refine_on, joined by +)")
    return out


_PHASE_B1 |= _function_phase()
_BOUNDARY_B1 |= _function_boundary("gamma_star", "γ")
_PHASE_B2 |= _function_phase()
_BOUNDARY_B2 |= _function_boundary("s_star", "s (the same on every layer)")

_A4 = {
    **{k: v for k, v in {**_CELL, **_LAYER}.items()
       if k in ("activation", "depth", "scheme", "m", "layer", "layer_name")},
}  # fmt: skip

_TRAIN = ("train", "phase_diagram", "deep_phase_diagram")

#: Every table of the pipeline. ``file`` is the name under ``results/<experiment>/``.
TABLE_DOCS: tuple[TableDoc, ...] = (
    TableDoc("runs.parquet", _TRAIN, "lazyphase.store.tables.collect",
             "one row per replica × layer of every run file (also `refine/runs.parquet`, with "
             "`round`, for B1/B2)",
             {**_RUNS_COLUMNS, "round": ("int", "refine/runs.parquet only: bisection round")}),
    TableDoc("trajectory.parquet", _TRAIN, "lazyphase.store.tables.collect",
             "one row per replica × snapshot up to the replica's final step",
             {**{k: _RUNS_COLUMNS[k] for k in (
                 "experiment", "m", "depth", "s", "scheme", "activation", "seed", "replica",
                 "status", "lambda_min_theta0", "n")},
              **_SETTINGS,
              "step": ("int", "snapshot step"),
              "t": ("float", "continuous time t = Σ η over accepted steps"),
              "train_loss": ("float", "training loss R(θ) = (1/2n) Σ (f − y)²"),
              "test_loss": ("float", "test loss, same form"),
              "rd_<layer>": ("float", "RD of that layer at the snapshot"),
              "rd_total": ("float", "‖Δθ‖/‖θ0‖ over all layers"),
              "train_loss_lin": ("float", "the linearized run's training loss (NaN if skipped)"),
              "test_loss_lin": ("float", "the linearized run's test loss (NaN if skipped)")}),
    TableDoc("exponents.csv", _TRAIN, "lazyphase.stats.fit_exponents",
             "the RD exponent (slope of log RD against log m) per scheme × activation × depth × "
             "s × layer", {**_EXPONENT_KEYS, **_FIT}),
    TableDoc("threshold.csv", _TRAIN, "lazyphase.stats.thresholds",
             "s* per scheme × activation × depth × layer, with the function-space s*_f",
             _THRESHOLD),
    TableDoc("function_exponents.csv", _TRAIN, "lazyphase.stats.function_exponents",
             "the exponent of fdist against m per scheme × activation × depth × s",
             {**{k: _EXPONENT_KEYS[k] for k in ("scheme", "activation", "depth", "s")}, **_FIT}),
    TableDoc("concentration.parquet", ("gram_concentration",),
             "lazyphase.studies.theta_lazy.concentration.concentration_table",
             "A4: one row per width × draw × layer",
             {**_A4, "seed": ("int", "draw"),
              "rel_error": ("float", "‖G[l](θ0) − K[l]‖_F / ‖K[l]‖_F"),
              "lambda_min_G": ("float", "λ_min of the normalized Gram G[l](θ0)"),
              "lambda_min_K": ("float", "λ_min of the limiting kernel K[l]"),
              "lambda_S": ("float", "λ_S: smallest eigenvalue of Σ_l K[l]"),
              "ok": ("bool", "λ_min(G[l]) ≥ ¾ λ_S")}),
    TableDoc("concentration_summary.csv", ("gram_concentration",),
             "lazyphase.studies.theta_lazy.concentration.summarize",
             "A4: one row per activation × depth × scheme × layer × width",
             {**_A4, "n_draws": ("int", "draws at this width"),
              "frac_ok": ("float", "fraction of draws with λ_min(G[l]) ≥ ¾ λ_S"),
              "median_rel_error": ("float", "median rel_error over the draws"),
              "median_lambda_min_G": ("float", "median λ_min(G[l])"),
              "lambda_S": ("float", "λ_S"),
              **{k: _FIT[k] for k in ("slope", "ci_low", "ci_high", "r2", "n_m")}}),
    TableDoc("phase.csv", ("phase_diagram",), "lazyphase.studies.phase.analysis.phase_table",
             "B1: S_w per (γ', γ)", _PHASE_B1),
    TableDoc("boundary.csv", ("phase_diagram",), "lazyphase.studies.phase.analysis.phase_table",
             "B1: the boundary γ* per γ'", _BOUNDARY_B1),
    TableDoc("phase.csv", ("deep_phase_diagram",),
             "lazyphase.studies.deep_phase.analysis.deep_phase_table",
             "B2: the exponent of every layer per (activation, depth, γ_h, s)", _PHASE_B2),
    TableDoc("boundary.csv", ("deep_phase_diagram",),
             "lazyphase.studies.deep_phase.analysis.deep_phase_table",
             "B2: s* of every layer per (activation, depth, γ_h)", _BOUNDARY_B2),
    TableDoc("precision.csv", _TRAIN, "lazyphase.pipeline.precision.precision_table",
             "every interval on the precision target after the precision rounds (only with "
             "`target_ci_width`)",
             {**{k: _EXPONENT_KEYS[k] for k in ("scheme", "activation", "depth", "s", "layer_name")},
              "estimate": ("float", "the regime exponent, s* or γ* (target_on)"),
              "low": ("float", "lower end of its bootstrap interval"),
              "high": ("float", "upper end"),
              "n_seeds": _FIT["n_seeds"],
              "ci_width": ("float", "high − low (NaN: no interval)"),
              "target": ("float", "target_ci_width"),
              "target_on": ("str", "exponent, s_star or gamma_star"),
              "target_met": ("bool", "ci_width ≤ target"),
              "stop": ("str", "why its cell group got no more seeds: met, max_seeds, cpu_hours, "
                       "no estimate, rounds"),
              "rounds": ("int", "precision rounds that trained"),
              "cpu_hours": ("float", "CPU-hours the precision rounds used")}),
    TableDoc("neurons.parquet", ("train",), "lazyphase.studies.phase.condensation.neuron_tables",
             "B3: every neuron at initialization and at the end",
             {"s": _CELL["s"], "gamma": _PHASE_B1["gamma"], "gamma_prime": _PHASE_B1["gamma_prime"],
              "regime": ("str", "linear, critical or condensed (from γ)"), "seed": _REPLICA["seed"],
              "stage": ("str", "init or final"), "neuron": ("int", "neuron index k"),
              "angle": ("float", "orientation of w_k in radians, [−π, π)"),
              "amplitude": ("float", "|a_k| ‖w_k‖"), "sign": ("float", "sign of a_k")}),
    TableDoc("circle.parquet", ("train",), "lazyphase.studies.phase.condensation.neuron_tables",
             "B3: the learned function on the circle",
             {"s": _CELL["s"], "gamma": _PHASE_B1["gamma"], "gamma_prime": _PHASE_B1["gamma_prime"],
              "regime": ("str", "linear, critical or condensed"), "seed": _REPLICA["seed"],
              "angle": ("float", "point on the circle, radians"),
              "f_init": ("float", "network output at initialization"),
              "f_final": ("float", "network output at the end"),
              "target": ("float", "teacher value"),
              "train": ("bool", "the row is a training point")}),
    TableDoc("condensation.csv", ("train",),
             "lazyphase.studies.phase.condensation.condensation_summary",
             "B3: the effective number of directions per (s, seed, stage)",
             {"s": _CELL["s"], "gamma": _PHASE_B1["gamma"], "gamma_prime": _PHASE_B1["gamma_prime"],
              "regime": ("str", "linear, critical or condensed"), "seed": _REPLICA["seed"],
              "stage": ("str", "init or final"),
              "n_eff": ("float", "amplitude-weighted effective number of direction bins"),
              "n_eff_count": ("float", "the same, unweighted"),
              "top2_mass": ("float", "share of the total amplitude in the two heaviest bins"),
              "n_bins": ("int", "angle bins"),
              "amplitude_mean": ("float", "mean amplitude")}),
    TableDoc("kernel_baselines.csv", _TRAIN,
             "lazyphase.studies.kernels.baselines.baseline_table",
             "the test loss of the network and of three kernel predictors per replica of every "
             "grid cell (coarse grid; docs/conventions.md §6)",
             {**{k: _CELL[k] for k in ("m", "depth", "d", "n", "s", "scheme", "activation",
                                        "centering")},
              **_REPLICA,
              "test_loss_network": ("float", "(a) the trained network's test loss at the end"),
              "test_loss_theta0": ("float", "(b) the converged Θ0 kernel predictor f_lin(∞) "
                                   "(empirical NTK at θ0, started from f(θ0)); NaN where the "
                                   "linearized run was skipped"),
              "test_loss_after": ("float", "(c) the after kernel: the empirical NTK Θ_T of the "
                                  "final weights, started from f(θ0); NaN without stored weights"),
              "test_loss_ntk_inf": ("float", "(d) the infinite-width NTK Σ_l w_l K[l] (limiting "
                                    "kernels, the cell's layer weights), started from 0; NaN where "
                                    "G[l] has no O(1) limit or Θ∞ is singular on the training set"),
              **{f"note_{p}": ("str", f"why test_loss_{p} is NaN (empty when it exists)")
                 for p in ("network", "theta0", "after", "ntk_inf")},
              "ntk_inf_is_limit_of_theta0": ("bool", "whether (d) is the m → ∞ limit of (b): "
                                             "f(θ0) → 0 (centering symmetric or subtract_initial, "
                                             "or s < ½)")}),
    TableDoc("deep_condensation.csv", ("deep_phase_diagram",),
             "lazyphase.studies.deep_phase.condensation.deep_condensation_table",
             "B2: the effective number of directions of every hidden layer's incoming weights, "
             "per cell × replica × layer (docs/deep_phase.md)",
             {**{k: _PHASE_B2[k] for k in ("activation", "depth", "scheme", "gamma_h", "s")},
              "m": _CELL["m"], **_REPLICA, **_LAYER,
              "fan_in": ("int", "length of the incoming weight vectors (d or m, + 1 with bias)"),
              "n_eff_init": ("float", "n_eff = 1/tr(C²) of the rows of W[l] at initialization"),
              "n_eff_final": ("float", "the same at the end"),
              "n_eff_ratio": ("float", "n_eff_final / n_eff_init (≪ 1: condensed)"),
              "n_eff_random": ("float", "expected n_eff of m random rows of that length, "
                               "m·fan_in/(m + fan_in − 1)")}),
    TableDoc("landscape.parquet", ("train",), "lazyphase.studies.chizat.analysis.landscape_tables",
             "C8: the test-loss landscape around the mean final solution",
             {"m": _CELL["m"], "chizat_alpha_power": _SETTINGS["chizat_alpha_power"],
              "chizat_multiplier": _SETTINGS["chizat_multiplier"],
              "i": ("int", "grid index along u"), "j": ("int", "grid index along v"),
              "u": ("float", "coordinate along the first direction"),
              "v": ("float", "coordinate along the second direction"),
              "test_loss": ("float", "test loss at (u, v)")}),
    TableDoc("landscape_points.parquet", ("train",),
             "lazyphase.studies.chizat.analysis.landscape_tables",
             "C8: the final solutions in the landscape's coordinates",
             {"m": _CELL["m"], "chizat_alpha_power": _SETTINGS["chizat_alpha_power"],
              "chizat_multiplier": _SETTINGS["chizat_multiplier"], "seed": _REPLICA["seed"],
              "u": ("float", "coordinate along the first direction"),
              "v": ("float", "coordinate along the second direction"),
              "test_loss": ("float", "the solution's test loss"),
              "sigma_u": ("float", "spread of the solutions along u"),
              "sigma_v": ("float", "spread along v")}),
    TableDoc("cover.parquet", ("train",), "lazyphase.studies.chizat.analysis.cover_tables",
             "C4: the neuron paths |a_j| b_j at every weight snapshot",
             {"tau": _SETTINGS["tau"], "seed": _REPLICA["seed"], "neuron": ("int", "neuron j"),
              "step": ("int", "snapshot step"), "x1": ("float", "first coordinate of |a_j| b_j"),
              "x2": ("float", "second coordinate"), "sign": ("float", "sign of a_j")}),
    TableDoc("cover_teacher.parquet", ("train",), "lazyphase.studies.chizat.analysis.cover_tables",
             "C4: the teacher's neuron directions",
             {"tau": _SETTINGS["tau"], "seed": _REPLICA["seed"],
              "x1": ("float", "first coordinate of the direction"),
              "x2": ("float", "second coordinate"), "sign": ("float", "output sign")}),
    TableDoc("coord_check.csv", ("coord_check",),
             "lazyphase.studies.coord_check.analysis.coord_sizes",
             "the coordinate check (`results/coord_check/`, `lazyphase coord-check`; not an "
             "experiment): one row per parameterization × layer × width",
             {"parameterization": _SETTINGS["parameterization"], **_LAYER, "m": _CELL["m"],
              "update": ("float", "RMS over inputs and neurons of z_l(θ_k) − z_l(θ_0) after k "
                         "steps (output layer: f), mean over seeds (docs/conventions.md §7)")}),
    TableDoc("coord_check_slopes.csv", ("coord_check",),
             "lazyphase.studies.coord_check.analysis.coord_slopes",
             "the coordinate check: one row per parameterization × layer",
             {"parameterization": _SETTINGS["parameterization"], **_LAYER,
              "slope": ("float", "least-squares slope of log update against log m"),
              "spread": ("float", "update at the largest width / at the smallest"),
              "m_min": ("int", "smallest width"), "m_max": ("int", "largest width")}),
)  # fmt: skip


def docs_for(file: str, kind: str | None = None) -> list[TableDoc]:
    """The entries of ``file`` (a name under ``results/<experiment>/``), for ``kind`` if given."""
    return [t for t in TABLE_DOCS if t.file == file and (kind is None or kind in t.kinds)]


def describe_table(file: str) -> str:
    """A one-line description of a table file (empty when it is not a pipeline table)."""
    return " / ".join(t.description for t in docs_for(file))


def undocumented(file: str, columns: Iterable[str], kind: str | None = None) -> list[str]:
    """The ``columns`` of table ``file`` that no entry describes (the provenance columns
    count as described)."""
    entries = docs_for(file, kind)
    return [
        c for c in columns
        if c not in _PROVENANCE and not any(t.describes(c) for t in entries)
    ]  # fmt: skip


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("](", "]\\(")  # no link syntax: G[l](θ0)


def tables_markdown() -> str:
    """``docs/tables.md``: the data dictionary."""
    lines = [
        "# Tables: the data dictionary",
        "",
        "<!-- generated by `lazyphase tables-reference > docs/tables.md` from",
        "     src/lazyphase/store/dictionary.py; tests/test_tables_doc.py keeps it in sync -->",
        "",
        "Every table the workflow writes under `results/<experiment>/`, with every column.",
        "Parquet tables carry page checksums; CSV tables are listed, with their sha256, in",
        "`manifest.json` ([integrity.md](integrity.md)). Read them with `pandas.read_parquet` /",
        "`pandas.read_csv`, or `lazyphase.store.files.read_table` (verifies the checksums, drops the",
        "provenance columns into `frame.attrs['provenance']`).",
        "",
        "**Provenance.** Every table carries the code that wrote it: parquet in its key-value",
        f"metadata (`{CODE_KEY}`, `{GIT_KEY}`: "
        f"`pyarrow.parquet.read_schema(path).metadata`), CSV as two trailing columns of the same",
        "names, the same value on every row. `lazyphase inspect <table>` prints both; a table",
        "written before they existed shows `unknown`.",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
        *(f"| `{k}` | {t} | {_cell(m)} |" for k, (t, m) in _PROVENANCE.items()),
        "",
        "Types: `int`, `float`, `str`, `bool`; `<layer>` stands for one column per layer",
        "(`W1` … `WL`, `a`). Column order in the files follows the builder, not this page.",
    ]
    for t in TABLE_DOCS:
        kinds = ", ".join(f"`{k}`" for k in t.kinds)
        lines += [
            "",
            f"## `{t.file}` ({kinds})",
            "",
            f"{t.description[0].upper()}{t.description[1:]}. Built by `{t.builder}`.",
            "",
            "| column | type | meaning |",
            "|---|---|---|",
            *(f"| `{k}` | {ty} | {_cell(m)} |" for k, (ty, m) in t.columns.items()),
        ]
    return "\n".join(lines) + "\n"
