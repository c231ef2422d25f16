"""Standard output and error as a command writes them: whatever the reader or the disk does.

A command's report is text for someone else's process: ``head`` may close the pipe after one
line, the shell may point it at a full disk (or ``/dev/full``), the locale may have no "µ".
Python turns each into an exception at whichever ``print`` happens to meet it, or at exit.
:func:`guarded` replaces ``sys.stdout`` and ``sys.stderr`` for the duration of a command with
:class:`GuardedStream` objects that decide once, here, what each means:

- **A closed pipe** (``EPIPE``) ends the report quietly, as ``cat`` ends: nothing more is
  printed (the descriptor is pointed at ``/dev/null``, so no later flush complains). If the
  command was asked to write files (``keep_going``) it finishes them first, since the files
  are what was asked for and the report only describes them; otherwise it stops at once
  (:class:`PipeClosed`). Either way the exit status is 141, a shell's "killed by SIGPIPE".
- **Any other write error** (``ENOSPC``, ``EIO``) raises :class:`OutputError`, an ``OSError``
  naming ``standard output``: the command says so in one line on stderr.
- **An encoding that cannot hold a character** (``PYTHONIOENCODING=ascii``, a C locale):
  the text is degraded, ``µs`` to ``us``, ``≥`` to ``>=``, anything else to ``?``; never an
  exception.
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["GuardedStream", "OutputError", "PipeClosed", "degrade", "guarded"]

PIPE_STATUS = 141
"""The exit status of a command whose reader went away: 128 + SIGPIPE, as ``cat`` gets."""

# The non-ASCII characters kvmviz prints, spelled in ASCII (checked before NFKD, which would
# turn the micro sign into a Greek mu).
_ASCII = str.maketrans(
    {
        "µ": "u",
        "μ": "u",
        "≥": ">=",
        "≤": "<=",
        "≠": "!=",
        "≈": "~",
        "±": "+/-",
        "×": "x",
        "÷": "/",
        "·": "*",
        "→": "->",
        "←": "<-",
        "↔": "<->",
        "–": "-",
        "—": "--",
        "‑": "-",
        "−": "-",
        "…": "...",
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "°": " deg",
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
        "✓": "ok",
        "✗": "x",
    }
)
_UNICODE = {"utf-8", "utf-16", "utf-32", "utf-8-sig"}


def degrade(text: str, encoding: str) -> str:
    """``text`` spelled so that ``encoding`` can hold it: unchanged when it can, else with
    kvmviz's symbols in ASCII (``µs`` -> ``us``), accents dropped, anything left as ``?``."""
    try:
        text.encode(encoding)
        return text
    except UnicodeEncodeError:
        pass
    text = unicodedata.normalize("NFKD", text.translate(_ASCII))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.encode(encoding, errors="replace").decode(encoding)


class PipeClosed(BaseException):
    """The reader of standard output went away and the command has nothing left to finish.

    A ``BaseException``, like ``KeyboardInterrupt``: it unwinds through every ``finally``
    (temporary files are removed) and past any ``except Exception``.
    """


class OutputError(OSError):
    """Standard output (or error) could not be written: a full disk, an I/O error."""


class _Closed(io.TextIOBase):
    """The stream Python gives no object for: its descriptor was closed at start-up."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "it was closed before kvmviz started (>&-)")

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        raise io.UnsupportedOperation("closed")


class GuardedStream(io.TextIOBase):
    """A text stream over ``sys.stdout`` or ``sys.stderr`` that handles what its reader does.

    Parameters
    ----------
    stream : text stream
        The stream to write to.
    name : str
        ``"standard output"`` or ``"standard error"``, for messages.
    keep_going : bool
        On a closed pipe, go on quietly (True) or raise :class:`PipeClosed` (False).
    strict : bool
        Raise :class:`OutputError` for other write errors (standard output); False swallows
        them (standard error, which has nowhere left to report them).
    """

    def __init__(self, stream, name: str, *, keep_going: bool = False, strict: bool = True):
        super().__init__()
        # None: the descriptor was closed before Python started (`kvmviz ... >&-`).
        self.stream = _Closed() if stream is None else stream
        self.label = name
        self.keep_going = keep_going
        self.strict = strict
        self.pipe_closed = False
        self.failed: OSError | None = None
        encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            self._encoding = codecs.lookup(encoding).name
        except LookupError:
            self._encoding = "ascii"
        self._exact = self._encoding in _UNICODE

    @property
    def encoding(self) -> str:
        return self._encoding

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return not self.gone and self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def gone(self) -> bool:
        """Nothing more reaches the reader (pipe closed or write failed)."""
        return self.pipe_closed or self.failed is not None

    def write(self, text: str) -> int:
        if self.gone:
            return len(text)
        if not self._exact:
            text = degrade(text, self._encoding)
        self._guard(self.stream.write, text)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            self._guard(self.stream.flush)

    def _guard(self, call, *args) -> None:
        try:
            call(*args)
        except OSError as error:
            self._handle(error)

    def _handle(self, error: OSError) -> None:
        self._silence()
        if error.errno == errno.EPIPE:
            self.pipe_closed = True
            if not self.keep_going:
                raise PipeClosed from None
            return
        self.failed = error
        if self.strict:
            raise OutputError(error.errno, error.strerror, self.label) from None

    def _silence(self) -> None:
        """Point the descriptor at /dev/null: what the buffer still holds, and Python's flush
        at exit, go nowhere instead of raising again."""
        try:
            fd = self.stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass  # not a real file (a test's capture): nothing will flush it at exit


@contextmanager
def guarded(*, keep_going: bool = False) -> Iterator[tuple[GuardedStream, GuardedStream]]:
    """Replace ``sys.stdout`` and ``sys.stderr`` by :class:`GuardedStream` s for the block.

    Standard output is flushed at the end of the block (inside it, so that a full disk is
    reported, not lost at exit). The streams are put back afterwards.

    Yields
    ------
    (GuardedStream, GuardedStream)
        Standard output and standard error; ``keep_going`` of the first may be changed
        inside the block (a command that learns it has files to write).
    """
    out = GuardedStream(sys.stdout, "standard output", keep_going=keep_going)
    err = GuardedStream(sys.stderr, "standard error", keep_going=True, strict=False)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
        out.flush()
    finally:
        sys.stdout, sys.stderr = saved
        try:
            err.flush()
        except OSError:
            pass
