"""How the readers of real data report a line that is not what its format allows.

Strict, a bad line is a :class:`TraceParseError` naming the file, the line, what was expected
there and what was found; lenient (``lenient=True``), it is skipped, listed and counted by
:class:`Skips`, and one :class:`TraceParseWarning` gives the count and the first.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

__all__ = ["MAX_SKIPPED", "Skips", "TraceParseError", "TraceParseWarning", "snippet"]

_MAX_SNIPPET = 120
MAX_SKIPPED = 100
"""Skipped lines listed in ``attrs["skipped"]``, at most (all are counted)."""


def snippet(text: str) -> str:
    """``text`` cut to 120 characters (and an ellipsis), as an error message quotes a line."""
    return text if len(text) <= _MAX_SNIPPET else text[:_MAX_SNIPPET] + "…"


class TraceParseError(ValueError):
    """A line of a trace that is not what the format allows.

    Attributes
    ----------
    path : str
        The file.
    line : int
        1-based line number.
    text : str
        The offending line, truncated to 120 characters.
    expected : str
        What the parser expected there.
    """

    def __init__(self, path, line: int, text: str, expected: str, got: str | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.text = snippet(text)
        self.expected = expected
        got = repr(self.text) if got is None else got
        super().__init__(f"{self.path}, line {line}: expected {expected}; got {got}")


class TraceParseWarning(UserWarning):
    """Emitted once by the lenient parsers when they skipped malformed lines or sorted records."""


@dataclass
class Skips:
    """The malformed lines of one file: raised at once (strict) or listed and counted (lenient).

    Attributes
    ----------
    path : str
        The file, as error messages name it.
    lenient : bool
        Skip malformed lines instead of raising.
    lines : list
        ``(line, reason)`` of the first :data:`MAX_SKIPPED` lines skipped.
    count : int
        Lines skipped.
    """

    path: str
    lenient: bool
    lines: list
    count: int = 0

    def bad(self, lineno: int, text: str, expected: str) -> None:
        """Line ``lineno`` (``text``) is not ``expected``: a :class:`TraceParseError`, or
        (lenient) listed and counted."""
        if not self.lenient:
            raise TraceParseError(self.path, lineno, text, expected)
        self.count += 1
        if len(self.lines) < MAX_SKIPPED:
            self.lines.append((lineno, f"expected {expected}; got {snippet(text)!r}"))

    def warn(self, what: str) -> None:
        """One :class:`TraceParseWarning` for the ``what`` lines skipped, if any; call it from
        the public reader itself (the warning names that reader's caller)."""
        if self.count:
            first_line, first_reason = self.lines[0]
            warnings.warn(
                f"{self.path}: skipped {self.count} malformed {what} line"
                f"{'s' if self.count > 1 else ''} (first: line {first_line}, {first_reason}); "
                "see .attrs['skipped']",
                TraceParseWarning,
                stacklevel=3,
            )
