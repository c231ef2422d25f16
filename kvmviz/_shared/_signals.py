"""Signals as exceptions: a ``kill`` unwinds like Ctrl-C, and a commit is never cut in half.

Python turns SIGINT into :class:`KeyboardInterrupt`, which unwinds the stack through every
``finally`` and ``with`` block: temporary files and staging folders are removed on the way
out. SIGTERM (``kill``, a closing terminal multiplexer, a CI timeout) and SIGHUP (the terminal
went away) kill the process outright by default, leaving those files behind. :func:`handled`
makes the three alike: each raises :class:`Interrupted`, a ``KeyboardInterrupt`` that knows its
signal, so every cleanup that handles Ctrl-C handles them too, and the command line can exit
with the status a shell expects (128 + the signal's number: 130, 143, 129).

:func:`held` is the other half: the few steps that must not be cut (moving a complete set of
files into place) run with those signals held back; one that arrives meanwhile is delivered
when the block ends, to whatever handler was there before.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SIGNALS", "Interrupted", "handled", "held"]

SIGNALS = tuple(
    s
    for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
    if s is not None
)
"""The signals that mean "stop now, cleanly": Ctrl-C, ``kill``, a hung-up terminal."""


class Interrupted(KeyboardInterrupt):
    """A stop asked by a signal; ``signum`` says which, ``status`` the exit status it means.

    A subclass of ``KeyboardInterrupt``, so that ``except KeyboardInterrupt`` and every
    ``finally`` treat a ``kill`` exactly as Ctrl-C.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(self.name)

    @property
    def name(self) -> str:
        """``"SIGTERM"``, ``"SIGHUP"``, ``"SIGINT"``."""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def status(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal killed."""
        return 128 + self.signum


@contextmanager
def handled(*, final: bool = False) -> Iterator[None]:
    """For the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread.

    Only the first signal raises: once the stack is unwinding, a second Ctrl-C or ``kill``
    must not cut the cleanup short, so later ones are ignored. SIGXFSZ (a file grown past
    ``ulimit -f``) is ignored, so that the write fails with ``EFBIG`` and is reported like a
    full disk. The handlers that were there before are put back when the block ends.

    For a program's entry point (the ``kvmviz`` command), entered before anything slow is
    imported; a library never calls it. Outside the main thread the block simply runs.

    Parameters
    ----------
    final : bool
        The block is the process's last work (the command run as a program): when it ends the
        three signals are ignored instead of put back. The outcome is decided by then (files
        written or removed, the status known); a signal during the interpreter's exit would
        otherwise kill the process by the default action, with no word and a status saying it
        was stopped (issue 21's CI saw -15 after a complete export).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    first: list[int] = []

    def handler(signum, _frame):
        if first:
            return  # already unwinding: let the cleanup finish
        first.append(signum)
        raise Interrupted(signum)

    previous = {}
    try:
        for signum in SIGNALS:
            previous[signum] = signal.signal(signum, handler)
        if hasattr(signal, "SIGXFSZ"):
            # A file-size limit (`ulimit -f`) kills a writer outright by default, temporary
            # files and all; ignored, it is an error (EFBIG) at the write that hits it.
            previous[signal.SIGXFSZ] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        yield
    finally:
        if final:
            for signum in SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
        else:
            _restore(previous)


@contextmanager
def held() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP for the duration of the block.

    A signal that arrives inside is delivered again (:func:`signal.raise_signal`) to the
    handler that was installed before, as soon as the block ends: the block completes, then the
    program stops as it would have. Outside the main thread (where Python cannot change
    handlers, and where signals are not handled anyway) the block simply runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    try:
        for signum in SIGNALS:
            previous[signum] = signal.signal(signum, lambda n, _f: pending.append(n))
        yield
    finally:
        _restore(previous)
        if pending:
            signal.raise_signal(pending[0])


def _restore(previous: dict) -> None:
    for signum, handler in previous.items():
        # None: a handler installed from C, which Python cannot put back; the default action
        # is what such a process gets for these signals.
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
