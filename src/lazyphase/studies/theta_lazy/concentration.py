"""Experiment A4 ``gram_concentration``: the per-layer Gram at initialization against its limit.

No training. On one fixed set ``X`` of ``n`` points on ``S^{d−1}`` the normalized per-layer Gram
``G[l](θ0) = (m β_l²/κ²) Θ[l](θ0)`` (docs/conventions.md §4) of many independent initializations is
compared with its ``m → ∞`` limit ``K[l]`` (:func:`lazyphase.core.limiting.limiting`):

* ``rel_error = ‖G[l] − K[l]‖_F / ‖K[l]‖_F``, expected to decay like ``m^{-1/2}`` (each entry of
  ``G[l]`` is an average over ``m`` neurons, a CLT fluctuation);
* ``ok = λ_min(G[l]) ≥ ¾ λ_S`` with ``λ_S = min_l λ_min(K[l])``, the event the lazy-training
  proofs need at initialization; its frequency over draws should go to 1 as ``m`` grows.

``s`` does not enter ``G``: ``κ`` cancels in ``m β_l²/κ²`` against ``Θ[l] ∝ β_{L+1}²/α²``.
Draws are batched as replicas of :mod:`lazyphase.core.model` (replica ``r`` is the cell seed ``r``, so a
draw is the same standard-normal initialization the training experiments use for that seed).

:func:`write_concentration` / :func:`read_concentration` store one ``(activation, depth, scheme)``
per HDF5 file (layout in their docstrings); :func:`summarize` fits the decay exponent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyphase.cells import validate_cell
from lazyphase.core import activations
from lazyphase.core.data import derive_seed, generator, sphere
from lazyphase.core.kernels import normalization, per_layer_ntk
from lazyphase.core.limiting import lambda_s, limiting, scheme_setup
from lazyphase.core.model import init_params, layer_masks, layer_names, layer_shapes, resolve_scales
from lazyphase.core.schemes import luo_gamma_prime, scheme_label
from lazyphase.stats import fit_exponents
from lazyphase.store.concentration import typed

#: One fitted exponent per group of these columns (:func:`summarize`).
GROUP = ("activation", "depth", "scheme", "layer", "layer_name")
#: ``ok`` means ``λ_min(G[l]) ≥ OK_FRACTION · λ_S``.
OK_FRACTION = 0.75


def concentration_points(n: int, d: int, seed: int) -> torch.Tensor:
    """The fixed point set ``X``: ``(n, d)`` float64, uniform on ``S^{d−1}``, seeded by
    ``derive_seed({"n", "d", "seed"}, "gram_concentration")``."""
    return sphere(
        n, d, generator(derive_seed({"n": n, "d": d, "seed": seed}, "gram_concentration"))
    )


def limit_kernels(
    x: torch.Tensor, activation: str, depth: int, scheme: str, d: int, m_ref: int
) -> list[torch.Tensor]:
    """The limits ``[K[1], …, K[L+1]]`` (each ``(n, n)``) of ``G[l]`` for a named scheme.

    The variance factors and regimes come from :func:`lazyphase.core.limiting.scheme_setup` at width
    ``m_ref``. Accepted only where ``G[l]`` has an exact ``O(1)`` limit: every hidden layer in
    regime ``"normal"``, or ``"linearized"`` with ``σ(0) = 0`` (then the variance factors cancel
    and ``K`` does not depend on ``m_ref``). Raises ``ValueError`` naming scheme and activation
    otherwise (regime ``"none"``, ``"step"`` — whose returned kernels are rescaled by
    ``m``-dependent factors — or a linearized layer with ``σ(0) ≠ 0``).
    """
    label = scheme_label(scheme)

    def fail(why: str) -> ValueError:
        return ValueError(
            f"gram_concentration: scheme {label!r} with activation {activation!r} (depth {depth}) "
            f"has no O(1) limit of the normalized Gram G[l]: {why}"
        )

    if luo_gamma_prime(scheme) is not None:
        raise ValueError(
            f"gram_concentration: scheme {label!r} (activation {activation!r}) is not supported: "
            "Luo et al.'s coordinates set the hidden std from s, so G[l] depends on s"
        )
    try:
        v, regimes = scheme_setup(scheme, activation, depth, m_ref, d)
    except ValueError as err:
        raise fail(str(err)) from err
    act = activations.get(activation)
    sig0 = float(act.fn(torch.zeros(1, dtype=torch.float64))[0])
    for layer, reg in enumerate(regimes, start=1):
        if reg == "step":
            raise fail(
                f"layer {layer} is in regime 'step' (pre-activation variance → ∞; Σ̇ has no O(1) "
                "limit)"
            )
        if reg == "linearized" and abs(sig0) > 1e-14:
            raise fail(
                f"layer {layer} is in regime 'linearized' and σ(0) = {sig0:g} ≠ 0 (the constant "
                "mode diverges)"
            )
    return limiting(x, activation, depth, input_variance=v, regime=regimes)


def _draw_grams(
    cell: Mapping[str, Any], x: torch.Tensor, seeds: Sequence[int], max_params: int
) -> torch.Tensor:
    """Normalized per-layer Grams ``G[l](θ0)`` of the draws ``seeds``: ``(R, L+1, n, n)``.

    Replicas are processed in chunks of at most ``max_params`` parameters (at least one)."""
    per_replica = sum(math.prod(s) for s in layer_shapes(cell))
    chunk = max(1, max_params // per_replica)
    act = activations.get(cell["activation"])
    masks = layer_masks(cell)
    scales = resolve_scales(cell)
    out = []
    for lo in range(0, len(seeds), chunk):
        part = list(seeds[lo : lo + chunk])
        sc = [scales] * len(part)
        params = init_params(cell, sc, part)
        alpha = torch.full((len(part),), scales.alpha, dtype=torch.float64)
        xr = x.unsqueeze(0).expand(len(part), -1, -1)
        theta = per_layer_ntk(params, xr, act, alpha, cell["bias"], masks)
        del params
        out.append(theta * normalization(sc, cell["m"])[:, :, None, None])
    return torch.cat(out)


def concentration_table(
    activation: str,
    depth: int,
    m_values: Sequence[int],
    draws: int,
    *,
    scheme: str = "lecun",
    n: int = 16,
    d: int = 8,
    seed: int = 0,
    max_params: int = 2**26,
    threads: int | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A4: the per-layer Gram at initialization against its limit, for every width and draw.

    Args:
        activation: registry name.
        depth: number of hidden layers ``L``.
        m_values: widths ``m``.
        draws: independent initializations per width (cell seeds ``0 … draws−1``).
        scheme: named initialization scheme (``luo:γ'`` and explicit vectors are not supported).
        n, d: number and dimension of the points ``X`` on ``S^{d−1}``.
        seed: seed of ``X`` (through :func:`concentration_points`).
        max_params: at most this many parameters (over all replicas) are held at once.
        threads: torch intra-op threads during the call (restored afterwards); ``None``: unchanged.

    Returns:
        ``(table, limit)``. ``table``: one row per ``(m, draw, layer)`` with the columns
        :data:`COLUMNS`: ``activation, depth, scheme, m, seed`` (the draw), ``layer`` (1 … L+1),
        ``layer_name`` (``W1 … WL, a``), ``rel_error = ‖G[l] − K[l]‖_F/‖K[l]‖_F``,
        ``lambda_min_G = λ_min(G[l])``, ``lambda_min_K = λ_min(K[l])``, ``lambda_S`` and
        ``ok = lambda_min_G ≥ ¾ λ_S``. ``limit``: ``K`` ``(L+1, n, n)``, ``lambda_S`` (float),
        ``x`` ``(n, d)``, ``lambda_min`` ``(L+1,)`` and ``activation``, ``depth``, ``scheme``.

    Cost: dominated by the standard-normal draws (torch's CPU generator, one thread, about
    4·10⁷ numbers/s), i.e. by ``draws · Σ_m (L−1) m²``. The pipeline's default grid (relu and
    tanh; L = 1 with m = 64 … 16384, L = 2, 3 with m = 64 … 4096; 10 draws; n = 16) took
    57 s on 2 shared CPU cores (L = 3: 17–20 s per activation, L = 1: < 1 s).

    Raises:
        ValueError: the scheme/activation pair has no ``O(1)`` limit (see :func:`limit_kernels`),
            or the arguments are out of range.
    """
    _check_args(m_values, draws, max_params)
    seeds = list(range(draws))
    with _torch_threads(threads):
        x = concentration_points(n, d, seed)
        lim = _Limit.of(x, activation, depth, scheme, d, int(max(m_values)))
        parts = []
        for m in m_values:
            cell = _width_cell(activation, depth, d, scheme, int(m), seeds)
            G = _draw_grams(cell, x, seeds, max_params)  # (R, L+1, n, n)
            parts.append(_frame(lim, int(m), seeds, G))
    return typed(pd.concat(parts, ignore_index=True)), lim.public()


def _check_args(m_values: Sequence[int], draws: int, max_params: int) -> None:
    if draws < 1:
        raise ValueError(f"draws must be ≥ 1, got {draws}")
    if not m_values or any(int(m) < 1 for m in m_values):
        raise ValueError(f"m_values must be a non-empty list of positive widths, got {m_values!r}")
    if max_params < 1:
        raise ValueError(f"max_params must be ≥ 1, got {max_params}")


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Torch intra-op threads set to ``threads`` inside (``None``: unchanged), restored after."""
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)


@dataclass
class _Limit:
    """One ``(activation, depth, scheme)``: the limit ``K: (L+1, n, n)`` on the points ``x`` and
    what every draw is compared with, ``‖K[l]‖_F`` and ``λ_min(K[l])`` (each ``(L+1,)``)."""

    activation: str
    depth: int
    label: str  # scheme_label(scheme)
    x: torch.Tensor
    K: torch.Tensor
    k_norm: torch.Tensor
    lam_k: torch.Tensor
    lam_s: float

    @classmethod
    def of(
        cls, x: torch.Tensor, activation: str, depth: int, scheme: str, d: int, m_ref: int
    ) -> _Limit:
        k_list = limit_kernels(x, activation, depth, scheme, d, m_ref)
        K = torch.stack(k_list)
        return cls(
            activation=activation,
            depth=depth,
            label=scheme_label(scheme),
            x=x,
            K=K,
            lam_s=lambda_s(k_list),
            lam_k=torch.linalg.eigvalsh(K)[:, 0],
            k_norm=torch.linalg.matrix_norm(K),
        )

    def public(self) -> dict[str, Any]:
        """The ``limit`` of :func:`concentration_table`."""
        return {
            "K": self.K.numpy(),
            "lambda_S": float(self.lam_s),
            "x": self.x.numpy(),
            "lambda_min": self.lam_k.numpy(),
            "activation": self.activation,
            "depth": int(self.depth),
            "scheme": self.label,
        }


def _width_cell(
    activation: str, depth: int, d: int, scheme: str, m: int, seeds: list[int]
) -> dict[str, Any]:
    """The cell whose replicas are the draws at width ``m`` (``s`` does not enter ``G``)."""
    return validate_cell(
        {
            "m": m,
            "depth": depth,
            "d": d,
            "activation": activation,
            "scheme": scheme,
            "s": 0.5,
            "seeds": seeds,
        }
    )


def _frame(lim: _Limit, m: int, seeds: list[int], G: torch.Tensor) -> pd.DataFrame:
    """The table rows of the draws ``G: (R, L+1, n, n)`` at width ``m``."""
    rel = (torch.linalg.matrix_norm(G - lim.K) / lim.k_norm).numpy()
    lam_g = torch.linalg.eigvalsh(G)[..., 0].numpy()
    r, nl = rel.shape
    return pd.DataFrame(
        {
            "activation": lim.activation,
            "depth": lim.depth,
            "scheme": lim.label,
            "m": m,
            "seed": np.repeat(seeds, nl),
            "layer": np.tile(np.arange(1, nl + 1), r),
            "layer_name": np.tile(layer_names(lim.depth), r),
            "rel_error": rel.ravel(),
            "lambda_min_G": lam_g.ravel(),
            "lambda_min_K": np.tile(lim.lam_k.numpy(), r),
            "lambda_S": lim.lam_s,
            "ok": lam_g.ravel() >= OK_FRACTION * lim.lam_s,
        }
    )


def summarize(
    table: pd.DataFrame, *, n_boot: int = 1000, ci: float = 0.9, seed: int = 0
) -> pd.DataFrame:
    """Decay exponent of ``rel_error`` and the frequency of ``ok``, per layer and width.

    One row per ``(activation, depth, scheme, layer, layer_name, m)``:

    * per width: ``n_draws``, ``frac_ok`` (fraction of draws with ``λ_min(G[l]) ≥ ¾ λ_S``),
      ``median_rel_error``, ``median_lambda_min_G``, ``lambda_S``;
    * per group (the same value on every width of the group): ``slope`` of ``log rel_error``
      against ``log m`` (least squares over all draws and widths), ``ci_low, ci_high`` (``ci``
      percentile interval of a bootstrap over draws, ``n_boot`` replicates,
      :func:`lazyphase.stats.fit_exponents` with ``seed``), ``r2``, ``n_m``.
    """
    exps, _ = fit_exponents(
        table,
        x="m",
        y="rel_error",
        by=GROUP,
        n_boot=n_boot,
        ci=ci,
        seed=seed,
        exclude_status=(),
    )
    per_m = (
        table.groupby([*GROUP, "m"], sort=True)
        .agg(
            n_draws=("seed", "nunique"),
            frac_ok=("ok", "mean"),
            median_rel_error=("rel_error", "median"),
            median_lambda_min_G=("lambda_min_G", "median"),
            lambda_S=("lambda_S", "first"),
        )
        .reset_index()
    )
    fit = exps[[*GROUP, "slope", "ci_low", "ci_high", "r2", "n_m"]]
    return per_m.merge(fit, on=list(GROUP), how="left")
