"""A trace's printed timestamp read exactly: integer nanoseconds, or a raw clock's count.

A trace prints ``<s>.<fraction>`` for the clocks that count nanoseconds and the bare count for
the others (see ``kvmviz/inputs/ftrace.py``). Read as float seconds, a timestamp loses up to
0.19 µs at the epoch-scale times of ``trace-cmd record --date``; read as integers, two
timestamps compare and subtract exactly, whatever offset the whole trace has.
"""

from __future__ import annotations

__all__ = ["INT64_MAX", "format_ns", "parse_timestamp", "timestamp_ns"]

INT64_MAX = (1 << 63) - 1
"""The largest timestamp a frame's int64 column holds: 2**63 ns is in the year 2262."""

_NS_SCALE = tuple(10 ** (9 - k) for k in range(10))  # fraction digits -> ns per unit


def timestamp_ns(sec: str, frac: str) -> int:
    """``<sec>.<frac>`` as integer nanoseconds (more than 9 digits: rounded half up).

    Parameters
    ----------
    sec, frac : str
        The digits before and after the decimal point.

    Returns
    -------
    int
    """
    n = len(frac)
    if n <= 9:
        return int(sec) * 1_000_000_000 + int(frac) * _NS_SCALE[n]
    unit = 10 ** (n - 9)
    ns, rest = divmod(int(frac), unit)
    return int(sec) * 1_000_000_000 + ns + (2 * rest >= unit)


def parse_timestamp(text: str) -> int:
    """A printed timestamp as an integer: nanoseconds for ``<s>.<fraction>``, else the count.

    Parameters
    ----------
    text : str
        ``"2318.000036"`` or a raw count, ``"123456789"``.

    Returns
    -------
    int
    """
    sec, dot, frac = text.partition(".")
    return timestamp_ns(sec, frac) if dot else int(sec)


def format_ns(ns: int, digits: int) -> str:
    """``ns`` printed as a trace prints it, with ``digits`` fraction digits (exact for the
    timestamps of a trace of that precision).

    Parameters
    ----------
    ns : int
        Nanoseconds.
    digits : int
        Fraction digits, 0 to 9.

    Returns
    -------
    str
    """
    sec, frac = divmod(ns, 1_000_000_000)
    return f"{sec}.{frac:09d}"[: len(str(sec)) + 1 + digits] if digits else str(sec)
