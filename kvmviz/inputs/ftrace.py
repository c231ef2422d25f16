"""The tracefs ``trace`` / ``trace-cmd report`` text parser: :func:`load_ftrace`.

A trace recorded on a KVM host (docs/kernel.md §5) says which hva ranges the MMU notifiers
reported, when, from which task, and whether ``mmu_lock`` was contended. The parser streams: a
file is read line by line, never whole (decompressed as its first bytes say:
``inputs/trace_files.py``), and each line is told apart by the grammar below into a record, a
stack frame, a header, a comment or a malformed line. A record's payload is parsed by its event
(``inputs/ftrace_payloads.py``), its time order checked per CPU (``inputs/cpu_order.py``), and
it is stored a chunk at a time into preallocated columns (``inputs/ftrace_columns.py``).
:class:`_Reader` holds the state of one pass and its steps.
"""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd

from .._shared._checks import check_bool
from .._shared._progress import describe_bytes, reporter
from .cpu_order import CpuOrder
from .ftrace_columns import Columns
from .ftrace_payloads import (
    BY_TASK,
    EXPECT,
    MARK_EVENTS,
    PAYLOADS,
    age_hva_codes,
    mark_of,
    phase_of,
)
from .timestamps import INT64_MAX, timestamp_ns
from .trace_errors import Skips, TraceParseError
from .trace_files import Opened, bounded_lines
from .tracepoint_callbacks import CALLBACK_SOURCES, LATENCY_COMM_WIDTH

__all__ = ["EMPTY_TRACE", "RECORD_SHAPE", "TRACE_DAT_MAGIC", "load_ftrace"]

_INT32_MAX = (1 << 31) - 1
_CHUNK = 65536  # records per chunk of column arrays
_PROGRESS_EVERY = 4096  # lines between progress reports

RECORD_SHAPE = "'<comm>-<pid> [<cpu>] [<flags>] <seconds>: <event>: <fields>'"

# -- the lines of a trace ----------------------------------------------------------------------
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

# trace-cmd record writes a binary trace.dat, which starts with "\x17\x08\x44tracing"
# (tracecmd_output / trace-cmd.dat(5)): it has to go through `trace-cmd report` first.
TRACE_DAT_MAGIC = b"\x17\x08\x44tracing"


def _undecodable(line: str, err: UnicodeEncodeError) -> tuple[str, str]:
    """A line read with errors="surrogateescape" that holds bytes that are not UTF-8."""
    text = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    byte = ord(line[err.start]) - 0xDC00
    return text, f"UTF-8 text (byte {byte:#04x} at character {err.start + 1} is not)"


def _refuse_binary_trace(opened: Opened) -> None:
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


def _count_lines(path: Path) -> int:
    """Lines of a regular file (1 MiB reads; decompressed if it is compressed), to size the
    columns; a guess for other files. A corrupt compressed file is a ValueError naming it."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        return _CHUNK
    n, last = 0, b"\n"
    with Opened(path) as f, f.errors():
        while block := f.stream.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")  # a last line without a newline


class _Reader:
    """One pass over the lines of a trace: what each line is, and the records read so far.

    :meth:`read` tells each line apart: a record (:meth:`_record` checks its fields, its
    payload and its time order, and :meth:`_store` appends it to the current chunk of
    :class:`~kvmviz.inputs.ftrace_columns.Columns`), or another line (:meth:`_other`: blank, a
    comment, a stack frame, a lost-events line, a header; else malformed). The counts and the
    trace's kind (tracefs or trace-cmd, layout, clock) are kept for the frame's ``attrs``.
    """

    def __init__(self, path: Path, lenient: bool, keep_text: bool, n_lines: int) -> None:
        self.path = path
        self.keep_text = keep_text
        self.skips = Skips(str(path), lenient, [])
        self.order = CpuOrder(path, lenient)
        self.cols = cols = Columns(n_lines, keep_text)
        self.rows, self.texts = cols.rows, cols.texts
        self.hva_rows, self.fault_rows, self.lock_rows, self.mark_rows = (
            cols.sparse[k] for k in ("hva", "fault", "lock", "mark")
        )
        # Interned strings -> codes (dict.setdefault(value, len(dict)): one C call per lookup).
        self.comms, self.flagss, self.events, self.phases, self.locks, self.lock_flagss = (
            cols.interned[k] for k in ("comm", "flags", "event", "phase", "lock", "lock_flags")
        )
        self.marks = cols.interned["mark"]
        self.age_codes: dict[tuple[str, bool], tuple[int, int]] = {}  # kvm_age_hva codes by task
        self.lines = 0  # lines read so far
        self.counts = dict.fromkeys(("comments", "blank", "headers", "stack_frames", "lost"), 0)
        self.lost_events = 0
        self.trace_cmd = False  # a header only trace-cmd report prints was seen
        self.raw_clock = None  # the kind of timestamp of the first record, which all must share
        self.clock_line = 0
        self.phase = -1  # the code of the current phase (the latest PHASE mark)
        self.in_stack = False  # the latest record is a stack trace: frame lines may follow
        self.instances: dict[str, int] = {}  # buffer instance -> its records
        # The instance of a "NAME: CPU:n [EVENTS DROPPED]" line, for the next record.
        self.carried = None
        self.latency_records = 0

    def read(self, lines, report, raw_file, total_bytes: int) -> None:
        """Read every line of ``lines`` (``report(raw_file.tell(), total_bytes)`` every few
        thousand, if ``report`` is given)."""
        record = _RECORD.fullmatch
        latency_record = _LATENCY_RECORD.fullmatch
        on_record, on_other = self._record, self._other
        lineno = 0
        try:
            for lineno, line in enumerate(lines, start=1):
                if report is not None and not lineno % _PROGRESS_EVERY:
                    report(raw_file.tell(), total_bytes)
                line = line.rstrip()  # the newline, a "\r" before it, trailing blanks
                if not line.isascii():
                    try:
                        line.encode("utf-8")
                    except UnicodeEncodeError as err:
                        self.skips.bad(lineno, *_undecodable(line, err))  # leaves a stack open
                        continue
                m = record(line)
                if m is not None:
                    on_record(lineno, line, m, False)
                elif (m := latency_record(line)) is not None:
                    on_record(lineno, line, m, True)
                else:
                    on_other(lineno, line)
        finally:
            self.lines = lineno  # how far it got, for an error's message

    def _other(self, lineno: int, line: str) -> None:
        """A line that is not a record: counted, a stack frame joined to its record's text, or
        malformed."""
        counts = self.counts
        stripped = line.strip()
        if not stripped:
            counts["blank"] += 1
        elif stripped[0] == "#":
            counts["comments"] += 1
        elif _FRAME.fullmatch(line):
            if not self.in_stack:
                self.skips.bad(lineno, line, "a stack frame (' => ...') after a stack trace")
                return
            counts["stack_frames"] += 1
            if self.keep_text:
                texts = self.texts
                texts[-1] = f"{texts[-1]}\n{stripped}" if texts[-1] else stripped
        elif (lost := _LOST.fullmatch(line)) is not None:
            counts["lost"] += 1
            self.lost_events += int(lost["n"] or lost["m"] or 0)
            self.in_stack = False
            self.carried = lost["inst"]  # trace-cmd prints the record on the next line
        elif _HEADER.fullmatch(line):
            counts["headers"] += 1
            self.trace_cmd = True
        else:
            self.skips.bad(lineno, line, f"a trace record {RECORD_SHAPE}")

    def _record(self, lineno: int, line: str, m: re.Match, latency: bool) -> None:
        """A line matched as a record (``latency``: in the ``-l`` layout): its pid, cpu and
        timestamp checked, its payload parsed, its time order checked, then stored; a malformed
        one is skipped (lenient) or raised."""
        inst, comm, pid, cpu, flags, ts, sec, frac, event, text, stack, func = m.groups()
        pid, cpu = int(pid), int(cpu)
        if pid > _INT32_MAX or cpu > _INT32_MAX:
            self.skips.bad(lineno, line, f"a trace record {RECORD_SHAPE} with pid and cpu < 2**31")
            return
        raw = frac is None
        if raw is not self.raw_clock:
            if self.raw_clock is not None:
                expected = f"{_CLOCK_EXPECT[self.raw_clock]}, as on line {self.clock_line}"
                self.skips.bad(lineno, line, expected)
                return
            self.raw_clock, self.clock_line = raw, lineno
        # Exact: integer ns (or the raw count), never float seconds, which lose up to
        # 0.19 µs at the epoch-scale times of `trace-cmd record --date`.
        t = int(sec) if raw else timestamp_ns(sec, frac)
        if t > INT64_MAX:
            self.skips.bad(lineno, line, f"{_CLOCK_EXPECT[raw]} below 2**63 ns (year 2262)")
            return
        if stack is not None:
            event, text, values = stack.replace(" >", ">"), "", None
        elif func is not None:
            event, text, values = "function", func, None
        else:
            if text is None:
                text = ""
            parse = PAYLOADS.get(event)
            if parse is None:
                values = None
            else:
                try:
                    values = parse(text)
                except ValueError:  # a hex value of more than 64 bits
                    values = None
                if values is None:
                    self.skips.bad(lineno, line, f"a {event} payload {EXPECT[event]}")
                    return
        if inst is None:
            inst = self.carried
        self.carried = None
        if inst is not None:
            self.instances[inst] = self.instances.get(inst, 0) + 1
        truncated = False
        if latency:
            self.latency_records += 1
            comm = comm.lstrip()
            truncated = len(comm) >= LATENCY_COMM_WIDTH  # "%8.8s" may have cut it
        self.order.check(inst, cpu, t, None if raw else len(frac), lineno, ts, line)
        self._store(lineno, comm, truncated, pid, cpu, flags, t, event, text, values)

    def _store(self, lineno, comm, truncated, pid, cpu, flags, t, event, text, values) -> None:
        """Append a checked record to the chunk, its parsed fields to their groups."""
        rows = self.rows
        if len(rows) >= _CHUNK:
            self.cols.flush()
        i = len(rows)
        if values is not None:
            kind = values[0]
            if kind == 0:  # notifier: (0, start, end, callback code)
                callback, source = values[3], 0  # 0: "tracepoint", one callback per event
                if callback == BY_TASK:  # kvm_age_hva: which callback, by task
                    codes = self.age_codes.get((comm, truncated))
                    if codes is None:
                        codes = self.age_codes[comm, truncated] = age_hva_codes(comm, truncated)
                    callback, source = codes
                self.hva_rows.append((i, values[1], values[2], callback, source))
            elif kind == 1:  # page fault: (1, vcpu, rip, address, error_code)
                self.fault_rows.append((i, values[1], values[2], values[3], values[4]))
            else:  # lock: (2, lock, flags or None, ret or None)
                lock_flag, lock_flagss, locks = values[2], self.lock_flagss, self.locks
                if lock_flag is not None:
                    lock_flag = lock_flagss.setdefault(lock_flag, len(lock_flagss))
                lock = locks.setdefault(values[1], len(locks))
                self.lock_rows.append((i, lock, lock_flag, values[3]))
        elif event in MARK_EVENTS:
            mark = mark_of(event, text)
            self.mark_rows.append((i, self.marks.setdefault(mark, len(self.marks))))
            if (name := phase_of(mark)) is not None:
                self.phase = self.phases.setdefault(name, len(self.phases))
        elif event in _STACK_EVENTS:
            text = ""  # trace-cmd's "kernel_stack: <stack trace >": frames follow
        self.in_stack = event in _STACK_EVENTS
        comms, flagss, events = self.comms, self.flagss, self.events
        rows.append(
            (
                lineno,
                comms.setdefault(comm, len(comms)),
                pid,
                cpu,
                flagss.setdefault(flags or "", len(flagss)),
                t,
                events.setdefault(event, len(events)),
                self.phase,
            )
        )
        self.texts.append(text)

    def refuse_no_trace(self, total_bytes: int) -> None:
        """A TraceParseError for a file that is no trace: empty or blank, or (lenient) with
        nothing but malformed lines besides blanks, comments and headers."""
        if self.counts["blank"] == self.lines:  # no line at all, or only blank ones
            got = f"an empty file ({total_bytes} bytes{', all blank' if total_bytes else ''})"
            raise TraceParseError(self.path, max(self.lines, 1), "", EMPTY_TRACE, got=got)
        skips = self.skips
        if not self.rows and not self.cols.n and skips.count:  # lenient: all malformed
            first_line, first_reason = skips.lines[0]
            raise TraceParseError(
                self.path,
                first_line,
                "",
                f"at least one trace record {RECORD_SHAPE}",
                got=(
                    f"no record: all {skips.count} lines that are not blank, comments or "
                    f"headers are malformed (first: line {first_line}, {first_reason}); is it a "
                    "trace?"
                ),
            )

    def attrs(self, frame: pd.DataFrame, compression: str | None) -> dict:
        """The ``attrs`` of the frame of the records read (see :func:`load_ftrace`)."""
        events, skips, raw_clock = self.events, self.skips, self.raw_clock
        event_codes = frame["event"].cat.codes.to_numpy()
        per_event = np.bincount(event_codes, minlength=len(events)) if len(frame) else []
        line_counts = {
            "records": len(frame),
            **self.counts,
            "skipped": skips.count,
            "total": self.lines,
        }
        return dict(
            path=str(self.path),
            format="trace-cmd"
            if self.trace_cmd or self.instances or self.latency_records
            else "tracefs",
            clock=None if raw_clock is None else "raw" if raw_clock else "seconds",
            reordered=self.order.backwards,
            event_counts={name: int(n) for name, n in zip(events, per_event, strict=True)},
            line_counts=line_counts,
            lost_events=self.lost_events,
            skipped=skips.lines,
            skipped_count=skips.count,
            age_hva=_count_sources(frame["callback_source"].cat.codes.to_numpy()),
            instances=self.instances,
            layout="latency" if self.latency_records else "default",
            compression=compression,
        )


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
    :class:`TraceOrderError` naming the file, both lines and both timestamps. In a real trace
    only records of *different* CPUs may interleave out of time order (the rule, and the kernel
    and trace-cmd code it comes from: :class:`~kvmviz.inputs.cpu_order.CpuOrder`); those are
    accepted, in file order (:func:`~kvmviz.traces.to_stream` sorts by time). The sample trace
    is in time order overall.

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
    reader = _Reader(path, lenient, keep_text, _count_lines(path))
    # Text mode for speed, splitting on "\n" only (a UTF-8 BOM is dropped); bytes that are not
    # UTF-8 come through as lone surrogates (surrogateescape) and make their line malformed.
    # One open for all (a pipe can be read once): binary trace.dat refused first.
    with Opened(path) as opened, opened.errors(lambda: reader.lines):
        _refuse_binary_trace(opened)
        f = io.TextIOWrapper(
            opened.stream, encoding="utf-8-sig", errors="surrogateescape", newline="\n"
        )
        reader.read(bounded_lines(f, path), report, opened.raw, total_bytes)
    if report is not None:
        report(total_bytes, total_bytes)
    reader.refuse_no_trace(total_bytes)
    reader.skips.warn("trace")
    frame = reader.cols.frame(reader.raw_clock)
    attrs = reader.attrs(frame, opened.compression)
    if reader.order.backwards:  # lenient: sort by time (stable: equal times keep file order)
        order = np.argsort(frame["t_ns"].to_numpy(), kind="stable")
        frame = frame.take(order).reset_index(drop=True)
        reader.order.warn()
    frame.attrs.update(attrs)
    return frame


def _count_sources(codes: np.ndarray) -> dict[str, int]:
    """kvm_age_hva records by how their callback was decided, from callback_source codes."""
    n = np.bincount(codes[codes > 0], minlength=len(CALLBACK_SOURCES))
    return {source: int(n[k]) for k, source in enumerate(CALLBACK_SOURCES) if k}
