"""The payloads of the trace events kvmviz reads, each parsed to a tuple of its fields.

:data:`PAYLOADS` maps an event to the parser of its payload (the text after ``event:``), which
gives a tuple whose first item says its kind, or None when the payload is malformed
(:data:`EXPECT` says what was expected):

* ``(0, start, end, callback code)``: an MMU-notifier range, end exclusive (a single hva covers
  one page); the code indexes :data:`NOTIFIER_CALLBACKS`, or is :data:`BY_TASK` for
  ``kvm_age_hva``, whose callback its task decides (:func:`age_hva_codes`);
* ``(1, vcpu, rip, address, error_code)``: a ``kvm_page_fault`` (vcpu and rip None before v6.1);
* ``(2, lock, flags, ret)``: a ``contention_begin`` (ret None) or ``contention_end`` (flags
  None).

Marks (``tracing_mark_write``, trace-cmd's ``print``) have a text of their own:
:func:`mark_of` and :func:`phase_of`.
"""

from __future__ import annotations

import re

from .memslots import PAGE_SIZE
from .tracepoint_callbacks import CALLBACK_SOURCES, NOTIFIER_CALLBACKS, age_hva_callback

__all__ = [
    "BY_TASK",
    "EXPECT",
    "MARK_EVENTS",
    "PAYLOADS",
    "age_hva_codes",
    "mark_of",
    "phase_of",
]

_U64 = 1 << 64

# "%#016lx": 0x and zero padding to 16 characters; a zero value prints without the 0x.
_HEX = r"(0x[0-9a-fA-F]{1,32}|0{1,16})"
_FAST = r"(?: fast_only: \d)?"  # a proposed extra field of the aging events (docs/kernel.md §5.1)
_UNMAP = re.compile(rf"mmu notifier unmap range: {_HEX} -- {_HEX}")
_AGE = re.compile(rf"mmu notifier age hva: {_HEX} -- {_HEX}{_FAST}")
_SET_PTE = re.compile(rf"mmu notifier set pte hva: {_HEX}")
_TEST_AGE = re.compile(rf"mmu notifier test age hva: {_HEX}{_FAST}")
_FAULT_NEW = re.compile(
    r"vcpu (\d{1,10}) rip " + rf"{_HEX} address {_HEX} error_code {_HEX}", re.ASCII
)  # v6.1+
_FAULT_OLD = re.compile(r"address ([0-9a-fA-F]+) error_code ([0-9a-fA-F]+)")  # <= v6.0
_CONT_BEGIN = re.compile(r"(\S+) \(flags=([^()\s]*)\)")
_CONT_END = re.compile(r"(\S+) \(ret=(-?\d{1,10})\)", re.ASCII)
_PHASE = re.compile(r"PHASE[ \t]+(\S.*?)[ \t]*")

EXPECT = {
    "kvm_unmap_hva_range": "'mmu notifier unmap range: 0x<start> -- 0x<end>' with start <= end",
    "kvm_age_hva": "'mmu notifier age hva: 0x<start> -- 0x<end>' with start <= end",
    "kvm_set_spte_hva": "'mmu notifier set pte hva: 0x<hva>' (a 64-bit page address)",
    "kvm_test_age_hva": "'mmu notifier test age hva: 0x<hva>' (a 64-bit page address)",
    "kvm_page_fault": (
        "'vcpu <n> rip 0x<rip> address 0x<addr> error_code 0x<code>' (v6.1+) or "
        "'address <hex> error_code <hex>' (up to v6.0)"
    ),
    "contention_begin": "'<lock> (flags=<FLAG|FLAG>)'",
    "contention_end": "'<lock> (ret=<int>)'",
}


def _u64(hexdigits: str) -> int:
    value = int(hexdigits, 16)
    if value >= _U64:
        raise ValueError
    return value


BY_TASK = -1  # the callback code of a kvm_age_hva payload: decided by task (age_hva_codes())


def _range(pattern: re.Pattern, callback: int):
    def parse(text: str):
        m = pattern.fullmatch(text)
        if m is None:
            return None
        start, end = _u64(m[1]), _u64(m[2])
        return None if start > end else (0, start, end, callback)

    return parse


def _one_hva(pattern: re.Pattern, callback: int):
    def parse(text: str):
        m = pattern.fullmatch(text)
        if m is None:
            return None
        hva = _u64(m[1])
        return None if hva + PAGE_SIZE >= _U64 else (0, hva, hva + PAGE_SIZE, callback)

    return parse


def age_hva_codes(comm: str, truncated: bool = False) -> tuple[int, int]:
    """``(callback code, callback_source code)`` of a kvm_age_hva record of task ``comm``.

    Parameters
    ----------
    comm : str
        The task, as the record prints it.
    truncated : bool, default False
        ``comm`` may be cut (``trace-cmd report -l``), see :func:`age_hva_callback`.

    Returns
    -------
    tuple of int
        Codes in :data:`NOTIFIER_CALLBACKS` and :data:`CALLBACK_SOURCES`.
    """
    callback, source = age_hva_callback(comm, truncated=truncated)
    return NOTIFIER_CALLBACKS.index(callback), CALLBACK_SOURCES.index(source)


def _page_fault(text: str):
    m = _FAULT_NEW.fullmatch(text)
    if m is not None:
        return (1, int(m[1]), _u64(m[2]), _u64(m[3]), _u64(m[4]))
    m = _FAULT_OLD.fullmatch(text)
    return None if m is None else (1, None, None, _u64(m[1]), _u64(m[2]))


def _contention_begin(text: str):
    m = _CONT_BEGIN.fullmatch(text)
    return None if m is None else (2, m[1], m[2], None)


def _contention_end(text: str):
    m = _CONT_END.fullmatch(text)
    return None if m is None else (2, m[1], None, int(m[2]))


# Parsers of the payloads with a known format: a tuple of fields, or None when malformed.
PAYLOADS = {
    "kvm_unmap_hva_range": _range(_UNMAP, NOTIFIER_CALLBACKS.index("invalidate_range_start")),
    "kvm_set_spte_hva": _one_hva(_SET_PTE, NOTIFIER_CALLBACKS.index("change_pte")),
    "kvm_age_hva": _range(_AGE, BY_TASK),  # clear_young or clear_flush_young: by task
    "kvm_test_age_hva": _one_hva(_TEST_AGE, NOTIFIER_CALLBACKS.index("test_young")),
    "kvm_page_fault": _page_fault,
    "contention_begin": _contention_begin,
    "contention_end": _contention_end,
}


# Marks: a tracing_mark_write payload is the text written; trace-cmd's print event prints its ip
# field before it ("tracing_mark_write:", a hex address or "(nil):").
MARK_EVENTS = ("tracing_mark_write", "print")
_PRINT_IP = re.compile(r"(?:tracing_mark_write|0x[0-9a-fA-F]+|\(nil\)):[ \t]?(.*)")


def mark_of(event: str, text: str) -> str:
    """The message of a mark record (``event`` one of :data:`MARK_EVENTS`), its ip cut off.

    Parameters
    ----------
    event : str
        ``"tracing_mark_write"`` or ``"print"``.
    text : str
        The payload.

    Returns
    -------
    str
    """
    if event == "print" and (ip := _PRINT_IP.fullmatch(text)) is not None:
        return ip[1]
    return text


def phase_of(mark: str) -> str | None:
    """The phase a ``PHASE <name>`` mark starts (its name), None for any other mark.

    Parameters
    ----------
    mark : str
        The message of a mark, :func:`mark_of`.

    Returns
    -------
    str or None
    """
    ph = _PHASE.fullmatch(mark)
    return None if ph is None else ph[1]
