"""The error policy of the whole package, written once.

Every failure a user can cause or meet ends as one exception whose message is one line naming
the file, row, field or option and what was expected. The ``pyaimc`` command maps the kinds to
exit codes and prints that line, never a traceback (unless ``--debug``):

==== =========================================================================================
code meaning
==== =========================================================================================
0    success
1    an internal error (a bug: please report it with the ``--debug`` traceback)
2    bad input: a file, a field, an option or a model that is missing, malformed or implausible
3    a simulation or fit failed (no convergence, a simulator error, training diverged)
4    a budget ran out: time limit, size limit, memory
5    an output could not be written (permissions, a directory in the way, disk full)
130  interrupted (SIGINT)
143  terminated (SIGTERM)
==== =========================================================================================

The package's own exception classes derive from the kinds here (and keep their standard bases,
``ValueError`` for bad input, so existing ``except ValueError`` still works).
"""

from __future__ import annotations

import errno
import signal

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_FAILED, EXIT_BUDGET, EXIT_OUTPUT = 0, 1, 2, 3, 4, 5
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM


class PyaimcError(Exception):
    """Base of the package's errors; ``exit_code`` is what the command exits with."""

    exit_code = EXIT_INTERNAL


class InputError(PyaimcError, ValueError):
    """A file, field, option or model is missing, malformed or implausible."""

    exit_code = EXIT_INPUT


class FailedError(PyaimcError, RuntimeError):
    """A simulation, fit or training run did not succeed."""

    exit_code = EXIT_FAILED


class SimulatorError(FailedError):
    """An external circuit simulator failed; ``log_tail`` holds the end of its log (also in
    the message, under a heading naming :attr:`simulator`)."""

    simulator = "simulator"

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        if log_tail:
            message = f"{message}\n--- {self.simulator} log (tail) ---\n{log_tail}"
        super().__init__(message)


class BudgetError(PyaimcError, RuntimeError):
    """A time, size or memory budget would be exceeded (or was)."""

    exit_code = EXIT_BUDGET


class OutputError(PyaimcError, OSError):
    """An output could not be written."""

    exit_code = EXIT_OUTPUT


class Terminated(PyaimcError, KeyboardInterrupt):
    """The process received SIGTERM (raised in the main thread so cleanup code runs)."""

    exit_code = EXIT_SIGTERM


def exit_code(err: BaseException) -> int:
    """The exit code of an exception under the policy above."""
    if isinstance(err, PyaimcError):
        return err.exit_code
    if isinstance(err, KeyboardInterrupt):
        return EXIT_SIGINT
    if isinstance(err, MemoryError):
        return EXIT_BUDGET
    if isinstance(err, (TimeoutError,)):
        return EXIT_BUDGET
    if isinstance(err, OSError):
        # reading: the input is the problem; ENOSPC and friends: the output
        if err.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
            return EXIT_OUTPUT
        return EXIT_INPUT
    if isinstance(err, (ValueError, LookupError, TypeError)):
        return EXIT_INPUT
    return EXIT_INTERNAL


def message(err: BaseException) -> str:
    """The one line shown to the user for ``err``."""
    if isinstance(err, Terminated):
        return "terminated (SIGTERM); temporary files removed, child processes ended"
    if isinstance(err, KeyboardInterrupt):
        return "interrupted; temporary files removed, child processes ended"
    if isinstance(err, MemoryError):
        return ("out of memory" + (f": {err}" if str(err) else "")
                + "; ask for fewer cells, devices or cycles")
    if isinstance(err, OSError) and not str(err).startswith(str(err.filename or "\0")):
        # an OSError from the standard library: "[Errno 13] Permission denied: 'x'" -> the path
        # first, then what happened
        what = err.strerror or str(err)
        where = err.filename if err.filename is not None else ""
        text = f"{where}: {what.lower()}" if where else what
        if isinstance(err, IsADirectoryError):
            text += " (expected a file)"
        elif isinstance(err, NotADirectoryError):
            text += " (a file is in the way of a directory)"
        return text
    text = str(err).strip() or type(err).__name__
    lines = text.splitlines()
    if len(lines) > 1 and exit_code(err) != EXIT_FAILED:
        # keep the user's one line; simulator logs stay in failures, where they say why
        text = lines[0]
    if exit_code(err) == EXIT_INTERNAL:
        text = f"internal error ({type(err).__name__}: {text}); run with --debug for the traceback"
    return text


class TerminateAsInterrupt:
    """Context manager: while inside, SIGTERM raises :class:`Terminated` in the main thread.

    Batch schedulers stop jobs with SIGTERM; turned into an exception, it runs the same cleanup
    as Ctrl-C (``finally`` blocks end child processes and remove temporary files).
    """

    def __enter__(self):
        self._old = None
        try:
            self._old = signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not the main thread: leave signals alone
            self._old = None
        return self

    @staticmethod
    def _raise(signum, frame):
        raise Terminated()

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False
