"""The pipeline's steps as plain functions (the Snakemake scripts only unpack and call these)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import pandas as pd

from . import analysis, figures
from .tables import collect

log = logging.getLogger("lazyphase.pipeline")


def aggregate_experiment(
    paths: Sequence[str],
    experiment: str,
    outs: Mapping[str, str],
    *,
    n_boot: int = 1000,
    ci: float = 0.9,
    seed: int = 0,
) -> None:
    """Run files → ``runs`` (parquet), ``traj`` (parquet), ``exponents`` and ``threshold`` (CSV)."""
    runs, traj = collect(paths, experiment)
    exps, boot = analysis.fit_exponents(runs, n_boot=n_boot, ci=ci, seed=seed)
    thr = analysis.thresholds(exps, boot, ci=ci)
    for key in outs:
        os.makedirs(os.path.dirname(outs[key]) or ".", exist_ok=True)
    runs.to_parquet(outs["runs"])
    traj.to_parquet(outs["traj"])
    exps.to_csv(outs["exponents"], index=False)
    thr.to_csv(outs["threshold"], index=False)
    counts = runs.drop_duplicates(["file", "replica"])["status"].value_counts().to_dict()
    log.info("%s: %d run files, replicas by status %s", experiment, len(paths), counts)


def _read(path: str) -> pd.DataFrame:
    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)


def plot(figure: str, inputs: Mapping[str, str], out_pdf: str, out_png: str) -> None:
    """Draw ``figure`` (a name of the catalog) from the aggregated tables."""
    t = {k: _read(v) for k, v in inputs.items()}
    if figure == "theta_lazy_rd":
        figures.plot_theta_lazy_rd(t["runs"], t["exponents"], out_pdf, out_png)
    elif figure == "theta_lazy_threshold":
        figures.plot_theta_lazy_threshold(t["exponents"], t["threshold"], out_pdf, out_png)
    elif figure == "loss_decay":
        figures.plot_loss_decay(t["traj"], out_pdf, out_png)
    elif figure == "gram_drift":
        figures.plot_gram_drift(t["runs"], out_pdf, out_png)
    else:
        raise ValueError(f"unknown figure {figure!r}")
