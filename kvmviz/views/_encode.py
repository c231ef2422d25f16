"""A column-wise byte assembler: many records of one shape, encoded at once, for the exports.

A *program* says how one record is spelled, as a sequence of fields, each of them

- a constant byte string (``("const", b"...")``),
- one of a small table of byte strings, chosen by an integer column (``("choice", column,
  [b"...", ...])``), or one of the caller's per-call records (``("record", column)``),
- an integer column as a protobuf varint (``("varint", column)``: an ``int64`` as protobuf
  writes it, ten bytes when negative), a little-endian ``fixed64`` (``("fixed64", column)``),
  a decimal (``("dec", column)``), integer nanoseconds as the decimal microseconds Python's
  ``repr(ns / 1000)`` gives (``("usec", column)``), or ``0x``-hex of the 64 bits
  (``("hex", column)``, as ``f"{v:#x}"`` for the unsigned value),
- a protobuf length prefix of nested fields (``("len", [fields...])``), or
- fields present only where a column is non-zero (``("if", column, [fields...])``).

:func:`compile_programs` turns programs into flat arrays; :func:`assemble` encodes ``n``
records (a program number and an ``int64`` row of columns each) into one ``bytes``, in a plain
loop that numba compiles when it is installed (the same source runs as ordinary Python
otherwise, slowly). Memory is the records' columns and their output: callers encode a chunk
at a time.
"""

from __future__ import annotations

import numpy as np

from .._shared._jit import njit

__all__ = ["Compiled", "assemble", "compile_programs", "pb_key", "pb_varint", "usec_text"]

# Opcodes of the flat program: (op, a, b) per field.
_CONST, _CHOICE, _VARINT, _FIXED64, _DEC, _USEC, _HEX, _BEGIN, _END, _IF, _ENDIF = range(11)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()


# --------------------------------------------------------------------------------------------
# Protobuf spelling helpers (Python side, for constants).
# --------------------------------------------------------------------------------------------
def pb_varint(value: int) -> bytes:
    """``value`` as a protobuf varint (an ``int64``: ten bytes when negative)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_key(field: int, wire: int) -> bytes:
    """The key of ``field`` with wire type ``wire`` (0 varint, 1 fixed64, 2 length-delimited)."""
    return pb_varint(field << 3 | wire)


def usec_text(ns: int) -> str:
    """Integer ns as the decimal µs ``repr(ns / 1000)`` prints (``1234.5``, ``0.0``)."""
    sign = "-" if ns < 0 else ""
    whole, frac = divmod(abs(int(ns)), 1000)
    return f"{sign}{whole}.{(f'{frac:03d}'.rstrip('0') or '0')}"


# --------------------------------------------------------------------------------------------
# Programs.
# --------------------------------------------------------------------------------------------
class Compiled:
    """Programs as flat arrays: ``ops`` (one ``(op, a, b)`` row per field), ``starts`` (each
    program's first op; one more entry closes the last) and the string table (``blob`` and
    ``offsets``) of every constant and choice."""

    def __init__(self, ops, starts, strings: list[bytes]) -> None:
        self.ops = np.asarray(ops, dtype=np.int64).reshape(-1, 3)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.strings = list(strings)
        self.blob, self.offsets = _table(self.strings)


def _table(strings: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in strings], out=offsets[1:])
    blob = np.frombuffer(b"".join(strings) or b"\0", dtype=np.uint8)
    return blob, offsets


def compile_programs(programs: list[list]) -> Compiled:
    """Compile ``programs`` (lists of fields, as in the module's description) to flat arrays.

    Parameters
    ----------
    programs : list of list of tuple
        Program ``k`` spells records whose program number is ``k``.

    Returns
    -------
    Compiled
    """
    ops: list[list[int]] = []
    strings: list[bytes] = []
    index: dict[bytes, int] = {}

    def string(value: bytes) -> int:
        if value not in index:
            index[value] = len(strings)
            strings.append(value)
        return index[value]

    def emit(fields) -> None:
        for item in fields:
            kind = item[0]
            if kind == "const":
                if item[1]:
                    ops.append([_CONST, string(bytes(item[1])), 0])
            elif kind == "choice":
                base = len(strings)
                strings.extend(bytes(c) for c in item[2])  # consecutive, never shared
                ops.append([_CHOICE, item[1], base])
            elif kind == "record":
                ops.append([_CHOICE, item[1], -1])  # the caller's records, after the table
            elif kind in ("varint", "fixed64", "dec", "usec", "hex"):
                code = {"varint": _VARINT, "fixed64": _FIXED64, "dec": _DEC}
                code |= {"usec": _USEC, "hex": _HEX}
                ops.append([code[kind], item[1], 0])
            elif kind == "len":
                at = len(ops)
                ops.append([_BEGIN, 0, 0])
                emit(item[1])
                ops.append([_END, 0, at])
            elif kind == "if":
                at = len(ops)
                ops.append([_IF, item[1], 0])
                emit(item[2])
                ops[at][2] = len(ops)
                ops.append([_ENDIF, 0, 0])
            else:
                raise ValueError(f"unknown field kind {kind!r}")

    starts = [0]
    for program in programs:
        emit(program)
        starts.append(len(ops))
    return Compiled(ops, starts, strings)


# --------------------------------------------------------------------------------------------
# The compiled loop.
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _varint_len(v):
    if v < 0:
        return 10
    n = 1
    while v >= 128:
        v >>= 7
        n += 1
    return n


@njit(cache=True)
def _dec_len(v):
    n = 1
    if v < 0:
        n += 1
        v = -v
    while v >= 10:
        v //= 10
        n += 1
    return n


@njit(cache=True)
def _usec_len(v):
    sign = 0
    if v < 0:
        sign = 1
        v = -v
    frac = v % 1000
    digits = 1
    if frac % 10:
        digits = 3
    elif frac % 100:
        digits = 2
    return sign + _dec_len(v // 1000) + 1 + digits


@njit(cache=True)
def _hex_len(v):
    if v < 0:  # the top bit set: sixteen hex digits of the unsigned value
        return 18
    n = 1
    while v >= 16:
        v >>= 4
        n += 1
    return 2 + n


@njit(cache=True)
def _put_dec(out, pos, v):
    if v < 0:
        out[pos] = 45  # "-"
        pos += 1
        v = -v
    n = _dec_len(v)
    end = pos + n
    for k in range(n):
        out[end - 1 - k] = 48 + v % 10
        v //= 10
    return end


@njit(cache=True)
def _measure(i, j, stop, ops, cols, offsets, n_strings, sizes, stack):
    """Bytes of record ``i`` under ops ``[j, stop)``; each length block's size into ``sizes``."""
    acc = 0
    depth = 0
    while j < stop:
        op = ops[j, 0]
        a = ops[j, 1]
        if op == 0:
            acc += offsets[a + 1] - offsets[a]
        elif op == 1:
            k = cols[i, a] + (ops[j, 2] if ops[j, 2] >= 0 else n_strings)
            acc += offsets[k + 1] - offsets[k]
        elif op == 2:
            acc += _varint_len(cols[i, a])
        elif op == 3:
            acc += 8
        elif op == 4:
            acc += _dec_len(cols[i, a])
        elif op == 5:
            acc += _usec_len(cols[i, a])
        elif op == 6:
            acc += _hex_len(cols[i, a])
        elif op == 7:
            stack[depth] = acc
            depth += 1
            acc = 0
        elif op == 8:
            depth -= 1
            sizes[ops[j, 2]] = acc
            acc = stack[depth] + _varint_len(acc) + acc
        elif op == 9:
            if cols[i, a] == 0:
                j = ops[j, 2]
        j += 1
    return acc


@njit(cache=True)
def _write(i, j, stop, ops, cols, blob, offsets, n_strings, sizes, out, pos, hexdigits):
    while j < stop:
        op = ops[j, 0]
        a = ops[j, 1]
        if op == 0 or op == 1:
            k = a
            if op == 1:
                k = cols[i, a] + (ops[j, 2] if ops[j, 2] >= 0 else n_strings)
            for b in range(offsets[k], offsets[k + 1]):
                out[pos] = blob[b]
                pos += 1
        elif op == 2 or op == 7:
            v = cols[i, a] if op == 2 else sizes[j]
            if v < 0:
                for _ in range(9):
                    out[pos] = (v & 0x7F) | 0x80
                    v >>= 7
                    pos += 1
                out[pos] = 1
                pos += 1
            else:
                while v >= 128:
                    out[pos] = (v & 0x7F) | 0x80
                    v >>= 7
                    pos += 1
                out[pos] = v
                pos += 1
        elif op == 3:
            v = cols[i, a]
            for _ in range(8):
                out[pos] = v & 0xFF
                v >>= 8
                pos += 1
        elif op == 4:
            pos = _put_dec(out, pos, cols[i, a])
        elif op == 5:
            v = cols[i, a]
            if v < 0:
                out[pos] = 45
                pos += 1
                v = -v
            pos = _put_dec(out, pos, v // 1000)
            out[pos] = 46  # "."
            pos += 1
            frac = v % 1000
            out[pos] = 48 + frac // 100
            pos += 1
            if frac % 100:
                out[pos] = 48 + frac // 10 % 10
                pos += 1
                if frac % 10:
                    out[pos] = 48 + frac % 10
                    pos += 1
        elif op == 6:
            v = cols[i, a]
            n = _hex_len(v) - 2
            out[pos] = 48
            out[pos + 1] = 120  # "0x"
            pos += 2
            for k in range(n):
                out[pos + n - 1 - k] = hexdigits[(v >> (4 * k)) & 0xF]
            pos += n
        elif op == 9:
            if cols[i, a] == 0:
                j = ops[j, 2]
        j += 1
    return pos


@njit(cache=True)
def _sizes(programs, cols, ops, starts, offsets, n_strings, lengths):
    sizes = np.zeros(ops.shape[0] + 1, dtype=np.int64)
    stack = np.zeros(ops.shape[0] + 1, dtype=np.int64)
    for i in range(programs.size):
        p = programs[i]
        lengths[i] = _measure(
            i, starts[p], starts[p + 1], ops, cols, offsets, n_strings, sizes, stack
        )


@njit(cache=True)
def _fill(programs, cols, ops, starts, blob, offsets, n_strings, out, hexdigits):
    sizes = np.zeros(ops.shape[0] + 1, dtype=np.int64)
    stack = np.zeros(ops.shape[0] + 1, dtype=np.int64)
    pos = 0
    for i in range(programs.size):
        p = programs[i]
        j, stop = starts[p], starts[p + 1]
        _measure(i, j, stop, ops, cols, offsets, n_strings, sizes, stack)
        pos = _write(i, j, stop, ops, cols, blob, offsets, n_strings, sizes, out, pos, hexdigits)
    return pos


def assemble(compiled: Compiled, programs, cols, records: list[bytes] | None = None) -> np.ndarray:
    """Encode one record per entry of ``programs``, concatenated.

    Parameters
    ----------
    compiled : Compiled
        From :func:`compile_programs`.
    programs : numpy.ndarray of int
        Each record's program number.
    cols : numpy.ndarray of int64, shape (n, k)
        Each record's columns (a column a program does not read may hold anything).
    records : list of bytes, optional
        What ``("record", column)`` fields choose from, by the column's value.

    Returns
    -------
    numpy.ndarray of uint8
        The bytes (``.tobytes()``, or write the array to a binary file directly).
    """
    programs = np.ascontiguousarray(programs, dtype=np.int64)
    if programs.size == 0:
        return np.zeros(0, dtype=np.uint8)
    cols = np.ascontiguousarray(cols, dtype=np.int64).reshape(programs.size, -1)
    if cols.shape[1] == 0:
        cols = np.zeros((programs.size, 1), dtype=np.int64)
    n_strings = len(compiled.strings)
    blob, offsets = compiled.blob, compiled.offsets
    if records:
        blob, offsets = _table([*compiled.strings, *records])
    lengths = np.empty(programs.size, dtype=np.int64)
    _sizes(programs, cols, compiled.ops, compiled.starts, offsets, n_strings, lengths)
    out = np.empty(int(lengths.sum()), dtype=np.uint8)
    end = _fill(
        programs, cols, compiled.ops, compiled.starts, blob, offsets, n_strings, out, _HEX_DIGITS
    )
    assert end == out.size, (end, out.size)
    return out
