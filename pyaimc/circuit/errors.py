"""Exceptions of the circuit level."""

from __future__ import annotations


class ConvergenceError(RuntimeError):
    """A solver stopped before reaching its stated tolerance; the message gives how far it got."""


class NotApplicableError(ValueError):
    """The chosen solver method cannot handle this crossbar (the message says why)."""
