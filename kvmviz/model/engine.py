"""The closed-loop simulation: vCPUs faulting against MMU notifiers on one ``mmu_lock``.

Each faulting vCPU loops (x86 ``direct_page_fault``, docs/kernel.md §3.2):

1. runs in the guest, then takes an EPT violation (half a VM-exit round trip);
2. samples ``mmu_notifier_seq`` and resolves the pfn outside the lock (GUP);
3. takes ``mmu_lock`` for read with the TDP MMU (a2855afc7ee8), or for write without it
   (``Scenario.tdp_mmu=False``, the shadow MMU) and under ``"spinlock"``;
4. checks ``mmu_notifier_retry_hva()`` (4a42d848db95): retry if an invalidation is in flight
   whose range covers the fault's hva (``mmu_notifier_count != 0`` and the hva in
   ``[range_start, range_end)``), or if ``mmu_notifier_seq`` moved since step 2;
5. installs the SPTE and unlocks, or on retry unlocks at once, re-enters the guest and faults on
   the same address again.

Each notification event runs its callbacks in order; a callback takes ``mmu_lock`` for write or
not as :func:`kvmviz.kernels.rule` says, holds it for the memslot walk and, on a hit, for the
zap and one VM-wide TLB flush (``__kvm_handle_hva_range``, docs/kernel.md §2).

Three implementations of the same model give identical tables for the same inputs:

* an event-driven one over the lock state machines of :mod:`kvmviz.rwlock`, for every policy:
  the reference, easy to read, slow;
* a compiled one for ``"qrwlock"`` (:mod:`kvmviz.model._closed_loop`, numba when installed), which
  takes the writers in arrival order and advances the vCPUs between them. Under qrwlock a reader
  that requests at ``t`` is granted at once unless a writer arrived at or before ``t`` and has
  not yet left, in which case it enters when the most recent such writer leaves; and a writer
  enters once the writer before it has left and every reader inside has left. So between two
  writer arrivals the vCPUs are independent of each other. That no longer holds once faults
  check the counters before the lock (the pre-check, v6.8) or a zap yields the lock to them;
* so for those runs, the event-driven one ported line by line to a compiled loop for
  ``"qrwlock"`` with read-locking faults (:mod:`kvmviz.model._event_loop`): the same events in
  the same order, the same arithmetic.

Every random number is drawn per (vCPU, attempt) from a seeded stream, so both implementations,
and any two runs with the same seed, see the same workload.
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._shared._checks import check_int, check_seed
from .._shared._prose import binary_size
from ..inputs.kernels import CALLBACKS, features, resolve, zap_yields
from ..inputs.memslots import PAGE_SIZE
from ..inputs.notifiers import EVENT_KINDS, check_stream, generate_stream
from ..inputs.scenario import Scenario
from . import classify
from ._closed_loop import attempt_draws, page_hva, run_qrwlock
from ._event_loop import run_events
from .run import Run
from .rwlock import POLICIES, make_lock

__all__ = [
    "MAX_FAULTING_VCPUS",
    "MAX_RECORDS",
    "TooMuchWork",
    "Work",
    "callback_costs",
    "estimate",
    "scripted_run",
    "simulate",
]

_START = "invalidate_range_start"
_AGING = ("clear_flush_young", "clear_young", "test_young")


MAX_RECORDS = 4_000_000
"""Default limit of :func:`simulate`: rows of the run's tables (about 1 GiB of memory)."""

_BYTES_PER_ATTEMPT = 260  # the compiled engine's buffers (53 B), ``faults`` and ``lock`` rows
_BYTES_PER_CALLBACK = 240  # the callback plan, ``notifiers`` and ``lock`` rows
_MAX_CALLBACKS_PER_EVENT = max(len(seq) for seq in EVENT_KINDS.values())


@dataclass(frozen=True)
class Work:
    """What one :func:`simulate` call will do, estimated from its inputs before it starts.

    Attributes
    ----------
    events : int
        Notification events (a generous bound on the Poisson count: mean + 8 sd).
    callbacks : int
        Notifier callbacks (each event runs up to three).
    attempts : int
        Fault attempts, all vCPUs: ``n_faulting`` × (1.3 × ``duration_us`` / one fault cycle
        + 64), the room the compiled engine reserves.
    bytes : int
        Memory of the tables and buffers, roughly.
    """

    events: int
    callbacks: int
    attempts: int
    bytes: int

    @property
    def records(self) -> int:
        """Rows of the run's tables: fault attempts plus notifier callbacks."""
        return self.attempts + self.callbacks

    def __str__(self) -> str:
        return (
            f"~{_rough_count(self.attempts)} fault attempts and "
            f"~{_rough_count(self.callbacks)} notifier callbacks "
            f"(~{binary_size(self.bytes)} of tables)"
        )


def _rough_count(n: int) -> str:
    """A count of estimated work: grouped digits, or two significant digits past 10^12."""
    return f"{n:,}" if n < 10**12 else f"{n:.2g}"


class TooMuchWork(ValueError):
    """A simulation that would exceed its ``max_records`` limit.

    Raised before any work when the estimate (:func:`estimate`) exceeds it, or as soon as a
    run outgrows it anyway (faults retrying far more often than estimated).
    """


class _Overrun(Exception):
    """An engine reached its row limit (``_Model.max_attempts``) before the end of the run."""

    def __init__(self, rows: int) -> None:
        super().__init__(rows)
        self.rows = rows


# _closed_loop._bits packs the vCPU into the top 24 bits of the counter: beyond 2**24 faulting
# vCPUs two vCPUs would draw the same workload.
MAX_FAULTING_VCPUS = 2**24


def _clamp(x: float) -> int:
    """``x`` as an int, saturating far beyond any limit (``inf`` and ``1e300`` included)."""
    return int(min(x, 1e30)) if math.isfinite(x) else 10**30


def callback_costs(
    scenario: Scenario, kernel: str, stream: pd.DataFrame, seed: int = 0
) -> pd.DataFrame:
    """What each callback of a stream costs on ``kernel``, without simulating anything.

    The engine's own plan (the rules of :func:`kvmviz.classify.callbacks`, then the costs of
    ``__kvm_handle_hva_range``: the memslot walk, the zap, the aging, the flush when
    ``flush_on_ret && ret``), before any callback meets a vCPU: an uncontended callback holds
    ``mmu_lock`` exactly this long in :func:`simulate` with the same ``seed``.

    Parameters
    ----------
    scenario : Scenario
    kernel : str
    stream : pandas.DataFrame
        A notification stream (:func:`kvmviz.notifiers.check_stream` accepts it).
    seed : int
        Seeds the draw of which hits find SPTEs to zap or age (``mapped_share``).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`kvmviz.classify.callbacks`, plus ``flushed`` and ``hold_us``
        (the write hold of a callback that takes the lock; 0 for one that does not) and
        ``walk_us`` (the time a callback that skips the lock spends walking outside it).
    """
    stream = check_stream(stream)
    kernel = resolve(kernel)
    plan = classify.callbacks(stream, scenario.layout, kernel)
    model = _Model(scenario, kernel, stream, check_seed(seed))
    locked = model.cb_locked
    return plan.assign(
        flushed=model.cb_flush,
        hold_us=np.where(locked, model.cb_cost, 0.0),
        walk_us=np.where(locked, 0.0, model.cb_cost),
    )


def estimate(scenario: Scenario | None = None, *, stream: pd.DataFrame | None = None) -> Work:
    """Estimate the work of simulating ``scenario`` without doing it (a few arithmetic steps).

    Parameters
    ----------
    scenario : Scenario, optional
        Default ``Scenario()``.
    stream : pandas.DataFrame, optional
        The notification events :func:`simulate` would be given; their count replaces the
        Poisson estimate.

    Returns
    -------
    Work

    Examples
    --------
    >>> work = estimate(Scenario(n_vcpus=8, duration_us=1000.0))
    >>> work.attempts, work.events
    (492, 15)
    """
    s = Scenario() if scenario is None else scenario
    if stream is None:
        mean = s.notifier_rate_hz * s.duration_us * 1e-6
        events = _clamp(mean + 8 * math.sqrt(mean) + 2) if mean > 0 else 0
        # Callbacks per event, by cause (generate_stream): a pair 2, an aging call 1, a KSM
        # merge 6 (two triples).
        mix = np.asarray(s.relevant_mix) / sum(s.relevant_mix)
        spurious = s.spurious_pair_share * 2 + (1 - s.spurious_pair_share)
        relevant = mix @ [2, len(EVENT_KINDS["ksm_merge"]), 1]
        per_event = s.spurious_share * spurious + (1 - s.spurious_share) * relevant
        callbacks = _clamp(math.ceil(float(events) * per_event))
        if s.numa_scan_period_ms > 0:  # the NUMA balancer's scans: one start/end pair each
            first, period = s.numa_scan_delay_ms * 1e3, s.numa_scan_period_ms * 1e3
            scans = max(0, math.ceil((s.duration_us - first) / period))
            events, callbacks = events + scans, callbacks + 2 * scans
    else:
        events = len(stream)
        lengths = {kind: len(seq) for kind, seq in EVENT_KINDS.items()}
        kinds = stream["kind"] if "kind" in stream else ()
        callbacks = sum(lengths.get(k, _MAX_CALLBACKS_PER_EVENT) for k in kinds)
    cycle = s.guest_run_us + s.vmexit_us + s.resolve_pfn_us + s.read_acquire_us
    cycle += s.mean_read_hold_us
    attempts = _clamp(s.n_faulting * (1.3 * s.duration_us / cycle + 64)) if s.n_faulting else 0
    size = _clamp(float(attempts) * _BYTES_PER_ATTEMPT + float(callbacks) * _BYTES_PER_CALLBACK)
    return Work(events, callbacks, attempts, size)


def simulate(
    scenario: Scenario | None = None,
    kernel: str = "v5.15",
    policy: str = "qrwlock",
    seed: int = 0,
    *,
    stream: pd.DataFrame | None = None,
    method: str = "auto",
    max_records: int = MAX_RECORDS,
) -> Run:
    """Simulate ``scenario`` on ``kernel`` with ``mmu_lock`` under ``policy``.

    Before any work, the size of the run is estimated (:func:`estimate`); a run whose tables
    would exceed ``max_records`` rows is refused at once with :class:`TooMuchWork`, which
    gives the estimate and says how to go ahead.

    Parameters
    ----------
    scenario : Scenario, optional
        Default ``Scenario()``.
    kernel : str
        Which notifier rules apply: any release from v5.12 to v6.18 (``"v6.8"`` or ``"6.8"``,
        :func:`kvmviz.kernels.resolve`), e.g. one of :data:`kvmviz.KERNELS`. From v6.8 a fault
        retries before taking ``mmu_lock`` when its address is being invalidated
        (d02c357e5bfa); where :func:`kvmviz.kernels.zap_yields` says so (the kernel, with
        ``scenario.preempt`` and ``preempt_dynamic``), a long zap gives ``mmu_lock`` up to
        every vCPU that queues for it.
    policy : {"qrwlock", "reader-pref", "spinlock"}
        The lock (:mod:`kvmviz.rwlock`); ``"spinlock"`` also makes faults take it for write.
    seed : int
        Seeds the vCPU workload and the generated notification stream.
    stream : pandas.DataFrame, optional
        Notification events to use instead of generating them (e.g. from a real trace), in the
        form of :func:`kvmviz.notifiers.generate_stream`.
    method : {"auto", "compiled", "events"}
        ``"auto"`` picks a compiled engine for ``"qrwlock"`` with read-locking faults (the TDP
        MMU), else the event-driven one; ``"compiled"`` insists on one (it refuses the other
        policies and ``tdp_mmu=False``), ``"events"`` runs the event-driven reference. Of the
        two compiled engines, a run with the pre-check (v6.8 on) or a zap that yields gets the
        compiled port of the event-driven engine, any other the faster closed loop; all give
        identical tables.
    max_records : int
        The most fault attempts plus notifier callbacks this call may simulate; default
        :data:`MAX_RECORDS` (about 1 GiB of tables). Raise it to go ahead with a bigger run.

    Returns
    -------
    Run

    Raises
    ------
    TooMuchWork
        The estimate exceeds ``max_records`` (a ``ValueError``).
    """
    scenario = Scenario() if scenario is None else scenario
    kernel = _check_choices(scenario, kernel, policy, method)
    seed = check_seed(seed)
    max_records = check_int(max_records, "max_records", minimum=1)
    if stream is not None:
        stream = check_stream(stream)
    work = _affordable(scenario, stream, max_records)
    if stream is None:
        stream = generate_stream(scenario, seed)
    model = _Model(scenario, kernel, stream, seed)
    # The estimate cannot foresee a retry storm (under reader-pref a starved
    # invalidate_range_end keeps its range in flight, and every fault in it retries about every
    # 2 µs instead of every guest run): the engines also stop at max_records rows.
    model.max_attempts = max(max_records - len(model.cb_callback), 0)
    # The random draws wrap around 64 bits on purpose (numba does so silently).
    try:
        with np.errstate(over="ignore"):
            if (
                method == "events"
                or (method == "auto" and scenario.faults_write(policy))
                or (method == "auto" and policy != "qrwlock")
            ):
                _run_events(model, policy)
            elif _beyond_compiled(scenario, kernel):
                _run_event_loop(model)
            else:
                _run_compiled(model)
    except _Overrun as overrun:
        raise TooMuchWork(
            f"this run outgrew max_records={max_records:,}: it needed more than "
            f"{overrun.rows:,} fault-attempt rows besides {len(model.cb_callback):,} notifier "
            f"callbacks (estimated: {work}), as faults retried far more than estimated; "
            "shorten duration_us or pass a larger max_records to go ahead"
        ) from None
    faults, notifiers, holds = model.tables()
    return Run(scenario, kernel, policy, seed, faults, notifiers, write_holds=holds)


def _beyond_compiled(scenario: Scenario, kernel: str) -> bool:
    """Whether the run needs what the compiled closed loop does not model, so that the compiled
    event loop runs it: the lockless pre-check (d02c357e5bfa, v6.8) or a zap that yields
    ``mmu_lock`` (:func:`kvmviz.kernels.zap_yields`)."""
    return features(kernel).precheck or _yields(scenario, kernel)


def _yields(scenario: Scenario, kernel: str) -> bool:
    """Whether a zap on this run yields a contended ``mmu_lock``: the TDP MMU's zap loop
    (``tdp_mmu_iter_cond_resched``) on a kernel and preemption model that drop the lock."""
    return scenario.tdp_mmu and zap_yields(
        kernel, scenario.preempt, dynamic=scenario.preempt_dynamic
    )


def _check_choices(scenario, kernel: str, policy: str, method: str) -> str:
    """Refuse what :func:`simulate` cannot run: a scenario that is not one, an unknown kernel,
    policy or method, or a compiled engine asked for a lock or MMU it does not model (another
    policy than qrwlock, or faults that take the lock for write). Returns the canonical
    release."""
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a kvmviz.Scenario, got {type(scenario).__name__}")
    kernel = resolve(kernel)
    if policy not in POLICIES:
        raise ValueError(f"unknown lock policy {policy!r}; expected one of {POLICIES}")
    if method not in ("auto", "compiled", "events"):
        raise ValueError(f"unknown method {method!r}; expected 'auto', 'compiled' or 'events'")
    if method == "compiled" and policy != "qrwlock":
        raise ValueError("the compiled engines model qrwlock only; use method='events'")
    if method == "compiled" and not scenario.tdp_mmu:
        raise ValueError(
            "the compiled engines model read-locking faults (the TDP MMU) only; "
            "use method='events' for tdp_mmu=False"
        )
    return kernel


def _affordable(scenario: Scenario, stream, max_records: int) -> Work:
    """The estimated work of a :func:`simulate` call (:func:`estimate`), refused with
    :class:`TooMuchWork` before any work if it exceeds ``max_records`` rows or has more
    faulting vCPUs than the workload generator numbers."""
    work = estimate(scenario, stream=stream)
    if work.records > max_records:
        raise TooMuchWork(
            f"this run would simulate {work}, more than max_records={max_records:,}: "
            "shorten duration_us, lower n_vcpus or notifier_rate_hz"
            + (
                f", or pass max_records={work.records} to go ahead"
                if work.bytes < 2**50
                else " (no machine has the memory this run needs)"
            )
        )
    if scenario.n_faulting >= MAX_FAULTING_VCPUS:
        raise TooMuchWork(
            f"this run has {scenario.n_faulting:,} faulting vCPUs: the workload generator "
            f"numbers them below 2**24 ({MAX_FAULTING_VCPUS:,}); lower n_vcpus or faulting_share"
        )
    return work


# --------------------------------------------------------------------------------------------
# What both engines share: the workload draws, the callback plan, the costs and the records.
# --------------------------------------------------------------------------------------------
class _Draws:
    """The random numbers of every (vCPU, attempt), from a counter-based generator.

    ``at(v, a)`` depends only on the seed, the vCPU and the attempt number, so both engines
    (which visit attempts in different orders) see the same workload.
    """

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.m = scenario.n_faulting
        self.key = np.uint64(int(seed) & (2**64 - 1)) ^ np.uint64(0x6B766D76697A)  # "kvmviz"
        # Guest pages are numbered over the slots of address space 0, in walk order.
        slots = [x for x in scenario.layout if x.as_id == 0]
        npages = np.array([x.npages for x in slots], dtype=np.int64)
        self.slot_first_page = np.concatenate([[0], np.cumsum(npages)[:-1]]).astype(np.int64)
        self.slot_hva = np.array([x.userspace_addr for x in slots], dtype=np.uint64)
        self.total_pages = int(npages.sum())

    def at(self, vcpu: int, attempt: int):
        """(guest_run_us, resolve_us, standard-exponential hold, hva) of one attempt."""
        s = self.scenario
        guest, resolve, hold, page = attempt_draws(
            self.key, vcpu, attempt, s.guest_run_us, s.resolve_pfn_us, self.total_pages
        )
        return guest, resolve, hold, page_hva(page, self.slot_first_page, self.slot_hva)


# What both engines record per fault attempt, in order, with its dtype (the compiled loop's
# output arrays, the event engine's tuples, then the faults table).
_ATTEMPT_COLUMNS = {
    "vcpu": np.int32,
    "fault": np.int32,
    "retries": np.int32,
    "hva": np.uint64,
    "t_exit_us": float,
    "t_request_us": float,
    "t_grant_us": float,
    "t_release_us": float,
    "retry": np.bool_,
    "blocked_by": np.int64,
}


class _Model:
    """Inputs of one run and the records both engines fill in."""

    def __init__(self, scenario: Scenario, kernel: str, stream: pd.DataFrame, seed: int) -> None:
        self.s = scenario
        self.kernel = kernel
        self.stream = stream
        self.draws = _Draws(scenario, seed)
        self.half_exit = scenario.vmexit_us / 2
        self.mean_hold = scenario.mean_read_hold_us
        # The contention a reader pays acquiring the lock, before it counts as inside.
        self.acquire = scenario.read_acquire_us
        self._plan_callbacks(seed)
        # Reader records (filled by the engines as arrays or lists of scalars).
        self.reader_chunks: list[tuple] = []  # one tuple per attempt (event engine)
        # Column arrays, sorted (the compiled engines): those of _ATTEMPT_COLUMNS, then from
        # the compiled event loop t_snapshot_us and spins.
        self.sorted_attempts: tuple | None = None
        self.cb_grant = np.full(len(self.cb_callback), np.nan)
        self.cb_arrive = np.full(len(self.cb_callback), np.nan)
        self.cb_done = np.full(len(self.cb_callback), np.nan)
        # Filled by the event engine only where a zap yielded: the last release, the time held
        # in all, the yields, and one (callback, request, grant, release, yielded, flushed)
        # per write hold of those callbacks.
        n = len(self.cb_callback)
        self.cb_release = np.full(n, np.nan)
        self.cb_held = np.zeros(n)
        self.cb_yields = np.zeros(n, dtype=np.int64)
        self.yield_holds: list[tuple] = []
        self.max_attempts = 2**62  # fault-attempt rows an engine may record (simulate sets it)

    # -- the notifications ------------------------------------------------------------------
    def _plan_callbacks(self, seed: int) -> None:
        """Expand the events into their callbacks and look up each one's rule and cost."""
        s, stream = self.s, self.stream
        plan = classify.callbacks(stream, s.layout, self.kernel)
        code = plan["code"].to_numpy()
        n = len(plan)
        self.cb_callback = plan["callback"].to_numpy()
        self.cb_event = plan["event"].to_numpy()
        self.cb_start = plan["hva_start"].to_numpy()
        self.cb_end = plan["hva_end"].to_numpy()
        self.cb_hit = plan["hit"].to_numpy()
        self.cb_locked = plan["locked"].to_numpy()
        self.cb_count = plan["count_delta"].to_numpy()
        self.cb_bump = plan["bumps_seq"].to_numpy()
        self.cb_flush_on_ret = plan["flush_on_ret"].to_numpy()
        self._plan_costs(code, seed)
        has_next = ~plan["last"].to_numpy()
        self.cb_next = np.where(has_next, np.arange(n) + 1, -1).astype(np.int64)
        self.cb_gap = np.where(has_next, s.invalidate_window_us, 0.0)
        self.first_time = stream["t_us"].to_numpy(dtype=float)
        self.first_cb = np.flatnonzero(plan["position"].to_numpy() == 0).astype(np.int64)

    def _plan_costs(self, code: np.ndarray, seed: int) -> None:
        """Each callback's time: its hold if it takes the lock, else its walk outside it.

        A callback flushes remote TLBs only if ``flush_on_ret`` and its handler returned true
        (``__kvm_handle_hva_range()``, docs/kernel.md §2 step 4): ``kvm_unmap_gfn_range`` when it
        zapped an SPTE, ``kvm_age_gfn`` when an SPTE it aged was young. Whether a hit range
        holds such an SPTE is drawn per callback from ``mapped_share`` (and ``young_share`` for
        aging), seeded, so both engines see the same flushes.
        """
        s, layout = self.s, self.s.layout
        n = len(code)
        start = CALLBACKS.index(_START)
        # The memslot walk: its kernel rules (one walk, two on v5.12 with the TDP MMU, none
        # for a v5.13- invalidate_range_end) are classify's.
        walk = classify.walk_costs(
            code, self.kernel, memslot_walk_us=s.memslot_walk_us, tdp_mmu=s.tdp_mmu
        )
        # Pages of guest memory each hit reaches (one page for the single-hva callbacks).
        pages = np.zeros(n, dtype=np.int64)
        for i in np.flatnonzero(self.cb_hit):
            ranges = layout.gfn_ranges(int(self.cb_start[i]), int(self.cb_end[i]))
            pages[i] = sum(g.npages for g in ranges)
        # ret of the handler: some SPTE in the range (unmap), some young SPTE (aging).
        present = s.mapped_share * np.where(
            code == CALLBACKS.index("clear_flush_young"), s.young_share, 1.0
        )
        p_ret = 1.0 - (1.0 - present) ** pages
        u = np.random.default_rng(np.random.SeedSequence([check_seed(seed), 0x726574])).random(n)
        ret = self.cb_hit & (u < p_ret)  # "ret"
        # change_pte always runs between a start that already zapped the SPTE and its end
        # (6bdb913f0a70), so kvm_set_spte_gfn finds nothing present and returns false: it never
        # flushes (c13fda237f08's own reasoning). kvm->tlbs_dirty, or-ed into the flush test of
        # these kernels, is raised only by the shadow MMU's unsync pages: taken as 0 here.
        ret &= code != CALLBACKS.index("change_pte")
        self.cb_flush = self.cb_locked & ret & self.cb_flush_on_ret
        work = np.zeros(n)
        zap = self.cb_locked & self.cb_hit & (code == start)
        mapped_mib = np.where(ret, pages * s.mapped_share, 0.0) * PAGE_SIZE / 2**20
        work[zap] = s.zap_base_us + s.zap_us_per_mib * mapped_mib[zap]
        aging = np.isin(code, [CALLBACKS.index(c) for c in _AGING])
        work[self.cb_locked & self.cb_hit & aging] = s.age_us
        # change_pte after start finds nothing left to change (c13fda237f08); end only counts.
        work[self.cb_flush] += s.tlb_flush_us  # kvm_flush_remote_tlbs(), under the lock
        self.cb_cost = np.where(self.cb_locked, s.lock_op_us + walk + work, walk)
        # A zap that may yield (docs/kernel.md §4.6): the TDP MMU's loop over the SPTEs of the
        # range (tdp_mmu_zap_leafs, can_yield = range->may_block since e1eed5847b09) checks
        # rwlock_needbreak() at every SPTE; cb_loop is that loop's time, cb_post the final flush.
        self.step_us = s.zap_us_per_mib * s.spte_kib / 1024.0
        self.cb_loop = np.zeros(n)
        if _yields(s, self.kernel):
            loop = zap & (mapped_mib > 0)
            self.cb_loop[loop] = s.zap_us_per_mib * mapped_mib[loop]
        self.cb_post = np.where(self.cb_flush, s.tlb_flush_us, 0.0)

    def first_arrivals(self) -> list[tuple[float, int]]:
        return list(zip(self.first_time.tolist(), self.first_cb.tolist(), strict=True))

    # -- the effects of callbacks on mmu_notifier_count / seq ---------------------------------
    def init_state(self) -> None:
        self.counters = classify.Counters()
        self.bump_times: list[float] = []

    def on_writer_grant(self, i: int, now: float) -> None:
        self.counters.grant(int(self.cb_count[i]), int(self.cb_start[i]), int(self.cb_end[i]))

    def on_writer_release(self, i: int, now: float) -> None:
        if self.cb_bump[i]:
            self.bump_times.append(now)
        self.counters.release(bool(self.cb_bump[i]), int(self.cb_count[i]))

    # -- output --------------------------------------------------------------------------------
    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The ``faults``, ``notifiers`` and ``write_holds`` tables of the run."""
        cols, dtypes = list(_ATTEMPT_COLUMNS), list(_ATTEMPT_COLUMNS.values())
        extra = {"t_snapshot_us": float, "spins": np.int32}
        if self.sorted_attempts is not None and len(self.sorted_attempts) > len(cols):
            data = dict(zip(cols + list(extra), self.sorted_attempts, strict=True))
        elif self.sorted_attempts is not None:
            data = dict(zip(cols, self.sorted_attempts, strict=True))
            # The compiled engine samples mmu_notifier_seq half a VM-exit after the exit.
            data["t_snapshot_us"] = data["t_exit_us"] + self.half_exit
            data["spins"] = np.zeros(len(data["vcpu"]), dtype=np.int32)
        else:
            names, types = cols + list(extra), dtypes + list(extra.values())
            parts = list(zip(*self.reader_chunks, strict=True)) or [()] * len(names)
            data = {
                c: np.array(part, dtype=d) for c, part, d in zip(names, parts, types, strict=True)
            }
            # By vCPU, then in time: the event engine records a vCPU's attempts in time order,
            # so a stable sort on the vCPU alone is enough.
            order = np.argsort(data["vcpu"], kind="stable")
            data = {c: a[order] for c, a in data.items()}
        spins = data.pop("spins")
        snapshot = data.pop("t_snapshot_us")
        data["wait_us"] = data["t_grant_us"] - data["t_request_us"]
        data["hold_us"] = data["t_release_us"] - data["t_grant_us"]
        data["t_snapshot_us"] = snapshot
        retry = data.pop("retry")
        data["retry"] = retry
        data["blocked_by"] = data.pop("blocked_by")
        locked = self.cb_locked
        # A callback's last release: after its one hold, or as recorded for a zap that may
        # yield (its holds end at the loop's steps, not at grant + cost).
        yielded = locked & ~np.isnan(self.cb_release)
        release = np.where(locked, self.cb_grant + self.cb_cost, np.nan)
        release[yielded] = self.cb_release[yielded]
        data["retried_by"] = retry_causes(
            data,
            count_delta=np.where(locked, self.cb_count, 0),
            bumps_seq=locked & self.cb_bump,
            grant_us=self.cb_grant,
            release_us=release,
            hva_start=self.cb_start,
            hva_end=self.cb_end,
        )
        data["spins"] = spins
        faults = pd.DataFrame(data, copy=False)

        hold = np.where(locked, self.cb_cost, 0.0)
        hold[yielded] = self.cb_held[yielded]
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
                "flushed": self.cb_flush,
                "t_arrive_us": self.cb_arrive,
                "t_grant_us": grant,
                "t_release_us": np.where(yielded, release, np.where(locked, grant + hold, np.nan)),
                "wait_us": np.where(locked, grant - self.cb_arrive, 0.0),
                "hold_us": hold,
                "t_done_us": self.cb_done,
                "yields": self.cb_yields,
            }
        )
        return faults, notifiers, self._write_holds(notifiers)

    def _write_holds(self, notifiers: pd.DataFrame) -> pd.DataFrame:
        """One row per write hold of ``mmu_lock`` by a callback: one per locked callback, and
        one per stretch between yields for a zap that yielded."""
        once = np.flatnonzero(self.cb_locked & (self.cb_yields == 0))  # one hold each
        rows = [
            (int(i), a, g, r, False, bool(f))
            for i, a, g, r, f in zip(
                once.tolist(),
                notifiers["t_arrive_us"].to_numpy()[once].tolist(),
                notifiers["t_grant_us"].to_numpy()[once].tolist(),
                notifiers["t_release_us"].to_numpy()[once].tolist(),
                self.cb_flush[once].tolist(),
                strict=True,
            )
        ]
        return write_holds_frame(rows + self.yield_holds, notifiers)


def write_holds_frame(rows, notifiers: pd.DataFrame) -> pd.DataFrame:
    """The ``write_holds`` table of a :class:`Run` from ``(notifier, t_request_us, t_grant_us,
    t_release_us, yielded, flushed)`` tuples, sorted by grant."""
    cols = ["notifier", "t_request_us", "t_grant_us", "t_release_us", "yielded", "flushed"]
    frame = pd.DataFrame(rows, columns=cols).astype(
        {"notifier": np.int64, "yielded": bool, "flushed": bool, "t_grant_us": float}
    )
    frame = frame.sort_values(["t_grant_us", "notifier"], kind="stable").reset_index(drop=True)
    at = frame["notifier"].to_numpy()
    frame.insert(1, "event", notifiers["event"].to_numpy()[at])
    frame.insert(2, "callback", notifiers["callback"].to_numpy()[at])
    return frame


def retry_causes(
    attempts, *, count_delta, bumps_seq, grant_us, release_us, hva_start, hva_end
) -> np.ndarray:
    """Which callback made each fault attempt retry: the ``retried_by`` column of a run.

    ``mmu_notifier_retry_hva()`` (4a42d848db95) first asks whether an invalidation is in flight
    over the fault's hva (``mmu_notifier_count`` up and the hva in ``[range_start,
    range_end)``), then whether ``mmu_notifier_seq`` moved since the attempt's snapshot. The
    cause of a retry is, in that order:

    * the range: the newest ``invalidate_range_start`` granted since the count last rose from
      0 whose own range holds the hva; if none does, the newest of them (the kernel checks the
      union of their ranges, 4a42d848db95, so a range can reach an hva no single one covers);
    * else the seq: the first callback that bumped ``mmu_notifier_seq`` after the snapshot.

    Both engines fill the other columns; this reads them back, so the attribution is the
    same whichever engine ran. The state machine is :class:`kvmviz.classify.Counters`: a
    start raises the count when it is granted the lock, an end bumps seq then lowers the count
    when it releases it, and an attempt sees every change made at or before its grant.

    Parameters
    ----------
    attempts : mapping of column name to array
        ``retry, hva, t_snapshot_us, t_grant_us`` of every fault attempt.
    count_delta, bumps_seq : array_like
        Per callback, the effect it had (0 / ``False`` for one that skipped the lock).
    grant_us, release_us, hva_start, hva_end : array_like
        Per callback, when it held ``mmu_lock`` and its hva range.

    Returns
    -------
    numpy.ndarray of int64
        The callback (row of ``run.notifiers``) per attempt, -1 where it did not retry.
    """
    retry = np.asarray(attempts["retry"], dtype=bool)
    out = np.full(len(retry), -1, dtype=np.int64)
    rows = np.flatnonzero(retry)
    if rows.size == 0:
        return out
    count_delta = np.asarray(count_delta)
    bumps_seq = np.asarray(bumps_seq, dtype=bool)
    # Changes in time order, and at one instant in the order the engines apply them: a release
    # (an end's count--) before a grant (a start's count++), since the writer granted at that
    # instant was waiting for the one that released; then by callback.
    changes = []  # (time, 0 for a release / 1 for a grant, callback, delta)
    for i in np.flatnonzero(count_delta > 0):
        changes.append((float(grant_us[i]), 1, int(i), 1))
    for i in np.flatnonzero(count_delta < 0):
        changes.append((float(release_us[i]), 0, int(i), -1))
    changes.sort()
    # The state after each change: the count, the range (reset at 0 -> 1, else widened) and
    # where the current run of starts (the epoch since the count last rose from 0) began.
    n = len(changes)
    step_t = np.array([c[0] for c in changes], dtype=float)
    step_count = np.zeros(n, dtype=np.int64)
    step_lo = np.zeros(n, dtype=object)
    step_hi = np.zeros(n, dtype=object)
    step_epoch = np.zeros(n, dtype=np.int64)
    count, lo, hi, epoch = 0, 0, 0, 0
    for k, (_, _, i, delta) in enumerate(changes):
        if delta > 0:
            a, b = int(hva_start[i]), int(hva_end[i])
            if count == 0:
                lo, hi, epoch = a, b, k  # kvm_inc_notifier_count: the range restarts
            else:
                lo, hi = min(lo, a), max(hi, b)
        count += delta
        step_count[k], step_lo[k], step_hi[k], step_epoch[k] = count, lo, hi, epoch
    bump_cb = np.flatnonzero(bumps_seq)
    bump_t = np.asarray(release_us, dtype=float)[bump_cb]
    order = np.argsort(bump_t, kind="stable")
    bump_cb, bump_t = bump_cb[order], bump_t[order]
    hva = np.asarray(attempts["hva"], dtype=np.uint64)[rows]
    snap = np.asarray(attempts["t_snapshot_us"], dtype=float)[rows]
    grant = np.asarray(attempts["t_grant_us"], dtype=float)[rows]
    # The range half: the state every change at or before the grant left.
    k = np.searchsorted(step_t, grant, side="right") - 1
    in_range = np.zeros(len(rows), dtype=bool)
    for j in np.flatnonzero((k >= 0) & (step_count[np.maximum(k, 0)] > 0)):
        h, kk = int(hva[j]), k[j]
        if not step_lo[kk] <= h < step_hi[kk]:
            continue
        in_range[j] = True
        starts = [c[2] for c in changes[step_epoch[kk] : kk + 1] if c[3] > 0]
        covering = [i for i in starts if int(hva_start[i]) <= h < int(hva_end[i])]
        out[rows[j]] = covering[-1] if covering else starts[-1]
    # The seq half, for the rest: the first bump after the snapshot, if it came by the grant.
    rest = np.flatnonzero(~in_range)
    first = np.searchsorted(bump_t, snap[rest], side="right")
    found = first < len(bump_t)
    found[found] = bump_t[first[found]] <= grant[rest[found]]
    out[rows[rest[found]]] = bump_cb[first[found]]
    return out


# --------------------------------------------------------------------------------------------
# The event-driven engine: any policy.
# --------------------------------------------------------------------------------------------
# At one instant: releases (and yields), then writers, then readers, then pre-checks.
_RELEASE, _ARRIVE, _REQUEST, _CHECK = 0, 1, 2, 3


def _run_events(model: _Model, policy: str) -> None:
    _EventRun(model, policy).run()


class _EventRun:
    """The event-driven engine on one run: a heap of timed events (a vCPU requests
    ``mmu_lock``, a callback arrives, a holder releases or yields, a vCPU checks the counters
    before the lock), each vCPU's attempt in progress, the lock of ``policy`` and the callbacks
    queued on it; :meth:`run` pops the events in order and records each attempt into
    ``model``.

    Two rules of today's kernels live here only (the compiled engine refuses them):

    * **the pre-check** (d02c357e5bfa, v6.8): ``mmu_invalidate_retry_gfn_unsafe()`` right after
      sampling seq and again after resolving the pfn; a fault whose address is in the range in
      flight, or whose seq moved, returns ``RET_PF_RETRY`` without touching ``mmu_lock`` and
      faults again after a VM exit round trip (a *spin*). A vCPU spinning on a range waits,
      parked, for the counters to change, then resumes at its next spin: the spins in between
      are counted, not simulated one by one (nothing else happens to it meanwhile);
    * **the yielding zap** (``tdp_mmu_iter_cond_resched()``): a zap whose loop is running checks
      ``rwlock_needbreak()`` at every SPTE; at the first check after somebody queued for the
      lock, having made at least one step since it (re)took the lock, it flushes remote TLBs
      (what it zapped so far), ``write_unlock()``s, and asks for the lock again
      (``cond_resched_rwlock_write()``): the readers queued before it go first.
    """

    def __init__(self, model: _Model, policy: str) -> None:
        s, draws = model.s, model.draws
        self.model, self.s, self.draws = model, s, draws
        self.exclusive = exclusive = s.faults_write(policy)
        if exclusive:
            # An exclusive holder has the lock word and page tables to itself: no bouncing term.
            model.mean_hold = s.read_hold_us
            model.acquire = 0.0
        model.init_state()
        self.lock = make_lock(policy)
        m = draws.m
        self.half = model.half_exit
        self.heap: list = []
        self.tick = 0
        # Per-vCPU state of the attempt in progress.
        self.attempt = np.zeros(m, dtype=np.int64)
        self.fault = np.zeros(m, dtype=np.int64)
        self.retries = np.zeros(m, dtype=np.int64)
        self.hva = np.zeros(m, dtype=np.uint64)
        self.t_exit = np.zeros(m)
        self.t_snap = np.zeros(m)
        self.t_req = np.zeros(m)
        self.t_grant = np.zeros(m)
        self.is_retry = np.zeros(m, dtype=bool)
        self.hold = np.zeros(m)
        self.blocked = np.full(m, -1, dtype=np.int64)
        # The pre-check (v6.8+): lockless retries of the attempt, the resolve time it redoes
        # after each, and the vCPUs parked on a range in flight (vCPU -> time of its check).
        self.precheck = features(model.kernel).precheck
        self.spins = np.zeros(m, dtype=np.int64)
        self.resolve = np.zeros(m)
        self.parked: dict[int, float] = {}
        # The yielding zaps: per callback, the loop's start and the work left, the pending
        # yield, the valid release event and when this hold was asked for.
        n = len(model.cb_callback)
        self.loop_left = model.cb_loop.copy()
        self.loop_start = np.zeros(n)
        self.yield_at = np.full(n, np.nan)
        self.valid = np.full(n, -1, dtype=np.int64)
        self.seg_request = np.zeros(n)
        self.seg_grant = np.zeros(n)
        # The callbacks that asked for mmu_lock and have not released it, in the order they
        # asked (every policy grants writers in that order), and the one holding it, if any:
        # whom a fault that cannot have the lock at once waits behind (see Run.faults,
        # blocked_by).
        self.asked: list[int] = []
        self.holding = -1
        self.behind_holder = policy == "reader-pref" and not exclusive

    def push(self, t, kind, payload) -> int:
        heapq.heappush(self.heap, (t, kind, self.tick, payload))
        self.tick += 1
        return self.tick - 1

    def run(self) -> None:
        """Every vCPU's first fault and every event's first callback, then the events in
        order until none is left."""
        model, draws, s = self.model, self.draws, self.s
        for v in range(draws.m):
            guest, resolve, _, first_hva = draws.at(v, 0)
            self.t_exit[v] = guest
            if self.t_exit[v] >= s.duration_us:
                continue
            self.t_snap[v] = self.t_exit[v] + self.half
            self.t_req[v] = self.t_snap[v] + resolve + model.acquire
            self.hva[v] = first_hva
            self.resolve[v] = resolve
            self.fault_in(v)
        for t, i in model.first_arrivals():
            self.push(t, _ARRIVE, ("w", i))
        heap = self.heap
        while heap:
            now, kind, tick, (who, x) = heapq.heappop(heap)
            if kind == _REQUEST:
                self.request(x, now)
            elif kind == _ARRIVE:
                self.arrive(x, now)
            elif kind == _CHECK:
                self.check(x, who, now)
            elif who == "r":
                self.release_reader(x, now)
            elif model.cb_loop[x] > 0 and tick != self.valid[x]:
                continue  # a release a yield has replaced
            elif who == "y":
                self.yield_lock(x, now)
            else:
                self.release_writer(x, now)

    # -- the vCPUs ------------------------------------------------------------------------------
    def fault_in(self, v: int) -> None:
        """vCPU ``v`` has sampled seq at ``t_snap``: it resolves the pfn and asks for the lock,
        or on a pre-check kernel first checks the counters."""
        if self.precheck:
            self.push(self.t_snap[v], _CHECK, ("snapshot", v))
        else:
            self.push(self.t_req[v], _REQUEST, ("r", v))

    def check(self, v: int, when: str, now: float) -> None:
        """``mmu_invalidate_retry_gfn_unsafe()`` (d02c357e5bfa): after sampling seq
        (``when == "snapshot"``) and after resolving the pfn (``"resolved"``)."""
        c = self.model.counters
        hva = int(self.hva[v])
        if c.count != 0 and c.range_start <= hva < c.range_end:
            self.parked[v] = now  # spins until the range changes: see wake()
            return
        if when == "snapshot":
            self.push(self.t_snap[v] + self.resolve[v], _CHECK, ("resolved", v))
            return
        bumps = self.model.bump_times
        if bisect.bisect_right(bumps, now) != bisect.bisect_right(bumps, self.t_snap[v]):
            self.spin(v, now + self.s.vmexit_us)  # seq moved: fault again at once
            return
        self.t_req[v] = now + self.model.acquire
        self.push(self.t_req[v], _REQUEST, ("r", v))

    def spin(self, v: int, t_snap: float) -> None:
        """vCPU ``v`` retried without the lock and samples seq again at ``t_snap``."""
        self.spins[v] += 1
        self.t_snap[v] = t_snap
        self.push(t_snap, _CHECK, ("snapshot", v))

    def wake(self, now: float) -> None:
        """The counters changed at ``now``: every parked vCPU checks again at its next spin
        (it re-faults every VM exit round trip; the spins in between are counted)."""
        cycle = self.s.vmexit_us
        for v, t_park in self.parked.items():
            k = max(1, math.ceil((now - t_park) / cycle)) if cycle > 0 else 1
            self.spins[v] += k - 1
            self.spin(v, t_park + k * cycle)
        self.parked.clear()

    def request(self, v: int, now: float) -> None:
        """vCPU ``v`` asks for ``mmu_lock``: granted at once, or queued behind someone."""
        if self.lock.request(("r", v), self.exclusive):
            self.blocked[v] = -1
            self.grant_reader(v, now)
        else:
            # qrwlock: behind the newest writer that asked (it closed the door); FIFO
            # (spinlock, exclusive faults): behind the newest callback ahead in the queue,
            # -1 if only faults are; reader-pref: behind the writer holding the lock.
            asked = self.asked
            self.blocked[v] = self.holding if self.behind_holder else (asked[-1] if asked else -1)
            self.contention(now)

    def grant_reader(self, v: int, now: float) -> None:
        """vCPU ``v`` has the lock: it checks ``mmu_notifier_retry_hva()``, then holds it for
        the retry check alone or for its whole fault."""
        model, s = self.model, self.s
        self.t_grant[v] = now
        bumps = model.bump_times  # seq is the number of bumps so far
        seq, seq_now = bisect.bisect_right(bumps, self.t_snap[v]), bisect.bisect_right(bumps, now)
        c = model.counters
        self.is_retry[v] = classify.mmu_notifier_retry_hva(
            int(c.count), int(c.range_start), int(c.range_end), int(self.hva[v]), seq_now, seq
        )
        if self.is_retry[v]:
            h = s.retry_check_us
        else:
            h = model.mean_hold * self.draws.at(v, self.attempt[v])[2]
        self.hold[v] = h
        self.push(now + h, _RELEASE, ("r", v))

    def release_reader(self, v: int, now: float) -> None:
        """vCPU ``v`` lets go: its attempt is recorded, the lock grants whom it may, and the
        vCPU faults again (at once on a retry, after a guest run otherwise)."""
        model = self.model
        model.reader_chunks.append(
            (
                v,
                self.fault[v],
                self.retries[v],
                self.hva[v],
                self.t_exit[v],
                self.t_req[v],
                self.t_grant[v],
                now,
                self.is_retry[v],
                self.blocked[v],
                self.t_snap[v],
                self.spins[v],
            )
        )
        if len(model.reader_chunks) > model.max_attempts:
            raise _Overrun(len(model.reader_chunks))
        self.grant_all(self.lock.release(("r", v), self.exclusive), now)
        self.next_attempt(v, now)

    def next_attempt(self, v: int, now: float) -> None:
        """vCPU ``v``'s next attempt, released at ``now``: the same access again after a
        retry, else a new fault after a guest run (none past the end of the run)."""
        half = self.half
        self.attempt[v] += 1
        g, r, _, new_hva = self.draws.at(v, self.attempt[v])
        if self.is_retry[v]:
            self.t_exit[v] = now + half  # the same access faults again at once
            self.retries[v] += 1
        else:
            self.t_exit[v] = now + half + g
            if self.t_exit[v] >= self.s.duration_us:
                return
            self.fault[v] += 1
            self.retries[v] = 0
            self.hva[v] = new_hva
        self.spins[v] = 0
        self.resolve[v] = r
        self.t_snap[v] = self.t_exit[v] + half
        self.t_req[v] = self.t_snap[v] + r + self.model.acquire
        self.fault_in(v)

    # -- the callbacks --------------------------------------------------------------------------
    def arrive(self, i: int, now: float) -> None:
        """Callback ``i`` runs: it skips the lock (and the next callback follows its walk), or
        asks for it."""
        model = self.model
        model.cb_arrive[i] = now
        if not model.cb_locked[i]:
            self.next_callback(i, now + model.cb_cost[i])
        else:
            self.asked.append(i)
            self.seg_request[i] = now
            if self.lock.request(("w", i), True):
                self.grant_writer(i, now)
            else:
                self.contention(now)

    def grant_writer(self, i: int, now: float) -> None:
        model = self.model
        self.holding = i
        if model.cb_loop[i] <= 0:
            model.cb_grant[i] = now
            model.on_writer_grant(i, now)
            self.push(now + model.cb_cost[i], _RELEASE, ("w", i))
            return
        # A zap that may yield: before the loop, the lock, the walk and the zap's fixed cost on
        # its first grant only; after it, the final flush.
        first = np.isnan(model.cb_grant[i])
        if first:
            model.cb_grant[i] = now
            model.on_writer_grant(i, now)
        pre = model.cb_cost[i] - model.cb_loop[i] - model.cb_post[i] if first else 0.0
        self.seg_grant[i] = now
        self.loop_start[i] = now + pre
        end = self.loop_start[i] + self.loop_left[i] + model.cb_post[i]
        self.valid[i] = self.push(end, _RELEASE, ("w", i))
        self.yield_at[i] = np.nan
        if self.lock.contended():
            self.contention(now)

    def contention(self, now: float) -> None:
        """Somebody queued for ``mmu_lock`` at ``now``: a yielding zap holding it yields at its
        next SPTE, after at least one step (``tdp_mmu_iter_cond_resched()`` never yields twice
        at the same gfn), unless its loop ends first."""
        i = self.holding
        model = self.model
        if i < 0 or model.cb_loop[i] <= 0 or not np.isnan(self.yield_at[i]):
            return
        step = model.step_us
        start = self.loop_start[i]
        k = max(1, math.ceil((now - start) / step)) if step > 0 else 1
        t = start + k * step
        if t >= start + self.loop_left[i]:
            return  # the loop ends before its next check
        self.yield_at[i] = t
        # Flush what it zapped (kvm_flush_remote_tlbs under the lock), then write_unlock.
        self.valid[i] = self.push(t + self.s.tlb_flush_us, _RELEASE, ("y", i))

    def yield_lock(self, i: int, now: float) -> None:
        """Zap ``i`` gives ``mmu_lock`` up (``cond_resched_rwlock_write()``) and asks again:
        the readers queued before it enter first."""
        model = self.model
        self.loop_left[i] -= self.yield_at[i] - self.loop_start[i]
        model.cb_yields[i] += 1
        model.cb_held[i] += now - self.seg_grant[i]
        model.yield_holds.append((i, self.seg_request[i], self.seg_grant[i], now, True, True))
        self.holding = -1
        self.asked.remove(i)
        self.asked.append(i)  # it asks anew: the newest writer that asked
        self.grant_all(self.lock.release(("w", i), True), now)
        self.seg_request[i] = now
        if self.lock.request(("w", i), True):
            self.grant_writer(i, now)
        else:
            self.contention(now)

    def release_writer(self, i: int, now: float) -> None:
        model = self.model
        if model.cb_loop[i] > 0:  # a zap that may yield: its release as it happened
            model.cb_held[i] += now - self.seg_grant[i]
            model.cb_release[i] = now
        if model.cb_yields[i]:
            flushed = bool(model.cb_flush[i])
            model.yield_holds.append(
                (i, self.seg_request[i], self.seg_grant[i], now, False, flushed)
            )
        self.asked.remove(i)
        self.holding = -1
        model.on_writer_release(i, now)
        if self.parked:
            self.wake(now)
        self.grant_all(self.lock.release(("w", i), True), now)
        self.next_callback(i, now)

    def next_callback(self, i: int, t_done: float) -> None:
        """Callback ``i`` is done at ``t_done``: the event's next one arrives after the gap."""
        model = self.model
        model.cb_done[i] = t_done
        j = model.cb_next[i]
        if j >= 0:
            self.push(t_done + model.cb_gap[i], _ARRIVE, ("w", j))

    def grant_all(self, granted, now: float) -> None:
        for who in granted:
            if who[0] == "r":
                self.grant_reader(who[1], now)
            else:
                self.grant_writer(who[1], now)


# --------------------------------------------------------------------------------------------
# The compiled engine: qrwlock only, the loop of _closed_loop.py (numba when installed).
# --------------------------------------------------------------------------------------------
def _run_compiled(model: _Model) -> None:
    s, draws = model.s, model.draws
    m = draws.m
    cycle = s.guest_run_us + s.vmexit_us + s.resolve_pfn_us + model.acquire + model.mean_hold
    first_time, first_cb = model.first_time, model.first_cb
    # numba does not check bounds: make sure the arrays agree before handing them over.
    if len(first_time) != len(first_cb) or (len(first_cb) and first_cb.max() >= len(model.cb_next)):
        raise AssertionError("inconsistent callback plan")
    cap = int(1.3 * s.duration_us / cycle) + 64  # attempts per vCPU, with room for retries
    dtypes = tuple(_ATTEMPT_COLUMNS.values())
    while True:
        out = tuple(np.empty(m * cap, dtype=d) for d in dtypes)
        n = run_qrwlock(
            float(s.duration_us),
            float(model.half_exit),
            float(model.mean_hold),
            float(s.retry_check_us),
            float(model.acquire),
            draws.key,
            m,
            float(s.guest_run_us),
            float(s.resolve_pfn_us),
            draws.total_pages,
            draws.slot_first_page,
            draws.slot_hva,
            model.cb_locked,
            model.cb_count,
            model.cb_bump,
            model.cb_cost,
            model.cb_gap,
            model.cb_next,
            model.cb_start,
            model.cb_end,
            first_time,
            first_cb,
            *out,
            model.cb_arrive,
            model.cb_grant,
            model.cb_done,
        )
        if n >= 0:
            break
        # A vCPU retried more than expected: more room, same result, up to the row limit.
        grown = min(cap * 2, model.max_attempts // m)
        if grown <= cap:
            raise _Overrun(m * cap)
        cap = grown
    model.sorted_attempts = tuple(a[:n] for a in out)


def _run_event_loop(model: _Model) -> None:
    """The event-driven engine, compiled (:mod:`kvmviz.model._event_loop`): qrwlock, faults
    read-locking, the pre-check and the yielding zap."""
    s, draws = model.s, model.draws
    m = draws.m
    if len(model.first_time) != len(model.first_cb) or (
        len(model.first_cb) and model.first_cb.max() >= len(model.cb_next)
    ):
        raise AssertionError("inconsistent callback plan")  # numba does not check bounds
    model.init_state()
    cycle = s.guest_run_us + s.vmexit_us + s.resolve_pfn_us + model.acquire + model.mean_hold
    # Rows per vCPU as simulate() estimated them; the loop grows them if a vCPU needs more.
    cap = min(int(1.3 * s.duration_us / cycle) + 64, model.max_attempts // max(m, 1) + 1)
    dtypes = (*_ATTEMPT_COLUMNS.values(), float, np.int32)  # then t_snapshot_us, spins
    out = tuple(np.empty(m * cap, dtype=d) for d in dtypes)
    n, columns, n_holds, holds_f, holds_i, n_bumps, bumps, count, lo, hi = run_events(
        float(s.duration_us),
        float(model.half_exit),
        float(s.vmexit_us),
        float(model.mean_hold),
        float(s.retry_check_us),
        float(model.acquire),
        bool(features(model.kernel).precheck),
        draws.key,
        m,
        float(s.guest_run_us),
        float(s.resolve_pfn_us),
        draws.total_pages,
        draws.slot_first_page,
        draws.slot_hva,
        np.ascontiguousarray(model.cb_locked, dtype=np.bool_),
        np.ascontiguousarray(model.cb_count, dtype=np.int64),
        np.ascontiguousarray(model.cb_bump, dtype=np.bool_),
        np.ascontiguousarray(model.cb_flush, dtype=np.bool_),
        np.ascontiguousarray(model.cb_cost, dtype=float),
        np.ascontiguousarray(model.cb_loop, dtype=float),
        np.ascontiguousarray(model.cb_post, dtype=float),
        np.ascontiguousarray(model.cb_gap, dtype=float),
        model.cb_next,
        np.ascontiguousarray(model.cb_start, dtype=np.uint64),
        np.ascontiguousarray(model.cb_end, dtype=np.uint64),
        float(model.step_us),
        float(s.tlb_flush_us),
        np.ascontiguousarray(model.first_time, dtype=float),
        model.first_cb,
        int(model.max_attempts),
        *out,
        model.cb_arrive,
        model.cb_grant,
        model.cb_done,
        model.cb_release,
        model.cb_held,
        model.cb_yields,
    )
    if n < 0:
        raise _Overrun(model.max_attempts + 1)
    model.sorted_attempts = tuple(a[:n] for a in columns)
    model.yield_holds = [
        (int(i), a, g, r, bool(y), bool(f))
        for (i, y, f), (a, g, r) in zip(
            holds_i[: 3 * n_holds].reshape(-1, 3).tolist(),
            holds_f[: 3 * n_holds].reshape(-1, 3).tolist(),
            strict=True,
        )
    ]
    model.bump_times = bumps[:n_bumps].tolist()
    c = model.counters
    c.count, c.seq, c.range_start, c.range_end = int(count), n_bumps, int(lo), int(hi)


# --------------------------------------------------------------------------------------------
# A hand-made request list as a Run, so every view can draw it.
# --------------------------------------------------------------------------------------------
def scripted_run(
    arrival,
    is_writer,
    hold,
    policy: str = "qrwlock",
    *,
    kernel: str = "v5.12",
    callback: str = "invalidate_range_start",
) -> Run:
    """An open-loop request list, granted by :func:`kvmviz.rwlock.grant_times`, as a :class:`Run`.

    The views (:func:`kvmviz.timelines.lock_timeline`, :func:`kvmviz.animate.queue_animation`, the
    metrics) then draw a hand-made scene exactly as they draw a simulation. Each reader becomes
    one fault attempt of its own vCPU, vCPUs numbered 0, 1, ... in request order; each writer
    becomes one notification event of a single ``callback`` that takes ``mmu_lock`` for write,
    events numbered 0, 1, ... in request order. The writers are spurious ones (cause
    ``vmm_self``, a page of the VMM's heap): which callback it is changes no grant, only labels.

    Parameters
    ----------
    arrival, is_writer, hold : array_like
        As :func:`kvmviz.rwlock.grant_times`: arrival time (µs), write request?, hold time (µs).
    policy : {"qrwlock", "reader-pref", "spinlock"}
    kernel : str
        Only a label here (the notifier rules are not applied); default ``"v5.12"``, the first
        x86 kernel whose ``mmu_lock`` is an rwlock (531810caa9f4).
    callback : str
        The writers' callback name, one of :data:`kvmviz.CALLBACKS`.

    Returns
    -------
    Run
        ``run.faults`` has one row per reader (``vcpu``), ``run.notifiers`` one per writer
        (``event``); ``run.scenario`` has one vCPU per reader (at least one), all faulting, and
        lasts until the last release.

    Examples
    --------
    >>> run = scripted_run([0, 1, 2], [False, True, False], [10, 5, 1])
    >>> run.lock[["holder", "who", "t_grant_us"]].values.tolist()
    [['vcpu', 0, 0.0], ['notifier', 0, 10.0], ['vcpu', 1, 15.0]]
    """
    from ..inputs.layouts import VMM_HEAP
    from ..inputs.scenario import NOTIFIER_CAUSES
    from .rwlock import grant_times, queued_behind

    kernel = resolve(kernel)
    if callback not in CALLBACKS:
        raise ValueError(f"unknown callback {callback!r}; expected one of {CALLBACKS}")
    grant = grant_times(arrival, is_writer, hold, policy=policy)  # validates the three arrays
    arrival = np.asarray(arrival, dtype=float)
    writer = np.asarray(is_writer, dtype=bool)
    hold = np.asarray(hold, dtype=float)
    release = grant + hold
    r, w = ~writer, writer
    n_readers, n_writers = int(r.sum()), int(w.sum())
    # Whom each reader that waited is behind (Run.faults, blocked_by): the newest writer that
    # asked before it and had not left, or under reader-pref the one holding the lock.
    since = grant[w] if policy == "reader-pref" else arrival[w]
    blocked = queued_behind(arrival[r], grant[r] > arrival[r], since, release[w])
    zeros = np.zeros(n_readers, dtype=np.int32)
    faults = pd.DataFrame(
        {
            "vcpu": np.arange(n_readers, dtype=np.int32),
            "fault": zeros,
            "retries": zeros,
            "hva": np.zeros(n_readers, dtype=np.uint64),
            "t_exit_us": arrival[r],
            "t_request_us": arrival[r],
            "t_grant_us": grant[r],
            "t_release_us": release[r],
            "wait_us": grant[r] - arrival[r],
            "hold_us": hold[r],
            "t_snapshot_us": arrival[r],
            "retry": np.zeros(n_readers, dtype=bool),
            "blocked_by": blocked,
            "retried_by": np.full(n_readers, -1, dtype=np.int64),
        }
    )
    page = np.full(n_writers, VMM_HEAP[0], dtype=np.uint64)
    notifiers = pd.DataFrame(
        {
            "event": np.arange(n_writers, dtype=np.int64),
            "cause": pd.Categorical(["vmm_self"] * n_writers, categories=NOTIFIER_CAUSES),
            "callback": [callback] * n_writers,
            "hva_start": page,
            "hva_end": page + np.uint64(PAGE_SIZE),
            "hit": np.zeros(n_writers, dtype=bool),
            "locked": np.ones(n_writers, dtype=bool),
            "t_arrive_us": arrival[w],
            "t_grant_us": grant[w],
            "t_release_us": release[w],
            "wait_us": grant[w] - arrival[w],
            "hold_us": hold[w],
            "t_done_us": release[w],
        }
    )
    end = float(release.max()) if release.size else 0.0
    scenario = Scenario(n_vcpus=max(n_readers, 1), duration_us=max(end, 1.0), faulting_share=1.0)
    return Run(scenario, kernel, policy, 0, faults, notifiers)
