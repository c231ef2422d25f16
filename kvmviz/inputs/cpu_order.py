"""The time order of a trace: each CPU's records are in time order; CPUs interleave.

:class:`CpuOrder` holds the rule and checks it record by record; :class:`TraceOrderError` is a
record that breaks it.
"""

from __future__ import annotations

import warnings

from .timestamps import format_ns, parse_timestamp
from .trace_errors import TraceParseError, TraceParseWarning, snippet

__all__ = ["CpuOrder", "TraceOrderError"]


class TraceOrderError(TraceParseError):
    """A record whose timestamp is earlier than the previous record's on the same CPU.

    A CPU's records never go back in time in a real trace (the rule and its sources:
    :class:`CpuOrder`). ``lenient=True`` sorts them instead.

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
        exact = [parse_timestamp(v) if isinstance(v, str) else None for v in (t_s, previous_t_s)]
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
            got=f"{shown[0]}, {earlier:.6g} earlier, in {snippet(text)!r}",
        )


class CpuOrder:
    """The time-order rule of a trace, checked record by record.

    Each CPU's ring buffer is written in time order (``__rb_reserve_next()`` in
    kernel/trace/ring_buffer.c never lets a CPU's timestamp go back), and the readers merge
    the buffers by taking the earliest next record (``__find_next_entry()`` in
    kernel/trace/trace.c for ``trace``; ``read_data_info()`` in trace-cmd, which merges CPUs,
    buffer instances and input files alike, and whose ``--ts-check`` warns "Record on cpu %d
    went backwards"). So in a real trace a CPU's records never go back in time, and the rule
    is per CPU of each buffer instance (``trace-cmd record -B``), which has its own ring
    buffers. Records of *different* CPUs may interleave out of time order (clocks that
    disagree across CPUs, ``per_cpu/cpuN/trace`` files concatenated): they are accepted in
    file order and merged by time later (:func:`kvmviz.traces.to_stream` sorts by time).
    Timestamps are compared exactly, as integers (ns, or a raw clock's count).

    A record that goes back in time on its CPU is a :class:`TraceOrderError` naming the file,
    both lines and both timestamps; lenient, it is counted (``backwards``), the reader sorts
    the frame by time and :meth:`warn` says how many and the first.

    Parameters
    ----------
    path : str or os.PathLike
        The trace, as messages name it.
    lenient : bool
        Count records that go back in time instead of raising.
    """

    def __init__(self, path, lenient: bool) -> None:
        self.path, self.lenient = path, lenient
        # (instance, cpu) -> (its latest timestamp, exact; that record's line; its fraction
        # digits, None for a raw clock count)
        self.latest: dict[tuple[str | None, int], tuple[int, int, int | None]] = {}
        self.backwards = 0  # records earlier than an earlier record of their CPU
        self.first = None  # (line, timestamp, previous line, previous timestamp, cpu) of the first

    def check(
        self, inst: str | None, cpu: int, t: int, digits: int | None, lineno: int, ts: str, line
    ) -> None:
        """Record ``lineno`` (``line``), at exact time ``t`` printed as ``ts`` with ``digits``
        fraction digits (None: a raw count), of CPU ``cpu`` of buffer instance ``inst``."""
        key = (inst, cpu)
        latest = self.latest.get(key)
        if latest is None or t >= latest[0]:
            self.latest[key] = (t, lineno, digits)
            return
        previous = str(latest[0]) if digits is None else format_ns(latest[0], latest[2])
        if not self.lenient:
            raise TraceOrderError(
                self.path, lineno, line, cpu, ts, latest[1], previous, instance=inst
            )
        self.backwards += 1
        if self.first is None:
            self.first = (lineno, ts, latest[1], previous, cpu)

    def warn(self) -> None:
        """One :class:`~kvmviz.traces.TraceParseWarning` for the records sorted, if any; call it
        from the public reader itself (the warning names that reader's caller)."""
        if not self.backwards:
            return
        backwards = self.backwards
        line, t, previous_line, previous_t, cpu = self.first
        warnings.warn(
            f"{self.path}: sorted {backwards} record{'s' if backwards > 1 else ''} whose timestamp "
            f"went back in time on its CPU into time order (first: line {line}, timestamp {t}, "
            f"earlier than {previous_t} on line {previous_line}, CPU {cpu}); see "
            ".attrs['reordered']",
            TraceParseWarning,
            stacklevel=3,
        )
