"""The trainer's inputs and outputs: :class:`Problem` in, :class:`TrainResult` out, and the batch
outcome :class:`BatchRun` (with its :class:`Linearized` run) that the store writes.

They sit low (no import of the loop or of the closed-form numerics) so that ``core.linearized``
and ``store.runs`` can name them without climbing the import floors (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from lazyphase.core import activations
from lazyphase.core.data import Dataset
from lazyphase.core.model import Scales, forward

if TYPE_CHECKING:
    from lazyphase.core.training.sampler import BatchSampler


@dataclass
class Problem:
    """Everything the trainer needs for R replicas, on one device and dtype.

    Shapes: ``x_*: (R, n_*, d)``, ``y_*: (R, n_*)``, ``f0_*: (R, n_*)`` (the frozen initial output
    for ``subtract_initial``, else zeros), ``alpha: (R,)``.
    """

    params0: list[torch.Tensor]
    act: activations.Activation
    alpha: torch.Tensor
    bias: bool
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_kernel: torch.Tensor
    f0_train: torch.Tensor
    f0_test: torch.Tensor
    masks: list[torch.Tensor | None] | None = None
    #: population SGD: global replica ids → a fresh batch ``(x: (R', B, d), y: (R', B))``
    sampler: BatchSampler | None = None
    #: per-layer step factors ``r_l: (R, L+1)`` of a parameterization (docs/conventions.md §7);
    #: ``None`` when every layer takes the replica's step ``η``
    layer_lr: torch.Tensor | None = None

    def outputs(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``f_θ(x)``, shape ``(R, n)``."""
        return forward(params, x, self.act, self.alpha, self.bias).out


@dataclass
class Event:
    """A safeguard event of one replica."""

    replica: int
    step: int
    kind: str  # "halve" or "diverged"
    lr_old: float
    lr_new: float
    loss_prev: float
    loss_new: float


@dataclass
class TrainResult:
    """Trajectories of R replicas; ``S`` snapshots, ``G`` Gram snapshots.

    ``status``: per replica ``converged | max_steps | early_stopped | diverged``;
    ``final_step``: the step at which each replica stopped; ``steps: (S,)``; ``t, lr,
    train_loss, test_loss: (R, S)``; ``rd: (R, S, L+1)``; ``gram_steps: (G,)``;
    ``gram: (R, G, L+1, n_k, n_k)`` raw ``Θ[l]``; ``params_final``: ``θ0 + Δθ``.
    ``best_test_loss, best_test_step: (R,)``: the minimum test loss over every evaluation and its
    step; ``tail_train_loss: (R,)``: the training loss averaged over the last ``tail_steps`` steps
    before ``max_steps`` (nan for a replica that stopped earlier); ``weights``: with
    ``weight_snapshots``, per layer ``(R, S, …)`` the weights at the snapshots, else ``None``.
    """

    status: list[str]
    final_step: np.ndarray
    steps: np.ndarray
    t: np.ndarray
    lr: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    rd: np.ndarray
    gram_steps: np.ndarray
    gram: np.ndarray
    params_final: list[torch.Tensor]
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0
    best_test_loss: np.ndarray | None = None
    best_test_step: np.ndarray | None = None
    tail_train_loss: np.ndarray | None = None
    weights: list[np.ndarray] | None = None


@dataclass
class Linearized:
    """The linearized run of R replicas at the S trajectory snapshots.

    ``test_output: (R, S, n_test)`` ``f_lin`` on the test set (the raw output, not centred);
    ``train_loss, test_loss: (R, S)`` its losses, ``R = (1/2n) Σ (f − f0c − y)²`` as the
    trainer's; ``test_output0, test_output_final: (R, n_test)`` the network's own ``f(θ0)`` and
    ``f(θ_final)`` on the test set; ``skipped``: "" or the reason the run is NaN;
    ``test_output_converged: (R, n_test)`` the converged linearized predictor ``f_lin(∞)``
    (kernel regression with ``Θ0`` from ``f(θ0)``, docs/conventions.md §6; NaN when skipped).
    """

    test_output: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    test_output0: np.ndarray
    test_output_final: np.ndarray
    skipped: str = ""
    test_output_converged: np.ndarray | None = None


@dataclass
class Replica:
    """One replica of one cell: its parameters, scales and data."""

    cell: Mapping[str, Any]
    seed: int
    scales: Scales
    data: Dataset


@dataclass
class BatchRun:
    """The outcome of :func:`train_replicas`: inputs, initial state and the trajectories."""

    replicas: list[Replica]
    params0: list[torch.Tensor]
    lr0: np.ndarray
    theta0_eigs: np.ndarray  # (R, n) eigenvalues of the full NTK Gram at init (NaN: not computed)
    output_std0: np.ndarray  # (R,) std_i f_θ0(x_i) on the training set (before any centering)
    gram_normalization: np.ndarray  # (R, L+1)
    result: TrainResult
    #: the linearized (kernel) run of every replica (docs/conventions.md §5)
    linearized: Linearized | None = None


class WorkingRows(Protocol):
    """What the safeguard, the stop rules and the records use of the working set
    (:class:`~lazyphase.core.training.working_set.WorkingSet`): a protocol, so that they need
    not import it and stay on its floor. Shapes as there (``R'`` working replicas)."""

    ids: np.ndarray  # (R',) global replica ids
    dev: torch.device
    eta: torch.Tensor
    t: torch.Tensor
    best_test: torch.Tensor
    wait: torch.Tensor
    loss0: torch.Tensor | None
    last_loss: torch.Tensor | None
    params: list[torch.Tensor]
    delta: list[torch.Tensor]

    def rd(self, rows: torch.Tensor | None = None) -> torch.Tensor: ...
    def test_loss(self, rows: torch.Tensor | None = None) -> torch.Tensor: ...
    def ntk(self, rows: torch.Tensor) -> torch.Tensor: ...
    def undo(self, bad: torch.Tensor) -> None: ...
