"""Run files → tidy tables (pandas): one row per replica × layer, one per replica × snapshot.

``runs`` columns: the cell parameters (``experiment, m, depth, d, n, s, kappa, alpha, scheme,
activation, centering, bias``), ``seed, replica, layer`` (1 … L+1), ``layer_name`` (``W1`` …
``WL``, ``a``), ``rd_final``, ``gram_drift`` (``sup_t ‖G[l](t) − G[l](0)‖_F / ‖G[l](0)‖_F`` over
the stored Gram snapshots), ``status``, ``final_step``, ``t_final``, ``train_loss0``,
``train_loss_final``, ``test_loss_final``, ``lambda_min_theta0``, ``lambda_max_theta0`` (full NTK
Gram on the training set at init), ``lambda_min_limit`` (the same predicted by the limiting
kernels, NaN where the scheme has no such limit), ``lr0``, ``output_std0``, ``file``,
``test_loss_best`` and ``best_step`` (the minimum test loss over all evaluations and its step),
``tail_train_loss`` (training loss averaged over the last ``tail_steps`` steps),
``rd_total_final`` (``‖Δθ‖/‖θ0‖`` over all layers at the end), the linearized-run columns of
:func:`linearized_columns` (``fdist, test_loss_lin, train_loss_lin_final``) and the settings
of :data:`SETTING_COLUMNS` (``model, tau, chizat_alpha, …``).

``traj`` columns: ``experiment, m, depth, s, scheme, activation, seed, replica, step, t,
train_loss, test_loss, lambda_min_theta0, n, status``, :data:`SETTING_COLUMNS`, ``rd_W1 … rd_a``
(per-layer RD), ``rd_total`` (``‖Δθ‖/‖θ0‖`` over all layers) and ``train_loss_lin,
test_loss_lin`` (the linearized run's losses at the same snapshots, NaN where it was skipped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lazyphase.core.limiting import limiting, scheme_setup
from lazyphase.core.model import layer_names
from lazyphase.store.runs import Run, load_run

CELL_COLUMNS = (
    "m",
    "depth",
    "d",
    "n",
    "s",
    "kappa",
    "alpha",
    "scheme",
    "activation",
    "centering",
    "bias",
)

#: Further cell settings carried into both tables (NaN where a file lacks them, e.g. ``None``
#: values or files written before the key existed): the Chizat family and the trainer.
SETTING_COLUMNS = (
    "model",
    "tau",
    "chizat_alpha",
    "chizat_alpha_power",
    "chizat_multiplier",
    "step_on",
    "delta_on",
    "init",
    "lr_policy",
    "lr_c",
    "lr",
    "teacher_scale",
    "batch_size",
    "patience",
    "parameterization",
    "safeguard",
)


def gram_drift(theta: np.ndarray) -> np.ndarray:
    """``sup_t ‖Θ[l](t) − Θ[l](0)‖_F / ‖Θ[l](0)‖_F`` (= the same for ``G``, whose normalization is
    constant in time). ``theta: (R, G, L+1, n_k, n_k)`` → ``(R, L+1)``."""
    diff = np.linalg.norm(theta - theta[:, :1], axis=(-2, -1))
    return (diff / np.linalg.norm(theta[:, :1], axis=(-2, -1))).max(axis=1)


def limit_lambda_min(run: Run) -> float:
    """``λ_min`` of the NTK Gram on the training set predicted by the limiting kernels,
    ``Σ_l K[l] / normalization_l`` (so on the scale of ``Θ0``); NaN when the cell's scheme has no
    O(1) limit of the ``normal`` kind (see :func:`lazyphase.core.limiting.scheme_setup`) and for
    a cell with a ``parameterization``."""
    cell = run.cell
    if cell.get("parameterization") is not None:
        return math.nan  # the limit of the abc stds is not the scheme's (docs/conventions.md §7)
    try:
        v, regimes = scheme_setup(
            cell["scheme"], cell["activation"], cell["depth"], cell["m"], cell["d"]
        )
    except ValueError:
        return math.nan
    if any(r != "normal" for r in regimes):
        return math.nan
    x = run["data/x_train"][0]
    kernels = limiting(
        x, cell["activation"], cell["depth"], input_variance=v, regime=regimes, bias=cell["bias"]
    )
    norm = run.attrs["gram_normalization"]
    theta = sum(k.numpy() / f for k, f in zip(kernels, norm))
    return float(np.linalg.eigvalsh(theta)[0])


#: The ``runs`` columns that ``traj`` repeats on every snapshot (with ``n`` and the settings).
_TRAJ_KEYS = (
    "experiment",
    "m",
    "depth",
    "s",
    "scheme",
    "activation",
    "seed",
    "replica",
    "status",
    "lambda_min_theta0",
)


def run_tables(path: str, experiment: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``runs`` and ``traj`` rows of one run file."""
    run = load_run(path)
    a = run.attrs
    names = layer_names(int(a["depth"]))
    base = {
        "experiment": experiment,
        **{k: a[k] for k in CELL_COLUMNS},
        **{k: a.get(k, math.nan) for k in SETTING_COLUMNS},
    }
    drift = gram_drift(run["gram/theta"])
    lam_limit = limit_lambda_min(run)
    rows, traj = [], []
    for r in range(len(a["seeds"])):
        total = rd_total(run, r)
        common = {**base, **_replica_columns(run, r, total, lam_limit)}
        rows += _replica_rows(run, r, common, names, drift, path)
        traj.append(_traj_frame(run, r, common, names, total))
    return pd.DataFrame(rows), pd.concat(traj, ignore_index=True)


def _replica_columns(run: Run, r: int, total: np.ndarray, lam_limit: float) -> dict[str, object]:
    """The per-replica values of the ``runs`` rows of replica ``r`` (``total``: its
    :func:`rd_total`; ``lam_limit``: the file's :func:`limit_lambda_min`)."""
    n_rep = len(run.attrs["seeds"])
    reps = {
        k: run.arrays.get(f"replicas/{k}", np.full(n_rep, np.nan))
        for k in ("best_test_loss", "best_test_step", "tail_train_loss")
    }
    eig = run["replicas/theta0_eigvals"]
    return {
        "seed": int(run["replicas/seed"][r]),
        "replica": r,
        "status": run.attrs["status"][r],
        "final_step": int(run["replicas/final_step"][r]),
        "lambda_min_theta0": float(eig[r, 0]),
        "lambda_max_theta0": float(eig[r, -1]),
        "lambda_min_limit": lam_limit,
        "test_loss_best": float(reps["best_test_loss"][r]),
        "best_step": float(reps["best_test_step"][r]),
        "tail_train_loss": float(reps["tail_train_loss"][r]),
        "rd_total_final": float(total[-1]),
        "eta_lambda_final": eta_lambda_final(run, r),
        **linearized_columns(run, r),
    }


def eta_lambda_final(run: Run, r: int) -> float:
    """``η_T · λ_max(Σ_l r_l Θ[l](θ_T) / n_k)`` of replica ``r``: the step times the top
    eigenvalue of the dynamics' kernel at the last Gram snapshot, on the kernel set (the
    training set when ``n ≤ 256``); below 2 the linearized dynamics there are stable
    (docs/conventions.md §3, §7). ``r_l`` = 1 without a parameterization."""
    theta = run["gram/theta"][r, -1]
    rates = np.asarray(run.attrs.get("layer_rates", np.ones(theta.shape[0])), dtype=np.float64)
    lam = np.linalg.eigvalsh(np.tensordot(rates, theta, axes=1))[-1]
    steps = run["trajectory/step"]
    last = min(int(np.searchsorted(steps, run["replicas/final_step"][r])), len(steps) - 1)
    return float(run["trajectory/lr"][r, last] * lam / theta.shape[-1])


def _replica_rows(
    run: Run, r: int, common: dict, names: Sequence[str], drift: np.ndarray, path: str
) -> list[dict[str, object]]:
    """The ``runs`` rows of replica ``r``, one per layer."""
    steps = run["trajectory/step"]
    # the snapshot that holds the replica's final state (frozen after its final step)
    last = int(np.searchsorted(steps, run["replicas/final_step"][r]))
    last = min(last, len(steps) - 1)
    return [
        {
            **common,
            "layer": li + 1,
            "layer_name": name,
            "rd_final": float(run["trajectory/rd"][r, -1, li]),
            "gram_drift": float(drift[r, li]),
            "t_final": float(run["trajectory/t"][r, last]),
            "train_loss0": float(run["trajectory/train_loss"][r, 0]),
            "train_loss_final": float(run["trajectory/train_loss"][r, -1]),
            "test_loss_final": float(run["trajectory/test_loss"][r, -1]),
            "lr0": float(run["replicas/lr0"][r]),
            "output_std0": float(run["replicas/output_std0"][r]),
            "file": path,
        }
        for li, name in enumerate(names)
    ]


def _traj_frame(
    run: Run, r: int, common: dict, names: Sequence[str], total: np.ndarray
) -> pd.DataFrame:
    """The ``traj`` rows of replica ``r``: its snapshots up to its final step."""
    steps = run["trajectory/step"]
    upto = steps <= run["replicas/final_step"][r]
    return pd.DataFrame(
        {
            **{k: common[k] for k in (*_TRAJ_KEYS, *SETTING_COLUMNS)},
            "n": int(run.attrs["n"]),
            "step": steps[upto],
            "t": run["trajectory/t"][r, upto],
            "train_loss": run["trajectory/train_loss"][r, upto],
            "test_loss": run["trajectory/test_loss"][r, upto],
            **{f"rd_{nm}": run["trajectory/rd"][r, upto, li] for li, nm in enumerate(names)},
            "rd_total": total[upto],
            "train_loss_lin": run["linearized/train_loss"][r, upto],
            "test_loss_lin": run["linearized/test_loss"][r, upto],
        }
    )


def function_distance(f_net: np.ndarray, f_kernel: np.ndarray, f0: np.ndarray) -> float:
    """``‖f_net − f_kernel‖ / ‖f_kernel − f0‖`` (NaN when the kernel predictor did not move)."""
    den = float(np.linalg.norm(f_kernel - f0))
    return float(np.linalg.norm(f_net - f_kernel)) / den if den > 0 else math.nan


def linearized_columns(run: Run, r: int) -> dict[str, float]:
    """Replica ``r`` against its linearized run at the end of training (docs/conventions.md §5):
    ``fdist = ‖f(θ_T) − f_lin(T)‖ / ‖f_lin(T) − f(θ0)‖`` on the test set, ``test_loss_lin`` and
    ``train_loss_lin_final`` (the kernel predictor's losses at the end); and against the
    converged predictor ``f_lin(∞)`` (§6): ``fdist_conv = ‖f(θ_T) − f_lin(∞)‖ / ‖f_lin(∞) −
    f(θ0)‖`` and its test loss ``test_loss_conv``. NaN where skipped (or, for the ``_conv``
    columns, in files written before ``linearized/test_output_converged`` was stored)."""
    f_net = run["replicas/test_output_final"][r]
    f_lin = run["linearized/test_output"][r, -1]
    f0 = run["replicas/test_output0"][r]
    conv = run.arrays.get("linearized/test_output_converged")
    f_conv = np.full_like(f0, np.nan) if conv is None else conv[r]
    return {
        "fdist": function_distance(f_net, f_lin, f0),
        "test_loss_lin": float(run["linearized/test_loss"][r, -1]),
        "train_loss_lin_final": float(run["linearized/train_loss"][r, -1]),
        "fdist_conv": function_distance(f_net, f_conv, f0),
        "test_loss_conv": predictor_test_loss(run, r, f_conv),
    }


def predictor_test_loss(run: Run, r: int, f_test: np.ndarray) -> float:
    """The test loss ``(1/2) mean (f − f0c − y)²`` of raw test outputs ``f_test (n_test,)`` of
    replica ``r`` (``f0c = f(θ0)`` for ``subtract_initial``, else 0; docs/conventions.md §3)."""
    f0c = run["replicas/test_output0"][r] if run.cell.get("centering") == "subtract_initial" else 0
    y = run["data/y_test"][r]
    return float(0.5 * np.mean((np.asarray(f_test) - f0c - y) ** 2))


def rd_total(run: Run, r: int) -> np.ndarray:
    """``‖Δθ(t)‖ / ‖θ0‖`` over all layers of replica ``r`` at every snapshot, ``(S,)``, from the
    per-layer ``RD`` and the initial norms."""
    n0 = run["weights/norms_init"][r]
    return np.sqrt(((run["trajectory/rd"][r] * n0) ** 2).sum(-1) / (n0**2).sum())


def collect(paths: Sequence[str], experiment: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``runs`` and ``traj`` of all run files (a bad file raises, naming it)."""
    parts = [run_tables(p, experiment) for p in paths]
    return (
        pd.concat([p[0] for p in parts], ignore_index=True),
        pd.concat([p[1] for p in parts], ignore_index=True),
    )
