"""Checkpoints of the trainer: save and load plain state dicts (docs/checkpoints.md).

The loop (:func:`lazyphase.core.train.train`) builds the state and restores from it; this
module only decides when to write, writes atomically and reads back.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

log = logging.getLogger("lazyphase.train")  # the trainer's logger (pipeline/budget.py silences it)

CHECKPOINT_FORMAT = "lazyphase-train-checkpoint-1"


def read_checkpoint(path: str) -> Any:
    """The object in the torch file ``path``, loaded with ``weights_only=True``: tensors, numpy
    arrays, numbers and strings only, so nothing of the file is executed. The one reader of
    checkpoints (the trainer's resume and ``lazyphase inspect``); raises what ``torch.load``
    raises on a torn or foreign file."""
    with torch.serialization.safe_globals(_numpy_globals()):
        return torch.load(path, map_location="cpu", weights_only=True)


def _numpy_globals() -> list[Any]:
    """The numpy classes a checkpoint's state holds (arrays, dtypes, scalars), allowed by
    ``torch.load(weights_only=True)``."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar

    kinds = ("float64", "float32", "int64", "int32", "int8", "uint8", "uint32", "uint64", "bool")
    return [_reconstruct, scalar, np.ndarray, np.dtype, *(type(np.dtype(k)) for k in kinds)]


class TrainingInterrupted(Exception):
    """Training stopped on request (a signal, or :attr:`Checkpointing.stop_at` in tests) after
    writing its checkpoint; ``signum`` is the signal (0 for ``stop_at``), ``step`` the step the
    checkpoint holds."""

    def __init__(self, signum: int, step: int, path: str) -> None:
        super().__init__(
            f"training interrupted (signal {signum}) at step {step}; checkpoint {path}"
        )
        self.signum, self.step, self.path = signum, step, path


def segments_text(history: list[dict[str, Any]]) -> str:
    """Training segments (:attr:`Checkpointing.history`, also saved in every checkpoint) as
    text: ``0->1200 (31.0s, signal 15), ...``; ``none`` when there are none."""
    return (
        ", ".join(
            f"{h['from']}->{h['to']} ({h['seconds']:.1f}s"
            + (f", signal {h['signal']})" if h["signal"] else ")")
            for h in history
        )
        or "none"
    )


@dataclass
class Checkpointing:
    """Checkpoints of :func:`~lazyphase.core.train.train` (docs/checkpoints.md).

    ``path``: the checkpoint file (written atomically: a temporary name, then ``os.replace``);
    ``key``: identifies the cells and code it is valid for (a checkpoint with another key is
    refused with a warning and training starts over); ``every``: seconds between checkpoints;
    ``signal``: returns the number of a pending stop signal (0: none), checked every step: a
    checkpoint is written and :class:`TrainingInterrupted` raised; ``stop_at``: a test hook,
    the same at this step; ``provenance``: saved with the state.
    """

    path: str
    key: str
    every: float = 600.0
    signal: Callable[[], int] = lambda: 0
    stop_at: int | None = None
    #: saved with every checkpoint under ``"provenance"`` (the pipeline gives the code
    #: fingerprint and git describe of store/provenance.py; ``lazyphase inspect`` shows it)
    provenance: dict[str, Any] = field(default_factory=dict)
    #: filled by :func:`~lazyphase.core.train.train`: the step it resumed from (None: started over), steps trained
    resumed_from: int | None = None
    steps_trained: int = 0
    #: the training segments of the run so far, one per job: ``{"from", "to"}`` steps,
    #: ``seconds`` of training in that job and ``signal`` (0: it was not stopped by a signal)
    history: list[dict[str, Any]] = field(default_factory=list)
    _first: int = field(default=0, repr=False)
    _last_save: float = field(default=0.0, repr=False)
    _began: float = field(default=0.0, repr=False)

    def load(self) -> dict[str, Any] | None:
        """The checkpoint's state if there is a valid one for ``key``, else None (saying why)."""
        if not os.path.exists(self.path):
            return None
        try:
            state = read_checkpoint(self.path)
        except Exception as exc:  # a torn or foreign file: start over
            log.warning("checkpoint %s unreadable (%s); starting over", self.path, exc)
            return None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            log.warning("checkpoint %s has another format; starting over", self.path)
            return None
        if state.get("key") != self.key:
            log.warning(
                "checkpoint %s refused: it was written for other cell parameters or another code "
                "fingerprint (key %s, this job %s); starting over",
                self.path, state.get("key"), self.key,
            )  # fmt: skip
            return None
        return state

    def begin(self) -> dict[str, Any] | None:
        """Start a training segment: the state of a valid checkpoint to resume from (the caller
        restores it), or None when training starts over."""
        state = self.load()
        self.resumed_from = None if state is None else int(state["step"])
        self.steps_trained = 0
        self._last_save = self._began = time.perf_counter()
        self.history = [] if state is None else list(state["history"])
        self._first = 0 if state is None else int(state["step"])
        if state is not None:
            log.info(
                "resuming from checkpoint at step %d (%s); earlier segments: %s",
                self._first, self.path, self.segments(),
            )  # fmt: skip
        return state

    def after_step(self, step: int, state: Callable[[], dict[str, Any]]) -> None:
        """Called by :func:`~lazyphase.core.train.train` after each step (``step`` is the next
        one): when a checkpoint is due or a stop is pending, write ``state()`` (the training
        state, built only then), then raise on a stop."""
        self.steps_trained = step - self._first
        signum = self.signal()
        stop = signum != 0 or step == self.stop_at
        now = time.perf_counter()
        if not stop and now - self._last_save < self.every:
            return
        segment = {"from": self._first, "to": step, "seconds": now - self._began, "signal": signum}
        self.save({"history": [*self.history, segment], "step": step, **state()})
        self._last_save = time.perf_counter()
        log.info(
            "checkpoint at step %d written in %.2fs (%s)", step, self._last_save - now, self.path
        )
        if stop:
            log.warning("stopping at step %d (signal %d); rerun to resume", step, signum)
            raise TrainingInterrupted(signum, step, self.path)

    def finish(self, step: int) -> None:
        """Called by :func:`~lazyphase.core.train.train` at the end: the last segment joins :attr:`history`."""
        self.steps_trained = step - self._first
        seconds = time.perf_counter() - self._began
        self.history.append({"from": self._first, "to": step, "seconds": seconds, "signal": 0})

    def segments(self) -> str:
        """:attr:`history` as text: ``0->1200 (31.0s, signal 15), ...``."""
        return segments_text(self.history)

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically (fsynced temporary file renamed into place)."""
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            torch.save(
                {
                    "format": CHECKPOINT_FORMAT,
                    "key": self.key,
                    "provenance": self.provenance,
                    **state,
                },
                fh,
            )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        """Delete the checkpoint (the run files are complete) and any temporary file a killed
        write left behind."""
        for tmp in glob.glob(f"{glob.escape(self.path)}.tmp-*"):
            os.remove(tmp)
        if os.path.exists(self.path):
            os.remove(self.path)
            log.info("removed checkpoint %s", self.path)
