"""The fault attempts of a Run streamed in time, a chunk at a time, as the events a format writes.

The fault table is sorted by vCPU then time, so each vCPU keeps a cursor: :func:`chunks` walks
the run from its first event to its last, cutting chunks of time that hold about ``chunk_rows``
fault attempts (an instant is never split), and yields each chunk's events, the fault attempts'
waits and holds merged with the plan's side events (:func:`side_events`), sorted as the format
writes them (:class:`Events`). The cursor and event loops are compiled by numba.

:class:`Faults` and :func:`fault_columns` fill the assembler's records of the fault attempts
(:mod:`kvmviz.views._encode`), in the column layout both encoders share (``TS``, ``TRACK``...)
and with its program numbers (``FAULT_SLICE``...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._shared._jit import njit
from .trace_plan import Plan


@njit(cache=True)
def _ns1(us):
    """One time, µs to integer ns, exactly as :func:`kvmviz.views.trace_plan.ns` rounds it."""
    return np.int64(np.rint(us * 1000.0))


@njit(cache=True)
def _sorted_by_vcpu(vcpu, request, release, n_vcpus):
    """Whether rows are sorted by vCPU (each in ``[0, n_vcpus)``), each vCPU's requests and
    releases in time order: what the per-vCPU cursors need."""
    for i in range(vcpu.size):
        if vcpu[i] < 0 or vcpu[i] >= n_vcpus:
            return False
        if i and vcpu[i] == vcpu[i - 1]:
            if request[i] < request[i - 1] or release[i] < release[i - 1]:
                return False
        elif i and vcpu[i] < vcpu[i - 1]:
            return False
    return True


@njit(cache=True)
def _advance(lo, stop, release, t):
    """Move each vCPU's cursor to its first row released at or after ``t`` ns."""
    for v in range(lo.size):
        r = lo[v]
        while r < stop[v] and _ns1(release[r]) < t:
            r += 1
        lo[v] = r


@njit(cache=True)
def _before(lo, stop, request, t, hi):
    """``hi[v]``: each vCPU's first row from ``lo[v]`` that requests at or after ``t`` ns;
    returns the rows in between, all vCPUs."""
    total = 0
    for v in range(lo.size):
        a, b = lo[v], stop[v]
        while a < b:
            m = (a + b) // 2
            if _ns1(request[m]) < t:
                a = m + 1
            else:
                b = m
        hi[v] = a
        total += a - lo[v]
    return total


@njit(cache=True)
def _fault_events(lo, hi, request, grant, release, t0, t1, begins_only):
    """The events of rows ``[lo[v], hi[v])`` at ``t0 <= ts < t1`` ns: (ts, order, then, row,
    minor). ``minor``: 0 wait begins, 1 wait ends, 2 hold begins, 3 hold ends. ``order`` and
    ``then`` are the protobuf sort keys (ends 0, begins 3, an empty slice's end ``then`` 1)."""
    n = 0
    for v in range(lo.size):
        n += 4 * (hi[v] - lo[v])
    ts = np.empty(n, dtype=np.int64)
    order = np.empty(n, dtype=np.int64)
    then = np.empty(n, dtype=np.int64)
    row = np.empty(n, dtype=np.int64)
    minor = np.empty(n, dtype=np.int64)
    k = 0
    for v in range(lo.size):
        for r in range(lo[v], hi[v]):
            a, b, c = _ns1(request[r]), _ns1(grant[r]), _ns1(release[r])
            for m in range(4):
                if m == 0:
                    if b <= a:
                        continue
                    t, o, th = a, 3, 0
                elif m == 1:
                    if b <= a or begins_only:
                        continue
                    t, o, th = b, 0, 0
                elif m == 2:
                    t, o, th = b, 3, 0
                else:
                    if begins_only:
                        continue
                    if c == b:
                        t, o, th = b, 3, 1
                    else:
                        t, o, th = c, 0, 0
                if t < t0 or t >= t1:
                    continue
                ts[k], order[k], then[k], row[k], minor[k] = t, o, th, r, m
                k += 1
    return ts[:k], order[:k], then[:k], row[:k], minor[:k]


@dataclass
class Events:
    """Events in the order they are written: their sort keys ``(ts, order, depth key, then,
    cls, major, minor)`` and which are slice ends.

    ``cls``: 0 a side slice (``major`` its index), 1 a fault attempt's slice (``major`` its
    row, ``minor`` as in :func:`_fault_events`), 2 an instant (``major`` its notifier row), 3
    a counter sample (``major`` the counter, ``minor`` the sample). ``order`` and ``then`` are
    the protobuf's tie-breaks (0 for the JSON, whose slices sort by start then depth).
    """

    keys: list
    end: np.ndarray

    @property
    def ts(self) -> np.ndarray:
        return self.keys[0]

    @property
    def cls(self) -> np.ndarray:
        return self.keys[4]

    @property
    def major(self) -> np.ndarray:
        return self.keys[5]

    @property
    def minor(self) -> np.ndarray:
        return self.keys[6]


def side_events(plan: Plan, proto: bool) -> Events:
    """The side slices' begins (and, for the protobuf, their ends, the instants and the counter
    samples) sorted as the format writes them: by time, then the format's tie-breaks."""
    s = np.arange(plan.s_start.size)
    zero = np.zeros(s.size, dtype=np.int64)
    if not proto:  # JSON: slice begins, by (start, depth, slice)
        keys = [plan.s_start, zero, plan.s_depth, zero, zero, s, zero]
        return _sorted_events(keys, np.zeros(s.size, dtype=bool))
    empty = plan.s_end == plan.s_start
    parts = [
        # begins: (start, 3, depth, 0); ends: (end, 0, -depth, 0), or right after an empty begin
        [plan.s_start, zero + 3, plan.s_depth, zero, zero, s, zero],
        [
            plan.s_end,
            np.where(empty, 3, 0),
            np.where(empty, plan.s_depth, -plan.s_depth),
            empty.astype(np.int64),
            zero,
            s,
            zero + 1,
        ],
    ]
    rows = np.arange(plan.arrive.size)
    z = np.zeros(rows.size, dtype=np.int64)
    parts.append([plan.arrive, z + 1, z, z, z + 2, rows, z])
    for k, (_unit, ts, _values) in enumerate(plan.counters.values()):
        z = np.zeros(ts.size, dtype=np.int64)
        parts.append([ts, z + 2, z, z, z + 3, z + k, np.arange(ts.size)])
    keys = [np.concatenate(column) for column in zip(*parts, strict=True)]
    ends = np.concatenate([np.zeros(s.size, bool), np.ones(s.size, bool)])
    ends = np.concatenate([ends, np.zeros(keys[0].size - ends.size, bool)])
    return _sorted_events(keys, ends)


def _sorted_events(keys: list, ends: np.ndarray) -> Events:
    """Events sorted by ``keys`` = (ts, order, depth key, then, cls, major, minor)."""
    keys = [np.asarray(k, dtype=np.int64) for k in keys]
    order = np.lexsort(keys[::-1])
    return Events([k[order] for k in keys], np.asarray(ends, dtype=bool)[order])


def chunks(plan: Plan, side: Events, proto: bool, chunk_rows: int):
    """Every event of the trace (its slices, instants and counters; for the JSON, the slices'
    begins), in the order the format writes them, as :class:`Events` of one chunk each."""
    f = plan.run.faults
    request = np.ascontiguousarray(f["t_request_us"].to_numpy(dtype=float))
    grant = np.ascontiguousarray(f["t_grant_us"].to_numpy(dtype=float))
    release = np.ascontiguousarray(f["t_release_us"].to_numpy(dtype=float))
    vcpu = np.ascontiguousarray(f["vcpu"].to_numpy(), dtype=np.int64)
    n_vcpus = plan.run.scenario.n_vcpus
    big = np.int64(2**62)
    if len(f) and _sorted_by_vcpu(vcpu, request, release, n_vcpus):
        bounds = np.searchsorted(vcpu, np.arange(n_vcpus + 1))
        lo, stop = bounds[:-1].copy(), bounds[1:].copy()
        firsts = [_ns1(request[i]) for i in lo[lo < stop]]
        lasts = [_ns1(release[i - 1]) for i in stop[lo < stop]]
        t_first, t_last = min(firsts), max(lasts)
    else:  # unsorted (never from kvmviz): one chunk of everything
        lo, stop = np.zeros(1, np.int64), np.full(1, len(f), np.int64)
        t_first, t_last = -big, big - 2
    if side.ts.size:
        t_first, t_last = min(t_first, side.ts[0]), max(t_last, side.ts[-1])
    elif not len(f):
        return
    hi = np.empty_like(lo)

    def count(t0, t1) -> int:
        rows = _before(lo, stop, request, t1, hi)
        return rows + int(np.searchsorted(side.ts, t1) - np.searchsorted(side.ts, t0))

    t0 = t_first
    while t0 <= t_last:
        _advance(lo, stop, release, t0)
        t1 = t_last + 1
        # The budget counts rows that begin in the chunk: the rows still in flight at t0 (at
        # most one per vCPU) come on top, or a budget below n_vcpus would crawl a ns at a time.
        budget = chunk_rows + count(t0, t0)
        if count(t0, t1) > budget:  # the latest end that keeps the chunk in budget
            low, high = t0 + 1, t1  # count(low) may exceed it: one instant is never split
            while low < high:
                middle = (low + high + 1) // 2
                if count(t0, middle) <= budget:
                    low = middle
                else:
                    high = middle - 1
            t1 = low
        _before(lo, stop, request, t1, hi)
        ts, order, then, row, minor = _fault_events(
            lo, hi, request, grant, release, t0, t1, not proto
        )
        if not proto:
            order = then = np.zeros(ts.size, dtype=np.int64)
        a, b = np.searchsorted(side.ts, [t0, t1])
        zero = np.zeros(ts.size, dtype=np.int64)
        faults = [ts, order, zero, then, zero + 1, row, minor]
        keys = [np.concatenate([x, k[a:b]]) for x, k in zip(faults, side.keys, strict=True)]
        ends = np.concatenate([minor % 2 == 1, side.end[a:b]])
        yield _sorted_events(keys, ends)
        t0 = t1


# --------------------------------------------------------------------------------------------
# The fault attempts' records, in the assembler's columns.
# --------------------------------------------------------------------------------------------
# Columns of the assembler's records.
TS, TRACK, NAME, FAULT, RETRIES, RETRY, HVA, FLOW, RECORD, VALUE, COUNTER = range(11)
DUR = FLOW  # the JSON has no flows, the protobuf no durations
N_COLUMNS = 11
FAULT_SLICE, SLICE_END, COUNTER_SAMPLE, RECORD_AS_IS = range(4)  # program numbers


class Faults:
    """The fault table's columns the records read (views, not copies)."""

    def __init__(self, run) -> None:
        f = run.faults
        self.vcpu = f["vcpu"].to_numpy()
        self.fault = f["fault"].to_numpy()
        self.retries = f["retries"].to_numpy()
        self.retry = f["retry"].to_numpy(dtype=bool)
        self.hva = f["hva"].to_numpy()
        self.request = f["t_request_us"].to_numpy()
        self.grant = f["t_grant_us"].to_numpy()
        self.release = f["t_release_us"].to_numpy()


def fault_columns(plan: Plan, faults: Faults, chunk: Events, cols, first_track: int):
    """Fill the columns both formats share of the fault attempts' records of ``chunk``: time,
    track, slice name (``minor // 2``: 0 the wait, 1 the hold), fault, retries, retry, hva.

    Parameters
    ----------
    plan : Plan
    faults : Faults
    chunk : Events
    cols : numpy.ndarray of int64, shape (len(chunk.ts), N_COLUMNS)
        The chunk's records, filled in place.
    first_track : int
        The id of the plan's first track in the format (a JSON tid 1, a protobuf track uuid).

    Returns
    -------
    numpy.ndarray of int
        The positions of the fault attempts' events in ``chunk``; the duration (JSON) or the
        flow (protobuf) is the format's to fill.
    """
    at = np.flatnonzero(chunk.cls == 1)
    rows, minor = chunk.major[at], chunk.minor[at]
    cols[at, TS] = chunk.ts[at]
    vcpu = faults.vcpu[rows].astype(np.int64)
    cols[at, TRACK] = plan.first_vcpu + vcpu + first_track
    cols[at, NAME] = minor // 2
    cols[at, FAULT] = faults.fault[rows]
    cols[at, RETRIES] = faults.retries[rows]
    cols[at, RETRY] = faults.retry[rows]
    cols[at, HVA] = faults.hva[rows].astype(np.uint64).view(np.int64)
    return at
