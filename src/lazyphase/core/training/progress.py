"""Training progress: log lines on the ``lazyphase.train`` logger and a ``progress`` callback."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("lazyphase.train")


@dataclass(frozen=True)
class Progress:
    """What a ``progress`` callable of :func:`~lazyphase.core.train.train` receives: the current ``step`` (of at most
    ``max_steps``), the replicas still ``active`` of ``replicas``, and ``elapsed`` seconds."""

    step: int
    max_steps: int
    active: int
    replicas: int
    elapsed: float


ProgressOption = bool | Callable[[Progress], None] | None
#: Seconds between two calls of a ``progress`` callable (and the last call when training ends).
PROGRESS_EVERY = 1.0


def progress_callback(progress: ProgressOption) -> Callable[[Progress], None] | None:
    """``None``/``False``: no callback; ``True``: :func:`print_progress`; a callable: itself."""
    if progress is None or progress is False:
        return None
    if progress is True:
        return print_progress
    if callable(progress):
        return progress
    raise TypeError(f"progress must be a bool, a callable or None, not {progress!r}")


def print_progress(p: Progress) -> None:
    """One progress line on stderr (rewritten in place on a terminal)."""
    import sys

    tty = sys.stderr.isatty()
    end = "\n" if not tty or p.active == 0 else ""
    print(
        f"{chr(13) if tty else ''}lazyphase: step {p.step}/{p.max_steps}, {p.active}/{p.replicas} "
        f"replicas training, {p.elapsed:.0f} s",
        end=end, file=sys.stderr, flush=True,
    )  # fmt: skip


def log_progress(
    step: int, max_steps: int, live: int, n_rep: int, train: np.ndarray, elapsed: float
) -> None:
    eta_s = elapsed / max(step, 1) * (max_steps - step) if live else 0.0
    log.info(
        "step %d/%d  active %d/%d  train loss median %.3e max %.3e  elapsed %.1fs  ETA <= %.0fs",
        step, max_steps, live, n_rep, float(np.median(train)), float(np.max(train)), elapsed, eta_s,
    )  # fmt: skip


class ProgressReport:
    """Both progress outputs of one training run: a line on the logger every ``log_every``
    seconds and a :class:`Progress` for the ``progress`` callable every :data:`PROGRESS_EVERY`
    seconds, each also when training ends. ``start``: the run's start on ``perf_counter``
    (earlier by the checkpointed elapsed time when it resumed)."""

    def __init__(self, progress: ProgressOption, log_every: float, start: float) -> None:
        self.callback = progress_callback(progress)
        self.log_every = log_every
        self.start = self.last_log = self.last_report = start

    def __call__(self, step: int, max_steps: int, live: int, train: np.ndarray) -> None:
        """Report ``step`` with ``live`` working replicas of ``len(train)``, ``train: (R,)``
        their latest training losses (``live == 0``: training ends)."""
        now = time.perf_counter()
        done = live == 0
        if now - self.last_log > self.log_every or done:
            self.last_log = now
            log_progress(step, max_steps, live, len(train), train, now - self.start)
        if self.callback is not None and (now - self.last_report > PROGRESS_EVERY or done):
            self.last_report = now
            self.callback(Progress(step, max_steps, live, len(train), now - self.start))
