"""QEMU's memslot log: its ``kvm_set_user_memory`` lines, and the layout they leave.

QEMU's ``kvm_set_user_memory`` trace (docs/kernel.md §6.1) logs every memslot registration:
:func:`memslot_events` reads the lines into a frame, :func:`load_qemu_memslots` replays them
as ``__kvm_set_memory_region()`` applied them into the layout they leave (or had at some
moment), refusing registrations the kernel could not have accepted. :func:`load_layout` is the
layout reader of ``kvmviz replay``: such a log, or a JSON layout, which it hands to
:func:`~kvmviz.inputs.layout_json.load_layout_json`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._shared._checks import check_bool
from .layout_json import load_layout_json
from .memslots import PAGE_SHIFT, PAGE_SIZE, Memslot, MemslotError, MemslotLayout
from .timestamps import INT64_MAX, parse_timestamp
from .trace_errors import Skips
from .trace_files import Opened

__all__ = [
    "KVM_MEM_READONLY",
    "LAYOUT_FORMATS",
    "QEMU_LOG",
    "QEMU_SHAPE",
    "load_layout",
    "load_qemu_memslots",
    "memslot_events",
]

_U64 = 1 << 64

# `-d trace:kvm_set_user_memory` lines start with the event name; the log backend of `-trace`
# prefixes "<tid>@<sec>.<usec>:", and `-msg timestamp=on` an ISO timestamp.
_QEMU_LINE = re.compile(
    r"[ \t]*(?:(?P<tid>\d{1,10})@(?P<sec>\d{1,20}\.\d{1,12}):[ \t]*"
    r"|(?P<stamp>\d[-\dT:.,Z+]*)[ \t]+)?"
    r"kvm_set_user_memory(?:[ \t]+(?P<payload>.*?))?[ \t]*",
    re.ASCII,
)
_QEMU_PAYLOAD = re.compile(
    r"(?:AddrSpace#(?P<as_id>\d{1,10})[ \t]+)?Slot#(?P<slot>\d{1,10})"
    r"[ \t]+flags=0x(?P<flags>[0-9a-fA-F]+)"
    r"[ \t]+gpa=0x(?P<gpa>[0-9a-fA-F]+)[ \t]+size=0x(?P<size>[0-9a-fA-F]+)"
    r"[ \t]+ua=0x(?P<ua>[0-9a-fA-F]+)"
    r"(?:[ \t]+guest_memfd=(?P<fd>-?\d{1,10})[ \t]+guest_memfd_offset=0x(?P<fd_off>[0-9a-fA-F]+))?"
    r"[ \t]+ret=(?P<ret>-?\d{1,10})",
    re.ASCII,
)
QEMU_SHAPE = (
    "'kvm_set_user_memory [AddrSpace#<as>] Slot#<n> flags=0x<f> gpa=0x<gpa> size=0x<size> "
    "ua=0x<hva> [guest_memfd=<fd> guest_memfd_offset=0x<off>] ret=<int>'"
)


@dataclass(frozen=True)
class _SetMemory:
    line: int
    t_s: float
    t_ns: int | None
    as_id: int
    slot: int
    flags: int
    gpa: int
    size: int
    ua: int
    guest_memfd: int | None
    guest_memfd_offset: int | None
    ret: int
    format: str


@dataclass
class _LogStats:
    lines: int = 0  # lines read so far
    size: int = 0  # bytes of the file
    head: bytes = b""  # its first non-blank bytes (decompressed)


def _qemu_records(path: Path, skips: Skips, stats: _LogStats | None = None) -> Iterator[_SetMemory]:
    stats = _LogStats() if stats is None else stats
    stats.size = os.path.getsize(path)
    with Opened(path) as opened, opened.errors(lambda: stats.lines):
        stats.head = opened.head(64).lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
        for lineno, raw in enumerate(opened.lines(), start=1):
            stats.lines = lineno
            # Other lines of the log (monitor echo, mtree dumps) may hold anything: decode
            # leniently; a trace line with undecodable bytes fails the payload pattern below.
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            m = _QEMU_LINE.fullmatch(line)
            if m is None:
                continue
            p = _QEMU_PAYLOAD.fullmatch(m["payload"] or "")
            if p is None:
                skips.bad(lineno, line, QEMU_SHAPE)
                continue
            values = {k: int(p[k], 16) for k in ("flags", "gpa", "size", "ua")}
            if any(v >= _U64 for v in values.values()) or values["flags"] >= 1 << 32:
                skips.bad(lineno, line, QEMU_SHAPE + " with 64-bit values (32-bit flags)")
                continue
            slot = int(p["slot"])
            if p["as_id"] is not None:
                as_id = int(p["as_id"])
                fmt = "guest_memfd" if p["fd"] is not None else "addrspace"
            else:  # older QEMU: the ioctl's slot field, as_id in the upper 16 bits
                as_id, slot = slot >> 16, slot & 0xFFFF
                fmt = "slot" if p["fd"] is None else "guest_memfd"
            fd_off = None if p["fd_off"] is None else int(p["fd_off"], 16)
            if fd_off is not None and fd_off >= _U64:
                skips.bad(lineno, line, QEMU_SHAPE + " with a 64-bit guest_memfd_offset")
                continue
            t_ns = None if m["sec"] is None else parse_timestamp(m["sec"])  # exact
            if t_ns is not None and t_ns > INT64_MAX:
                skips.bad(lineno, line, "a '<tid>@<seconds>:' prefix below 2**63 ns (year 2262)")
                continue
            yield _SetMemory(
                line=lineno,
                t_s=float(m["sec"]) if m["sec"] else float("nan"),
                t_ns=t_ns,
                as_id=as_id,
                slot=slot,
                guest_memfd=None if p["fd"] is None else int(p["fd"]),
                guest_memfd_offset=fd_off,
                ret=int(p["ret"]),
                format=fmt,
                **values,
            )


QEMU_LOG = (
    "a QEMU log with kvm_set_user_memory lines (qemu ... -d trace:kvm_set_user_memory -D FILE)"
)


def _not_a_qemu_log(path: Path, stats: _LogStats) -> str:
    """Why a file gave no kvm_set_user_memory line, and what to read it with instead."""
    if not stats.head:
        got = f"the file is empty{' (blank lines only)' if stats.size else ''}"
    else:
        got = f"none of its {stats.lines} lines is a kvm_set_user_memory line"
    looks_json = stats.head in (b"{", b"[") or path.suffix.lower() == ".json"
    hint = (
        "it looks like a JSON layout: read it with load_layout_json() (or load_layout(), which "
        "reads both)"
        if looks_json
        else "for a JSON layout use load_layout_json() (or load_layout(), which reads both)"
    )
    return f"{path}: {got}; expected {QEMU_LOG}; {hint}"


def _no_records(path: Path, stats: _LogStats, skips: Skips) -> str:
    """Why a log gave no kvm_set_user_memory record: none there, or (lenient) all malformed."""
    if not skips.count:
        return _not_a_qemu_log(path, stats)
    first_line, first_reason = skips.lines[0]
    return (
        f"{path}: all {skips.count} kvm_set_user_memory lines are malformed (first: line "
        f"{first_line}, {first_reason}); expected {QEMU_LOG}"
    )


def memslot_events(path, *, lenient: bool = False) -> pd.DataFrame:
    """Every ``kvm_set_user_memory`` line of a QEMU trace log, one row each.

    Parameters
    ----------
    path : str or os.PathLike
        A log written with ``-d trace:kvm_set_user_memory -D <file>`` or ``-trace
        kvm_set_user_memory`` (optionally ``<tid>@<seconds>:`` or timestamp prefixes); other
        lines are ignored. The three formats of docs/kernel.md §6.1 are understood: ``Slot#N``
        (as_id in the upper 16 bits of N), ``AddrSpace#A Slot#N`` and the guest_memfd format.
        A gzip, xz or bzip2 file is read decompressed (told by its first bytes).
    lenient : bool, default False
        Skip malformed ``kvm_set_user_memory`` lines (warning once) instead of raising.

    Returns
    -------
    pandas.DataFrame
        ``line, t_s`` (NaN without a ``@seconds`` prefix), ``t_ns`` (the same prefix, exact:
        integer ns, nullable), ``as_id, slot, flags, gpa, size, ua`` (uint64),
        ``guest_memfd, guest_memfd_offset`` (nullable), ``ret``, ``action``
        (``"add"``, or ``"delete"`` for ``size=0x0``), ``applied`` (``ret == 0``: a failed
        ioctl changed nothing) and ``format`` (``"slot"``, ``"addrspace"`` or
        ``"guest_memfd"``). ``attrs["failed"]`` counts the lines with ``ret != 0``;
        ``attrs["skipped"]`` / ``attrs["skipped_count"]`` the malformed lines skipped. Never
        empty.

    Raises
    ------
    TraceParseError
        For a ``kvm_set_user_memory`` line that does not follow any of the formats.
    ValueError
        Naming the file and what was expected, when it gives no row: it is empty or has no
        ``kvm_set_user_memory`` line (a JSON layout, say: read those with
        :func:`load_layout_json`), or (lenient) every such line was malformed; or when it is
        a compressed file that is corrupt.
    """
    lenient = check_bool(lenient, "lenient")
    path = Path(path)
    skips = Skips(str(path), lenient, [])
    stats = _LogStats()
    recs = list(_qemu_records(path, skips, stats))
    if not recs:
        raise ValueError(_no_records(path, stats, skips))
    skips.warn("kvm_set_user_memory")
    u64 = ("gpa", "size", "ua")
    frame = pd.DataFrame(
        {
            "line": np.array([r.line for r in recs], dtype=np.int64),
            "t_s": np.array([r.t_s for r in recs], dtype=np.float64),
            "t_ns": pd.array([r.t_ns for r in recs], dtype="Int64"),
            "as_id": np.array([r.as_id for r in recs], dtype=np.int64),
            "slot": np.array([r.slot for r in recs], dtype=np.int64),
            "flags": np.array([r.flags for r in recs], dtype=np.int64),
            **{k: np.array([getattr(r, k) for r in recs], dtype=np.uint64) for k in u64},
            "guest_memfd": pd.array([r.guest_memfd for r in recs], dtype="Int64"),
            "guest_memfd_offset": pd.array([r.guest_memfd_offset for r in recs], dtype="UInt64"),
            "ret": np.array([r.ret for r in recs], dtype=np.int64),
            "action": pd.Categorical(
                ["delete" if r.size == 0 else "add" for r in recs], categories=["add", "delete"]
            ),
            "applied": np.array([r.ret == 0 for r in recs], dtype=bool),
            "format": pd.Categorical(
                [r.format for r in recs], categories=["slot", "addrspace", "guest_memfd"]
            ),
        }
    )
    frame.attrs.update(
        path=str(path),
        failed=sum(r.ret != 0 for r in recs),
        skipped=skips.lines,
        skipped_count=skips.count,
    )
    return frame


KVM_MEM_READONLY = 1 << 1  # include/uapi/linux/kvm.h


def _registration_problem(rec: _SetMemory, slots: dict, slot_lines: dict):
    """``(problem, memslot)`` of a successful (``ret=0``) registration of a slot, ``rec``,
    given the present ``slots`` and the line that registered each: ``problem`` is None, or
    says what the kernel would have required when it could not have accepted the line;
    ``memslot`` is the slot registered, used only without a problem.
    """
    key = (rec.as_id, rec.slot)
    where = f"slot {rec.slot} of address space {rec.as_id}"
    problem = new = None
    old = slots.get(key)  # present: a deleted slot is not in ``slots``
    if rec.gpa % PAGE_SIZE or rec.size % PAGE_SIZE:
        problem = f"a page-aligned gpa and size for {where}"
    elif old is not None and (
        rec.ua != old.userspace_addr
        or rec.size >> PAGE_SHIFT != old.npages
        or (rec.flags ^ old.flags) & KVM_MEM_READONLY
    ):
        # A present slot can only move (base_gfn) or change its other flags: the "Modify an
        # existing slot" branch of __kvm_set_memory_region() (virt/kvm/kvm_main.c; named
        # kvm_set_memory_region() in recent kernels) returns -EINVAL if
        #   (mem->userspace_addr != old->userspace_addr) || (npages != old->npages) ||
        #   ((mem->flags ^ old->flags) & KVM_MEM_READONLY)
        # (the same test on new.* in v5.12-v5.15). So "ret=0" on such a line is impossible:
        # the slot must be deleted (size=0x0) before it is registered again elsewhere.
        problem = (
            f"{where}, present since line {slot_lines[key]} (ua={old.userspace_addr:#x} "
            f"size={old.size_bytes:#x} flags={old.flags:#x}), to keep its ua, size and "
            "KVM_MEM_READONLY flag, or to be deleted (size=0x0) first: "
            "__kvm_set_memory_region() returns -EINVAL for this change, never ret=0"
        )
    else:
        try:
            new = Memslot(
                slot=rec.slot,
                base_gfn=rec.gpa >> PAGE_SHIFT,
                npages=rec.size >> PAGE_SHIFT,
                userspace_addr=rec.ua,
                as_id=rec.as_id,
                flags=rec.flags,
            )
        except MemslotError as err:
            problem = f"a memslot KVM accepts ({err})"
        else:
            for other_key, other in slots.items():
                if (
                    other_key != key
                    and other.as_id == new.as_id
                    and other.base_gfn < new.gfn_end
                    and new.base_gfn < other.gfn_end
                ):
                    problem = (
                        f"{where} not to overlap slot {other.slot} "
                        f"(gfn {other.base_gfn:#x}-{other.gfn_end:#x}; KVM returns -EEXIST)"
                    )
                    break
    return problem, new


def _replay_qemu(path: Path, at, lenient: bool):
    """``(layout, replayed, found, stats, skips)``: the layout after the first ``at`` lines
    (all: None), the lines replayed, whether the log has a well-formed kvm_set_user_memory line
    at all, the file's counts and the skipped lines. Empty results are the callers' to refuse.
    """
    skips = Skips(str(path), lenient, [])
    stats = _LogStats()
    slots: dict[tuple[int, int], Memslot] = {}
    slot_lines: dict[tuple[int, int], int] = {}  # the line that registered each slot
    replayed = 0
    found = False
    records = _qemu_records(path, skips, stats)
    for rec in records:
        found = True
        if at is not None and replayed >= at:
            records.close()  # closes the file now
            break
        replayed += 1
        if rec.ret != 0:
            continue
        key = (rec.as_id, rec.slot)
        where = f"slot {rec.slot} of address space {rec.as_id}"
        if rec.size == 0:
            if key not in slots:
                skips.bad(rec.line, _line_text(path, rec.line), f"a delete of a registered {where}")
                continue
            del slots[key]
            continue
        problem, new = _registration_problem(rec, slots, slot_lines)
        if problem is not None:
            skips.bad(rec.line, _line_text(path, rec.line), problem)
            continue
        slots[key] = new
        slot_lines[key] = rec.line
    if at is not None and replayed < at:
        raise ValueError(
            f"{path}: at={at} but the log has only {replayed} kvm_set_user_memory lines"
        )
    return MemslotLayout(slots.values()), replayed, found, stats, skips


def load_qemu_memslots(path, at: int | None = None, *, lenient: bool = False) -> MemslotLayout:
    """The memslot layout a QEMU ``kvm_set_user_memory`` log leaves, or had at some moment.

    Replays the registrations in order, as ``__kvm_set_memory_region()`` applied them: a line
    with ``size=0x0`` deletes the slot, a line for an existing ``(as_id, slot)`` replaces it
    (moves it, or changes its flags), a line with ``ret != 0`` (a failed ioctl) changes nothing
    (count them with :func:`memslot_events`, ``attrs["failed"]``).

    Parameters
    ----------
    path : str or os.PathLike
        The log; see :func:`memslot_events` for the formats and prefixes understood (gzip, xz
        and bzip2 files are read decompressed).
    at : int, optional
        Replay only the first ``at`` ``kvm_set_user_memory`` lines (failed ones included):
        ``at=1`` is the layout after the first registration, ``at=0`` is empty. Default: all.
    lenient : bool, default False
        Skip malformed lines, and registrations the kernel could not have accepted (a
        delete of an absent slot, misaligned or overlapping slots, a present slot registered
        again with another userspace address, size or read-only flag), warning once.

    Returns
    -------
    MemslotLayout
        Not empty when ``at`` is None.

    Raises
    ------
    TraceParseError
        For a malformed line or an impossible registration, naming the line and what was
        expected.
    ValueError
        If ``at`` is negative or larger than the number of ``kvm_set_user_memory`` lines; if
        the file has no ``kvm_set_user_memory`` line (it is empty, or not such a log: a JSON
        layout is read with :func:`load_layout_json` or :func:`load_layout`), naming it; or if
        (``at`` None) its lines leave no memslot: against no memslot every notification would
        be a miss.
    TypeError
        If ``lenient`` is not a bool.
    """
    if at is not None and (isinstance(at, bool) or not isinstance(at, int | np.integer) or at < 0):
        raise ValueError(f"at must be None or an integer >= 0, got {at!r}")
    lenient = check_bool(lenient, "lenient")
    path = Path(path)
    layout, replayed, found, stats, skips = _replay_qemu(path, at, lenient)
    if not found:
        raise ValueError(_no_records(path, stats, skips))
    if at is None and not len(layout):
        raise ValueError(
            f"{path}: no memslot: its {replayed} kvm_set_user_memory lines leave no memslot "
            f"(each slot deleted or failed{', or skipped' if skips.count else ''}); expected "
            f"{QEMU_LOG} that registers guest memory"
        )
    skips.warn("kvm_set_user_memory")
    return layout


def _line_text(path: Path, lineno: int) -> str:
    """One line of a (small) log, for an error message."""
    with Opened(path) as opened, opened.errors():
        for i, raw in enumerate(opened.lines(), start=1):
            if i == lineno:
                return raw.decode("utf-8", "replace").rstrip("\r\n")
    return ""


LAYOUT_FORMATS = (
    "a JSON layout (an object with a 'memslots' list, or the list) or a QEMU log with "
    "kvm_set_user_memory lines (-d trace:kvm_set_user_memory)"
)


def load_layout(path, *, lenient: bool = False) -> MemslotLayout:
    """A memslot layout from a JSON layout file or a QEMU ``kvm_set_user_memory`` log.

    The format is told by the content, not the name: a file whose first non-blank character is
    ``{`` or ``[`` (or whose name ends in ``.json``) is JSON (:func:`load_layout_json`), any
    other a QEMU log (:func:`load_qemu_memslots`).

    Parameters
    ----------
    path : str or os.PathLike
    lenient : bool, default False
        For a QEMU log: skip malformed lines (see :func:`load_qemu_memslots`).

    Returns
    -------
    MemslotLayout
        Never empty.

    Raises
    ------
    ValueError
        Naming the file (and the line) if it is empty, not UTF-8 JSON, malformed, or yields no
        memslot (a log without ``kvm_set_user_memory`` lines, or whose slots were all
        deleted): against no memslot every notification would be a miss. A gzip, xz or bzip2
        file is read decompressed.
    TypeError
        If ``lenient`` is not a bool.
    """
    lenient = check_bool(lenient, "lenient")
    path = Path(path)
    with Opened(path) as opened:
        head = opened.head(4096).lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
        size = os.path.getsize(path)
    if not head:
        raise ValueError(
            f"{path}: the file is empty{' (blank lines only)' if size else ''}; "
            f"expected {LAYOUT_FORMATS}"
        )
    if head in (b"{", b"[") or path.suffix.lower() == ".json":
        return load_layout_json(path)
    layout, replayed, _, stats, skips = _replay_qemu(path, None, lenient)
    if not len(layout):
        if replayed:
            why = (
                f"its {replayed} kvm_set_user_memory lines leave no memslot (each slot deleted "
                f"or failed{', or skipped' if skips.count else ''})"
            )
        elif skips.count:
            why = f"all its {skips.count} kvm_set_user_memory lines are malformed"
        else:
            why = f"none of its {stats.lines} lines is a kvm_set_user_memory line"
        raise ValueError(f"{path}: no memslot: {why}; expected {LAYOUT_FORMATS}")
    skips.warn("kvm_set_user_memory")
    return layout
