"""Deprecated import path (one release): use :mod:`lazyphase.core.train`."""

from lazyphase.core.train import BATCH_KEYS, BatchRun, TrainResult, train, train_replicas

__all__ = ["BATCH_KEYS", "BatchRun", "TrainResult", "train", "train_replicas"]
