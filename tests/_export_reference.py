"""The oracle of tests/test_export.py: kvmviz.export as it was before it streamed.

This is the export of kvmviz 0.x up to issue 20, kept verbatim (only its imports made
absolute): it builds every slice as a Python tuple, the JSON as one dict and the protobuf
with ``TraceProtoBuilder``, then serializes. Slow and memory-hungry, but plainly right; the
streaming :mod:`kvmviz.export` must write the same traces. Its description follows.

A Run as a trace kernel people open in their own viewer: Chrome JSON and Perfetto protobuf.

:func:`to_perfetto` writes a :class:`~kvmviz.Run` (simulated or replayed) as a file that
https://ui.perfetto.dev opens, by its suffix:

``.json``
    The Chrome JSON Trace Event Format (also read by Trace Compass and ``chrome://tracing``):
    one process for the VM, one named thread per vCPU and per notifier lane (``M``
    ``thread_name`` events), ``X`` slices, ``i`` instants where a callback arrives, ``C``
    counters. Timestamps are µs, as the format says.
``.pftrace``
    A Perfetto protobuf trace, built with the ``perfetto`` package's
    :class:`~perfetto.trace_builder.proto_builder.TraceProtoBuilder`: the same tracks, slices
    and instants, counter tracks with units, and *flows* from each callback waiting for
    ``mmu_lock`` to the faults queued behind it (``run.faults["blocked_by"]``: the qrwlock's
    fairness, which the JSON format cannot draw). Timestamps are ns.

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
  vCPUs stalled`` (vCPUs waiting for it), from :func:`kvmviz.metrics.queue_depth`.

The module reads a Run's tables and nothing else: it never simulates.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from kvmviz._shared._files import check_free, write_atomic
from kvmviz.kernels import rule
from kvmviz.metrics import queue_depth
from kvmviz.views.metric_labels import counter_names

__all__ = ["FORMATS", "chrome_trace", "encode", "perfetto_trace", "to_perfetto"]

FORMATS = (".json", ".pftrace")
"""The suffixes :func:`to_perfetto` writes."""

PID = 1
"""The one process of every trace: the VM."""


# --------------------------------------------------------------------------------------------
# What both formats carry, in integer ns.
# --------------------------------------------------------------------------------------------
def _ns(us) -> np.ndarray:
    """µs to integer ns (the Run's times are float µs; Perfetto counts ns)."""
    return np.rint(np.asarray(us, dtype=float) * 1000.0).astype(np.int64)


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


@dataclass
class _Trace:
    """A Run's tracks, slices, instants, counters and flows: what both writers write."""

    title: str
    tracks: list[str] = field(default_factory=list)
    # One row per slice: track, start_ns, end_ns, depth (0: top level), name, args.
    slices: list[tuple] = field(default_factory=list)
    # One row per instant: track, ts_ns, name, args.
    instants: list[tuple] = field(default_factory=list)
    # name -> (unit, ts_ns, values)
    counters: dict = field(default_factory=dict)
    # (slice index of the waiting callback, slice index of a fault queued behind it)
    flows: list[tuple[int, int]] = field(default_factory=list)


def _title(run) -> str:
    sc = run.scenario
    mmu = "TDP MMU" if sc.tdp_mmu else "shadow MMU (no TDP MMU)"
    source = "replayed trace" if "replay" in run.notifiers.attrs else "simulated"
    return (
        f"VM: {sc.n_vcpus} vCPUs, {run.kernel}, {run.policy}, {mmu}, seed {run.seed} "
        f"(kvmviz, {source})"
    )


def _hex(values) -> list[str]:
    return [f"{int(v):#x}" for v in values]


def _notifier_tracks(trace: _Trace, run) -> dict:
    """The callbacks' lanes and the invalidation windows' lanes; returns, per callback row, the
    index of its ``waiting for mmu_lock`` slice (or -1), for the flows."""
    n = run.notifiers
    if n.empty:
        return {}
    arrive, done = _ns(n["t_arrive_us"]), _ns(n["t_done_us"])
    locked = n["locked"].to_numpy(dtype=bool)
    grant = _ns(n["t_grant_us"].fillna(0.0))
    release = _ns(n["t_release_us"].fillna(0.0))
    end = np.where(locked, np.maximum(done, release), done)
    lane = lanes(arrive, end)
    first = len(trace.tracks)
    trace.tracks += [f"notifiers {k}" for k in range(int(lane.max()) + 1)]
    kernel = run.kernel
    waits = {}
    columns = zip(
        n["event"].to_numpy(),
        n["cause"].astype(str).to_numpy(),
        n["callback"].astype(str).to_numpy(),
        _hex(n["hva_start"]),
        _hex(n["hva_end"]),
        n["hit"].to_numpy(dtype=bool),
        locked,
        strict=True,
    )
    for row, (event, cause, callback, lo, hi, hit, took) in enumerate(columns):
        track = first + int(lane[row])
        the_rule = rule(kernel, callback, bool(hit))
        args = {
            "callback": callback,
            "hit": "hit" if hit else "miss",
            "kernel": kernel,
            "takes mmu_lock": bool(took),
            "rule": the_rule.source,
            "event": int(event),
            "cause": cause,
            "hva": f"[{lo}, {hi})",
        }
        trace.instants.append((track, int(arrive[row]), f"{callback} arrives", args))
        trace.slices.append((track, int(arrive[row]), int(end[row]), 0, callback, args))
        if took:
            mode = {"kernel": kernel, "callback": callback, "hit": args["hit"], "event": int(event)}
            if grant[row] > arrive[row]:
                waits[row] = len(trace.slices)
                trace.slices.append(
                    (
                        track,
                        int(arrive[row]),
                        int(grant[row]),
                        1,
                        "waiting for mmu_lock (write)",
                        mode,
                    )
                )
            trace.slices.append(
                (track, int(grant[row]), int(release[row]), 1, "holding mmu_lock (write)", mode)
            )
    _invalidation_tracks(trace, run, arrive, done)
    return waits


def _invalidation_tracks(trace: _Trace, run, arrive, done) -> None:
    """``invalidate_range_start`` ... ``invalidate_range_end`` of each event, on lanes."""
    n = run.notifiers
    callback = n["callback"].astype(str).to_numpy()
    event = n["event"].to_numpy()
    starts = np.flatnonzero(callback == "invalidate_range_start")
    ends = np.flatnonzero(callback == "invalidate_range_end")
    end_of = dict(zip(event[ends], ends, strict=True))
    pairs = [(s, end_of[event[s]]) for s in starts if event[s] in end_of]
    if not pairs:
        return
    lo = np.array([arrive[s] for s, _ in pairs])
    hi = np.array([done[e] for _, e in pairs])
    lane = lanes(lo, hi)
    first = len(trace.tracks)
    trace.tracks += [f"invalidations {k}" for k in range(int(lane.max()) + 1)]
    hits = n["hit"].to_numpy(dtype=bool)
    for k, (s, _e) in enumerate(pairs):
        raised = rule(run.kernel, "invalidate_range_start", bool(hits[s])).count_delta > 0
        # Issue 22: the counter is named as the run's kernel names it (v6.0's rename).
        count = counter_names(run.kernel)[1]
        name = (
            f"{count} raised (faults on the range retry)"
            if raised
            else f"invalidation left {count} alone (missed every memslot)"
        )
        args = {
            "kernel": run.kernel,
            "hit": "hit" if hits[s] else "miss",
            "event": int(event[s]),
            "cause": str(n["cause"].iloc[s]),
        }
        trace.slices.append((first + int(lane[k]), int(lo[k]), int(hi[k]), 0, name, args))


def _vcpu_tracks(trace: _Trace, run) -> np.ndarray:
    """One track per vCPU; returns each fault attempt's ``waiting`` slice index (or -1)."""
    f = run.faults
    first = len(trace.tracks)
    trace.tracks += [f"vCPU {v}" for v in range(run.scenario.n_vcpus)]
    mode = "write" if run.scenario.faults_write(run.policy) else "read"
    waiting, holding = f"waiting for mmu_lock ({mode})", f"holding mmu_lock ({mode})"
    request, grant, release = _ns(f["t_request_us"]), _ns(f["t_grant_us"]), _ns(f["t_release_us"])
    wait_slice = np.full(len(f), -1, dtype=np.int64)
    columns = zip(
        f["vcpu"].to_numpy(),
        f["fault"].to_numpy(),
        f["retries"].to_numpy(),
        f["retry"].to_numpy(dtype=bool),
        _hex(f["hva"]),
        request,
        grant,
        release,
        strict=True,
    )
    kernel = run.kernel
    for row, (vcpu, fault, retries, retry, hva, t0, t1, t2) in enumerate(columns):
        args = {
            "callback": "page_fault",
            "kernel": kernel,
            "fault": int(fault),
            "retries before": int(retries),
            "retry": bool(retry),
            "hva": hva,
        }
        track = first + int(vcpu)
        if t1 > t0:
            wait_slice[row] = len(trace.slices)
            trace.slices.append((track, int(t0), int(t1), 0, waiting, args))
        trace.slices.append((track, int(t1), int(t2), 0, holding, args))
    return wait_slice


def _flows(run, callback_waits: dict, fault_waits: np.ndarray) -> list[tuple[int, int]]:
    """From each callback that waited for ``mmu_lock`` to the faults queued behind it.

    Who queued behind whom is ``run.faults["blocked_by"]`` (the row of ``run.notifiers`` the
    attempt waited behind, see :class:`kvmviz.Run`): a flow goes from a callback's ``waiting
    for mmu_lock (write)`` slice to the ``waiting for mmu_lock`` slice of every attempt whose
    ``blocked_by`` is that callback. A callback that got the lock at once has no wait slice,
    so the faults that queued behind its hold get no flow."""
    if not callback_waits:
        return []
    blocked = run.faults["blocked_by"].to_numpy()
    rows = np.flatnonzero((fault_waits >= 0) & (blocked >= 0))
    return [
        (callback_waits[int(blocked[i])], int(fault_waits[i]))
        for i in rows
        if int(blocked[i]) in callback_waits
    ]


def _counters(trace: _Trace, run) -> None:
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
        t, value = queue_depth(run, start, end, holder=holder)
        t = _ns(t)
        last = np.concatenate([t[1:] != t[:-1], [True]])  # the value after an instant's steps
        t, value = t[last], value[last]
        keep = np.concatenate([[True], np.diff(value) != 0])  # then one sample per change
        trace.counters[name] = (unit, t[keep], value[keep].astype(np.int64))


def _window(run, window):
    """``run`` cut to the fault attempts and callbacks that overlap ``window`` (µs), whole: a
    slice that starts before the window or ends after it is kept entire, and every acquisition
    waiting at an instant of the window is kept, so the counters are exact inside it."""
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
    # blocked_by names rows of the whole run's notifiers: renumber it to the rows kept, -1
    # where the callback a fault queued behind falls outside the window.
    renumber = np.append(np.where(kept, np.cumsum(kept) - 1, -1), -1)
    f = f.assign(blocked_by=renumber[f["blocked_by"].to_numpy()])
    cut = replace(run, faults=f.reset_index(drop=True), notifiers=n.reset_index(drop=True))
    return cut, f", window {start / 1000:g}-{end / 1000:g} ms"


def _collect(run, window=None) -> _Trace:
    run, cut = _window(run, window)
    trace = _Trace(_title(run) + cut)
    callback_waits = _notifier_tracks(trace, run)
    fault_waits = _vcpu_tracks(trace, run)
    trace.flows = _flows(run, callback_waits, fault_waits)
    _counters(trace, run)
    return trace


# --------------------------------------------------------------------------------------------
# Chrome JSON.
# --------------------------------------------------------------------------------------------
def _us(ns: int) -> float:
    """Integer ns as µs; Perfetto's importer rounds ``ts * 1000`` back to the same ns."""
    return ns / 1000


def chrome_trace(run, *, window=None) -> dict:
    """A Run in the Chrome JSON Trace Event Format, as a ``dict`` ready for :func:`json.dump`.

    ``traceEvents`` holds, in this order: ``M`` metadata (``process_name``, then
    ``thread_name`` and ``thread_sort_index`` of each track, tid = row from the top, from 1),
    ``X`` slices (``ts`` and ``dur`` in µs, ``args`` as in the module's description), ``i``
    instants (thread scope) for the callbacks' arrivals, and ``C`` counters (name
    ``mmu_lock``, one key each: ``queue depth``, ``vCPUs stalled``, which Perfetto shows as
    the tracks ``mmu_lock queue depth`` and ``mmu_lock vCPUs stalled``; a sample at each
    change). ``otherData`` names the run. No flows: the
    format's flow events bind to slices by timestamp only; the ``.pftrace`` carries them.

    Parameters
    ----------
    run : Run
    window : (float, float), optional
        Only the fault attempts and callbacks that overlap ``[start_us, end_us)``, each whole.

    Returns
    -------
    dict
    """
    trace = _collect(run, window)
    events: list[dict] = [
        {"ph": "M", "pid": PID, "tid": 0, "name": "process_name", "args": {"name": trace.title}}
    ]
    for i, name in enumerate(trace.tracks, start=1):
        events.append(
            {"ph": "M", "pid": PID, "tid": i, "name": "thread_name", "args": {"name": name}}
        )
        events.append(
            {
                "ph": "M",
                "pid": PID,
                "tid": i,
                "name": "thread_sort_index",
                "args": {"sort_index": i},
            }
        )
    # Parents before their children at one timestamp: sort by start, then depth.
    for track, start, end, _depth, name, args in sorted(trace.slices, key=lambda s: (s[1], s[3])):
        events.append(
            {
                "ph": "X",
                "pid": PID,
                "tid": track + 1,
                "ts": _us(start),
                "dur": _us(end - start),
                "name": name,
                "cat": "mmu_lock",
                "args": args,
            }
        )
    for track, ts, name, args in trace.instants:
        events.append(
            {
                "ph": "i",
                "s": "t",
                "pid": PID,
                "tid": track + 1,
                "ts": _us(ts),
                "name": name,
                "cat": "notifier",
                "args": args,
            }
        )
    for name, (_unit, ts, values) in trace.counters.items():
        # Perfetto names a JSON counter track "<name> <key>": "mmu_lock queue depth".
        events.extend(
            {"ph": "C", "pid": PID, "ts": _us(int(t)), "name": "mmu_lock", "args": {name: int(v)}}
            for t, v in zip(ts, values, strict=True)
        )
    return {
        "traceEvents": events,
        "otherData": {"kvmviz": trace.title, "time unit": "ts and dur in µs"},
    }


# --------------------------------------------------------------------------------------------
# Perfetto protobuf.
# --------------------------------------------------------------------------------------------
_SEQUENCE = 1  # one writer: every packet on one trusted sequence
_PROCESS_UUID = 1
_COUNTER_UUID = 10  # + counter index
_TRACK_UUID = 100  # + track index


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
    instant.

    Parameters
    ----------
    run : Run
    window : (float, float), optional
        As for :func:`chrome_trace`.

    Returns
    -------
    bytes
    """
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb
    from perfetto.trace_builder.proto_builder import TraceProtoBuilder

    trace = _collect(run, window)
    builder = TraceProtoBuilder()

    def packet(ts: int | None = None):
        p = builder.add_packet()
        p.trusted_packet_sequence_id = _SEQUENCE
        if ts is not None:
            p.timestamp = ts
        return p

    first = packet()
    first.sequence_flags = pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
    process = first.track_descriptor
    process.uuid = _PROCESS_UUID
    process.process.pid = PID
    process.process.process_name = trace.title
    process.child_ordering = pb.TrackDescriptor.EXPLICIT
    rank = 0
    for k, (name, (unit, _ts, _values)) in enumerate(trace.counters.items()):
        desc = packet().track_descriptor
        desc.uuid, desc.parent_uuid = _COUNTER_UUID + k, _PROCESS_UUID
        desc.name = f"mmu_lock {name}"
        desc.sibling_order_rank = rank
        desc.counter.unit = pb.CounterDescriptor.UNIT_COUNT
        desc.counter.unit_name = unit
        rank += 1
    for i, name in enumerate(trace.tracks):
        desc = packet().track_descriptor
        desc.uuid, desc.parent_uuid, desc.name = _TRACK_UUID + i, _PROCESS_UUID, name
        desc.sibling_order_rank = rank + i

    # Every event with its sort key: time, then ends (deepest first), instants, counters,
    # begins (outermost first).
    outgoing: dict[int, list[int]] = {}
    incoming: dict[int, list[int]] = {}
    for flow_id, (src, dst) in enumerate(trace.flows, start=1):
        outgoing.setdefault(src, []).append(flow_id)
        incoming.setdefault(dst, []).append(flow_id)
    events = []
    for index, (_track, start, end, depth, _name, _args) in enumerate(trace.slices):
        events.append((start, 3, depth, 0, "B", index))
        # An empty slice ends right after it begins; others end before anything begins.
        events.append(
            (end, 3, depth, 1, "E", index) if end == start else (end, 0, -depth, 0, "E", index)
        )
    events += [(ts, 1, 0, 0, "I", i) for i, (_t, ts, _n, _a) in enumerate(trace.instants)]
    for k, (_unit, ts, values) in enumerate(trace.counters.values()):
        events += [(int(t), 2, 0, 0, "C", (k, int(v))) for t, v in zip(ts, values, strict=True)]
    events.sort(key=lambda e: e[:4])
    begin, end_type = pb.TrackEvent.TYPE_SLICE_BEGIN, pb.TrackEvent.TYPE_SLICE_END
    instant, counter = pb.TrackEvent.TYPE_INSTANT, pb.TrackEvent.TYPE_COUNTER
    for ts, _order, _depth, _then, kind, what in events:
        event = packet(ts).track_event
        if kind == "C":
            k, value = what
            event.type, event.track_uuid, event.counter_value = counter, _COUNTER_UUID + k, value
        elif kind == "I":
            track, _ts, name, args = trace.instants[what]
            event.type, event.track_uuid, event.name = instant, _TRACK_UUID + track, name
            _annotate(event, args)
        elif kind == "E":
            event.type, event.track_uuid = end_type, _TRACK_UUID + trace.slices[what][0]
        else:
            track, _start, _end, _depth, name, args = trace.slices[what]
            event.type, event.track_uuid, event.name = begin, _TRACK_UUID + track, name
            _annotate(event, args)
            if what in outgoing:
                event.flow_ids.extend(outgoing[what])
            if what in incoming:
                event.terminating_flow_ids.extend(incoming[what])
    return builder.serialize()


# --------------------------------------------------------------------------------------------
# Writing.
# --------------------------------------------------------------------------------------------
def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"{path}: cannot tell the trace format from the suffix {path.suffix or '(none)'!r}; "
            f"expected one of {', '.join(FORMATS)}"
        )
    return suffix


def encode(run, suffix: str, *, window=None) -> bytes:
    """A Run as the bytes of a trace file: ``".json"`` or ``".pftrace"`` (:data:`FORMATS`),
    the whole run or the ``window`` of :func:`chrome_trace`."""
    if suffix == ".json":
        return json.dumps(chrome_trace(run, window=window), separators=(",", ":")).encode()
    if suffix == ".pftrace":
        return perfetto_trace(run, window=window)
    raise ValueError(f"unknown trace format {suffix!r}; expected one of {', '.join(FORMATS)}")


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
        whole run. A replayed trace at 64 vCPUs is a million fault attempts, some 200 MB.
    force : bool
        Replace an existing file. Without it an existing file is refused (``FileExistsError``)
        before any work. The file is written atomically: a failure leaves nothing behind.

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
    from kvmviz.run import Run

    if not isinstance(run, Run):
        raise TypeError(f"run must be a kvmviz.Run, got {type(run).__name__}")
    path = Path(path)
    suffix = _suffix(path)
    _window(run, window)  # a bad window is refused before any work
    check_free([path], force=force)
    (written,) = write_atomic({path: encode(run, suffix, window=window)}, force=force)
    return written
