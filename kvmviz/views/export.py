"""A Run as a trace kernel people open in their own viewer: Chrome JSON and Perfetto protobuf.

:func:`to_perfetto` writes a :class:`~kvmviz.Run` (simulated or replayed) as a file that
https://ui.perfetto.dev opens, by its suffix:

``.json``
    The Chrome JSON Trace Event Format (also read by Trace Compass and ``chrome://tracing``):
    one process for the VM, one named thread per vCPU and per notifier lane (``M``
    ``thread_name`` events), ``X`` slices, ``i`` instants where a callback arrives, ``C``
    counters. Timestamps are µs, as the format says.
``.pftrace``
    A Perfetto protobuf trace (``perfetto_trace_pb2.Trace``, as the ``perfetto`` package's
    ``TraceProtoBuilder`` writes it): the same tracks, slices and instants, counter tracks
    with units, and *flows* from each callback waiting for ``mmu_lock`` to the faults queued
    behind it (``run.faults["blocked_by"]``: the qrwlock's fairness, which the JSON format
    cannot draw). Timestamps are ns.

What the tracks carry (both formats, one track per row, top to bottom):

- ``notifiers N``: one slice per notifier callback, named after it (``invalidate_range_start``
  ...), from its arrival to its return, with ``waiting for mmu_lock (write)`` and ``holding
  mmu_lock (write)`` nested in it when the kernel's rule made it take the lock
  (:func:`kvmviz.kernels.rule`, whose source line is in the slice's args) and an instant at its
  arrival. Callbacks that overlap in time go to further lanes, so that slices on one track
  always nest.
- ``invalidations N``: each ``invalidate_range_start`` ... ``invalidate_range_end`` pair, the
  window in which ``mmu_notifier_count`` is raised on the kernels whose start raised it (faults
  on the range retry, :func:`kvmviz.exercises.mmu_notifier_retry_hva`).
- ``vCPU N``: each fault attempt's ``waiting for mmu_lock (read)`` and ``holding mmu_lock
  (read)`` (``write`` without the TDP MMU or under the spinlock policy,
  :meth:`kvmviz.Scenario.faults_write`); ``retry`` in the args says the attempt found an
  invalidation under the lock and faults again.
- Counters: ``mmu_lock queue depth`` (acquisitions waiting for ``mmu_lock``) and ``mmu_lock
  vCPUs stalled`` (vCPUs waiting for it), as :func:`kvmviz.metrics.queue_depth` counts them.

The module reads a Run's tables and nothing else: it never simulates.

How it is written: a stream, a chunk at a time
----------------------------------------------
:func:`write` (which :func:`to_perfetto` and :func:`encode` call) never holds the whole trace.
It walks the run in time, a chunk of about :data:`CHUNK_ROWS` fault attempts at a time (the
fault table is sorted by vCPU then time, so each vCPU keeps a cursor), sorts the chunk's
events as the format wants them, spells them with the column-wise byte assembler of
:mod:`kvmviz.views._encode` (compiled by numba) and writes them out. A protobuf ``Trace`` is
``repeated TracePacket packet = 1``, so packets written one after another are a valid trace;
the JSON is its opening, the events, then its closing. Beyond the Run, memory is the chunk
(:data:`CHUNK_BYTES` at most, whatever the run's length) plus tables that grow with the
callbacks and with the acquisitions that waited (the counters and flows), not with the fault
attempts: :func:`memory` estimates it, :func:`estimate` the file's size, both before any work.
"""

from __future__ import annotations

import heapq
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .._shared._checks import check_bool, check_int, check_number
from .._shared._files import check_free, open_atomic
from .._shared._jit import njit
from ..inputs.kernels import rule
from ..stats.metrics import waiting_steps
from . import _encode
from ._encode import pb_key, pb_varint

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_ROWS",
    "FORMATS",
    "TRACE_FORMATS",
    "WAIT_SHARE",
    "chrome_trace",
    "encode",
    "estimate",
    "memory",
    "perfetto_trace",
    "to_perfetto",
    "write",
]

TRACE_FORMATS = (".json", ".pftrace")  # a Perfetto trace's file formats, by suffix
FORMATS = TRACE_FORMATS  # the name before figures and the gallery had formats of their own
"""The suffixes :func:`to_perfetto` writes."""

PID = 1
"""The one process of every trace: the VM."""

CHUNK_ROWS = 16_384
"""Fault attempts (plus callback events and counter samples) encoded per chunk."""

CHUNK_BYTES = 48 * 2**20
"""The most memory one chunk takes while it is encoded (its events, their columns, their
bytes), whatever the length of the run: the streaming export's working budget."""

_BLOCK = 1 << 18  # rows per block of the passes over the whole fault table


# --------------------------------------------------------------------------------------------
# What both formats carry, in integer ns.
# --------------------------------------------------------------------------------------------
def _ns(us) -> np.ndarray:
    """µs to integer ns (the Run's times are float µs; Perfetto counts ns)."""
    return np.rint(np.asarray(us, dtype=float) * 1000.0).astype(np.int64)


@njit(cache=True)
def _ns1(us):
    """One time, µs to integer ns, exactly as :func:`_ns` rounds it."""
    return np.int64(np.rint(us * 1000.0))


def lanes(starts, ends) -> np.ndarray:
    """Put intervals on as few lanes as possible so that none overlaps another on its lane.

    Interval ``i`` is ``[starts[i], ends[i]]``; one that starts where another ends may share
    its lane. Greedy by start time, lowest free lane first: the number of lanes is the
    largest number of intervals open at one instant, which no assignment can beat.

    Returns
    -------
    numpy.ndarray of int
        The lane of each interval, from 0.
    """
    starts, ends = np.asarray(starts), np.asarray(ends)
    lane = np.empty(starts.size, dtype=np.int64)
    busy: list[tuple] = []  # (end, lane) of the intervals still open
    free: list[int] = []
    n_lanes = 0
    for i in np.lexsort((ends, starts)):
        while busy and busy[0][0] <= starts[i]:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane[i] = heapq.heappop(free)
        else:
            lane[i], n_lanes = n_lanes, n_lanes + 1
        heapq.heappush(busy, (ends[i], lane[i]))
    return lane


def _title(run) -> str:
    sc = run.scenario
    mmu = "TDP MMU" if sc.tdp_mmu else "shadow MMU (no TDP MMU)"
    source = "replayed trace" if "replay" in run.notifiers.attrs else "simulated"
    return (
        f"VM: {sc.n_vcpus} vCPUs, {run.kernel}, {run.policy}, {mmu}, seed {run.seed} "
        f"(kvmviz, {source})"
    )


def _blocks(n: int):
    """``slice`` objects covering ``range(n)`` in blocks of :data:`_BLOCK` rows."""
    return (slice(i, min(i + _BLOCK, n)) for i in range(0, n, _BLOCK))


_CALLBACK, _WAIT, _HOLD, _INVALIDATION = range(4)


@dataclass
class _Plan:
    """What both writers write, for one (windowed) run: the tracks; the *side* slices (the
    callbacks, their waits and holds, the invalidation windows: few, kept as small arrays
    in the order of the slices they are), the counters and the flows. The fault attempts'
    slices are not here: they are read from ``run.faults`` a chunk at a time."""

    run: object
    title: str
    tracks: list[str] = field(default_factory=list)
    first_vcpu: int = 0
    # One entry per side slice: track, start/end ns, depth, kind (_CALLBACK ...), notifier row.
    s_track: np.ndarray = None
    s_start: np.ndarray = None
    s_end: np.ndarray = None
    s_depth: np.ndarray = None
    s_kind: np.ndarray = None
    s_row: np.ndarray = None
    arrive: np.ndarray = None  # per notifier row, ns
    lane_track: np.ndarray = None  # per notifier row, its callback's track
    # name -> (unit, ts_ns, values)
    counters: dict = field(default_factory=dict)
    flow_rows: np.ndarray = None  # fault rows whose wait ends a flow, ascending (flow id - 1)
    flows_out: dict = field(default_factory=dict)  # side slice -> [flow ids]
    notifiers: dict = field(default_factory=dict)  # the callbacks' columns, as numpy arrays
    _rules: dict = field(default_factory=dict)

    def rule(self, callback: str, hit: bool):
        key = (callback, hit)
        if key not in self._rules:
            self._rules[key] = rule(self.run.kernel, callback, hit)
        return self._rules[key]


def _side_slices(plan: _Plan) -> None:
    """The notifier lanes and the invalidation lanes, in the order the slices are numbered:
    per callback row its slice, then its wait (if it waited) and hold (if it took the lock);
    then each invalidation window."""
    run = plan.run
    n = run.notifiers
    empty = np.zeros(0, dtype=np.int64)
    plan.s_track = plan.s_start = plan.s_end = plan.s_depth = plan.s_kind = plan.s_row = empty
    plan.arrive = plan.lane_track = empty
    if n.empty:
        return
    arrive, done = _ns(n["t_arrive_us"]), _ns(n["t_done_us"])
    locked = n["locked"].to_numpy(dtype=bool)
    grant = _ns(n["t_grant_us"].fillna(0.0))
    release = _ns(n["t_release_us"].fillna(0.0))
    end = np.where(locked, np.maximum(done, release), done)
    lane = lanes(arrive, end)
    first = len(plan.tracks)
    plan.tracks += [f"notifiers {k}" for k in range(int(lane.max()) + 1)]
    track = first + lane
    waited = locked & (grant > arrive)
    # Per row: the callback, its wait, its hold: 1 + waited + locked slices.
    count = 1 + waited.astype(np.int64) + locked
    rows = np.repeat(np.arange(len(n)), count)
    within = np.arange(rows.size) - np.repeat(np.cumsum(count) - count, count)
    kind = np.where(within == 0, _CALLBACK, np.where((within == 1) & waited[rows], _WAIT, _HOLD))
    start = np.where(kind == _HOLD, grant[rows], arrive[rows])
    stop = np.select([kind == _CALLBACK, kind == _WAIT], [end[rows], grant[rows]], release[rows])
    depth = (kind != _CALLBACK).astype(np.int64)
    tracks = track[rows]
    # Invalidation windows: invalidate_range_start ... the end of the same event.
    callback = n["callback"].astype(str).to_numpy()
    event = n["event"].to_numpy()
    starts = np.flatnonzero(callback == "invalidate_range_start")
    ends = np.flatnonzero(callback == "invalidate_range_end")
    end_of = dict(zip(event[ends], ends, strict=True))
    pairs = [(s, end_of[event[s]]) for s in starts if event[s] in end_of]
    if pairs:
        lo = np.array([arrive[s] for s, _ in pairs], dtype=np.int64)
        hi = np.array([done[e] for _, e in pairs], dtype=np.int64)
        inv_lane = lanes(lo, hi)
        inv_first = len(plan.tracks)
        plan.tracks += [f"invalidations {k}" for k in range(int(inv_lane.max()) + 1)]
        k = len(pairs)
        tracks = np.concatenate([tracks, inv_first + inv_lane])
        start = np.concatenate([start, lo])
        stop = np.concatenate([stop, hi])
        depth = np.concatenate([depth, np.zeros(k, dtype=np.int64)])
        kind = np.concatenate([kind, np.full(k, _INVALIDATION)])
        rows = np.concatenate([rows, np.array([s for s, _ in pairs], dtype=np.int64)])
    plan.s_track, plan.s_start, plan.s_end = tracks.astype(np.int64), start, stop
    plan.s_depth, plan.s_kind, plan.s_row = depth, kind.astype(np.int64), rows.astype(np.int64)
    plan.arrive, plan.lane_track = arrive, track.astype(np.int64)


def _flows(plan: _Plan) -> None:
    """From each callback that waited for ``mmu_lock`` to the faults queued behind it.

    Who queued behind whom is ``run.faults["blocked_by"]`` (the row of ``run.notifiers`` the
    attempt waited behind, see :class:`kvmviz.Run`): a flow goes from a callback's ``waiting
    for mmu_lock (write)`` slice to the ``waiting for mmu_lock`` slice of every attempt whose
    ``blocked_by`` is that callback, numbered from 1 in the order of the fault rows. A
    callback that got the lock at once has no wait slice, so the faults that queued behind
    its hold get no flow."""
    run = plan.run
    wait_slice = np.full(len(run.notifiers) + 1, -1, dtype=np.int64)  # [-1]: no callback
    waits = np.flatnonzero(plan.s_kind == _WAIT)
    wait_slice[plan.s_row[waits]] = waits
    plan.flow_rows = np.zeros(0, dtype=np.int64)
    plan.flows_out = {}
    if waits.size == 0:
        return
    f = run.faults
    request, grant = f["t_request_us"].to_numpy(), f["t_grant_us"].to_numpy()
    blocked = f["blocked_by"].to_numpy()
    found = []
    for rows in _blocks(len(f)):
        b = blocked[rows]
        ok = (_ns(grant[rows]) > _ns(request[rows])) & (b >= 0)
        ok &= wait_slice[np.where(ok, b, -1)] >= 0
        found.append(rows.start + np.flatnonzero(ok))
    plan.flow_rows = np.concatenate(found) if found else plan.flow_rows
    sources = wait_slice[blocked[plan.flow_rows]]
    order = np.argsort(sources, kind="stable")
    ids = order + 1
    for s, group in zip(*_groups(sources[order], ids), strict=True):
        plan.flows_out[int(s)] = group


def _groups(keys: np.ndarray, values: np.ndarray):
    """(distinct keys, list of the values of each) of sorted ``keys``."""
    if keys.size == 0:
        return [], []
    cut = np.flatnonzero(np.diff(keys)) + 1
    return keys[np.concatenate([[0], cut])], [v.tolist() for v in np.split(values, cut)]


def _steps(run, start: float, end: float, holder) -> tuple[np.ndarray, np.ndarray]:
    """:func:`kvmviz.metrics.queue_depth`, from the fault and callback tables block by block
    (without building ``run.lock``): the same steps."""
    f, n = run.faults, run.notifiers
    requests, grants = [], []
    f_request, f_grant = f["t_request_us"].to_numpy(), f["t_grant_us"].to_numpy()
    for rows in _blocks(len(f)):
        r, g = f_request[rows], f_grant[rows]
        waited = (g - r) > 0
        requests.append(r[waited])
        grants.append(g[waited])
    if holder is None:
        locked = n["locked"].to_numpy(dtype=bool)
        r, g = n["t_arrive_us"].to_numpy()[locked], n["t_grant_us"].to_numpy()[locked]
        waited = (g - r) > 0
        requests.append(r[waited])
        grants.append(g[waited])
    requests = np.concatenate([np.zeros(0), *requests])
    grants = np.concatenate([np.zeros(0), *grants])
    return waiting_steps(requests, grants, start, end)


def _counters(plan: _Plan) -> None:
    run = plan.run
    starts = [run.faults["t_request_us"].min(), run.notifiers["t_arrive_us"].min()]
    start = float(min((s for s in starts if np.isfinite(s)), default=0.0))
    end = float(
        max(
            run.scenario.duration_us,
            run.faults["t_release_us"].max() if len(run.faults) else 0.0,
            run.notifiers["t_done_us"].max() if len(run.notifiers) else 0.0,
        )
    )
    for name, unit, holder in (
        ("queue depth", "acquisitions waiting", None),
        ("vCPUs stalled", "vCPUs waiting", "vcpu"),
    ):
        t, value = _steps(run, start, end, holder)
        t = _ns(t)
        last = np.concatenate([t[1:] != t[:-1], [True]])  # the value after an instant's steps
        t, value = t[last], value[last]
        keep = np.concatenate([[True], np.diff(value) != 0])  # then one sample per change
        plan.counters[name] = (unit, t[keep], value[keep].astype(np.int64))


def _span(run) -> tuple[float, float] | None:
    """(first request or arrival, last release or return) of ``run`` in µs; None if empty."""
    f, n = run.faults, run.notifiers
    lo = [f["t_request_us"].min(), n["t_arrive_us"].min()]
    hi = [f["t_release_us"].max(), n["t_done_us"].max(), n["t_release_us"].max()]
    lo = [x for x in lo if np.isfinite(x)]
    hi = [x for x in hi if np.isfinite(x)]
    return (float(min(lo)), float(max(hi))) if lo and hi else None


def _window(run, window):
    """``run`` cut to the fault attempts and callbacks that overlap ``window`` (µs), whole: a
    slice that starts before the window or ends after it is kept entire, and every acquisition
    waiting at an instant of the window is kept, so the counters are exact inside it. A window
    that keeps nothing is a ``ValueError`` naming it and the run's span."""
    if window is None:
        return run, ""
    try:
        start, end = (float(x) for x in window)
    except (TypeError, ValueError):
        raise ValueError(
            f"window must be (start_us, end_us), two numbers, got {window!r}"
        ) from None
    if not (np.isfinite(start) and np.isfinite(end) and 0 <= start < end):
        raise ValueError(f"window must satisfy 0 <= start_us < end_us, got {window!r}")
    f, n = run.faults, run.notifiers
    f = f[(f["t_request_us"].to_numpy() < end) & (f["t_release_us"].to_numpy() >= start)]
    last = np.fmax(n["t_done_us"].to_numpy(), n["t_release_us"].to_numpy())
    kept = (n["t_arrive_us"].to_numpy() < end) & (last >= start)
    n = n[kept]
    if f.empty and n.empty:
        span = _span(run)
        spans = (
            f"the run spans {span[0]:g}-{span[1]:g} µs"
            if span
            else "the run has no fault attempt and no callback at all"
        )
        raise ValueError(
            f"window ({start:g}, {end:g}) µs holds no fault attempt and no callback: {spans}; "
            "nothing to export"
        )
    # blocked_by names rows of the whole run's notifiers: renumber it to the rows kept, -1
    # where the callback a fault queued behind falls outside the window.
    renumber = np.append(np.where(kept, np.cumsum(kept) - 1, -1), -1)
    f = f.assign(blocked_by=renumber[f["blocked_by"].to_numpy()])
    cut = replace(run, faults=f.reset_index(drop=True), notifiers=n.reset_index(drop=True))
    return cut, f", window {start / 1000:g}-{end / 1000:g} ms"


def _plan(run, window=None) -> _Plan:
    run, cut = _window(run, window)
    plan = _Plan(run, _title(run) + cut)
    n = run.notifiers  # read once: each frame[column] copies the (replayed trace's) attrs
    plan.notifiers = {
        "callback": n["callback"].astype(str).to_numpy(),
        "cause": n["cause"].astype(str).to_numpy(),
        "event": n["event"].to_numpy(),
        "hit": n["hit"].to_numpy(dtype=bool),
        "locked": n["locked"].to_numpy(dtype=bool),
        "hva_start": n["hva_start"].to_numpy(),
        "hva_end": n["hva_end"].to_numpy(),
    }
    _side_slices(plan)
    plan.first_vcpu = len(plan.tracks)
    plan.tracks += [f"vCPU {v}" for v in range(run.scenario.n_vcpus)]
    _flows(plan)
    _counters(plan)
    return plan


# --------------------------------------------------------------------------------------------
# The fault attempts, a chunk of time at a time.
# --------------------------------------------------------------------------------------------
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
class _Events:
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


def _side_events(plan: _Plan, proto: bool) -> _Events:
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


def _sorted_events(keys: list, ends: np.ndarray) -> _Events:
    """Events sorted by ``keys`` = (ts, order, depth key, then, cls, major, minor)."""
    keys = [np.asarray(k, dtype=np.int64) for k in keys]
    order = np.lexsort(keys[::-1])
    return _Events([k[order] for k in keys], np.asarray(ends, dtype=bool)[order])


def _chunks(plan: _Plan, side: _Events, proto: bool):
    """Every event of the trace (its slices, instants and counters; for the JSON, the slices'
    begins), in the order the format writes them, as :class:`_Events` of one chunk each."""
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
        budget = CHUNK_ROWS + count(t0, t0)
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
# The side slices' args (few: built as dicts, as a reader would).
# --------------------------------------------------------------------------------------------
def _callback_args(plan: _Plan, row: int) -> dict:
    n = plan.notifiers
    callback = str(n["callback"][row])
    hit, took = bool(n["hit"][row]), bool(n["locked"][row])
    return {
        "callback": callback,
        "hit": "hit" if hit else "miss",
        "kernel": plan.run.kernel,
        "takes mmu_lock": took,
        "rule": plan.rule(callback, hit).source,
        "event": int(n["event"][row]),
        "cause": str(n["cause"][row]),
        "hva": f"[{int(n['hva_start'][row]):#x}, {int(n['hva_end'][row]):#x})",
    }


def _side_slice(plan: _Plan, s: int) -> tuple[str, dict]:
    """(name, args) of side slice ``s``."""
    n, row, kind = plan.notifiers, int(plan.s_row[s]), int(plan.s_kind[s])
    callback = str(n["callback"][row])
    hit = bool(n["hit"][row])
    if kind == _CALLBACK:
        return callback, _callback_args(plan, row)
    if kind == _INVALIDATION:
        raised = plan.rule("invalidate_range_start", hit).count_delta > 0
        name = (
            "mmu_notifier_count raised (faults on the range retry)"
            if raised
            else "invalidation left mmu_notifier_count alone (missed every memslot)"
        )
        args = {
            "kernel": plan.run.kernel,
            "hit": "hit" if hit else "miss",
            "event": int(n["event"][row]),
            "cause": str(n["cause"][row]),
        }
        return name, args
    mode = {
        "kernel": plan.run.kernel,
        "callback": callback,
        "hit": "hit" if hit else "miss",
        "event": int(n["event"][row]),
    }
    return ("waiting for" if kind == _WAIT else "holding") + " mmu_lock (write)", mode


# --------------------------------------------------------------------------------------------
# The two spellings.
# --------------------------------------------------------------------------------------------
# Columns of the assembler's records.
_TS, _TRACK, _NAME, _FAULT, _RETRIES, _RETRY, _HVA, _FLOW, _RECORD, _VALUE, _COUNTER = range(11)
_DUR = _FLOW  # the JSON has no flows, the protobuf no durations
_N_COLUMNS = 11
_FAULT_SLICE, _SLICE_END, _COUNTER_SAMPLE, _RECORD_AS_IS = range(4)  # program numbers

_SEQUENCE = 1  # one writer: every packet on one trusted sequence
_PROCESS_UUID = 1
_COUNTER_UUID = 10  # + counter index
_TRACK_UUID = 100  # + track index
_BEGIN, _END, _INSTANT, _COUNTER_TYPE = 1, 2, 3, 4  # perfetto's TrackEvent.Type


def _dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _fault_modes(plan: _Plan) -> tuple[str, str]:
    mode = "write" if plan.run.scenario.faults_write(plan.run.policy) else "read"
    return f"waiting for mmu_lock ({mode})", f"holding mmu_lock ({mode})"


def _json_programs(plan: _Plan) -> _encode.Compiled:
    kernel = _dumps(plan.run.kernel)
    slice_ = [
        ("const", b',{"ph":"X","pid":%d,"tid":' % PID),
        ("dec", _TRACK),
        ("const", b',"ts":'),
        ("usec", _TS),
        ("const", b',"dur":'),
        ("usec", _DUR),
        ("const", b',"name":'),
        ("choice", _NAME, [_dumps(name) for name in _fault_modes(plan)]),
        (
            "const",
            b',"cat":"mmu_lock","args":{"callback":"page_fault","kernel":%s,"fault":' % kernel,
        ),
        ("dec", _FAULT),
        ("const", b',"retries before":'),
        ("dec", _RETRIES),
        ("const", b',"retry":'),
        ("choice", _RETRY, [b"false", b"true"]),
        ("const", b',"hva":"'),
        ("hex", _HVA),
        ("const", b'"}}'),
    ]
    counter = [
        ("const", b',{"ph":"C","pid":%d,"ts":' % PID),
        ("usec", _TS),
        ("const", b',"name":"mmu_lock","args":{'),
        ("choice", _COUNTER, [_dumps(name) for name in plan.counters]),
        ("const", b":"),
        ("dec", _VALUE),
        ("const", b"}}"),
    ]
    return _encode.compile_programs([slice_, [], counter, [("record", _RECORD)]])


def _annotation(name: str, value) -> bytes:
    """A ``DebugAnnotation`` of a constant, as a ``debug_annotations`` field."""
    if isinstance(value, bool):
        body = pb_key(2, 0) + pb_varint(int(value))
    elif isinstance(value, int):
        body = pb_key(4, 0) + pb_varint(value)
    else:
        body = pb_key(6, 2) + pb_varint(len(value.encode())) + value.encode()
    body += _pb_string(10, name)
    return pb_key(4, 2) + pb_varint(len(body)) + body


def _pb_string(number: int, text: str) -> bytes:
    data = text.encode()
    return pb_key(number, 2) + pb_varint(len(data)) + data


def _proto_programs(plan: _Plan) -> _encode.Compiled:
    def packet(event: list) -> list:
        head = pb_key(10, 0) + pb_varint(_SEQUENCE) + pb_key(11, 2)
        fields = [("const", pb_key(8, 0)), ("varint", _TS), ("const", head), ("len", event)]
        return [("const", pb_key(1, 2)), ("len", fields)]

    def integer(column: int, name: str) -> list:
        body = [("const", pb_key(4, 0)), ("varint", column), ("const", _pb_string(10, name))]
        return [("const", pb_key(4, 2)), ("len", body)]

    hva = [("const", pb_key(6, 2)), ("len", [("hex", _HVA)]), ("const", _pb_string(10, "hva"))]
    slice_ = packet(
        [
            (
                "const",
                _annotation("callback", "page_fault") + _annotation("kernel", plan.run.kernel),
            ),
            *integer(_FAULT, "fault"),
            *integer(_RETRIES, "retries before"),
            ("choice", _RETRY, [_annotation("retry", False), _annotation("retry", True)]),
            ("const", pb_key(4, 2)),
            ("len", hva),
            ("const", pb_key(9, 0) + pb_varint(_BEGIN) + pb_key(11, 0)),
            ("varint", _TRACK),
            ("choice", _NAME, [_pb_string(23, name) for name in _fault_modes(plan)]),
            ("if", _FLOW, [("const", pb_key(48, 1)), ("fixed64", _FLOW)]),
        ]
    )
    end = packet([("const", pb_key(9, 0) + pb_varint(_END) + pb_key(11, 0)), ("varint", _TRACK)])
    counter = packet(
        [
            ("const", pb_key(9, 0) + pb_varint(_COUNTER_TYPE) + pb_key(11, 0)),
            ("varint", _TRACK),
            ("const", pb_key(30, 0)),
            ("varint", _VALUE),
        ]
    )
    return _encode.compile_programs([slice_, end, counter, [("record", _RECORD)]])


class _Faults:
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


def _fault_columns(plan: _Plan, faults: _Faults, chunk: _Events, cols, proto: bool) -> np.ndarray:
    """Fill the fault attempts' records of ``chunk``; returns their positions in it."""
    at = np.flatnonzero(chunk.cls == 1)
    rows, minor = chunk.major[at], chunk.minor[at]
    cols[at, _TS] = chunk.ts[at]
    vcpu = faults.vcpu[rows].astype(np.int64)
    cols[at, _TRACK] = plan.first_vcpu + vcpu + (_TRACK_UUID if proto else 1)
    cols[at, _NAME] = minor // 2
    cols[at, _FAULT] = faults.fault[rows]
    cols[at, _RETRIES] = faults.retries[rows]
    cols[at, _RETRY] = faults.retry[rows]
    cols[at, _HVA] = faults.hva[rows].astype(np.uint64).view(np.int64)
    if proto:
        waits = minor == 0
        where = np.searchsorted(plan.flow_rows, rows)
        inside = where < plan.flow_rows.size
        has = waits & inside
        has[inside] &= plan.flow_rows[where[inside]] == rows[inside]
        cols[at, _FLOW] = np.where(has, where + 1, 0)
    else:
        request = _ns(faults.request[rows])
        grant = _ns(faults.grant[rows])
        release = _ns(faults.release[rows])
        cols[at, _DUR] = np.where(minor == 0, grant - request, release - grant)
    return at


def _json_chunk(plan: _Plan, faults: _Faults, compiled, chunk: _Events) -> np.ndarray:
    programs = np.full(chunk.ts.size, _RECORD_AS_IS, dtype=np.int64)
    cols = np.zeros((chunk.ts.size, _N_COLUMNS), dtype=np.int64)
    programs[_fault_columns(plan, faults, chunk, cols, proto=False)] = _FAULT_SLICE
    records = []
    for i in np.flatnonzero(chunk.cls == 0):
        s = int(chunk.major[i])
        name, args = _side_slice(plan, s)
        start, end = int(plan.s_start[s]), int(plan.s_end[s])
        event = {
            "ph": "X",
            "pid": PID,
            "tid": int(plan.s_track[s]) + 1,
            "ts": start / 1000,
            "dur": (end - start) / 1000,
            "name": name,
            "cat": "mmu_lock",
            "args": args,
        }
        cols[i, _RECORD] = len(records)
        records.append(b"," + _dumps(event))
    return _encode.assemble(compiled, programs, cols, records)


def _write_json(plan: _Plan, handle) -> int:
    written = 0

    def put(data) -> None:
        nonlocal written
        handle.write(data)
        written += len(data)

    head = [{"ph": "M", "pid": PID, "tid": 0, "name": "process_name", "args": {"name": plan.title}}]
    for i, name in enumerate(plan.tracks, start=1):
        head.append(
            {"ph": "M", "pid": PID, "tid": i, "name": "thread_name", "args": {"name": name}}
        )
        head.append(
            {
                "ph": "M",
                "pid": PID,
                "tid": i,
                "name": "thread_sort_index",
                "args": {"sort_index": i},
            }
        )
    put(b'{"traceEvents":[' + b",".join(_dumps(e) for e in head))
    compiled = _json_programs(plan)
    faults = _Faults(plan.run)
    for chunk in _chunks(plan, _side_events(plan, proto=False), proto=False):
        put(_json_chunk(plan, faults, compiled, chunk))
    for rows in range(0, plan.arrive.size, CHUNK_ROWS):
        events = []
        for row in range(rows, min(rows + CHUNK_ROWS, plan.arrive.size)):
            event = {
                "ph": "i",
                "s": "t",
                "pid": PID,
                "tid": int(plan.lane_track[row]) + 1,
                "ts": int(plan.arrive[row]) / 1000,
                "name": f"{plan.notifiers['callback'][row]} arrives",
                "cat": "notifier",
                "args": _callback_args(plan, row),
            }
            events.append(b"," + _dumps(event))
        put(b"".join(events))
    for k, (_unit, ts, values) in enumerate(plan.counters.values()):
        for i in range(0, ts.size, CHUNK_ROWS):
            t = ts[i : i + CHUNK_ROWS]
            cols = np.zeros((t.size, _N_COLUMNS), dtype=np.int64)
            cols[:, _TS], cols[:, _COUNTER], cols[:, _VALUE] = t, k, values[i : i + CHUNK_ROWS]
            put(_encode.assemble(compiled, np.full(t.size, _COUNTER_SAMPLE), cols))
    other = {"kvmviz": plan.title, "time unit": "ts and dur in µs"}
    put(b'],"otherData":' + _dumps(other) + b"}")
    return written


def _annotate(event, args: dict) -> None:
    for key, value in args.items():
        note = event.debug_annotations.add()
        note.name = key
        if isinstance(value, bool):
            note.bool_value = value
        elif isinstance(value, int):
            note.int_value = value
        else:
            note.string_value = str(value)


def _framed(packet) -> bytes:
    """A ``TracePacket`` as one ``packet`` field of a ``Trace``."""
    data = packet.SerializeToString()
    return pb_key(1, 2) + pb_varint(len(data)) + data


def _proto_head(plan: _Plan, pb) -> bytes:
    def packet():
        p = pb.TracePacket()
        p.trusted_packet_sequence_id = _SEQUENCE
        return p

    first = packet()
    first.sequence_flags = pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
    process = first.track_descriptor
    process.uuid = _PROCESS_UUID
    process.process.pid = PID
    process.process.process_name = plan.title
    process.child_ordering = pb.TrackDescriptor.EXPLICIT
    packets = [first]
    rank = 0
    for k, (name, (unit, _ts, _values)) in enumerate(plan.counters.items()):
        p = packet()
        desc = p.track_descriptor
        desc.uuid, desc.parent_uuid = _COUNTER_UUID + k, _PROCESS_UUID
        desc.name = f"mmu_lock {name}"
        desc.sibling_order_rank = rank
        desc.counter.unit = pb.CounterDescriptor.UNIT_COUNT
        desc.counter.unit_name = unit
        packets.append(p)
        rank += 1
    for i, name in enumerate(plan.tracks):
        p = packet()
        desc = p.track_descriptor
        desc.uuid, desc.parent_uuid, desc.name = _TRACK_UUID + i, _PROCESS_UUID, name
        desc.sibling_order_rank = rank + i
        packets.append(p)
    return b"".join(_framed(p) for p in packets)


def _proto_chunk(plan: _Plan, faults: _Faults, compiled, chunk: _Events, pb) -> np.ndarray:
    programs = np.full(chunk.ts.size, _RECORD_AS_IS, dtype=np.int64)
    cols = np.zeros((chunk.ts.size, _N_COLUMNS), dtype=np.int64)
    cols[:, _TS] = chunk.ts
    at = _fault_columns(plan, faults, chunk, cols, proto=True)
    programs[at] = np.where(chunk.minor[at] % 2 == 1, _SLICE_END, _FAULT_SLICE)
    side_ends = np.flatnonzero((chunk.cls == 0) & chunk.end)
    programs[side_ends] = _SLICE_END
    cols[side_ends, _TRACK] = _TRACK_UUID + plan.s_track[chunk.major[side_ends]]
    samples = np.flatnonzero(chunk.cls == 3)
    programs[samples] = _COUNTER_SAMPLE
    counters = list(plan.counters.values())
    for k in range(len(counters)):
        mine = samples[chunk.major[samples] == k]
        cols[mine, _TRACK] = _COUNTER_UUID + k
        cols[mine, _VALUE] = counters[k][2][chunk.minor[mine]]
    records = []
    for i in np.flatnonzero(((chunk.cls == 0) & ~chunk.end) | (chunk.cls == 2)):
        p = pb.TracePacket()
        p.trusted_packet_sequence_id = _SEQUENCE
        p.timestamp = int(chunk.ts[i])
        event = p.track_event
        if chunk.cls[i] == 2:
            row = int(chunk.major[i])
            event.type = _INSTANT
            event.track_uuid = _TRACK_UUID + int(plan.lane_track[row])
            event.name = f"{plan.notifiers['callback'][row]} arrives"
            _annotate(event, _callback_args(plan, row))
        else:
            s = int(chunk.major[i])
            name, args = _side_slice(plan, s)
            event.type = _BEGIN
            event.track_uuid = _TRACK_UUID + int(plan.s_track[s])
            event.name = name
            _annotate(event, args)
            if s in plan.flows_out:
                event.flow_ids.extend(plan.flows_out[s])
        cols[i, _RECORD] = len(records)
        records.append(_framed(p))
    return _encode.assemble(compiled, programs, cols, records)


def _write_proto(plan: _Plan, handle) -> int:
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    head = _proto_head(plan, pb)
    handle.write(head)
    written = len(head)
    compiled = _proto_programs(plan)
    faults = _Faults(plan.run)
    for chunk in _chunks(plan, _side_events(plan, proto=True), proto=True):
        data = _proto_chunk(plan, faults, compiled, chunk, pb)
        handle.write(data)
        written += data.size
    return written


# --------------------------------------------------------------------------------------------
# The public functions.
# --------------------------------------------------------------------------------------------
def _check_run(run) -> None:
    from ..model.run import Run

    if not isinstance(run, Run):
        raise TypeError(f"run must be a kvmviz.Run, got {type(run).__name__}")


def _format(suffix) -> str:
    if not isinstance(suffix, str) or suffix.lower() not in TRACE_FORMATS:
        raise ValueError(
            f"unknown trace format {suffix!r}; expected one of {', '.join(TRACE_FORMATS)}"
        )
    return suffix.lower()


def write(run, handle, suffix: str, *, window=None) -> int:
    """Stream ``run`` as a trace in the format ``suffix`` into the binary file ``handle``.

    The trace is encoded and written a chunk at a time (see the module's description), so
    memory does not grow with the length of the run beyond the Run itself: :func:`memory`.

    Parameters
    ----------
    run : Run
    handle : binary file object
        Anything with a ``write(bytes)`` method (an open file, :class:`io.BytesIO`, a pipe).
    suffix : {".json", ".pftrace"}
        The format (:data:`TRACE_FORMATS`).
    window : (float, float), optional
        Only the fault attempts and callbacks that overlap ``[start_us, end_us)``, each whole;
        a window that holds none is a ``ValueError`` naming it and the run's span.

    Returns
    -------
    int
        The bytes written.

    Examples
    --------
    >>> with open("v5.12.pftrace", "wb") as handle:  # doctest: +SKIP
    ...     export.write(run, handle, ".pftrace")
    178000000
    """
    _check_run(run)
    suffix = _format(suffix)
    plan = _plan(run, window)
    return _write_json(plan, handle) if suffix == ".json" else _write_proto(plan, handle)


def encode(run, suffix: str, *, window=None) -> bytes:
    """A Run as the bytes of a trace file: ``".json"`` or ``".pftrace"`` (:data:`TRACE_FORMATS`),
    the whole run or the ``window`` of :func:`write`.

    Parameters
    ----------
    run : Run
    suffix : {".json", ".pftrace"}
    window : (float, float), optional

    Returns
    -------
    bytes
        What :func:`write` writes: the whole file in memory (use :func:`write` or
        :func:`to_perfetto` for a long run).
    """
    buffer = io.BytesIO()
    write(run, buffer, suffix, window=window)
    return buffer.getvalue()


def chrome_trace(run, *, window=None) -> dict:
    """A Run in the Chrome JSON Trace Event Format, as a ``dict`` ready for :func:`json.dump`.

    ``traceEvents`` holds, in this order: ``M`` metadata (``process_name``, then
    ``thread_name`` and ``thread_sort_index`` of each track, tid = row from the top, from 1),
    ``X`` slices (``ts`` and ``dur`` in µs, ``args`` as in the module's description; sorted
    by start, then depth), ``i`` instants (thread scope) for the callbacks' arrivals, and
    ``C`` counters (name ``mmu_lock``, one key each: ``queue depth``, ``vCPUs stalled``, which
    Perfetto shows as the tracks ``mmu_lock queue depth`` and ``mmu_lock vCPUs stalled``; a
    sample at each change). ``otherData`` names the run. No flows: the format's flow events
    bind to slices by timestamp only; the ``.pftrace`` carries them.

    Parameters
    ----------
    run : Run
    window : (float, float), optional
        Only the fault attempts and callbacks that overlap ``[start_us, end_us)``, each whole.

    Returns
    -------
    dict
        ``json.loads`` of what :func:`write` writes for ``".json"``.
    """
    return json.loads(encode(run, ".json", window=window))


def perfetto_trace(run, *, window=None) -> bytes:
    """A Run as a serialized Perfetto protobuf trace (``perfetto_trace_pb2.Trace``).

    One process track for the VM; under it, in this order (``child_ordering`` explicit), a
    counter track per counter (``UNIT_COUNT``, ``unit_name`` saying what is counted) and one
    named track per notifier lane, invalidation lane and vCPU. Slices are ``TYPE_SLICE_BEGIN``
    / ``TYPE_SLICE_END`` pairs with the args as debug annotations on the begin; arrivals are
    ``TYPE_INSTANT``. Each flow starts on a callback's ``waiting for mmu_lock (write)`` begin
    (``flow_ids``) and ends on the ``waiting for mmu_lock`` begin of each fault attempt whose
    ``run.faults["blocked_by"]`` is that callback (``terminating_flow_ids``). Timestamps are
    ns of simulated time, from 0; packets are in time order, ends before begins at one
    instant. Nothing is interned: every packet stands alone.

    Parameters
    ----------
    run : Run
    window : (float, float), optional
        As for :func:`chrome_trace`.

    Returns
    -------
    bytes
    """
    return encode(run, ".pftrace", window=window)


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in TRACE_FORMATS:
        raise ValueError(
            f"{path}: cannot tell the trace format from the suffix {path.suffix or '(none)'!r}; "
            f"expected one of {', '.join(TRACE_FORMATS)}"
        )
    return suffix


def to_perfetto(run, path, *, window=None, force: bool = False) -> Path:
    """Write ``run`` as a trace Perfetto opens, in the format of ``path``'s suffix.

    Parameters
    ----------
    run : Run
        A simulated run (:func:`kvmviz.simulate`) or a replayed one
        (:func:`kvmviz.experiments.replay_trace`).
    path : str or Path
        Ending in ``.json`` (Chrome JSON Trace Event Format) or ``.pftrace`` (Perfetto
        protobuf); see the module's description for what each carries.
    window : (float, float), optional
        Export only the fault attempts and callbacks that overlap ``[start_us, end_us)`` of
        simulated time, each whole (say :func:`kvmviz.metrics.busiest_window`); default the
        whole run. A window that holds none of them is refused (``ValueError`` naming the
        window and the run's span). A replayed trace at 64 vCPUs is a million fault attempts,
        some 200 MB (:func:`estimate`).
    force : bool
        Replace an existing file. Without it an existing file is refused (``FileExistsError``)
        before any work. Only ``True`` and ``False`` are booleans (``TypeError`` otherwise).
        The file is streamed to a temporary file beside ``path`` and moved into place when
        complete: a failure or an interrupt leaves nothing behind.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> run = kv.simulate(kv.Scenario(n_vcpus=8), "v5.12")  # doctest: +SKIP
    >>> kv.to_perfetto(run, "v5.12.pftrace")  # doctest: +SKIP
    PosixPath('v5.12.pftrace')
    """
    _check_run(run)
    force = check_bool(force, "force")
    path = Path(path)
    suffix = _suffix(path)
    _window(run, window)  # a bad or empty window is refused before any work
    check_free([path], force=force)
    plan = _plan(run, window)
    with open_atomic(path, force=force) as handle:
        _write_json(plan, handle) if suffix == ".json" else _write_proto(plan, handle)
    return path


# --------------------------------------------------------------------------------------------
# What an export costs, before any work.
# --------------------------------------------------------------------------------------------
# Bytes per record, measured on simulated and replayed runs (see tests/test_export.py): the
# file's opening and closing, a track, a fault attempt (its hold), a fault attempt that waited
# (its wait slice and the ~2 counter samples it moves), a callback (its slice, instant, wait,
# hold and its share of an invalidation window).
_SIZES = {
    ".json": {"head": 400, "track": 160, "attempt": 226, "wait": 382, "callback": 1070},
    ".pftrace": {"head": 200, "track": 28, "attempt": 168, "wait": 204, "callback": 830},
}
WAIT_SHARE = 0.1
"""The share of fault attempts that wait for ``mmu_lock`` :func:`estimate` assumes by default
(the bundled replay: 0.2%; the default 416-vCPU run: 5% on v5.15, 36% on v5.12 at 2 ms)."""


def _share(value) -> float:
    share = check_number(value, "wait_share", minimum=0)
    if share > 1:
        raise ValueError(f"wait_share = {value!r}: expected a share between 0 and 1")
    return share


def estimate(
    n_fault_attempts: int,
    n_callbacks: int,
    suffix: str,
    *,
    n_vcpus: int = 0,
    wait_share: float = WAIT_SHARE,
) -> int:
    """The size of the trace file of a run, in bytes, before the run exists.

    From the counts :func:`kvmviz.engine.estimate` gives (``Work.attempts``,
    ``Work.callbacks``), or a Run's ``len(run.faults)`` and ``len(run.notifiers)``. Within
    ±25% of the file written for runs where up to a fifth of the attempts wait (the default
    ``wait_share``); given the run's own share of waiting attempts, within ±10%.

    Parameters
    ----------
    n_fault_attempts, n_callbacks : int
        Rows of ``run.faults`` and ``run.notifiers``.
    suffix : {".json", ".pftrace"}
    n_vcpus : int, optional
        vCPU tracks (a few dozen bytes each).
    wait_share : float, optional
        Share of the attempts that waited for ``mmu_lock`` (each adds a slice and counter
        samples); 1.0 gives an upper bound.

    Returns
    -------
    int
        Bytes.

    Examples
    --------
    >>> estimate(1_000_000, 2_000, ".pftrace")
    190060312
    """
    size = _SIZES[_format(suffix)]
    attempts = check_int(n_fault_attempts, "n_fault_attempts", minimum=0)
    callbacks = check_int(n_callbacks, "n_callbacks", minimum=0)
    vcpus = check_int(n_vcpus, "n_vcpus", minimum=0)
    share = _share(wait_share)
    total = size["head"] + size["track"] * (vcpus + 4)
    total += attempts * (size["attempt"] + share * size["wait"]) + callbacks * size["callback"]
    return round(total)


def memory(n_fault_attempts: int, n_callbacks: int, *, wait_share: float = 1.0) -> int:
    """The memory :func:`write` needs beyond the Run, in bytes: an upper bound.

    The chunk (:data:`CHUNK_BYTES`, whatever the run's length) plus the tables that grow with
    the callbacks (their slices and events, ~600 B each) and with the attempts that waited
    (counter samples and flows, ~400 B each). A ``window`` adds a copy of the rows it keeps.
    One export at a time: writing several kernels or formats one after the other needs no
    more.

    Parameters
    ----------
    n_fault_attempts, n_callbacks : int
    wait_share : float, optional
        Share of the attempts that wait; the default 1.0 bounds every run.

    Returns
    -------
    int
        Bytes.
    """
    attempts = check_int(n_fault_attempts, "n_fault_attempts", minimum=0)
    callbacks = check_int(n_callbacks, "n_callbacks", minimum=0)
    share = _share(wait_share)
    return int(CHUNK_BYTES + 600 * callbacks + 400 * share * attempts)
