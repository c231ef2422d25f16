"""A memslot layout from JSON: each slot as ``struct kvm_userspace_memory_region`` has it.

The format of ``data/traces/notifier-phases-linux6.18.layout.json``: an object with a
``"memslots"`` list, or the list itself. Every error names the file, the line (of the memslot
entry at fault, found again in the text: json gives no positions) and what was expected.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .memslots import PAGE_SHIFT, PAGE_SIZE, Memslot, MemslotError, MemslotLayout
from .trace_files import Opened

__all__ = ["MAX_LAYOUT_BYTES", "load_layout_json"]

MAX_LAYOUT_BYTES = 64 << 20
"""Bytes of a JSON layout, at most: KVM allows 32,767 memslots per address space, a few
hundred bytes each."""


def load_layout_json(path) -> MemslotLayout:
    """A memslot layout from JSON, as in ``data/traces/notifier-phases-linux6.18.layout.json``.

    Parameters
    ----------
    path : str or os.PathLike
        An object with a ``"memslots"`` list (or the list itself); each memslot has ``slot``,
        ``guest_phys_addr``, ``memory_size``, ``userspace_addr`` and optionally ``as_id`` and
        ``flags`` (default 0), each an int or a hex string (``"0x7fafeb200000"``), as in
        ``struct kvm_userspace_memory_region``. Other keys are ignored; ``page_size``, if
        present, must be 4096.

    Returns
    -------
    MemslotLayout

    Raises
    ------
    ValueError
        Naming the file, the line and what was expected: for text that is not UTF-8 JSON, a
        document without memslots (an empty list included: a layout of no memslot makes every
        notification a miss), a field missing, not a number or not page aligned;
        :class:`~kvmviz.MemslotError` (a ValueError) for slots KVM would reject.
    """
    path = Path(path)
    text, doc = _read_json(path)
    at = _Where(path, text, _json_entry_lines(text, doc))
    slots = [_memslot(entry, i, at) for i, entry in enumerate(_memslot_list(doc, at))]
    try:
        return MemslotLayout(slots)
    except MemslotError as err:
        raise MemslotError(f"{path}: {err}") from None


def _read_json(path: Path):
    """``(text, document)`` of a JSON file (decompressed, at most :data:`MAX_LAYOUT_BYTES`)."""
    with Opened(path) as opened, opened.errors():
        data = opened.stream.read(MAX_LAYOUT_BYTES + 1)
    if len(data) > MAX_LAYOUT_BYTES:
        raise ValueError(
            f"{path}: more than {MAX_LAYOUT_BYTES >> 20} MiB; expected a JSON memslot layout "
            "(a few hundred bytes per memslot)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(
            f"{path}, line {line}: expected UTF-8 JSON text (byte {data[err.start]:#04x} is not)"
        ) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}, line {err.lineno}: expected a JSON layout; not JSON: {err.msg} "
            f"(column {err.colno})"
        ) from None
    return text, doc


class _Where:
    """Where an error is, as its message starts: ``at()`` the document, ``at(i)`` memslot #i."""

    def __init__(self, path: Path, text: str, lines: list[int]) -> None:
        self.path, self.text, self.lines = path, text, lines

    def __call__(self, i: int | None = None) -> str:
        path, text, lines = self.path, self.text, self.lines
        if i is None:
            return f"{path}, line {text.count(chr(10), 0, len(text) - len(text.lstrip())) + 1}"
        return f"{path}, line {lines[i]}" if lines else f"{path}"


def _memslot_list(doc, at: _Where) -> list:
    """The memslot entries of a document: its ``"memslots"`` list, or the document itself."""
    if isinstance(doc, dict):
        if doc.get("page_size", PAGE_SIZE) != PAGE_SIZE:
            raise ValueError(f"{at()}: expected page_size 4096, got {doc['page_size']!r}")
        if "memslots" not in doc:
            raise ValueError(f"{at()}: expected a 'memslots' list, found keys {sorted(doc)}")
        doc = doc["memslots"]
    if not isinstance(doc, list):
        raise ValueError(f"{at()}: expected a list of memslots, got {type(doc).__name__}")
    if not doc:
        raise ValueError(f"{at()}: expected at least one memslot, got an empty list")
    return doc


def _memslot(entry, i: int, at: _Where) -> Memslot:
    """Memslot #i of a layout, from its entry."""
    if not isinstance(entry, dict):
        raise ValueError(f"{at(i)}: memslot #{i}: expected an object, got {entry!r}")
    gpa = _number(entry, "guest_phys_addr", i, at)
    size = _number(entry, "memory_size", i, at)
    if gpa % PAGE_SIZE or size % PAGE_SIZE:
        raise ValueError(
            f"{at(i)}: memslot #{i}: guest_phys_addr {gpa:#x} and memory_size {size:#x} "
            "must be multiples of 4096"
        )
    try:
        return Memslot(
            slot=_number(entry, "slot", i, at),
            base_gfn=gpa >> PAGE_SHIFT,
            npages=size >> PAGE_SHIFT,
            userspace_addr=_number(entry, "userspace_addr", i, at),
            as_id=_number(entry, "as_id", i, at, 0),
            flags=_number(entry, "flags", i, at, 0),
        )
    except MemslotError as err:
        raise MemslotError(f"{at(i)}: memslot #{i}: {err}") from None


def _number(entry: dict, key: str, i: int, at: _Where, default=None) -> int:
    """Field ``key`` of memslot #i: an int, or a string of one (``"0x7fafeb200000"``)."""
    if key not in entry:
        if default is not None:
            return default
        raise ValueError(f"{at(i)}: memslot #{i} lacks {key!r}")
    value = entry[key]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            pass
    raise ValueError(
        f"{at(i)}: memslot #{i}: expected {key} as an int or a hex string, got {value!r}"
    )


def _json_entry_lines(text: str, doc) -> list[int]:
    """The line each memslot entry of a JSON layout starts on ([] if they cannot be found).

    json gives no positions, so the memslot list is found again (the list itself, or the
    value of a "memslots" key) and walked with raw_decode; the walk must give back the same
    entries, else no line is claimed.
    """
    target = doc.get("memslots") if isinstance(doc, dict) else doc
    if not isinstance(target, list):
        return []
    decoder = json.JSONDecoder()
    if isinstance(doc, list):
        starts = [len(text) - len(text.lstrip())]
    else:
        starts = [m.end() for m in re.finditer(r'"memslots"\s*:\s*(?=\[)', text)]
    for pos in starts:
        pos += 1  # past the "["
        found, lines = [], []
        while True:
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(text) or text[pos] == "]":
                break
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                break
            found.append(value)
            lines.append(text.count("\n", 0, pos) + 1)
            pos = end
        if found == target:
            return lines
    return []
