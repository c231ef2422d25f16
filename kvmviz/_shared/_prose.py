"""How numbers are written in sentences: one format for every generated or checked sentence.

The course ties its prose to the model's numbers (docs/claims.md): a sentence states a number
through a value span whose text is one of these functions of the computed value, so a chapter,
the README, the dashboard and the gallery's captions write the same number the same way.

>>> pct(0.1142), pct(0.0), us(1209.4), count(13078), times(2.04)
('11.4 %', '0 %', '1,209 µs', '13,078', '2.0×')
"""

from __future__ import annotations

import math

__all__ = ["binary_size", "count", "ms", "num", "pct", "plural", "size_bytes", "times", "us"]


def _finite(value) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} in a sentence")
    return value


def num(value, digits: int = 0) -> str:
    """A number with thousands separators and ``digits`` decimals: ``num(1234.5, 1)`` is
    ``"1,234.5"``. Rounding to nothing gives ``"0"``, never ``"-0"``."""
    text = f"{_finite(value):,.{digits}f}"
    return "0" if text.strip("-0.,") == "" else text


def pct(share, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage: ``pct(0.1142)`` is ``"11.4 %"``; exactly 0 is
    ``"0 %"`` (nothing at all, not a rounded small number)."""
    share = _finite(share)
    return "0 %" if share == 0 else f"{num(100 * share, digits)} %"


def us(value, digits: int = 0) -> str:
    """Microseconds: ``us(1209.4)`` is ``"1,209 µs"``."""
    return f"{num(value, digits)} µs"


def ms(value_us, digits: int = 1) -> str:
    """Microseconds written as milliseconds: ``ms(1530)`` is ``"1.5 ms"``."""
    return f"{num(_finite(value_us) / 1000, digits)} ms"


def count(value) -> str:
    """A count: ``count(13078)`` is ``"13,078"``."""
    value = _finite(value)
    if value != round(value):
        raise ValueError(f"count({value!r}): not a whole number")
    return num(value)


def plural(n: int, noun: str) -> str:
    """``n`` and a noun, plural unless ``n`` is 1: ``plural(3, "reader")`` is ``"3 readers"``,
    ``plural(1, "writer")`` is ``"1 writer"`` (the queue animation's captions)."""
    return f"{n} {noun}{'s' * (n != 1)}"


def times(ratio, digits: int = 1) -> str:
    """A ratio: ``times(2.04)`` is ``"2.0×"``."""
    return f"{num(ratio, digits)}×"


def size_bytes(nbytes: int) -> str:
    """A size in bytes with a binary unit and three significant digits: ``"12 TiB"``,
    ``"4 KiB"``, ``"640 B"`` (how the memslot maps and the animation name a range)."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.3g} {unit}"
    return f"{nbytes} B"


def binary_size(n: float) -> str:
    """An amount of memory to three significant digits, up to PiB: ``"336 MiB"``,
    ``"1.2e+03 B"`` (how a refused run states its tables' cost). Unlike :func:`size_bytes`,
    it takes fractional amounts (an estimate) and writes every unit the same way."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
