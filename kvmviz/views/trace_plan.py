"""What a Perfetto trace of a Run holds, before any byte is spelled: the plan both formats write.

:func:`plan_trace` reads a :class:`~kvmviz.Run` (cut to a window by :func:`cut_window`) into a
:class:`Plan`: the tracks top to bottom (the notifier lanes, the invalidation lanes, a track per
vCPU, :func:`lanes` keeping slices on one track nested), the process's title, the *side* slices
(the callbacks, their waits for and holds of ``mmu_lock``, the invalidation windows), the flows
from a waiting callback to the faults queued behind it, and the counters (queue depth, vCPUs
stalled). :func:`side_slice`, :func:`callback_args` and :func:`fault_modes` name the slices and
give their args, as both formats write them. The fault attempts' own slices are not planned:
:mod:`kvmviz.views.trace_rows` streams them from ``run.faults`` a chunk at a time.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

import numpy as np

from ..inputs.kernels import rule
from ..stats.metrics import waiting_steps
from .metric_labels import counter_names

PID = 1
"""The one process of every trace: the VM."""

YIELD_SLICE = "yielded mmu_lock (contended: flush, readers in, asks again)"
"""The name of the slice between two write holds of a zap that yielded ``mmu_lock``
(``rwlock_needbreak()`` -> ``cond_resched_rwlock_write()``)."""

_BLOCK = 1 << 18  # rows per block of the passes over the whole fault table


# --------------------------------------------------------------------------------------------
# What both formats carry, in integer ns.
# --------------------------------------------------------------------------------------------
def ns(us) -> np.ndarray:
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


_CALLBACK, _WAIT, _HOLD, _INVALIDATION, _YIELD = range(5)


@dataclass
class Plan:
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
    # A zap that yielded mmu_lock: its write holds and the gaps between them are slices of
    # their own; their extra args by side slice, and, per notifier row, (ns, side slice) of
    # each stretch a fault that asked then queued behind (the flows' sources).
    s_extra: dict = field(default_factory=dict)
    behind: dict = field(default_factory=dict)
    notifiers: dict = field(default_factory=dict)  # the callbacks' columns, as numpy arrays
    _rules: dict = field(default_factory=dict)

    def rule(self, callback: str, hit: bool):
        """The run's kernel's :func:`kvmviz.kernels.rule` for ``callback`` (hit or miss),
        looked up once per pair."""
        key = (callback, hit)
        if key not in self._rules:
            self._rules[key] = rule(self.run.kernel, callback, hit)
        return self._rules[key]


def _side_slices(plan: Plan) -> None:
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
    arrive, done = ns(n["t_arrive_us"]), ns(n["t_done_us"])
    locked = n["locked"].to_numpy(dtype=bool)
    grant = ns(n["t_grant_us"].fillna(0.0))
    release = ns(n["t_release_us"].fillna(0.0))
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
    _yielded_holds(plan, track)


def _yielded_holds(plan: Plan, track: np.ndarray) -> None:
    """The write holds of each zap that yielded ``mmu_lock`` (``run.write_holds``), one
    ``holding mmu_lock (write)`` slice each in place of the callback's one hold, and between
    two of them a ``yielded mmu_lock`` slice: the zap found the lock contended
    (``rwlock_needbreak()``), flushed, let the queued readers in and asked again
    (``cond_resched_rwlock_write()``). Runs whose zaps never yielded are left as they were."""
    run = plan.run
    holds = run.write_holds
    if holds is None or not bool(holds["yielded"].any()):
        return
    yielded = sorted(set(holds.loc[holds["yielded"], "notifier"].tolist()))
    drop = (plan.s_kind == _HOLD) & np.isin(plan.s_row, yielded)
    keep = ~drop
    parts = {
        "track": [plan.s_track[keep]],
        "start": [plan.s_start[keep]],
        "end": [plan.s_end[keep]],
        "depth": [plan.s_depth[keep]],
        "kind": [plan.s_kind[keep]],
        "row": [plan.s_row[keep]],
    }
    extra, behind, at = {}, {}, int(keep.sum())
    f = run.faults
    grant_order = np.argsort(f["t_grant_us"].to_numpy(), kind="stable")
    f_grant = f["t_grant_us"].to_numpy()[grant_order]
    f_retry = f["retry"].to_numpy(dtype=bool)[grant_order]
    for row in yielded:
        mine = holds[holds["notifier"] == row]
        g, r = ns(mine["t_grant_us"]), ns(mine["t_release_us"])
        k = len(mine)
        # Holds, then the gaps between them: [release_j, grant_j+1).
        starts = np.concatenate([g, r[:-1]])
        ends = np.concatenate([r, g[1:]])
        kinds = np.concatenate([np.full(k, _HOLD), np.full(k - 1, _YIELD)])
        flushed = mine["flushed"].to_numpy(dtype=bool)
        lo = mine["t_release_us"].to_numpy()[:-1]
        hi = mine["t_grant_us"].to_numpy()[1:]
        a, b = np.searchsorted(f_grant, lo), np.searchsorted(f_grant, hi)
        futile = np.concatenate([[0], np.cumsum(f_retry)])
        for j in range(k):
            extra[at + j] = {
                "write hold": f"{j + 1} of {k}",
                "ends in": "a yield" if j < k - 1 else "the release",
                "flushed": bool(flushed[j]),
            }
        for j in range(k - 1):
            extra[at + k + j] = {
                "yield": f"{j + 1} of {k - 1}",
                "flushed before": bool(flushed[j]),
                "readers let in": int(b[j] - a[j]),
                "futile reads let in": int(futile[b[j]] - futile[a[j]]),
            }
        # Whom a fault that asked at t queued behind: the wait before the first hold, then
        # each hold (it yields to the fault) and each gap (the zap asked again before it).
        wait = np.flatnonzero((plan.s_kind == _WAIT) & (plan.s_row == row))
        times = [ns(run.notifiers["t_arrive_us"].to_numpy()[row : row + 1])[0]] if wait.size else []
        slices = [int(wait[0])] if wait.size else []
        order = np.argsort(starts, kind="stable")
        times += starts[order].tolist()
        slices += (at + order).tolist()
        behind[row] = (np.asarray(times, dtype=np.int64), np.asarray(slices, dtype=np.int64))
        parts["track"].append(np.full(2 * k - 1, track[row], dtype=np.int64))
        parts["start"].append(starts)
        parts["end"].append(ends)
        parts["depth"].append(np.ones(2 * k - 1, dtype=np.int64))
        parts["kind"].append(kinds)
        parts["row"].append(np.full(2 * k - 1, row, dtype=np.int64))
        at += 2 * k - 1
    plan.s_track, plan.s_start, plan.s_end, plan.s_depth, plan.s_kind, plan.s_row = (
        np.concatenate(parts[name]).astype(np.int64)
        for name in ("track", "start", "end", "depth", "kind", "row")
    )
    plan.s_extra, plan.behind = extra, behind


def _flows(plan: Plan) -> None:
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
    # A zap that yielded: a fault queued behind the stretch it asked in (plan.behind).
    for row, (_times, slices) in plan.behind.items():
        wait_slice[row] = slices[0]
    plan.flow_rows = np.zeros(0, dtype=np.int64)
    plan.flows_out = {}
    if waits.size == 0 and not plan.behind:
        return
    f = run.faults
    request, grant = f["t_request_us"].to_numpy(), f["t_grant_us"].to_numpy()
    blocked = f["blocked_by"].to_numpy()
    found = []
    for rows in _blocks(len(f)):
        b = blocked[rows]
        ok = (ns(grant[rows]) > ns(request[rows])) & (b >= 0)
        ok &= wait_slice[np.where(ok, b, -1)] >= 0
        found.append(rows.start + np.flatnonzero(ok))
    plan.flow_rows = np.concatenate(found) if found else plan.flow_rows
    sources = wait_slice[blocked[plan.flow_rows]]
    for row, (times, slices) in plan.behind.items():
        mine = np.flatnonzero(blocked[plan.flow_rows] == row)
        asked = ns(request[plan.flow_rows[mine]])
        sources[mine] = slices[np.maximum(np.searchsorted(times, asked, side="right") - 1, 0)]
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


def _counters(plan: Plan) -> None:
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
        t = ns(t)
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


def cut_window(run, window) -> tuple[object, str]:
    """``run`` cut to the fault attempts and callbacks that overlap ``window`` (µs), whole: a
    slice that starts before the window or ends after it is kept entire, and every acquisition
    waiting at an instant of the window is kept, so the counters are exact inside it. A window
    that keeps nothing is a ``ValueError`` naming it and the run's span.

    Returns
    -------
    (Run, str)
        The run cut (``run`` itself when ``window`` is None) and what the trace's title adds
        to say so (``", window 1.3-2 ms"``, or ``""``).
    """
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


def plan_trace(run, window=None) -> Plan:
    """The :class:`Plan` of ``run``'s trace, of the ``window`` (µs) of :func:`cut_window` or
    of the whole run: its tracks, side slices, flows and counters."""
    run, cut = cut_window(run, window)
    plan = Plan(run, _title(run) + cut)
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
# The slices' names and args (the side slices are few: built as dicts, as a reader would).
# --------------------------------------------------------------------------------------------
def callback_args(plan: Plan, row: int) -> dict:
    """The args of callback ``row`` (its slice and its arrival's instant): the callback,
    hit or miss, the kernel, whether it takes ``mmu_lock`` and the source line of the rule
    saying so, its event, cause and hva range."""
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


def side_slice(plan: Plan, s: int) -> tuple[str, dict]:
    """(name, args) of side slice ``s``."""
    n, row, kind = plan.notifiers, int(plan.s_row[s]), int(plan.s_kind[s])
    callback = str(n["callback"][row])
    hit = bool(n["hit"][row])
    if kind == _CALLBACK:
        return callback, callback_args(plan, row)
    if kind == _INVALIDATION:
        raised = plan.rule("invalidate_range_start", hit).count_delta > 0
        count = counter_names(plan.run.kernel)[1]  # mmu_invalidate_in_progress from v6.0
        name = (
            f"{count} raised (faults on the range retry)"
            if raised
            else f"invalidation left {count} alone (missed every memslot)"
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
        **plan.s_extra.get(s, {}),
    }
    if kind == _YIELD:
        return YIELD_SLICE, mode
    return ("waiting for" if kind == _WAIT else "holding") + " mmu_lock (write)", mode


def fault_modes(plan: Plan) -> tuple[str, str]:
    """The names of a fault attempt's (wait, hold) slices: ``mmu_lock`` for read, or for
    write without the TDP MMU or under the spinlock policy."""
    mode = "write" if plan.run.scenario.faults_write(plan.run.policy) else "read"
    return f"waiting for mmu_lock ({mode})", f"holding mmu_lock ({mode})"
