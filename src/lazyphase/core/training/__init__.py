"""The trainer of :mod:`lazyphase.core.train`, one module per responsibility.

Import from :mod:`lazyphase.core.train`; this package imports nothing itself, so that a module
below the trainer (``core.linearized``) can import :mod:`.results` without loading the loop.
"""
