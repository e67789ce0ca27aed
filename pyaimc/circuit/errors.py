"""Exceptions of the circuit level."""

from __future__ import annotations

from pyaimc.errors import FailedError, InputError


class ConvergenceError(FailedError):
    """A solver stopped before reaching its stated tolerance; the message gives how far it got."""


class NotApplicableError(InputError):
    """The chosen solver method cannot handle this crossbar (the message says why)."""
