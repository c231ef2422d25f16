"""Read real traces: tracefs / ``trace-cmd report`` text and QEMU's memslot log.

A trace recorded on a KVM host (docs/kernel.md §5) says which hva ranges the MMU notifiers reported,
when, from which task, and whether ``mmu_lock`` was contended; QEMU's ``kvm_set_user_memory``
log (docs/kernel.md §6.1) says where the memslots were. With both, every notifier range can be
classified as a hit or a miss with the model's own hit test, summarised per phase of the
experiment, and replayed through the engine as a notification stream:

>>> events = load_ftrace("data/traces/notifier-phases-linux6.18.txt")   # doctest: +SKIP
>>> layout = load_layout_json("data/traces/notifier-phases-linux6.18.layout.json")  # doctest: +SKIP
>>> kv.classify.phase_summary(kv.classify.records(events, layout))       # doctest: +SKIP

The parsers stream: a file is read line by line, never whole, into columns preallocated from
its line count and filled a chunk of records at a time, so the memory used is the frame's plus
a constant (``keep_text=False`` drops the raw payloads, the bulk of the frame;
``benchmarks/traces.py`` measures it). A line that is neither a record nor a known header is an
error naming the file, the line and what was expected, unless ``lenient=True``.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import re
import stat
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._shared._checks import check_bool, check_number
from .._shared._progress import describe_bytes, reporter
from .memslots import PAGE_SHIFT, PAGE_SIZE, Memslot, MemslotError, MemslotLayout
from .notifiers import stream_from_callbacks

__all__ = [
    "AGE_HVA_ASSUMED",
    "AGE_HVA_TASKS",
    "CALLBACK_SOURCES",
    "MAX_GAP_US",
    "NOTIFIER_EVENTS",
    "TraceOrderError",
    "TraceParseError",
    "TraceParseWarning",
    "age_hva_callback",
    "age_hva_note",
    "load_ftrace",
    "load_layout",
    "load_layout_json",
    "load_qemu_memslots",
    "memslot_events",
    "replay_stream",
    "to_stream",
]

# -- which aging callback a kvm_age_hva line stands for ------------------------------------------
# trace_kvm_age_hva(start, end) is the first statement of both kvm_mmu_notifier_clear_flush_young()
# and kvm_mmu_notifier_clear_young() (virt/kvm/kvm_main.c), so the line alone does not say which
# callback ran; trace_kvm_test_age_hva(address) fires only in kvm_mmu_notifier_test_young(). The
# task that fired the line (its comm) does tell, because each aging path of the primary MMU runs
# in a known context and calls one notifier (torvalds/linux, read for Linux 6.18):
#
# * DAMON runs in its kdamond.N kernel threads (kthread_run(kdamond_fn, ctx, "kdamond.%d", ...),
#   mm/damon/core.c). It ages with clear_young only: damon_ptep_mkold() calls
#   mmu_notifier_clear_young() and damon_pmdp_mkold() pmdp_clear_young_notify()
#   (mm/damon/ops-common.c), reached from damon_mkold_pmd_entry() for virtual address spaces
#   (mm/damon/vaddr.c; hugetlb: damon_hugetlb_mkold() -> mmu_notifier_clear_young()) and from
#   damon_folio_mkold() for physical ones. It checks with test_young: damon_young_pmd_entry()
#   (mm/damon/vaddr.c) and damon_folio_young_one() (mm/damon/ops-common.c) call
#   mmu_notifier_test_young(). Neither flushes a TLB. Its DAMOS_PAGEOUT action goes through
#   reclaim_pages() -> reclaim_folio_list(), which calls shrink_folio_list() with
#   ignore_references = true (mm/vmscan.c): no folio_referenced(), so no clear_flush_young.
#   (Only an allocation of kdamond's own entering direct reclaim could fire one from it.)
# * Reclaim (the kswapdN threads, kthread_run(kswapd, pgdat, "kswapd%d", nid) in mm/vmscan.c; and
#   direct reclaim, in whatever task is allocating): shrink_folio_list() ->
#   folio_check_references() -> folio_referenced() -> folio_referenced_one() (mm/rmap.c) ->
#   ptep_clear_flush_young_notify() / pmdp_clear_flush_young_notify(): clear_flush_young, which
#   flushes when an SPTE was young. With the multi-gen LRU enabled (lru_gen_enabled()),
#   folio_referenced_one() hands PTE-mapped folios to lru_gen_look_around() instead, which uses
#   ptep_clear_young_notify() (mm/vmscan.c, since "mm: multi-gen LRU: use
#   {ptep,pmdp}_clear_young_notify()", 2024): clear_young. A trace does not say which LRU the host
#   ran, so kswapd lines are read as the classic LRU's clear_flush_young.
# * khugepaged only tests: __collapse_huge_page_isolate() and hpage_collapse_scan_pmd()
#   (mm/khugepaged.c) call mmu_notifier_test_young(). A kvm_age_hva from khugepaged would be
#   direct reclaim in its context (allocating a huge page), so it is read as any other task.
# * Any other task: direct reclaim (clear_flush_young, as kswapd), or idle page tracking, which
#   runs in the task writing /sys/kernel/mm/page_idle/bitmap (page_idle_clear_pte_refs_one() ->
#   mmu_notifier_clear_young() / pmdp_clear_young_notify(), mm/page_idle.c): read as reclaim,
#   the common case, and marked as assumed.
#
# One table, used by load_ftrace() (the callback column), to_stream() and the replay notes:
# callback_source -> (pattern the whole comm must match, the callback it means).
AGE_HVA_TASKS = {
    "task:kdamond": (r"kdamond\.\d+", "clear_young"),
    "task:kswapd": (r"kswapd\d+", "clear_flush_young"),
}
AGE_HVA_ASSUMED = "assumed: reclaim (unknown task)"  # any other comm, "<...>" included
_AGE_HVA_DEFAULT = "clear_flush_young"  # the callback assumed for it
_AGE_HVA_PATTERNS = tuple(
    (re.compile(pattern), callback, source) for source, (pattern, callback) in AGE_HVA_TASKS.items()
)
# trace-cmd report -l prints the comm as "%8.8s" (trace_show_data() in tracecmd/trace-read.c),
# cutting "kdamond.0" to "kdamond.": an 8-character comm there may be the start of a longer one.
# Each pattern here matches every prefix of the names of AGE_HVA_TASKS (same keys, same order).
_AGE_HVA_PREFIXES = {
    "task:kdamond": r"k(?:d(?:a(?:m(?:o(?:n(?:d(?:\.\d*)?)?)?)?)?)?)?",
    "task:kswapd": r"k(?:s(?:w(?:a(?:p(?:d\d*)?)?)?)?)?",
}
_AGE_HVA_PREFIX_PATTERNS = tuple(
    (re.compile(_AGE_HVA_PREFIXES[source]), callback, source)
    for source, (_, callback) in AGE_HVA_TASKS.items()
)
LATENCY_COMM_WIDTH = 8  # "%8.8s": the longest comm the -l layout prints
# How the callback of a notifier record was decided: by its tracepoint (one callback each), or,
# for kvm_age_hva, by its task (AGE_HVA_TASKS) or by assumption.
CALLBACK_SOURCES = ("tracepoint", *AGE_HVA_TASKS, AGE_HVA_ASSUMED)


def age_hva_callback(comm, *, truncated: bool = False) -> tuple[str, str]:
    """The MMU-notifier callback a ``kvm_age_hva`` record of task ``comm`` stands for.

    ``kvm_age_hva`` fires in both ``clear_flush_young`` and ``clear_young``; the task that fired
    it tells them apart (the sources are in the comment above :data:`AGE_HVA_TASKS`): DAMON's
    ``kdamond.N`` threads age with ``clear_young`` only, ``kswapdN`` reclaims with
    ``clear_flush_young`` (the classic LRU; the multi-gen LRU would use ``clear_young``). Any
    other task, ``khugepaged`` and the unknown ``<...>`` included, is assumed to be in direct
    reclaim (``clear_flush_young``); it could also be writing the idle-page bitmap
    (``clear_young``).

    Parameters
    ----------
    comm : str
        The task name as the trace prints it (``"kdamond.0"``, ``"kswapd0"``, ``"python3"``).
    truncated : bool, default False
        ``comm`` may be the start of a longer name: ``trace-cmd report -l`` prints at most 8
        characters (``"kdamond."`` for ``kdamond.0``). A truncated comm stands for a task of
        the table when it is the start of such a task's name.

    Returns
    -------
    tuple of str
        ``(callback, callback_source)``: ``("clear_young", "task:kdamond")``,
        ``("clear_flush_young", "task:kswapd")`` or
        ``("clear_flush_young", "assumed: reclaim (unknown task)")``.

    Examples
    --------
    >>> age_hva_callback("kdamond.0")
    ('clear_young', 'task:kdamond')
    >>> age_hva_callback("python3")
    ('clear_flush_young', 'assumed: reclaim (unknown task)')
    >>> age_hva_callback("kdamond.", truncated=True)
    ('clear_young', 'task:kdamond')
    """
    comm = str(comm)
    truncated = check_bool(truncated, "truncated")
    for pattern, callback, source in _AGE_HVA_PREFIX_PATTERNS if truncated else _AGE_HVA_PATTERNS:
        if pattern.fullmatch(comm):
            return callback, source
    return _AGE_HVA_DEFAULT, AGE_HVA_ASSUMED


# The kvm: tracepoint each MMU-notifier callback fires (docs/kernel.md §5.1). kvm_age_hva fires for
# clear_young and clear_flush_young: its callback is decided by the task (age_hva_callback());
# the entry here is the one assumed for a task the table does not know.
NOTIFIER_EVENTS = {
    "kvm_unmap_hva_range": "invalidate_range_start",
    "kvm_set_spte_hva": "change_pte",
    "kvm_age_hva": _AGE_HVA_DEFAULT,
    "kvm_test_age_hva": "test_young",
}
_CALLBACKS = (
    "invalidate_range_start",
    "change_pte",
    "clear_flush_young",
    "clear_young",
    "test_young",
)
_U64 = 1 << 64
_INT32_MAX = (1 << 31) - 1
_MAX_SNIPPET = 120
_MAX_SKIPPED = 100
_CHUNK = 65536  # records per chunk of column arrays
_PROGRESS_EVERY = 4096  # lines between progress reports

RECORD_SHAPE = "'<comm>-<pid> [<cpu>] [<flags>] <seconds>: <event>: <fields>'"


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
        self.text = _snippet(text)
        self.expected = expected
        got = repr(self.text) if got is None else got
        super().__init__(f"{self.path}, line {line}: expected {expected}; got {got}")


class TraceOrderError(TraceParseError):
    """A record whose timestamp is earlier than the previous record's on the same CPU.

    Each CPU's ring buffer is written in time order, and both ``trace`` and ``trace-cmd
    report`` merge the buffers by taking the earliest next record, so a CPU's records never go
    back in time in a real trace (see :func:`load_ftrace`). ``lenient=True`` sorts them instead.

    Attributes
    ----------
    cpu : int
        The CPU of both records.
    t_s, previous_t_s : float
        This record's timestamp and the previous one's on that CPU, in seconds (the count for
        a raw clock).
    t_ns, previous_t_ns : int or None
        The same, exact: integer nanoseconds (the count for a raw clock); None when the
        timestamps were given as floats.
    previous_line : int
        The line of that previous record.
    instance : str or None
        The trace-cmd buffer instance of both records (``trace-cmd record -B``), None for the
        top buffer.
    """

    def __init__(
        self, path, line, text, cpu, t_s, previous_line, previous_t_s, *, instance=None
    ) -> None:
        # t_s, previous_t_s: the timestamps as printed (str, read exactly) or as floats.
        shown = [v if isinstance(v, str) else repr(v) for v in (t_s, previous_t_s)]
        exact = [_parse_timestamp(v) if isinstance(v, str) else None for v in (t_s, previous_t_s)]
        self.cpu, self.t_s, self.t_ns = cpu, float(t_s), exact[0]
        self.previous_line, self.previous_t_s = previous_line, float(previous_t_s)
        self.previous_t_ns, self.instance = exact[1], instance
        if None in exact:
            earlier = self.previous_t_s - self.t_s
        else:  # exact: integer ns (or counts) apart
            scale = 1 if "." not in shown[0] else 10**9
            earlier = (exact[1] - exact[0]) / scale
        where = f"CPU {cpu}" if instance is None else f"CPU {cpu} of buffer instance {instance}"
        super().__init__(
            path,
            line,
            text,
            f"a timestamp >= {shown[1]} (that of line {previous_line}, the previous "
            f"record of {where}: a CPU's records never go back in time)",
            got=f"{shown[0]}, {earlier:.6g} earlier, in {_snippet(text)!r}",
        )


class TraceParseWarning(UserWarning):
    """Emitted once by the lenient parsers when they skipped malformed lines or sorted records."""


def _snippet(text: str) -> str:
    return text if len(text) <= _MAX_SNIPPET else text[:_MAX_SNIPPET] + "…"


def _undecodable(line: str, err: UnicodeEncodeError) -> tuple[str, str]:
    """A line read with errors="surrogateescape" that holds bytes that are not UTF-8."""
    text = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    byte = ord(line[err.start]) - 0xDC00
    return text, f"UTF-8 text (byte {byte:#04x} at character {err.start + 1} is not)"


# -- ftrace text --------------------------------------------------------------------------------
# trace-cmd report -B/-i: with buffer instances (trace-cmd record -B NAME) or several input files,
# print_handle_file() in tracecmd/trace-read.c prints "%*s: " with the instance (or file) name
# before every line of a record of that buffer (the "cpus=" header and "CPU:n [EVENTS DROPPED]"
# lines included), and blanks for the top buffer. The name is not part of the task's comm.
_INSTANCE = r"(?:(?P<inst>[^\s:]{1,64}):[ \t]+)?"
# The timestamp: "<s>.<fraction>" for the clocks that count nanoseconds (6 digits: µs, 9 with
# trace-cmd report -t), digits only (a raw count) for the others; read exactly, as integers.
_TIMESTAMP = r"(?P<ts>(?P<sec>\d{1,20})(?:\.(?P<frac>\d{1,12}))?)"
_PAYLOAD = (
    r"(?:(?P<event>[A-Za-z_][\w.+-]*):(?:[ \t]+(?P<text>.*))?"
    r"|(?P<stack><(?:user )?stack trace ?>)"
    r"|(?P<func>\S+ <-\S+))"
)
# comm and pid: the pid is the digits after the last '-' before the [cpu] field (comms may hold
# spaces, slashes, dashes and digits: "CPU 12/KVM-4090", "<...>-77", "kworker/u8:2-1"). An optional
# "(tgid)" column (options/record-tgid), then 4 or 5 latency flag characters or none (trace-cmd
# report without -l), the timestamp in seconds (a raw count with counter clocks).
_RECORD = re.compile(
    r"[ \t]*" + _INSTANCE +
    # comm: anything, where a '-' may not be followed by "<digits> [" (that '-' ends the comm).
    r"(?P<comm>[^-]*(?:-(?!\d{1,10}[ \t]+[\[(])[^-]*)*)-(?P<pid>\d{1,10})[ \t]+"
    r"(?:\([ \t]*[-\d]{1,10}\)[ \t]+)?\[(?P<cpu>\d{1,10})\][ \t]+"
    r"(?:(?P<flags>[^\s\[\]:]{4,5})[ \t]+)?" + _TIMESTAMP + r":[ \t]+" + _PAYLOAD,
    re.ASCII,
)
# trace-cmd report -l, the latency layout: trace_show_data() (tracecmd/trace-read.c) prints
# "%8.8s-%-5d %3d" (comm cut to 8 characters, pid, CPU without brackets), then at once the
# flags of data_latency_format() (libtraceevent src/event-parse.c: irqs-off 'd'/'X'/'.',
# need-resched 'N'/'.', 'H'/'h'/'s'/'.', the preempt count in hex or '.', and a migrate-disable
# and a lock-depth digit where the events have those fields), then " %6.1000d:" (seconds; " %9.1d:"
# with -t), as the default layout.
_LATENCY_RECORD = re.compile(
    r"[ \t]*" + _INSTANCE + r"[ \t]*"
    r"(?P<comm>\S.{0,7})-(?P<pid>\d{1,10}) +(?P<cpu>\d{1,10})"
    r"(?P<flags>[^\s\d\[\]:][^\s\[\]:]{2,6})[ \t]+" + _TIMESTAMP + r":[ \t]+" + _PAYLOAD,
    re.ASCII,
)
_FRAME = re.compile(r"[ \t]*=>[ \t]*\S.*")
_LOST = re.compile(
    r"[ \t]*" + _INSTANCE + r"CPU:?[ \t]*\d+[ \t]+\["
    r"(?:LOST[ \t]+(?P<n>\d{1,19})[ \t]+EVENTS|(?P<m>\d{1,19})?[ \t]*EVENTS DROPPED)\][ \t]*",
    re.ASCII,
)
_HEADER = re.compile(
    r"[ \t]*" + _INSTANCE + r"(?:version[ \t]*=[ \t]*\d+|cpus[ \t]*=[ \t]*\d+"
    r"|CPU[ \t]+\d+[ \t]+is empty)[ \t]*",
    re.ASCII,
)
_INT64_MAX = (1 << 63) - 1
_NS_SCALE = tuple(10 ** (9 - k) for k in range(10))  # fraction digits -> ns per unit


def _timestamp_ns(sec: str, frac: str) -> int:
    """``<sec>.<frac>`` as integer nanoseconds (more than 9 digits: rounded half up)."""
    n = len(frac)
    if n <= 9:
        return int(sec) * 1_000_000_000 + int(frac) * _NS_SCALE[n]
    unit = 10 ** (n - 9)
    ns, rest = divmod(int(frac), unit)
    return int(sec) * 1_000_000_000 + ns + (2 * rest >= unit)


def _parse_timestamp(text: str) -> int:
    """A printed timestamp as an integer: nanoseconds for ``<s>.<fraction>``, else the count."""
    sec, dot, frac = text.partition(".")
    return _timestamp_ns(sec, frac) if dot else int(sec)


def _format_ns(ns: int, digits: int) -> str:
    """``ns`` printed as a trace prints it, with ``digits`` fraction digits (exact for the
    timestamps of a trace of that precision)."""
    sec, frac = divmod(ns, 1_000_000_000)
    return f"{sec}.{frac:09d}"[: len(str(sec)) + 1 + digits] if digits else str(sec)


_STACK_EVENTS = frozenset({"<stack trace>", "<user stack trace>", "kernel_stack", "user_stack"})
# trace_print_time() (kernel/trace/trace_output.c) prints "<s>.<µs>" for the clocks of
# trace_clocks[] (kernel/trace/trace.c) that count nanoseconds (local, global, mono, boot...)
# and the raw count "%12llu" for the others (counter, uptime, x86-tsc, ppc-tb); trace-cmd
# report does the same (time_format() in tracecmd/trace-read.c). A trace uses one clock.
_CLOCK_EXPECT = {
    False: "a timestamp in seconds ('<s>.<fraction>')",
    True: "a raw clock count (digits only, no decimal point)",
}
EMPTY_TRACE = (
    "a tracefs `trace` file (it starts with '# tracer:') or `trace-cmd report` output (it "
    "starts with 'cpus=<n>')"
)

# -- compressed and binary files ------------------------------------------------------------------
# Traces are shared compressed: the format is told by the first bytes (gzip RFC 1952 §2.3.1, the
# xz file format §2.1.1.1, bzip2's "BZh"), whatever the name. trace-cmd record writes a binary
# trace.dat, which starts with "\x17\x08\x44tracing" (tracecmd_output / trace-cmd.dat(5)): it has
# to go through `trace-cmd report` first.
_COMPRESSIONS = (
    (b"\x1f\x8b", "gzip", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
    (b"\xfd7zXZ\x00", "xz", lambda f: lzma.LZMAFile(f, mode="rb")),
    (b"BZh", "bzip2", lambda f: bz2.BZ2File(f, mode="rb")),
)
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
TRACE_DAT_MAGIC = b"\x17\x08\x44tracing"
_DECOMPRESS_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)


class _Opened:
    """A file opened for reading, decompressed if its first bytes say it is compressed.

    ``stream`` gives the (decompressed) bytes; ``raw`` is the file itself, whose ``tell()`` is
    the share of the file read (progress); ``compression`` is None, "gzip", "xz" or "bzip2".
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = open(path, "rb")  # closed by close()
        self.compression = None
        self.stream = self.raw
        try:
            head = self.raw.peek(8)[:8]
            if head.startswith(_ZSTD_MAGIC):
                raise ValueError(
                    f"{path}: a zstd-compressed file, which kvmviz cannot read; expected text, "
                    "or a gzip, xz or bzip2 file of it: decompress it first (zstd -d)"
                )
            for magic, name, opener in _COMPRESSIONS:
                if head.startswith(magic):
                    self.compression, self.stream = name, opener(self.raw)
                    break
        except BaseException:
            self.raw.close()
            raise

    def close(self) -> None:
        try:
            if self.stream is not self.raw:
                self.stream.close()
        finally:
            self.raw.close()

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def lines(self):
        """The (decompressed) lines as bytes, each at most :data:`MAX_LINE` bytes: a longer
        one is a :class:`TraceParseError` naming the line, before it fills the memory."""
        lineno = 0
        while True:
            raw = self.stream.readline(MAX_LINE + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE:
                raise TraceParseError(
                    self.path,
                    lineno,
                    raw[:40].decode("utf-8", "replace"),
                    f"a line of text (at most {MAX_LINE:,} bytes)",
                    got=f"a line longer than {MAX_LINE:,} bytes (not a text file)",
                )
            yield raw

    def head(self, n: int) -> bytes:
        """The first ``n`` (decompressed) bytes, without consuming them."""
        with self.errors():
            return self.stream.peek(n)[:n]

    @contextlib.contextmanager
    def errors(self, lines=None):
        """Turn a decompression error into a ValueError naming the file (``lines()``: the
        lines read so far, for the message)."""
        if self.compression is None:
            yield
            return
        try:
            yield
        except _DECOMPRESS_ERRORS as err:
            where = f" after {lines()} lines" if lines is not None else ""
            raise ValueError(
                f"{self.path}: corrupt {self.compression} data{where} ({err}); expected a "
                f"complete {self.compression}-compressed file: it is damaged or was cut short"
            ) from None


MAX_LINE = 1 << 20
"""Characters in one line of a text trace, at most: the longest real records (a kernel stack
frame, a ``kvm_set_user_memory`` line) are a few hundred. A file with a longer line is not a
text trace (``/dev/zero``, a core dump, a binary with no newline), and reading it line by line
would hold all of it in memory."""


MAX_LAYOUT_BYTES = 64 << 20
"""Bytes of a JSON layout, at most: KVM allows 32,767 memslots per address space, a few
hundred bytes each."""


def _bounded_lines(text_file, path):
    """The lines of ``text_file``, each at most :data:`MAX_LINE` characters: a longer one is a
    :class:`TraceParseError` naming the line, before it fills the memory."""
    lineno = 0
    while True:
        line = text_file.readline(MAX_LINE + 1)
        if not line:
            return
        lineno += 1
        if len(line) > MAX_LINE:
            raise TraceParseError(
                path,
                lineno,
                line[:40],
                f"a line of text (at most {MAX_LINE:,} characters)",
                got=f"a line longer than {MAX_LINE:,} characters (not a text trace)",
            )
        yield line


def _refuse_binary_trace(opened: _Opened) -> None:
    """A binary trace-cmd data file is refused, saying how to make the text of it."""
    if opened.head(len(TRACE_DAT_MAGIC)) == TRACE_DAT_MAGIC:
        path = opened.path
        first = f"decompress it ({opened.compression}), then " if opened.compression else ""
        raise TraceParseError(
            path,
            1,
            "",
            EMPTY_TRACE,
            got=(
                f"a binary trace-cmd data file (trace.dat): {first}run `trace-cmd report -i "
                f"{path} > {path}.txt` and read {path}.txt"
            ),
        )


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
_PRINT_IP = re.compile(r"(?:tracing_mark_write|0x[0-9a-fA-F]+|\(nil\)):[ \t]?(.*)")

_EXPECT = {
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


# Columns of load_ftrace: name -> dtype. Codes of categorical columns are int32 (-1: missing);
# the nullable ones ("?") carry a mask, True where the record has no such field.
_DENSE = {
    "line": np.int64,
    "comm": np.int32,
    "pid": np.int32,
    "cpu": np.int32,
    "flags": np.int32,
    "ts": np.int64,  # exact: integer ns for seconds, the count for a raw clock
    "event": np.int32,
    "phase": np.int32,
}
_SPARSE = {  # group -> its columns, in the order of the parsed tuples
    "hva": {
        "hva_start": np.uint64,
        "hva_end": np.uint64,
        "callback": np.int32,
        "callback_source": np.int32,
    },
    "fault": {"vcpu": np.int64, "rip": np.uint64, "address": np.uint64, "error_code": np.uint64},
    "lock": {"lock": np.int32, "lock_flags": np.int32, "ret": np.int64},
    "mark": {"mark": np.int32},
}
_CODED = frozenset({"callback", "callback_source", "lock", "lock_flags", "mark"})  # missing: -1


class _Columns:
    """The frame's columns, preallocated for ``capacity`` records and filled a chunk at a time.

    Records are gathered in per-chunk Python lists (bounded: ``_CHUNK`` records), then copied
    into the final arrays, so the memory is that of the frame plus one chunk. ``capacity`` is
    the file's line count (an upper bound on records); the arrays are trimmed in place at the
    end, and grown if the file turns out longer (it grew while being read).
    """

    def __init__(self, capacity: int, keep_text: bool) -> None:
        self.keep_text = keep_text
        self.rows: list[tuple] = []  # (line, comm, pid, cpu, flags, ts, event, phase)
        self.texts: list[str] = []
        self.sparse: dict[str, list] = {group: [] for group in _SPARSE}
        self.cap = max(int(capacity), 16)
        self.n = 0  # records already copied into the arrays
        self.arrays: dict[str, np.ndarray] = {}
        for name, dtype in _DENSE.items():
            self.arrays[name] = np.zeros(self.cap, dtype=dtype)
        for columns in _SPARSE.values():
            for name, dtype in columns.items():
                if name in _CODED:
                    self.arrays[name] = np.full(self.cap, -1, dtype=dtype)
                else:
                    self.arrays[name] = np.zeros(self.cap, dtype=dtype)
                    self.arrays[name + "?"] = np.ones(self.cap, dtype=bool)
        if keep_text:
            self.arrays["text"] = np.full(self.cap, "", dtype=object)

    def _grow(self, needed: int) -> None:
        cap = max(needed, self.cap + self.cap // 2)
        for name, old in self.arrays.items():
            fill = True if name.endswith("?") else -1 if name in _CODED else 0
            new = np.full(cap, fill if old.dtype != object else "", dtype=old.dtype)
            new[: self.n] = old[: self.n]
            self.arrays[name] = new
        self.cap = cap

    def flush(self) -> None:
        rows, m, n = self.rows, len(self.rows), self.n
        if not m:
            return
        if n + m > self.cap:
            self._grow(n + m)
        arrays = self.arrays
        for name, values in zip(_DENSE, zip(*rows, strict=True), strict=True):
            arrays[name][n : n + m] = values
        if self.keep_text:
            arrays["text"][n : n + m] = self.texts
        for group, columns in _SPARSE.items():
            entries = self.sparse[group]
            if not entries:
                continue
            idx = n + np.fromiter((e[0] for e in entries), dtype=np.int64, count=len(entries))
            for k, name in enumerate(columns, start=1):
                column = [e[k] for e in entries]
                at = idx
                if None in column:  # absent fields: old kvm_page_fault (no vcpu, rip), locks
                    keep = np.fromiter((v is not None for v in column), bool, count=len(column))
                    column = [v for v in column if v is not None]
                    at = idx[keep]
                arrays[name][at] = column
                if name not in _CODED:
                    arrays[name + "?"][at] = False
            entries.clear()
        self.n += m
        rows.clear()
        self.texts.clear()

    def finish(self) -> dict[str, np.ndarray]:
        """The arrays, trimmed to the records (in place: no copy of the columns)."""
        self.flush()
        for array in self.arrays.values():
            array.resize(self.n, refcheck=False)  # owned, never viewed: realloc shrinks it
        return self.arrays


def _us_since_first(ts: np.ndarray) -> np.ndarray:
    """µs since the earliest timestamp, from exact integer ns: the same for any offset."""
    if not len(ts):
        return np.zeros(0)
    return (ts - ts.min()) / 1e3  # int64 differences, exact; one rounding to float


def _count_lines(path: Path) -> int:
    """Lines of a regular file (1 MiB reads; decompressed if it is compressed), to size the
    columns; a guess for other files. A corrupt compressed file is a ValueError naming it."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        return _CHUNK
    n, last = 0, b"\n"
    with _Opened(path) as f, f.errors():
        while block := f.stream.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")  # a last line without a newline


@dataclass
class _Skips:
    path: str
    lenient: bool
    lines: list
    count: int = 0

    def bad(self, lineno: int, text: str, expected: str) -> None:
        if not self.lenient:
            raise TraceParseError(self.path, lineno, text, expected)
        self.count += 1
        if len(self.lines) < _MAX_SKIPPED:
            self.lines.append((lineno, f"expected {expected}; got {_snippet(text)!r}"))

    def warn(self, what: str) -> None:
        if self.count:
            first_line, first_reason = self.lines[0]
            warnings.warn(
                f"{self.path}: skipped {self.count} malformed {what} line"
                f"{'s' if self.count > 1 else ''} (first: line {first_line}, {first_reason}); "
                "see .attrs['skipped']",
                TraceParseWarning,
                stacklevel=3,
            )


_BY_TASK = -1  # the callback code of a kvm_age_hva payload: load_ftrace() decides it by task


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


def _age_hva_codes(comm: str, truncated: bool = False) -> tuple[int, int]:
    """``(callback code, callback_source code)`` of a kvm_age_hva record of task ``comm``."""
    callback, source = age_hva_callback(comm, truncated=truncated)
    return _CALLBACKS.index(callback), CALLBACK_SOURCES.index(source)


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
_PAYLOADS = {
    "kvm_unmap_hva_range": _range(_UNMAP, _CALLBACKS.index("invalidate_range_start")),
    "kvm_set_spte_hva": _one_hva(_SET_PTE, _CALLBACKS.index("change_pte")),
    "kvm_age_hva": _range(_AGE, _BY_TASK),  # clear_young or clear_flush_young: by task
    "kvm_test_age_hva": _one_hva(_TEST_AGE, _CALLBACKS.index("test_young")),
    "kvm_page_fault": _page_fault,
    "contention_begin": _contention_begin,
    "contention_end": _contention_end,
}


def load_ftrace(
    path,
    *,
    lenient: bool = False,
    progress=None,
    keep_text: bool = True,
) -> pd.DataFrame:
    """Parse a tracefs ``trace`` file or ``trace-cmd report`` output into a tidy frame.

    Understands the raw tracefs format (header comment block, 4 or 5 latency flag columns, an
    optional ``(tgid)`` column, ``<...>`` comms, comms with spaces such as ``CPU 12/KVM-4090``:
    the pid is the number after the last ``-`` before ``[cpu]``) and ``trace-cmd report``
    output (``version = 6``, ``cpus=N``, ``CPU n is empty`` headers; records with or without
    the latency column, ``-t`` nanosecond timestamps). Every record is kept, whatever its event.

    trace-cmd's variants are read to the same records: the buffer-instance prefix of
    ``trace-cmd record -B NAME`` (``trace-cmd report`` prints ``NAME: `` before each record of
    that buffer: it is not part of the comm; counted in ``attrs["instances"]``), the ``-l``
    latency layout (``comm-pid cpu flags seconds:``: no brackets around the CPU, the comm cut to
    8 characters, so a ``kvm_age_hva`` of ``kdamond.`` is still DAMON's, see
    :func:`age_hva_callback`), and gzip, xz and bzip2 files (told by their first bytes, not
    their name). A binary ``trace.dat`` is refused, saying to run ``trace-cmd report`` on it.

    Stack traces (``<stack trace>`` records of the ``stacktrace`` option or trigger, trace-cmd's
    ``kernel_stack``) are records too; their `` => frame`` lines are joined, one frame per line,
    into the record's ``text``. ``CPU:N [LOST M EVENTS]`` lines are counted in
    ``attrs["lost_events"]``.

    Time order is checked per CPU: a record earlier than the previous record of its CPU is a
    :class:`TraceOrderError` naming the file, both lines and both timestamps. Each CPU's ring
    buffer is written in time order and both readers merge the buffers by earliest timestamp
    (``__find_next_entry()`` in the kernel, ``read_data_info()`` in trace-cmd, which merges
    CPUs, instances and input files alike), so in a real trace only records of *different*
    CPUs may interleave out of order (clocks that disagree between CPUs, concatenated
    ``per_cpu/cpuN/trace`` files); those are accepted, in file order (:func:`to_stream` sorts
    by time). The sample trace is in time order overall.

    Timestamps are seconds (``<s>.<fraction>``), or raw counts for the clocks that do not count
    nanoseconds (``trace_clock`` counter, uptime, x86-tsc: digits only); one trace uses one
    kind, so a record with the other kind is malformed. They are read exactly, as integer
    nanoseconds (6 or 9 fraction digits; more are rounded to the ns), and compared and
    subtracted as integers: the same trace with every timestamp moved by any offset (the epoch
    seconds of ``trace-cmd record --date`` included, where float seconds are 0.24 µs apart)
    gives the same frame but for ``t_s`` and ``t_ns``. A timestamp of 2**63 ns or more (year
    2262) is malformed.

    Parameters
    ----------
    path : str or os.PathLike
        The text file, read line by line (lines end at ``\n``; a ``\r`` before it and
        trailing blanks are dropped), decompressed if it is a gzip, xz or bzip2 file. A line
        that is not valid UTF-8 is malformed.
    lenient : bool, default False
        Skip malformed lines instead of raising; they are listed in ``attrs["skipped"]`` (at
        most 100 ``(line, reason)`` pairs), counted in ``attrs["skipped_count"]``, and one
        :class:`TraceParseWarning` gives the count. Records that go back in time on their
        CPU are kept and the frame is sorted by time (stable); ``attrs["reordered"]`` counts
        them (the records earlier than an earlier record of their CPU), and one more
        :class:`TraceParseWarning` gives the count and the first.
    progress : None, True or callable, optional
        ``True`` shows the share of bytes read: a progress bar in a Jupyter kernel, a line
        on stderr elsewhere (the CLI); a callable is called as
        ``progress(bytes_read, total_bytes)`` every few thousand lines and once at the end.
    keep_text : bool, default True
        Keep the raw payload of every record in ``text``. It is most of the frame's memory;
        with ``False`` the column is left out. The parsed fields and ``mark`` are unaffected;
        stack frames, which live in ``text``, are then dropped (still counted).

    Returns
    -------
    pandas.DataFrame
        One row per record, in file order (in time order if ``lenient`` sorted them):

        ``line`` (1-based line in the file), ``comm``, ``pid``, ``cpu``, ``flags`` (the latency
        flag characters, ``""`` without them), ``t_s`` (seconds, as printed, as a float; the
        count for a raw clock), ``t_ns`` (int64: the same timestamp exactly, in integer
        nanoseconds; the count for a raw clock), ``t_us`` (µs since the earliest record,
        from the exact integer difference; NaN for a raw clock, whose unit is unknown),
        ``event`` (as printed; ``"<stack trace>"``, ``"function"`` for the
        function tracer's ``f <-parent`` lines), ``text`` (the payload after ``event:``), and
        parsed fields (nullable, ``<NA>`` where the event has none; strings are categorical):

        * MMU notifiers (``kvm_unmap_hva_range``, ``kvm_age_hva``, ``kvm_test_age_hva``,
          ``kvm_set_spte_hva``): ``hva_start``, ``hva_end`` (UInt64, end exclusive; single-hva
          events cover ``[hva, hva + 4096)``), ``callback``, the callback the event stands
          for (:data:`NOTIFIER_EVENTS`), and ``callback_source``, how that was decided
          (:data:`CALLBACK_SOURCES`). Each event has one callback (``"tracepoint"``) but
          ``kvm_age_hva``, which fires in both ``clear_flush_young`` and ``clear_young``: its
          task says which (:func:`age_hva_callback`). ``kdamond.N`` (DAMON, which never
          flushes) is ``clear_young``, ``"task:kdamond"``; ``kswapdN`` (reclaim) is
          ``clear_flush_young``, ``"task:kswapd"``; any other task is assumed to be in direct
          reclaim, ``clear_flush_young``, ``"assumed: reclaim (unknown task)"``.
          ``kvm_test_age_hva`` is ``test_young`` whatever the task;
        * ``kvm_page_fault``: ``vcpu``, ``rip`` (v6.1+ format only), ``address``,
          ``error_code``;
        * ``contention_begin`` / ``contention_end``: ``lock`` (the pointer as printed, hashed
          unless ``options/hash-ptr`` is 0), ``lock_flags`` (``"SPIN|WRITE"``...), ``ret``;
        * ``tracing_mark_write`` (and trace-cmd's ``print``): ``mark``, the message; a
          ``PHASE <name>`` mark starts a phase: ``phase`` holds the name on that record and
          every following one, until the next ``PHASE`` mark.

        ``attrs``: ``path``, ``format`` (``"tracefs"`` or ``"trace-cmd"``), ``clock``
        (``"seconds"``, ``"raw"``, or None without records), ``reordered``, ``event_counts``
        (records per event, in order of first appearance), ``line_counts`` (``records``,
        ``comments``, ``blank``, ``headers``, ``stack_frames``, ``lost``, ``skipped`` and
        ``total``: every line of the file is in exactly one of the first seven),
        ``lost_events``, ``skipped``, ``skipped_count``, ``age_hva`` (the ``kvm_age_hva``
        records by ``callback_source``: ``{"task:kdamond": n, "task:kswapd": n,
        "assumed: reclaim (unknown task)": n}``, zeros included; :func:`age_hva_note` says it
        in a sentence), ``instances`` (records per trace-cmd buffer instance, ``{}`` without
        one), ``layout`` (``"latency"`` if records were in the ``-l`` layout, else
        ``"default"``), ``compression`` (None, ``"gzip"``, ``"xz"`` or ``"bzip2"``).

    Raises
    ------
    TraceParseError
        At the first malformed line (unless ``lenient``), naming the file, the line number,
        the line (truncated to 120 characters) and what was expected there; its subclass
        :class:`TraceOrderError` for a record that goes back in time on its CPU (of its
        buffer instance; unless ``lenient``). Also, in both modes, for a file that is empty or
        only blank: neither tool writes one (tracefs prints its header, trace-cmd
        ``cpus=<n>``), so it is not a trace, most likely a failed recording; for a binary
        ``trace.dat``; and (lenient) for a file whose every line but blanks, comments and
        headers is malformed: an empty result from such a file is no trace (a header
        without records is one: an empty frame).
    ValueError
        For a compressed file that is corrupt or cut short, naming it; for a zstd file.
    TypeError
        If ``lenient`` or ``keep_text`` is not a bool (``"no"`` would have meant True).
    """
    lenient = check_bool(lenient, "lenient")
    keep_text = check_bool(keep_text, "keep_text")
    path = Path(path)
    report = reporter(progress, path.name, describe_bytes, "bytes_read, total")
    total_bytes = os.path.getsize(path)
    skips = _Skips(str(path), lenient, [])
    cols = _Columns(_count_lines(path), keep_text)
    # Interned strings -> codes (dict.setdefault(value, len(dict)): one C call per lookup).
    comms, flagss, events, phases = {}, {}, {}, {}
    locks, lock_flagss, marks = {}, {}, {}
    age_codes: dict[tuple[str, bool], tuple[int, int]] = {}  # kvm_age_hva codes by task
    counts = dict.fromkeys(("comments", "blank", "headers", "stack_frames", "lost"), 0)
    lost_events = 0
    trace_cmd = False
    raw_clock = None  # the kind of timestamp of the first record, which the others must share
    clock_line = 0
    # (instance, cpu) -> (its latest timestamp, exact; that record's line; its fraction digits)
    last_on_cpu: dict[tuple[str | None, int], tuple[int, int, int]] = {}
    backwards = 0
    first_backwards = None
    phase = -1
    in_stack = False
    instances: dict[str, int] = {}  # buffer instance -> its records
    carried = None  # the instance of a "NAME: CPU:n [EVENTS DROPPED]" line, for the next record
    latency_records = 0
    record = _RECORD.fullmatch
    latency_record = _LATENCY_RECORD.fullmatch
    rows, texts, sparse = cols.rows, cols.texts, cols.sparse
    hva_rows, fault_rows, lock_rows, mark_rows = (
        sparse[k] for k in ("hva", "fault", "lock", "mark")
    )
    lineno = 0
    # Text mode for speed, splitting on "\n" only (a UTF-8 BOM is dropped); bytes that are not
    # UTF-8 come through as lone surrogates (surrogateescape) and make their line malformed.
    # One open for all (a pipe can be read once): binary trace.dat refused first.
    with _Opened(path) as opened, opened.errors(lambda: lineno):
        _refuse_binary_trace(opened)
        f = io.TextIOWrapper(
            opened.stream, encoding="utf-8-sig", errors="surrogateescape", newline="\n"
        )
        raw_file = opened.raw
        for lineno, line in enumerate(_bounded_lines(f, path), start=1):
            if report is not None and not lineno % _PROGRESS_EVERY:
                report(raw_file.tell(), total_bytes)
            line = line.rstrip()  # the newline, a "\r" before it, trailing blanks
            if not line.isascii():
                try:
                    line.encode("utf-8")
                except UnicodeEncodeError as err:
                    skips.bad(lineno, *_undecodable(line, err))  # leaves a stack trace open
                    continue
            latency = False
            m = record(line)
            if m is None:
                m = latency_record(line)
                latency = m is not None
            if m is None:
                stripped = line.strip()
                if not stripped:
                    counts["blank"] += 1
                elif stripped[0] == "#":
                    counts["comments"] += 1
                elif _FRAME.fullmatch(line):
                    if not in_stack:
                        skips.bad(lineno, line, "a stack frame (' => ...') after a stack trace")
                        continue
                    counts["stack_frames"] += 1
                    if keep_text:
                        texts[-1] = f"{texts[-1]}\n{stripped}" if texts[-1] else stripped
                elif (lost := _LOST.fullmatch(line)) is not None:
                    counts["lost"] += 1
                    lost_events += int(lost["n"] or lost["m"] or 0)
                    in_stack = False
                    carried = lost["inst"]  # trace-cmd prints the record on the next line
                elif _HEADER.fullmatch(line):
                    counts["headers"] += 1
                    trace_cmd = True
                else:
                    skips.bad(lineno, line, f"a trace record {RECORD_SHAPE}")
                continue
            inst, comm, pid, cpu, flags, ts, sec, frac, event, text, stack, func = m.groups()
            pid, cpu = int(pid), int(cpu)
            if pid > _INT32_MAX or cpu > _INT32_MAX:
                skips.bad(lineno, line, f"a trace record {RECORD_SHAPE} with pid and cpu < 2**31")
                continue
            raw = frac is None
            if raw is not raw_clock:
                if raw_clock is not None:
                    skips.bad(lineno, line, f"{_CLOCK_EXPECT[raw_clock]}, as on line {clock_line}")
                    continue
                raw_clock, clock_line = raw, lineno
            # Exact: integer ns (or the raw count), never float seconds, which lose up to
            # 0.19 µs at the epoch-scale times of `trace-cmd record --date`.
            t = int(sec) if raw else _timestamp_ns(sec, frac)
            if t > _INT64_MAX:
                skips.bad(lineno, line, f"{_CLOCK_EXPECT[raw]} below 2**63 ns (year 2262)")
                continue
            if stack is not None:
                event, text, values = stack.replace(" >", ">"), "", None
            elif func is not None:
                event, text, values = "function", func, None
            else:
                if text is None:
                    text = ""
                parse = _PAYLOADS.get(event)
                if parse is None:
                    values = None
                else:
                    try:
                        values = parse(text)
                    except ValueError:  # a hex value of more than 64 bits
                        values = None
                    if values is None:
                        skips.bad(lineno, line, f"a {event} payload {_EXPECT[event]}")
                        continue
            if inst is None:
                inst = carried
            carried = None
            if inst is not None:
                instances[inst] = instances.get(inst, 0) + 1
            truncated = False
            if latency:
                latency_records += 1
                comm = comm.lstrip()
                truncated = len(comm) >= LATENCY_COMM_WIDTH  # "%8.8s" may have cut it
            # Each CPU's ring buffer is written in time order (__rb_reserve_next() in
            # kernel/trace/ring_buffer.c never lets a CPU's timestamp go back), and the readers
            # merge the buffers by taking the earliest next record (__find_next_entry() in
            # kernel/trace/trace.c; trace-cmd report across CPUs, instances and files, whose
            # --ts-check warns "Record on cpu %d went backwards"). So the rule is per CPU (of
            # each buffer instance, which has its own ring buffers): records of different CPUs
            # may interleave out of time order (clocks that disagree across CPUs,
            # per_cpu/cpuN/trace files concatenated), and are merged by time later. Compared
            # exactly, as integers.
            key = (inst, cpu)
            latest = last_on_cpu.get(key)
            if latest is None or t >= latest[0]:
                last_on_cpu[key] = (t, lineno, 0 if raw else len(frac))
            elif not lenient:
                raise TraceOrderError(
                    path,
                    lineno,
                    line,
                    cpu,
                    ts,
                    latest[1],
                    _format_ns(latest[0], latest[2]) if not raw else str(latest[0]),
                    instance=inst,
                )
            else:
                backwards += 1
                if first_backwards is None:
                    previous = _format_ns(latest[0], latest[2]) if not raw else str(latest[0])
                    first_backwards = (lineno, ts, latest[1], previous, cpu)
            if len(rows) >= _CHUNK:
                cols.flush()
            i = len(rows)
            if values is not None:
                kind = values[0]
                if kind == 0:  # notifier: (0, start, end, callback code)
                    callback, source = values[3], 0  # 0: "tracepoint", one callback per event
                    if callback == _BY_TASK:  # kvm_age_hva: which callback, by task
                        codes = age_codes.get((comm, truncated))
                        if codes is None:
                            codes = age_codes[comm, truncated] = _age_hva_codes(comm, truncated)
                        callback, source = codes
                    hva_rows.append((i, values[1], values[2], callback, source))
                elif kind == 1:  # page fault: (1, vcpu, rip, address, error_code)
                    fault_rows.append((i, values[1], values[2], values[3], values[4]))
                else:  # lock: (2, lock, flags or None, ret or None)
                    lock_flag = values[2]
                    if lock_flag is not None:
                        lock_flag = lock_flagss.setdefault(lock_flag, len(lock_flagss))
                    lock_rows.append(
                        (i, locks.setdefault(values[1], len(locks)), lock_flag, values[3])
                    )
            elif event == "tracing_mark_write" or event == "print":
                mark = text
                if event == "print" and (ip := _PRINT_IP.fullmatch(text)) is not None:
                    mark = ip[1]
                mark_rows.append((i, marks.setdefault(mark, len(marks))))
                if (ph := _PHASE.fullmatch(mark)) is not None:
                    phase = phases.setdefault(ph[1], len(phases))
            elif event in _STACK_EVENTS:
                text = ""  # trace-cmd's "kernel_stack: <stack trace >": frames follow
            in_stack = event in _STACK_EVENTS
            rows.append(
                (
                    lineno,
                    comms.setdefault(comm, len(comms)),
                    pid,
                    cpu,
                    flagss.setdefault(flags or "", len(flagss)),
                    t,
                    events.setdefault(event, len(events)),
                    phase,
                )
            )
            texts.append(text)
    if report is not None:
        report(total_bytes, total_bytes)
    if counts["blank"] == lineno:  # no line at all, or only blank ones: not a trace
        got = f"an empty file ({total_bytes} bytes{', all blank' if total_bytes else ''})"
        raise TraceParseError(path, max(lineno, 1), "", EMPTY_TRACE, got=got)
    if not rows and not cols.n and skips.count:  # lenient, and nothing but malformed lines
        first_line, first_reason = skips.lines[0]
        raise TraceParseError(
            path,
            first_line,
            "",
            f"at least one trace record {RECORD_SHAPE}",
            got=(
                f"no record: all {skips.count} lines that are not blank, comments or headers "
                f"are malformed (first: line {first_line}, {first_reason}); is it a trace?"
            ),
        )
    skips.warn("trace")

    arrays = cols.finish()

    def nullable(name: str):
        return pd.arrays.IntegerArray(arrays.pop(name), arrays.pop(name + "?"))

    def coded(name: str, interned: dict):
        return pd.Categorical.from_codes(arrays.pop(name), categories=list(interned))

    ts_all = arrays.pop("ts")
    data = {
        "line": arrays.pop("line"),
        "comm": coded("comm", comms),
        "pid": arrays.pop("pid"),
        "cpu": arrays.pop("cpu"),
        "flags": coded("flags", flagss),
        # Seconds as a float (the count for a raw clock), as before; t_ns holds them exactly.
        "t_s": ts_all.astype(np.float64) if raw_clock else ts_all / 1e9,
        "t_ns": ts_all,  # exact; the count for a raw clock, as t_s
        # A raw count has no unit kvmviz can know (TSC ticks, events, jiffies): no µs.
        "t_us": np.full(len(ts_all), np.nan) if raw_clock else _us_since_first(ts_all),
        "event": coded("event", events),
    }
    if keep_text:
        data["text"] = arrays.pop("text")
    data["hva_start"] = nullable("hva_start")
    data["hva_end"] = nullable("hva_end")
    data["callback"] = pd.Categorical.from_codes(arrays.pop("callback"), list(_CALLBACKS))
    sources = arrays.pop("callback_source")
    data["callback_source"] = pd.Categorical.from_codes(sources, list(CALLBACK_SOURCES))
    for name in ("vcpu", "rip", "address", "error_code"):
        data[name] = nullable(name)
    data["lock"] = coded("lock", locks)
    data["lock_flags"] = coded("lock_flags", lock_flagss)
    data["ret"] = nullable("ret")
    data["mark"] = coded("mark", marks)
    data["phase"] = coded("phase", phases)
    frame = pd.DataFrame(data, copy=False)
    event_codes = data["event"].codes
    per_event = np.bincount(event_codes, minlength=len(events)) if len(frame) else []
    counts_total = {"records": len(frame), **counts, "skipped": skips.count, "total": lineno}
    if backwards:  # lenient: sort into time order (stable: equal times keep file order)
        frame = frame.take(np.argsort(ts_all, kind="stable")).reset_index(drop=True)
        line, t, previous_line, previous_t, cpu = first_backwards
        warnings.warn(
            f"{path}: sorted {backwards} record{'s' if backwards > 1 else ''} whose timestamp "
            f"went back in time on its CPU into time order (first: line {line}, timestamp {t}, "
            f"earlier than {previous_t} on line {previous_line}, CPU {cpu}); see "
            ".attrs['reordered']",
            TraceParseWarning,
            stacklevel=2,
        )
    frame.attrs.update(
        path=str(path),
        format="trace-cmd" if trace_cmd or instances or latency_records else "tracefs",
        clock=None if raw_clock is None else "raw" if raw_clock else "seconds",
        reordered=backwards,
        event_counts={name: int(n) for name, n in zip(events, per_event, strict=True)},
        line_counts=counts_total,
        lost_events=lost_events,
        skipped=skips.lines,
        skipped_count=skips.count,
        age_hva=_count_sources(sources),
        instances=instances,
        layout="latency" if latency_records else "default",
        compression=opened.compression,
    )
    return frame


def _count_sources(codes: np.ndarray) -> dict[str, int]:
    """kvm_age_hva records by how their callback was decided, from callback_source codes."""
    n = np.bincount(codes[codes > 0], minlength=len(CALLBACK_SOURCES))
    return {source: int(n[k]) for k, source in enumerate(CALLBACK_SOURCES) if k}


# -- QEMU memslot log ---------------------------------------------------------------------------
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


def _qemu_records(
    path: Path, skips: _Skips, stats: _LogStats | None = None
) -> Iterator[_SetMemory]:
    stats = _LogStats() if stats is None else stats
    stats.size = os.path.getsize(path)
    with _Opened(path) as opened, opened.errors(lambda: stats.lines):
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
            t_ns = None if m["sec"] is None else _parse_timestamp(m["sec"])  # exact
            if t_ns is not None and t_ns > _INT64_MAX:
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


def _no_records(path: Path, stats: _LogStats, skips: _Skips) -> str:
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
    skips = _Skips(str(path), lenient, [])
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


def _replay_qemu(path: Path, at, lenient: bool):
    """``(layout, replayed, found, stats, skips)``: the layout after the first ``at`` lines
    (all: None), the lines replayed, whether the log has a well-formed kvm_set_user_memory line
    at all, the file's counts and the skipped lines. Empty results are the callers' to refuse.
    """
    skips = _Skips(str(path), lenient, [])
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
        problem = None
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
    with _Opened(path) as opened, opened.errors():
        for i, raw in enumerate(opened.lines(), start=1):
            if i == lineno:
                return raw.decode("utf-8", "replace").rstrip("\r\n")
    return ""


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
    with _Opened(path) as opened, opened.errors():
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
    lines = _json_entry_lines(text, doc)

    def at(i: int | None = None) -> str:
        if i is None:
            return f"{path}, line {text.count(chr(10), 0, len(text) - len(text.lstrip())) + 1}"
        return f"{path}, line {lines[i]}" if lines else f"{path}"

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

    def number(entry: dict, key: str, i: int, default=None) -> int:
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

    slots = []
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict):
            raise ValueError(f"{at(i)}: memslot #{i}: expected an object, got {entry!r}")
        gpa = number(entry, "guest_phys_addr", i)
        size = number(entry, "memory_size", i)
        if gpa % PAGE_SIZE or size % PAGE_SIZE:
            raise ValueError(
                f"{at(i)}: memslot #{i}: guest_phys_addr {gpa:#x} and memory_size {size:#x} "
                "must be multiples of 4096"
            )
        try:
            slots.append(
                Memslot(
                    slot=number(entry, "slot", i),
                    base_gfn=gpa >> PAGE_SHIFT,
                    npages=size >> PAGE_SHIFT,
                    userspace_addr=number(entry, "userspace_addr", i),
                    as_id=number(entry, "as_id", i, 0),
                    flags=number(entry, "flags", i, 0),
                )
            )
        except MemslotError as err:
            raise MemslotError(f"{at(i)}: memslot #{i}: {err}") from None
    try:
        return MemslotLayout(slots)
    except MemslotError as err:
        raise MemslotError(f"{path}: {err}") from None


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


# -- analysis -----------------------------------------------------------------------------------
def _require(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: the frame lacks columns {missing}; {_HINT[what]}")


_HINT = {"to_stream": "pass the frame of load_ftrace() or kvmviz.classify.records()"}


def to_stream(classified: pd.DataFrame) -> pd.DataFrame:
    """The trace's MMU notifications as the engine's event stream.

    Notifier records become events of :data:`kvmviz.notifiers.EVENT_KINDS` (checked and put in
    the generator's form by :func:`kvmviz.notifiers.stream_from_callbacks`), with ``cause`` the
    task that caused them (``comm``) and ``t_us`` the record's time since the first record.
    The choices, since a trace shows only some callbacks:

    * ``kvm_unmap_hva_range`` is an ``invalidate_range_start`` whose end is not traced (there
      is no tracepoint for ``invalidate_range_end``): a ``"pair"`` on its range.
    * ``kvm_set_spte_hva`` (``change_pte``, up to v6.9) always sits inside a start/end bracket
      (6bdb913f0a70): it is folded into the latest ``kvm_unmap_hva_range`` of the same task when
      its page lies within that range, which turns the pair into a ``"move"``. One with no such
      range before it (a truncated trace) becomes a ``"move"`` of its own page; both cases are
      counted in ``attrs["folded_change_pte"]`` and ``attrs["unpaired_change_pte"]``.
    * ``kvm_age_hva`` becomes the kind of its ``callback`` column, which :func:`load_ftrace`
      decided by task (:func:`age_hva_callback`): ``"clear_young"`` for DAMON's ``kdamond.N``,
      ``"clear_flush_young"`` for ``kswapdN`` and, assumed (direct reclaim), for any other
      task; ``attrs["age_hva"]`` counts them by ``callback_source``. ``kvm_test_age_hva`` is
      ``"test_young"`` on one page.
    * Empty ranges (start == end) are dropped (``attrs["empty_dropped"]``): no callback
      reaches a memslot with them.
    * Records are taken in time order (a stable sort on ``t_us``: records of different CPUs
      may interleave out of order in the file, see :func:`load_ftrace`); if some ``t_us`` is
      negative, times are shifted to start at 0.

    Parameters
    ----------
    classified : pandas.DataFrame
        The frame of :func:`load_ftrace` or :func:`kvmviz.classify.records`.

    Returns
    -------
    pandas.DataFrame
        ``event, cause, kind, t_us, hva_start, hva_end``, as :func:`kvmviz.simulate` accepts
        for ``stream=``. ``attrs``: ``folded_change_pte``, ``unpaired_change_pte``,
        ``empty_dropped`` and ``age_hva`` (the ``kvm_age_hva`` records of ``classified``, empty
        ranges included, by ``callback_source``, as in :func:`load_ftrace`).

    Raises
    ------
    ValueError
        If a notifier record has no time in µs: a trace recorded with a raw clock
        (``attrs["clock"] == "raw"``, see :func:`load_ftrace`), naming the file and line.
    """
    _require(classified, ("callback", "hva_start", "hva_end", "t_us", "comm", "pid"), "to_stream")
    notifier = classified["callback"].notna().to_numpy()
    rows = classified.loc[notifier]
    t_all = rows["t_us"].to_numpy(dtype=float)
    if not np.isfinite(t_all).all():
        raise ValueError(_raw_clock_message(classified, rows))
    rows = rows.iloc[np.argsort(t_all, kind="stable")]
    callbacks = rows["callback"].astype(str).tolist()
    starts = rows["hva_start"].to_numpy(dtype=np.uint64).tolist()
    ends = rows["hva_end"].to_numpy(dtype=np.uint64).tolist()
    times = rows["t_us"].to_numpy(dtype=float).tolist()
    comms = rows["comm"].astype(str).tolist()
    pids = rows["pid"].to_numpy().tolist()
    # The aging callbacks are event kinds of their own (kvmviz.notifiers.EVENT_KINDS).
    kind_of = {cb: cb for cb in ("clear_flush_young", "clear_young", "test_young")}
    out_t, out_kind, out_s, out_e, out_cause = [], [], [], [], []
    last_pair: dict[int, int] = {}
    folded = unpaired = empty = 0
    for cb, s, e, t, comm, pid in zip(callbacks, starts, ends, times, comms, pids, strict=True):
        if cb == "change_pte":
            j = last_pair.get(pid)
            if j is not None and out_s[j] <= s and e <= out_e[j]:
                out_kind[j] = "move"
                folded += 1
                continue
            unpaired += 1
            kind = "move"
        elif s >= e:
            empty += 1
            continue
        elif cb == "invalidate_range_start":
            kind = "pair"
            last_pair[pid] = len(out_t)
        else:
            kind = kind_of[cb]
        out_t.append(t)
        out_kind.append(kind)
        out_s.append(s)
        out_e.append(e)
        out_cause.append(comm)
    t = np.array(out_t, dtype=float)
    if len(t) and t.min() < 0:
        t = t - t.min()
    stream = stream_from_callbacks(
        pd.DataFrame(
            {
                "t_us": t,
                "kind": out_kind,
                "hva_start": np.array(out_s, dtype=np.uint64),
                "hva_end": np.array(out_e, dtype=np.uint64),
                "cause": out_cause,
            }
        )
    )
    stream.attrs.update(
        folded_change_pte=folded,
        unpaired_change_pte=unpaired,
        empty_dropped=empty,
        age_hva=_age_hva_counts(classified),
    )
    return stream


def _age_hva_counts(frame: pd.DataFrame) -> dict[str, int]:
    """The kvm_age_hva records of ``frame`` by ``callback_source`` (zeros included).

    From the column :func:`load_ftrace` writes; a frame without it (made by hand) is counted
    from its ``event`` and ``comm`` columns with :func:`age_hva_callback`, the same rule.
    """
    counts = dict.fromkeys(CALLBACK_SOURCES[1:], 0)
    if "callback_source" in frame.columns:
        values = frame["callback_source"].astype(object).to_numpy()
    elif "event" in frame.columns and "comm" in frame.columns:
        aging = (frame["event"].astype(str) == "kvm_age_hva").to_numpy()
        comms = frame["comm"].astype(str).to_numpy()[aging]
        values = np.array([age_hva_callback(c)[1] for c in comms], dtype=object)
    else:
        return counts
    for source, n in pd.Series(values, dtype=object).value_counts().items():
        if source in counts:
            counts[source] = int(n)
    return counts


def age_hva_note(counts: dict) -> str:
    """One sentence on how the ``kvm_age_hva`` records were read, with their counts.

    Parameters
    ----------
    counts : dict
        ``attrs["age_hva"]`` of :func:`load_ftrace`, :func:`to_stream`, or
        ``run.notifiers.attrs["replay"]["age_hva"]`` of :func:`kvmviz.experiments.replay_trace`.

    Returns
    -------
    str
        ``"kvm_age_hva: 167 lines from kdamond read as clear_young (DAMON never flushes), 0
        from kswapd as clear_flush_young (reclaim), 0 from other tasks assumed
        clear_flush_young (reclaim)"``, with the counts given.
    """
    n = {source: int(counts.get(source, 0)) for source in CALLBACK_SOURCES[1:]}
    kdamond, kswapd = (AGE_HVA_TASKS[k][1] for k in ("task:kdamond", "task:kswapd"))
    return (
        f"kvm_age_hva: {n['task:kdamond']} lines from kdamond read as {kdamond} (DAMON never "
        f"flushes), {n['task:kswapd']} from kswapd as {kswapd} (reclaim), "
        f"{n[AGE_HVA_ASSUMED]} from other tasks assumed {_AGE_HVA_DEFAULT} (reclaim)"
    )


MAX_GAP_US = 1e6
"""Idle gaps between two notifications longer than this (1 s) are cut to it by
:func:`kvmviz.experiments.replay_trace`."""


def _raw_clock_message(frame: pd.DataFrame, rows: pd.DataFrame) -> str:
    bad = rows.loc[~np.isfinite(rows["t_us"].to_numpy(dtype=float))]
    where = frame.attrs.get("path", "the trace")
    line = f", line {int(bad['line'].iloc[0])}" if "line" in bad.columns else ""
    value = f" {bad['t_s'].iloc[0]:.0f}" if "t_s" in bad.columns else ""
    return (
        f"{where}{line}: expected a timestamp in seconds ('<s>.<fraction>'); got the raw clock "
        f"count{value}: the trace was recorded with a clock that does not count nanoseconds "
        "(trace_clock counter, uptime or x86-tsc), so its records have no time to replay; "
        "record again after `echo global > trace_clock` (trace-cmd record -C global)"
    )


def _nothing_to_replay(events: pd.DataFrame) -> str:
    """Why a trace gives no notification to replay, with the counts of what it holds."""
    where = events.attrs.get("path", "the trace")
    counts = events.attrs.get("line_counts", {})
    lines = f" in {counts['total']} lines" if "total" in counts else ""
    notifiers = int(events["callback"].notna().sum())
    if notifiers:
        return (
            f"{where}: nothing to replay: its {notifiers} MMU-notifier records all have empty "
            "hva ranges (start == end), which reach no memslot"
        )
    seen = events.attrs.get("event_counts")
    if seen is None:
        seen = events["event"].astype(str).value_counts(sort=False).to_dict()
    listed = ", ".join(f"{name} {n}" for name, n in list(seen.items())[:6])
    more = f" and {len(seen) - 6} more events" if len(seen) > 6 else ""
    return (
        f"{where}: nothing to replay: {len(events)} records{lines}"
        + (f" ({listed}{more})" if seen else "")
        + f", none of them an MMU-notifier event ({', '.join(NOTIFIER_EVENTS)})"
    )


def replay_stream(events: pd.DataFrame, *, max_gap_us: float = MAX_GAP_US) -> pd.DataFrame:
    """The notification stream :func:`kvmviz.experiments.replay_trace` runs: :func:`to_stream`, with
    idle time cut.

    A replay simulates every µs of the stream's span for every vCPU, so its memory grows with
    the span: a trace with a 100,000 s pause would need terabytes. Nothing happens on
    ``mmu_lock`` in a long pause but uncontended faults (a notifier's holds last µs to ms and
    the faults it stalled drain soon after), so every gap between two notifications longer
    than ``max_gap_us`` is cut to ``max_gap_us``, and so is the gap from the trace's first
    record to the first notification: the replay then covers at most ``max_gap_us`` per
    notification, whatever the span. (Raw clock counts, ``trace_clock=counter`` or
    ``x86-tsc``, have no µs at all and are refused by :func:`to_stream`.)

    Times are rounded to the nanosecond, the finest a trace prints, and cut in integers, so a
    trace gives the same stream whatever the length of the gaps that were cut.

    Parameters
    ----------
    events : pandas.DataFrame
        The frame of :func:`load_ftrace` or :func:`kvmviz.classify.records`.
    max_gap_us : float
        The longest gap kept, µs (> 0; default :data:`MAX_GAP_US`, 1 s: the sample trace has
        no longer gap, so it replays as recorded).

    Returns
    -------
    pandas.DataFrame
        As :func:`to_stream` (its ``attrs`` too), ``t_us`` cut; ``attrs`` gains ``span_us``
        (of the notifications, from the trace's first record), ``idle_removed_us``,
        ``gaps_shortened`` and ``max_gap_us``.

    Raises
    ------
    ValueError
        ``"nothing to replay"``, naming the file and counting the records and events it holds,
        when the trace has no MMU-notifier record (a header-only trace, or one recorded
        without the ``kvm:`` notifier events) or only empty ranges; from :func:`to_stream`
        for a raw clock.
    """
    max_gap_us = check_number(max_gap_us, "max_gap_us")
    if max_gap_us <= 0:
        raise ValueError(f"max_gap_us = {max_gap_us!r}: expected a number of µs > 0")
    stream = to_stream(events)
    if not len(stream):
        raise ValueError(_nothing_to_replay(events))
    t_ns = np.rint(stream["t_us"].to_numpy(dtype=float) * 1e3).astype(np.int64)
    gaps = np.diff(t_ns, prepend=0)
    cut = np.maximum(gaps - round(max_gap_us * 1e3), 0)
    stream["t_us"] = (t_ns - np.cumsum(cut)) / 1e3
    stream.attrs.update(
        span_us=float(t_ns[-1]) / 1e3,
        idle_removed_us=float(cut.sum()) / 1e3,
        gaps_shortened=int(np.count_nonzero(cut)),
        max_gap_us=max_gap_us,
    )
    return stream


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
    with _Opened(path) as opened:
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
