"""The closed-loop simulation: vCPUs faulting against MMU notifiers on one ``mmu_lock``.

Each faulting vCPU loops (x86 ``direct_page_fault``, KERNEL.md §3.2):

1. runs in the guest, then takes an EPT violation (half a VM-exit round trip);
2. samples ``mmu_notifier_seq`` and resolves the pfn outside the lock (GUP);
3. takes ``mmu_lock`` for read (TDP MMU, a2855afc7ee8), or for write under ``"spinlock"``
   (the legacy shadow MMU);
4. checks ``mmu_notifier_retry_hva()`` (4a42d848db95): retry if an invalidation is in flight
   whose range covers the fault's hva (``mmu_notifier_count != 0`` and the hva in
   ``[range_start, range_end)``), or if ``mmu_notifier_seq`` moved since step 2;
5. installs the SPTE and unlocks, or on retry unlocks at once, re-enters the guest and faults on
   the same address again.

Each notification event runs its callbacks in order; a callback takes ``mmu_lock`` for write or
not as :func:`kvmviz.kernels.rule` says, holds it for the memslot walk and, on a hit, for the
zap and one VM-wide TLB flush (``__kvm_handle_hva_range``, KERNEL.md §2).

Two implementations of the same model give identical tables for the same inputs:

* an event-driven one over the lock state machines of :mod:`kvmviz.rwlock`, for every policy;
* a vectorised one for ``"qrwlock"``, which advances all vCPUs with numpy between writer
  arrivals. Under qrwlock a reader that requests at ``t`` is granted at once unless a writer
  arrived at or before ``t`` and has not yet left, in which case it enters when the most recent
  such writer leaves; and a writer enters once the writer before it has left and every reader
  inside has left. So between two writer arrivals the vCPUs are independent of each other.

Every random number is drawn per (vCPU, attempt) from a seeded stream, so both implementations,
and any two runs with the same seed, see the same workload.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .kernels import CALLBACKS, KERNELS, rule
from .memslots import PAGE_SIZE
from .notifiers import EVENT_KINDS, generate_stream, random_guest_hvas
from .rwlock import POLICIES, make_lock
from .scenario import Scenario

__all__ = ["Run", "simulate"]

_START, _END = "invalidate_range_start", "invalidate_range_end"
_SINGLE_HVA = {"change_pte", "test_young"}  # these callbacks carry one hva, not a range
_CHUNK = 64  # attempts per vCPU drawn at a time


@dataclass(frozen=True, eq=False)
class Run:
    """The result of one simulation: tidy tables, times in µs.

    Attributes
    ----------
    scenario : Scenario
    kernel : str
    policy : str
    seed : int
    faults : pandas.DataFrame
        One row per fault *attempt* (an EPT violation that reached ``mmu_lock``): ``vcpu,
        fault`` (the vCPU's fault number: ``(vcpu, fault)`` names a fault), ``retries``
        (retries this fault had before this attempt), ``hva, t_exit_us,
        t_request_us, t_grant_us, t_release_us, wait_us, hold_us, retry`` (this attempt found
        an invalidation and must fault again).
    notifiers : pandas.DataFrame
        One row per callback: ``event, cause, callback, hva_start, hva_end, hit, locked,
        t_arrive_us, t_grant_us, t_release_us, wait_us, hold_us`` (NaN grant and zero wait/hold
        when the callback did not take the lock), ``t_done_us``.
    lock : pandas.DataFrame
        Every acquisition of ``mmu_lock``: ``holder`` ("vcpu" / "notifier"), ``who`` (vCPU or
        event), ``mode`` ("read" / "write"), ``callback`` ("page_fault" or the notifier
        callback), ``t_request_us, t_grant_us, t_release_us, wait_us, hold_us``; sorted by
        grant time. Built from the two tables above on first use.
    """

    scenario: Scenario
    kernel: str
    policy: str
    seed: int
    faults: pd.DataFrame
    notifiers: pd.DataFrame

    @cached_property
    def lock(self) -> pd.DataFrame:
        """Every acquisition of ``mmu_lock``, faults and notifiers, sorted by grant time."""
        return lock_table(self.faults, self.notifiers, self.policy)

    def summary(self) -> pd.Series:
        """Headline numbers of the run (see :func:`kvmviz.metrics.summarize`)."""
        from .metrics import summarize

        return summarize(self)


def simulate(
    scenario: Scenario | None = None,
    kernel: str = "v5.15",
    policy: str = "qrwlock",
    seed: int = 0,
    *,
    stream: pd.DataFrame | None = None,
    method: str = "auto",
) -> Run:
    """Simulate ``scenario`` on ``kernel`` with ``mmu_lock`` under ``policy``.

    Parameters
    ----------
    scenario : Scenario, optional
        Default ``Scenario()``.
    kernel : {"v5.12", "v5.13", "v5.15"}
        Which notifier rules apply (:mod:`kvmviz.kernels`).
    policy : {"qrwlock", "reader-pref", "spinlock"}
        The lock (:mod:`kvmviz.rwlock`); ``"spinlock"`` also makes faults take it for write.
    seed : int
        Seeds the vCPU workload and the generated notification stream.
    stream : pandas.DataFrame, optional
        Notification events to use instead of generating them (e.g. from a real trace), in the
        form of :func:`kvmviz.notifiers.generate_stream`.
    method : {"auto", "vectorized", "events"}
        ``"auto"`` picks the vectorised engine for ``"qrwlock"``, else the event-driven one.

    Returns
    -------
    Run
    """
    scenario = Scenario() if scenario is None else scenario
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a kvmviz.Scenario, got {type(scenario).__name__}")
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNELS}")
    if policy not in POLICIES:
        raise ValueError(f"unknown lock policy {policy!r}; expected one of {POLICIES}")
    if method not in ("auto", "vectorized", "events"):
        raise ValueError(f"unknown method {method!r}; expected 'auto', 'vectorized' or 'events'")
    if method == "vectorized" and policy != "qrwlock":
        raise ValueError("the vectorized engine models qrwlock only; use method='events'")
    seed = int(seed)
    if stream is None:
        stream = generate_stream(scenario, seed)
    model = _Model(scenario, kernel, stream, seed)
    if method == "events" or (method == "auto" and policy != "qrwlock"):
        _run_events(model, policy)
    else:
        _run_vectorized(model)
    faults, notifiers = model.tables()
    return Run(scenario, kernel, policy, seed, faults, notifiers)


# --------------------------------------------------------------------------------------------
# What both engines share: the workload draws, the callback plan, the costs and the records.
# --------------------------------------------------------------------------------------------
class _Draws:
    """Random numbers per (vCPU, attempt), drawn in chunks of attempts from seeded streams."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.seed = seed
        self.m = scenario.n_faulting
        self.cap = 0
        self.guest = np.empty((self.m, 0))
        self.resolve = np.empty((self.m, 0))
        self.hold = np.empty((self.m, 0))
        self.hva = np.empty((self.m, 0), dtype=np.uint64)

    def _grow(self, need: int) -> None:
        chunks = []
        for c in range(self.cap // _CHUNK, (need // _CHUNK) + 1):
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x76637075, c]))
            s = self.scenario
            shape = (self.m, _CHUNK)
            chunks.append(
                (
                    rng.exponential(s.guest_run_us, shape),
                    rng.exponential(s.resolve_pfn_us, shape),
                    rng.exponential(1.0, shape),  # scaled by the policy's mean hold
                    random_guest_hvas(s.layout, rng, self.m * _CHUNK).reshape(shape),
                )
            )
        self.guest = np.hstack([self.guest, *(c[0] for c in chunks)])
        self.resolve = np.hstack([self.resolve, *(c[1] for c in chunks)])
        self.hold = np.hstack([self.hold, *(c[2] for c in chunks)])
        self.hva = np.hstack([self.hva, *(c[3] for c in chunks)])
        self.cap = self.guest.shape[1]

    def hold_at(self, vcpu, attempt):
        """Standard-exponential hold draws (the caller scales them) at (vCPU, attempt)."""
        return self.hold.ravel().take(vcpu * self.cap + attempt)

    def at(self, vcpu, attempt):
        """(guest_run, resolve, hold, hva) for vCPU(s) ``vcpu`` at attempt(s) ``attempt``."""
        need = int(np.max(attempt)) if np.size(attempt) else 0
        if need >= self.cap:
            self._grow(max(need, 2 * self.cap))
        flat = vcpu * self.cap + attempt
        return (
            self.guest.ravel().take(flat),
            self.resolve.ravel().take(flat),
            self.hold.ravel().take(flat),
            self.hva.ravel().take(flat),
        )


class _Steps:
    """A growing step function of (count, range_lo, range_hi) over time, as numpy arrays."""

    def __init__(self) -> None:
        self.n = 1
        self.t = np.full(64, -np.inf)
        self.v = np.zeros(64, dtype=np.int64)
        self.lo = np.zeros(64, dtype=np.uint64)
        self.hi = np.zeros(64, dtype=np.uint64)

    def append(self, t: float, v: int, lo: int, hi: int) -> None:
        if self.n == len(self.t):
            self.t, self.v, self.lo, self.hi = (
                np.resize(a, 2 * self.n) for a in (self.t, self.v, self.lo, self.hi)
            )
        self.t[self.n], self.v[self.n], self.lo[self.n], self.hi[self.n] = t, v, lo, hi
        self.n += 1

    def arrays(self):
        n = self.n
        return self.t[:n], self.v[:n], self.lo[:n], self.hi[:n]


class _Model:
    """Inputs of one run and the records both engines fill in."""

    def __init__(self, scenario: Scenario, kernel: str, stream: pd.DataFrame, seed: int) -> None:
        self.s = scenario
        self.kernel = kernel
        self.stream = stream
        self.draws = _Draws(scenario, seed)
        self.half_exit = scenario.vmexit_us / 2
        self.mean_hold = scenario.mean_read_hold_us
        self._plan_callbacks()
        # Reader records (filled by the engines as arrays or lists of scalars).
        self.reader_chunks: list[tuple] = []
        self.cb_grant = np.full(len(self.cb_callback), np.nan)
        self.cb_arrive = np.full(len(self.cb_callback), np.nan)
        self.cb_done = np.full(len(self.cb_callback), np.nan)

    # -- the notifications ------------------------------------------------------------------
    def _plan_callbacks(self) -> None:
        s, layout = self.s, self.s.layout
        callbacks, events, starts, ends = [], [], [], []
        for event, kind, lo, hi in zip(self.stream["event"], self.stream["kind"],
                                       self.stream["hva_start"], self.stream["hva_end"],
                                       strict=True):  # fmt: skip
            for cb in EVENT_KINDS[kind]:
                callbacks.append(cb)
                events.append(event)
                starts.append(int(lo))
                ends.append(int(lo) + PAGE_SIZE if cb in _SINGLE_HVA else int(hi))
        self.cb_callback = np.array(callbacks, dtype=object)
        self.cb_event = np.array(events, dtype=np.int64)
        self.cb_start = np.array(starts, dtype=np.uint64)
        self.cb_end = np.array(ends, dtype=np.uint64)
        self.cb_hit = layout.hit_mask(self.cb_start, self.cb_end)
        n = len(callbacks)
        self.cb_locked = np.zeros(n, dtype=bool)
        self.cb_count = np.zeros(n, dtype=np.int64)
        self.cb_bump = np.zeros(n, dtype=bool)
        self.cb_cost = np.zeros(n)  # hold if locked, else time spent walking outside the lock
        self.cb_gap = np.zeros(n)  # time to the next callback of the same event
        self.cb_next = np.full(n, -1, dtype=np.int64)
        for i, cb in enumerate(callbacks):
            r = rule(self.kernel, cb, bool(self.cb_hit[i]))
            self.cb_locked[i], self.cb_count[i], self.cb_bump[i] = (
                r.takes_lock, r.count_delta, r.bumps_seq,
            )  # fmt: skip
            self.cb_cost[i] = self._cost(cb, bool(self.cb_hit[i]), r.takes_lock, i)
            if i + 1 < n and events[i + 1] == events[i]:
                self.cb_next[i] = i + 1
                self.cb_gap[i] = s.invalidate_window_us
        self.event_first = {}
        for i in range(n - 1, -1, -1):
            self.event_first[int(events[i])] = i
        self.event_time = dict(zip(self.stream["event"].tolist(), self.stream["t_us"].tolist(),
                                   strict=True))  # fmt: skip

    def _cost(self, callback: str, hit: bool, locked: bool, i: int) -> float:
        s = self.s
        walk = len(s.layout) * s.memslot_walk_ns * 1e-3
        if self.kernel == "v5.12" and callback != _END:
            # v5.12 x86 walked the memslots twice, for the rmaps and again per TDP root
            # (kvm_unmap_hva_range + kvm_tdp_mmu_zap_hva_range; removed by 3039bcc74498).
            walk *= 2
        if callback == _END and self.kernel in ("v5.12", "v5.13"):
            walk = 0.0  # the on_lock path with a null handler never walks (f922bd9bf33b)
        work = 0.0
        if hit and locked:
            if callback == _START:
                ranges = s.layout.gfn_ranges(int(self.cb_start[i]), int(self.cb_end[i]))
                pages = sum(g.npages for g in ranges)
                work = s.zap_base_us + s.zap_us_per_mib * pages * PAGE_SIZE / 2**20
                work += s.tlb_flush_us  # flush_on_ret, under the lock (__kvm_handle_hva_range)
            elif callback == "clear_flush_young":
                work = s.age_us + s.tlb_flush_us
            elif callback in ("clear_young", "test_young"):
                work = s.age_us  # flush_on_ret is false for these
            # change_pte after start finds nothing left to change (c13fda237f08).
        return (s.lock_op_us + walk + work) if locked else walk

    def first_arrivals(self) -> list[tuple[float, int]]:
        return [(self.event_time[e], i) for e, i in sorted(self.event_first.items())]

    # -- the effects of callbacks on mmu_notifier_count / seq ---------------------------------
    def init_state(self) -> None:
        self.count = 0
        self.range_lo = 0
        self.range_hi = 0
        self.bump_times: list[float] = []
        self._bumps = np.empty(256)
        # Step function of (count, range) over time, for the vectorised retry check.
        self.steps = _Steps()

    def on_writer_grant(self, i: int, now: float) -> None:
        if self.cb_count[i] > 0:
            # kvm_inc_notifier_count (4a42d848db95): set the range when count goes 0 -> 1,
            # else widen it to the union.
            lo, hi = int(self.cb_start[i]), int(self.cb_end[i])
            if self.count == 0:
                self.range_lo, self.range_hi = lo, hi
            else:
                self.range_lo, self.range_hi = min(self.range_lo, lo), max(self.range_hi, hi)
            self.count += 1
            self._step(now)

    def on_writer_release(self, i: int, now: float) -> None:
        if self.cb_bump[i]:
            # mmu_notifier_seq++ (then smp_wmb, count--)
            n = len(self.bump_times)
            if n == len(self._bumps):
                self._bumps = np.resize(self._bumps, 2 * n)
            self._bumps[n] = now
            self.bump_times.append(now)
        if self.cb_count[i] < 0:
            self.count -= 1
            self._step(now)

    def _step(self, now: float) -> None:
        self.steps.append(now, self.count, self.range_lo, self.range_hi)

    # -- output --------------------------------------------------------------------------------
    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The ``faults`` and ``notifiers`` tables of the run."""
        cols = ["vcpu", "fault", "retries", "hva", "t_exit_us", "t_request_us", "t_grant_us",
                "t_release_us", "retry"]  # fmt: skip
        dtypes = [np.int64, np.int64, np.int64, np.uint64, float, float, float, float, bool]
        if self.reader_chunks:
            parts = list(zip(*self.reader_chunks, strict=True))
            data = {c: np.concatenate([np.atleast_1d(p) for p in part]).astype(d, copy=False)
                    for c, part, d in zip(cols, parts, dtypes, strict=True)}  # fmt: skip
        else:
            data = {c: np.array([], dtype=d) for c, d in zip(cols, dtypes, strict=True)}
        order = np.lexsort((data["vcpu"], data["t_request_us"]))
        data = {c: a[order] for c, a in data.items()}
        data["wait_us"] = data["t_grant_us"] - data["t_request_us"]
        data["hold_us"] = data["t_release_us"] - data["t_grant_us"]
        retry = data.pop("retry")
        data["retry"] = retry
        faults = pd.DataFrame(data, copy=False)

        locked = self.cb_locked
        hold = np.where(locked, self.cb_cost, 0.0)
        grant = np.where(locked, self.cb_grant, np.nan)
        causes = self.stream["cause"]
        if not isinstance(causes.dtype, pd.CategoricalDtype):
            causes = causes.astype("category")
        by_event = pd.Series(causes.to_numpy(), index=self.stream["event"].to_numpy())
        notifiers = pd.DataFrame(
            {
                "event": self.cb_event,
                "cause": pd.Categorical(
                    by_event.reindex(self.cb_event).to_numpy(), categories=causes.cat.categories
                ),
                "callback": self.cb_callback.astype(str),
                "hva_start": self.cb_start,
                "hva_end": self.cb_end,
                "hit": self.cb_hit,
                "locked": locked,
                "t_arrive_us": self.cb_arrive,
                "t_grant_us": grant,
                "t_release_us": np.where(locked, grant + hold, np.nan),
                "wait_us": np.where(locked, grant - self.cb_arrive, 0.0),
                "hold_us": hold,
                "t_done_us": self.cb_done,
            }
        )
        return faults, notifiers


def lock_table(faults: pd.DataFrame, notifiers: pd.DataFrame, policy: str) -> pd.DataFrame:
    """Every acquisition of ``mmu_lock`` (faults and notifiers), sorted by grant time."""
    w = notifiers[notifiers["locked"].to_numpy()]
    nr, nw = len(faults), len(w)
    holder = np.concatenate([np.zeros(nr, dtype=np.int8), np.ones(nw, dtype=np.int8)])
    fault_mode = 1 if policy == "spinlock" else 0
    mode = np.concatenate([np.full(nr, fault_mode, dtype=np.int8), np.ones(nw, dtype=np.int8)])
    callbacks = ["page_fault", *CALLBACKS]
    cb_code = pd.Categorical(w["callback"], categories=callbacks).codes
    callback = np.concatenate([np.zeros(nr, dtype=np.int8), cb_code.astype(np.int8)])
    cols = {
        "who": np.concatenate([faults["vcpu"].to_numpy(), w["event"].to_numpy()]),
        "t_request_us": np.concatenate([faults["t_request_us"], w["t_arrive_us"]]),
        "t_grant_us": np.concatenate([faults["t_grant_us"], w["t_grant_us"]]),
        "t_release_us": np.concatenate([faults["t_release_us"], w["t_release_us"]]),
    }
    order = np.lexsort((holder, cols["t_grant_us"]))
    frame = pd.DataFrame(
        {
            "holder": pd.Categorical.from_codes(holder[order], ["vcpu", "notifier"]),
            "who": cols["who"][order],
            "mode": pd.Categorical.from_codes(mode[order], ["read", "write"]),
            "callback": pd.Categorical.from_codes(callback[order], callbacks),
            "t_request_us": cols["t_request_us"][order],
            "t_grant_us": cols["t_grant_us"][order],
            "t_release_us": cols["t_release_us"][order],
        }
    )
    frame["wait_us"] = frame["t_grant_us"] - frame["t_request_us"]
    frame["hold_us"] = frame["t_release_us"] - frame["t_grant_us"]
    return frame


# --------------------------------------------------------------------------------------------
# The event-driven engine: any policy.
# --------------------------------------------------------------------------------------------
_RELEASE, _ARRIVE, _REQUEST = 0, 1, 2  # at one instant: releases, then writers, then readers


def _run_events(model: _Model, policy: str) -> None:
    s, draws = model.s, model.draws
    if policy == "spinlock":
        # An exclusive holder has the lock word and page tables to itself: no bouncing term.
        model.mean_hold = s.read_hold_us
    model.init_state()
    lock = make_lock(policy)
    m = draws.m
    half = model.half_exit
    heap: list = []
    tick = 0

    def push(t, kind, payload):
        nonlocal tick
        heapq.heappush(heap, (t, kind, tick, payload))
        tick += 1

    # Per-vCPU state of the attempt in progress.
    attempt = np.zeros(m, dtype=np.int64)
    fault = np.zeros(m, dtype=np.int64)
    retries = np.zeros(m, dtype=np.int64)
    hva = np.zeros(m, dtype=np.uint64)
    t_exit = np.zeros(m)
    t_snap = np.zeros(m)
    t_req = np.zeros(m)
    t_grant = np.zeros(m)
    is_retry = np.zeros(m, dtype=bool)
    hold = np.zeros(m)

    guest, resolve, _, first_hva = draws.at(np.arange(m), np.zeros(m, dtype=np.int64))
    for v in range(m):
        t_exit[v] = guest[v]
        if t_exit[v] >= s.duration_us:
            continue
        t_snap[v] = t_exit[v] + half
        t_req[v] = t_snap[v] + resolve[v]
        hva[v] = first_hva[v]
        push(t_req[v], _REQUEST, ("r", v))
    for t, i in model.first_arrivals():
        push(t, _ARRIVE, ("w", i))

    def grant_reader(v, now):
        t_grant[v] = now
        bumps = model.bump_times
        bumped = bisect.bisect_right(bumps, now) > bisect.bisect_right(bumps, t_snap[v])
        in_range = model.count > 0 and model.range_lo <= int(hva[v]) < model.range_hi
        is_retry[v] = bool(bumped or in_range)
        h = s.retry_check_us if is_retry[v] else model.mean_hold * draws.hold_at(v, attempt[v])
        hold[v] = h
        push(now + h, _RELEASE, ("r", v))

    def grant_writer(i, now):
        model.cb_grant[i] = now
        model.on_writer_grant(i, now)
        push(now + model.cb_cost[i], _RELEASE, ("w", i))

    def grant_all(granted, now):
        for who in granted:
            if who[0] == "r":
                grant_reader(who[1], now)
            else:
                grant_writer(who[1], now)

    def next_callback(i, t_done):
        model.cb_done[i] = t_done
        j = model.cb_next[i]
        if j >= 0:
            push(t_done + model.cb_gap[i], _ARRIVE, ("w", j))

    while heap:
        now, kind, _, (who, x) = heapq.heappop(heap)
        if kind == _REQUEST:
            if lock.request(("r", x), policy == "spinlock"):
                grant_reader(x, now)
        elif kind == _ARRIVE:
            model.cb_arrive[x] = now
            if not model.cb_locked[x]:
                next_callback(x, now + model.cb_cost[x])
            elif lock.request(("w", x), True):
                grant_writer(x, now)
        elif who == "w":
            model.on_writer_release(x, now)
            grant_all(lock.release(("w", x), True), now)
            next_callback(x, now)
        else:
            v = x
            model.reader_chunks.append(
                (v, fault[v], retries[v], hva[v], t_exit[v], t_req[v], t_grant[v], now, is_retry[v])
            )
            grant_all(lock.release(("r", v), policy == "spinlock"), now)
            attempt[v] += 1
            g, r, _, new_hva = draws.at(v, attempt[v])
            if is_retry[v]:
                t_exit[v] = now + half  # the same access faults again at once
                retries[v] += 1
            else:
                t_exit[v] = now + half + g
                if t_exit[v] >= s.duration_us:
                    continue
                fault[v] += 1
                retries[v] = 0
                hva[v] = new_hva
            t_snap[v] = t_exit[v] + half
            t_req[v] = t_snap[v] + r
            push(t_req[v], _REQUEST, ("r", v))


# --------------------------------------------------------------------------------------------
# The vectorised engine: qrwlock only, all vCPUs advanced together between writer arrivals.
# --------------------------------------------------------------------------------------------
def _run_vectorized(model: _Model) -> None:
    s, draws = model.s, model.draws
    model.init_state()
    m = draws.m
    half = model.half_exit
    vcpus = np.arange(m)
    attempt = np.zeros(m, dtype=np.int64)
    guest, resolve, _, hva = draws.at(vcpus, attempt)
    t_exit = guest.copy()
    t_snap = t_exit + half
    t_req = t_snap + resolve
    t_req[t_exit >= s.duration_us] = np.inf
    fault = np.zeros(m, dtype=np.int64)
    retries = np.zeros(m, dtype=np.int64)
    last_release = np.full(m, -np.inf)

    cap = 1024
    w_arrive = np.empty(cap)
    w_release = np.empty(cap)
    nw = 0

    def advance(until: float) -> None:
        bumps = model._bumps[: len(model.bump_times)]
        cnt_t, cnt_v, cnt_lo, cnt_hi = model.steps.arrays()
        arr, rel = w_arrive[:nw], w_release[:nw]
        while True:
            act = np.flatnonzero(t_req < until)
            if act.size == 0:
                return
            r = t_req[act]
            # qrwlock: wait for the most recent writer that arrived at or before r, if still there.
            if nw:
                k = np.searchsorted(arr, r, "right") - 1
                pending_release = np.where(k >= 0, rel[np.maximum(k, 0)], -np.inf)
                g = np.where(pending_release > r, pending_release, r)
            else:
                g = r
            # mmu_notifier_retry_hva(): seq moved since the snapshot, or hva in a live range.
            bumped = np.searchsorted(bumps, g, "right") > np.searchsorted(
                bumps, t_snap[act], "right"
            )
            j = np.searchsorted(cnt_t, g, "right") - 1
            h = hva[act]
            in_range = (cnt_v[j] > 0) & (cnt_lo[j] <= h) & (h < cnt_hi[j])
            retry = bumped | in_range
            a = attempt[act]
            hold = np.where(retry, s.retry_check_us, model.mean_hold * draws.hold_at(act, a))
            released = g + hold
            model.reader_chunks.append(
                (act, fault[act], retries[act], h, t_exit[act], r, g, released, retry)
            )
            last_release[act] = released
            # The next attempt: the same fault again at once on retry, else a new one.
            a = a + 1
            attempt[act] = a
            g_next, r_next, _, hva_next = draws.at(act, a)
            exit_next = released + half + np.where(retry, 0.0, g_next)
            t_exit[act] = exit_next
            t_snap[act] = exit_next + half
            new = ~retry
            retries[act] = np.where(retry, retries[act] + 1, 0)
            hva[act] = np.where(retry, h, hva_next)
            fault[act] += new
            req = exit_next + half + r_next
            req[new & (exit_next >= s.duration_us)] = np.inf
            t_req[act] = req

    heap = [(t, i) for t, i in model.first_arrivals()]
    heapq.heapify(heap)
    last_writer_release = -np.inf
    while heap:
        now, i = heapq.heappop(heap)
        model.cb_arrive[i] = now
        if not model.cb_locked[i]:
            done = now + model.cb_cost[i]
        else:
            advance(now)  # every reader that requested before this writer arrived
            head = max(now, last_writer_release)
            grant = max(head, float(last_release.max()) if m else head)
            model.cb_grant[i] = grant
            model.on_writer_grant(i, grant)
            done = grant + model.cb_cost[i]
            model.on_writer_release(i, done)
            last_writer_release = done
            if nw == len(w_arrive):
                w_arrive = np.resize(w_arrive, 2 * nw)
                w_release = np.resize(w_release, 2 * nw)
            w_arrive[nw], w_release[nw] = now, done
            nw += 1
        model.cb_done[i] = done
        j = model.cb_next[i]
        if j >= 0:
            heapq.heappush(heap, (done + model.cb_gap[i], j))
    advance(np.inf)
