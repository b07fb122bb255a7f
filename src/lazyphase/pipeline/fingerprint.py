"""The code fingerprint: enters every rule's ``params`` so an edit of the library reruns what it
affects (Snakemake's ``--rerun-triggers params``). It lives in :mod:`lazyphase.store.provenance`
(every written file carries it too); this module re-exports it."""

from __future__ import annotations

from lazyphase.store.provenance import code_fingerprint, git_describe, provenance

__all__ = ["code_fingerprint", "git_describe", "provenance"]
