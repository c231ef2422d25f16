"""``Scenario``: every parameter of a simulation, with its unit and where its default comes from.

Times are microseconds (``_us``), rates are per second (``_hz``), sizes are 4 KiB pages unless a
name says otherwise. Defaults come from the sources of docs/parameters.md; the ones no public
source measures are marked *free* and are there to be played with.

Every field of :class:`Scenario` has one row in :data:`PARAMETERS` (:func:`parameter_table`
shows them): its value, unit, *status* and source.

``measured``
    read off a published measurement;
``derived``
    arithmetic on a published measurement (the arithmetic is in the source column);
``fitted``
    chosen so that the model reproduces a published measurement;
    :func:`kvmviz.experiments.fits` runs the model on that measurement's set-up and
    tests/test_experiments.py checks it stays within 5 %;
``free``
    no source pins it down; its plausible range is given, and
    :func:`kvmviz.experiments.sensitivity` shows how far every headline moves over it;
``kernel`` / ``scenario``
    a kernel constant or mode, or a choice of the VM studied.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from .memslots import MemslotLayout

__all__ = [
    "NOTIFIER_CAUSES",
    "PARAMETERS",
    "PARAMETER_BY_NAME",
    "STATUSES",
    "Parameter",
    "Scenario",
    "parameter_table",
]

# Causes of MMU notifications (see notifiers.py): the first two miss every memslot.
NOTIFIER_CAUSES = ("vmm_self", "vmm_aging", "migration", "ksm", "guest_aging")


def _default_layout() -> MemslotLayout:
    from .layouts import large_vm_layout

    return large_vm_layout()


_NOT_NUMBERS = frozenset(
    {"n_vcpus", "layout", "relevant_mix", "memslot_lookup", "tdp_mmu", "preempt", "preempt_dynamic"}
)


@dataclass(frozen=True)
class Scenario:
    """A VM, its vCPU workload and the stream of MMU notifications it sees.

    Parameters
    ----------
    n_vcpus : int
        vCPUs in the VM. Default 416: the m2-ultramem-416 VM the TDP MMU was built for
        (Ben Gardon, TDP MMU cover letter 2020).
    duration_us : float
        Simulated time during which vCPUs fault and notifications arrive, µs. Work in flight at
        the end runs to completion.
    layout : MemslotLayout
        The memslots; default :func:`kvmviz.presets.large_vm_layout` (q35, 12 TiB).
    faulting_share : float
        Share of vCPUs taking EPT violations; the rest stay in the guest. Default 0.9: the
        huge-page rebuild after live migration, where "a significant percentage of vCPUs will be
        attempting to handle page faults" (8931a454ae). *Free.*
    guest_run_us : float
        Mean time a faulting vCPU runs in the guest between two EPT violations (exponential).
        *Free.*
    vmexit_us : float
        VM exit plus re-entry round trip, half on each side (Michael Roth, LKML 2020-12: about
        2,550 cycles for a whole KVM_RUN round trip).
    resolve_pfn_us : float
        Mean time to resolve the pfn (GUP) outside ``mmu_lock``, after sampling
        ``mmu_notifier_seq`` (exponential). Derived: a 1-vCPU fault round trip is about 2.9 µs.
    read_hold_us : float
        Mean time a fault holds ``mmu_lock`` to install the SPTE (exponential), without
        contention. *Fitted*: 1.4 µs makes 96 vCPUs populate 288 GiB in 110 s with faults under
        the write lock, as in Ben Gardon's parallel-fault series (:func:`kvmviz.experiments.fits`).
    read_hold_per_vcpu_us : float
        Extra cost per fault per faulting vCPU when many vCPUs take ``mmu_lock`` for read at
        once: cache-line bouncing on the lock word and on shared page-table pages. *Fitted*:
        0.18 µs x N makes 96 vCPUs populate 288 GiB in 16.1 s under the read lock, as in Ben
        Gardon's parallel-fault series (:func:`kvmviz.experiments.fits`). Set to 0 to switch it off.
    contention_in_lock_share : float
        Share of that per-vCPU contention cost paid *inside* the read-side critical section,
        between 0 and 1; the rest is paid acquiring the lock, before the reader counts as
        inside. Only the inside part delays a waiting writer, so this share sets the size of
        every stall. *Free*: no source measures the split. Default 0.5: ``read_lock()``'s
        ``atomic_add_return()`` on the lock word is paid outside (``queued_read_lock``), the
        ``atomic_sub()`` of ``read_unlock()`` and the ``cmpxchg`` retries of
        ``tdp_mmu_set_spte_atomic()`` on shared page-table pages inside; range 0-1.
    retry_check_us : float
        Time the lock is held by an attempt that finds it must retry (check, then unlock).
    notifier_rate_hz : float
        Notification events per second (an event is a start/end pair, a page move or one
        aging call). *Free*: no public number exists for a VMM's own mapping churn.
    spurious_share : float
        Share of events that miss every memslot: the VMM adjusting its own address space
        (``vmm_self``) or the host aging the VMM's own pages (``vmm_aging``). "The vast majority
        of notifications for these VMs will be spurious" (8931a454ae cover letter).
    spurious_pair_share : float
        Of the spurious events, the share that are invalidate_range_start/end pairs (munmap,
        madvise); the rest are unpaired aging calls, as kdamond's in shared/data. *Free.*
    relevant_mix : tuple of float
        Relative weights of the memslot-hitting causes ``(migration, ksm, guest_aging)``.
    invalidate_window_us : float
        Time the primary MMU spends between invalidate_range_start and the next callback
        (clearing PTEs, copying a page), µs. Derived: 1 µs per 4 KiB madvise + notifier pair
        (memslot_perf_test).
    memslot_walk_ns : float
        Cost of visiting one memslot in the hva walk, ns. Derived: about 3.6 ns per slot per
        notifier pair (Szmigiero, 32k slots).
    memslot_lookup : {"linear", "interval-tree"}
        How a notifier finds the memslots its range touches: every slot of each address space
        (``kvm_for_each_memslot``, up to v5.16), or the hva interval tree of ed922739c919
        (v5.17), which visits about log2(n) nodes.
    lock_op_us : float
        Uncontended lock plus unlock. Waiman Long's qrwlock numbers: 8-16 ns.
    zap_base_us, zap_us_per_mib : float
        Cost of zapping SPTEs for a hit: 5.4 µs per 2 MiB chunk (memslot_perf_test, derived).
    tlb_flush_base_us, tlb_flush_per_vcpu_us : float
        ``kvm_flush_remote_tlbs()`` cost up to 64 vCPUs: 2 µs + 0.5 µs x N (derived from
        Matlack's batched-flush numbers, at most 73 µs a flush with 64 vCPUs).
    tlb_flush_exponent : float
        How the flush grows past 64 vCPUs: ``base + per_vcpu x 64 x (N / 64) ** exponent``.
        *Free*: no source measures a flush at hundreds of vCPUs. ``kvm_make_all_cpus_request()``
        walks every vCPU to set the request (linear, cheap) and IPIs the ones in guest mode
        through ``smp_call_function_many()``, whose acknowledgements arrive in parallel (the
        sender waits for the slowest). 1 is linear (210 µs at 416 vCPUs), 0 flat past 64
        (34 µs); default 0.5 between them (84 µs at 416).
    age_us : float
        Cost of test/clear Accessed on a hit range.
    mapped_share : float
        Share of guest memory the vCPUs have faulted in (SPTEs present). A callback flushes
        only when its handler changed something (``flush_on_ret && ret`` in
        ``__kvm_handle_hva_range()``), so a hit on pages with no SPTE zaps nothing and flushes
        nothing. Default 1: a static VM that has touched all its memory. *Free.*
    young_share : float
        Share of mapped pages accessed since they were last aged: ``clear_flush_young`` flushes
        only if an SPTE it cleared was young (``kvm_age_gfn`` returns it). *Free*; default 0.5.
    aging_reclaim_share : float
        Share of the aging calls that come from page reclaim (``kswapd``:
        ``folio_referenced_one()`` -> ``clear_flush_young``); the rest come from DAMON
        (``kdamond``: ``damon_ptep_mkold()`` -> ``clear_young``, then
        ``damon_young_pmd_entry()`` -> ``test_young``), which never flushes, as in the real
        trace. *Free*; default 0.5.
    tdp_mmu : bool
        The MMU the vCPUs fault through (the kernel's ``kvm.tdp_mmu`` parameter). With the TDP
        MMU a fault takes ``mmu_lock`` for read; without it (the shadow MMU) for write: x86
        ``direct_page_fault()`` takes ``read_lock`` only when ``is_tdp_mmu_root()``
        (a2855afc7ee8, v5.12). ``tdp_mmu_enabled`` was ``false`` by default in v5.10-v5.14
        and became the default with 71ba3f3189c7 (v5.15), so a stock v5.12 or v5.13 host
        serialised every fault; default ``True``, the hosts (``kvm.tdp_mmu=1``) whose
        brownouts 8931a454ae describes.
    preempt : {"none", "voluntary", "full"}
        The preemption model the host kernel runs (``preempt=`` on a PREEMPT_DYNAMIC kernel).
        With ``"full"`` a zap holding ``mmu_lock`` yields it whenever a vCPU queues
        (``rwlock_needbreak()``; :func:`kvmviz.kernels.zap_yields`). Default ``"voluntary"``,
        the usual distribution default.
    preempt_dynamic : bool
        The kernel is built with ``CONFIG_PREEMPT_DYNAMIC`` (most distribution kernels since
        v5.12, Proxmox's included). Before c793a62823d1 (v6.11) such a kernel yields a
        contended ``mmu_lock`` whatever ``preempt`` it booted. Default ``False``: the 2021
        chapters' zaps do not yield; :func:`kvmviz.presets.numa_balancing_setup` sets it.
    spte_kib : float
        Size of the SPTEs a zap steps over, KiB: 4 for 4 KiB mappings (memory KSM merged or
        split), 2048 for 2 MiB ones (THP, hugetlbfs). A yielding zap checks for contention at
        every SPTE and makes at least one step between two yields (``tdp_mmu_iter_cond_resched``),
        so this sets how slowly a contended zap crawls. *Free*; default 4.
    numa_scan_period_ms : float
        Automatic NUMA balancing: time between two scans of the VMM's memory
        (``task_numa_work()``, ``kernel.numa_balancing_scan_period_min_ms``, default 1000 ms
        in kernel/sched/fair.c, growing to ``_max_ms`` 60000). 0 (default) switches the
        balancer off.
    numa_scan_size_mib : float
        Memory one scan marks PROT_NONE through ``change_prot_numa()``, MiB
        (``kernel.numa_balancing_scan_size_mb``, default 256). One scan is one
        invalidate_range_start/end pair over that much guest memory (``change_pmd_range()``
        notifies up to a PUD, 1 GiB, per call; Sean Christopherson in the Yan Zhao thread).
    numa_scan_delay_ms : float
        Time of the first scan after the window opens, ms
        (``kernel.numa_balancing_scan_delay_ms``, default 1000).
    """

    n_vcpus: int = 416
    duration_us: float = 20_000.0
    layout: MemslotLayout = field(default_factory=_default_layout)
    faulting_share: float = 0.9
    guest_run_us: float = 200.0
    vmexit_us: float = 0.5
    resolve_pfn_us: float = 1.0
    read_hold_us: float = 1.4
    read_hold_per_vcpu_us: float = 0.18
    retry_check_us: float = 0.1
    notifier_rate_hz: float = 2_000.0
    spurious_share: float = 0.95
    spurious_pair_share: float = 0.5
    relevant_mix: tuple[float, float, float] = (1.0, 1.0, 1.0)
    invalidate_window_us: float = 1.0
    memslot_walk_ns: float = 1.8
    memslot_lookup: str = "linear"
    lock_op_us: float = 0.015
    zap_base_us: float = 1.0
    zap_us_per_mib: float = 2.2
    tlb_flush_base_us: float = 2.0
    tlb_flush_per_vcpu_us: float = 0.5
    age_us: float = 0.5
    tdp_mmu: bool = True
    contention_in_lock_share: float = 0.5
    tlb_flush_exponent: float = 0.5
    mapped_share: float = 1.0
    young_share: float = 0.5
    aging_reclaim_share: float = 0.5
    preempt: str = "voluntary"
    preempt_dynamic: bool = False
    spte_kib: float = 4.0
    numa_scan_period_ms: float = 0.0
    numa_scan_size_mib: float = 256.0
    numa_scan_delay_ms: float = 1000.0

    def __post_init__(self) -> None:
        # Every field is checked by name and stored in its canonical type (numpy numbers
        # welcome); a string, a boolean, NaN or infinity is refused, never coerced.
        def bad(name, expected, value=None, error=ValueError):
            value = getattr(self, name) if value is None else value
            raise error(f"Scenario.{name} = {value!r}: expected {expected}")

        def number(name, value, expected="a finite number >= 0"):
            if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
                bad(name, expected, value, TypeError)
            if not math.isfinite(value) or value < 0:
                bad(name, expected, value)
            return float(value)

        if not isinstance(self.preempt_dynamic, bool | np.bool_):
            bad("preempt_dynamic", "True (CONFIG_PREEMPT_DYNAMIC) or False", error=TypeError)
        object.__setattr__(self, "preempt_dynamic", bool(self.preempt_dynamic))
        if not isinstance(self.tdp_mmu, bool | np.bool_):
            bad(
                "tdp_mmu", "True (TDP MMU: faults read-lock) or False (shadow MMU)", error=TypeError
            )
        object.__setattr__(self, "tdp_mmu", bool(self.tdp_mmu))
        n = self.n_vcpus
        if isinstance(n, bool | np.bool_) or not isinstance(n, numbers.Integral):
            bad("n_vcpus", "an integer >= 1", error=TypeError)
        if n < 1:
            bad("n_vcpus", "an integer >= 1")
        object.__setattr__(self, "n_vcpus", int(n))
        if not isinstance(self.layout, MemslotLayout):
            bad("layout", "a kvmviz.MemslotLayout", error=TypeError)
        if not any(s.as_id == 0 for s in self.layout):
            bad("layout", "at least one memslot in address space 0 for the vCPUs to fault on")
        for f in fields(self):
            if f.name in _NOT_NUMBERS:
                continue
            object.__setattr__(self, f.name, number(f.name, getattr(self, f.name)))
        for name in (
            "faulting_share",
            "spurious_share",
            "spurious_pair_share",
            "contention_in_lock_share",
            "mapped_share",
            "young_share",
            "aging_reclaim_share",
        ):
            if not 0 <= getattr(self, name) <= 1:
                bad(name, "a share between 0 and 1")
        if self.duration_us <= 0:
            bad("duration_us", "> 0")
        if self.tlb_flush_exponent > 1:
            bad("tlb_flush_exponent", "between 0 (flat past 64 vCPUs) and 1 (linear)")
        if self.guest_run_us <= 0:
            bad("guest_run_us", "> 0 (a vCPU must spend some time in the guest)")
        if self.spte_kib < 4:
            bad("spte_kib", "a size >= 4 KiB (4 for 4 KiB SPTEs, 2048 for 2 MiB ones)")
        if self.numa_scan_size_mib <= 0:
            bad("numa_scan_size_mib", "> 0 MiB")
        models = "'none', 'voluntary' or 'full'"
        if not isinstance(self.preempt, str):
            bad("preempt", models, error=TypeError)
        if self.preempt not in ("none", "voluntary", "full"):
            bad("preempt", models)
        lookups = "'linear' (up to v5.16) or 'interval-tree' (v5.17+)"
        if not isinstance(self.memslot_lookup, str):
            bad("memslot_lookup", lookups, error=TypeError)
        if self.memslot_lookup not in ("linear", "interval-tree"):
            bad("memslot_lookup", lookups)
        expected = "three finite weights >= 0 for (migration, ksm, guest_aging), not all 0"
        mix = self.relevant_mix
        if isinstance(mix, str | bytes) or not isinstance(mix, Sequence | np.ndarray):
            bad("relevant_mix", expected, error=TypeError)
        if (isinstance(mix, np.ndarray) and mix.ndim != 1) or len(mix) != 3:
            bad("relevant_mix", expected)
        for w in mix:
            # The message shows the whole mix, not the one weight: (1, -1, 1), not -1.
            if isinstance(w, bool | np.bool_) or not isinstance(w, numbers.Real):
                bad("relevant_mix", expected, error=TypeError)
            if not math.isfinite(w) or w < 0:
                bad("relevant_mix", expected)
        mix = tuple(float(w) for w in mix)
        if sum(mix) <= 0:
            bad("relevant_mix", expected)
        object.__setattr__(self, "relevant_mix", mix)

    @property
    def n_faulting(self) -> int:
        """Number of vCPUs that take EPT violations."""
        return round(self.n_vcpus * self.faulting_share)

    @property
    def contention_us(self) -> float:
        """Per-fault cost of many vCPUs read-locking at once, inside and outside the lock, µs."""
        return self.read_hold_per_vcpu_us * self.n_faulting

    @property
    def mean_read_hold_us(self) -> float:
        """Mean read-side hold: the base hold plus the share of the contention paid inside."""
        return self.read_hold_us + self.contention_in_lock_share * self.contention_us

    @property
    def read_acquire_us(self) -> float:
        """Contention paid acquiring the read lock, before the reader counts as inside, µs."""
        return (1.0 - self.contention_in_lock_share) * self.contention_us

    @property
    def memslot_walk_us(self) -> float:
        """Cost of finding the memslots a notifier range touches, µs (one walk)."""
        n = len(self.layout)
        visited = n if self.memslot_lookup == "linear" else math.ceil(math.log2(n + 1)) + 1
        return visited * self.memslot_walk_ns * 1e-3

    @property
    def tlb_flush_us(self) -> float:
        """Cost of one VM-wide remote TLB flush, µs (linear to 64 vCPUs, then
        ``tlb_flush_exponent``)."""
        n = self.n_vcpus
        reach = n if n <= 64 else 64 * (n / 64) ** self.tlb_flush_exponent
        return self.tlb_flush_base_us + self.tlb_flush_per_vcpu_us * reach

    def faults_write(self, policy: str) -> bool:
        """Whether vCPU faults take ``mmu_lock`` for write under lock ``policy``: without the
        TDP MMU (x86 ``direct_page_fault()`` read-locks only when ``is_tdp_mmu_root()``,
        a2855afc7ee8), and under ``"spinlock"``, where every holder is exclusive (x86 before
        531810caa9f4)."""
        return policy == "spinlock" or not self.tdp_mmu

    def replace(self, **changes) -> Scenario:
        """A copy with some parameters changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The parameters as a plain dict (layout summarised), for echoing with a figure."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["layout"] = repr(self.layout)
        return out


# --------------------------------------------------------------------------------------------
# Where each number comes from.
# --------------------------------------------------------------------------------------------
STATUSES = ("measured", "derived", "fitted", "free", "kernel", "scenario")


@dataclass(frozen=True)
class Parameter:
    """One row of the calibration table.

    Attributes
    ----------
    name : str
        The :class:`~kvmviz.Scenario` field.
    unit : str
    status : str
        One of ``measured, derived, fitted, free, kernel, scenario``.
    low, high : float or None
        The plausible range (``None`` where a range makes no sense).
    source : str
        Where the value comes from: the measurement, its Message-Id or commit, the arithmetic.
    values : tuple of float
        The points :func:`kvmviz.experiments.sensitivity` visits (low to high, the default among
        them).
    """

    name: str
    unit: str
    status: str
    low: float | None
    high: float | None
    source: str
    values: tuple[float, ...] = ()


_GARDON = "Gardon, parallel page faults v1 (20210112181041.356734-1-bgardon@google.com)"
PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "n_vcpus",
        "vCPUs",
        "scenario",
        8,
        416,
        "the 416-vCPU m2-ultramem-416 VM the TDP MMU was built for (Gardon, TDP MMU cover, "
        "20201014182700.2888246-1-bgardon@google.com)",
    ),
    Parameter("duration_us", "µs", "scenario", None, None, "the length of the window simulated"),
    Parameter(
        "layout",
        "",
        "scenario",
        None,
        None,
        "q35, 12 TiB in slots of at most KVM_MEM_MAX_NR_PAGES = 2**31 - 1 pages",
    ),
    Parameter(
        "faulting_share",
        "share",
        "free",
        0.5,
        1.0,
        "'a significant percentage of vCPUs will be attempting to handle page faults' "
        "(8931a454aea0's message, after live migration)",
        (0.5, 0.75, 0.9, 1.0),
    ),
    Parameter("guest_run_us", "µs", "free", 50, 1000, "no source: the guest's fault rate"),
    Parameter(
        "vmexit_us",
        "µs",
        "measured",
        0.3,
        1.0,
        "about 2,550 cycles for a KVM_RUN round trip on AMD SVM (Roth, LKML 2020-12)",
    ),
    Parameter(
        "resolve_pfn_us",
        "µs",
        "derived",
        0.5,
        2.0,
        "a 1-vCPU fault round trip is about 2.9 µs (Moorthy, 20230602161921.208564-1-amoorthy"
        "@google.com: 340K faults/s)",
    ),
    Parameter(
        "read_hold_us",
        "µs",
        "fitted",
        1.0,
        2.0,
        f"populate 288 GiB with faults under the write lock in 110.19 s ({_GARDON}): "
        "75.5 M faults / 110.19 s = 1.46 µs each, serialised",
    ),
    Parameter(
        "read_hold_per_vcpu_us",
        "µs per vCPU",
        "fitted",
        0.10,
        0.25,
        f"populate 288 GiB under the read lock in 16.11 s ({_GARDON}): 20.5 µs a fault on each "
        "of 96 vCPUs; Matlack's fast page fault series gives 0.1-0.25 µs x N at 64 vCPUs",
        (0.10, 0.14, 0.18, 0.22, 0.25),
    ),
    Parameter(
        "contention_in_lock_share",
        "share",
        "free",
        0.0,
        1.0,
        "no source splits the per-fault contention into acquiring (outside) and holding "
        "(inside) the read lock; only the inside part delays a waiting writer",
        (0.0, 0.25, 0.5, 0.75, 1.0),
    ),
    Parameter("retry_check_us", "µs", "free", 0.05, 0.5, "no source: check, then unlock"),
    Parameter(
        "notifier_rate_hz",
        "events/s",
        "free",
        100,
        10_000,
        "no public number for a VMM's own mapping churn (PARAMETERS table C: 0.1-1000/s, "
        "higher during migration)",
        (200.0, 500.0, 2_000.0, 5_000.0, 10_000.0),
    ),
    Parameter(
        "spurious_share",
        "share",
        "free",
        0.5,
        0.99,
        "'the vast majority of notifications for these VMs will be spurious' (cover letter, "
        "20210326021957.1424875-1-seanjc@google.com); no number",
        (0.5, 0.8, 0.95, 0.99),
    ),
    Parameter("spurious_pair_share", "share", "free", 0.0, 1.0, "no source"),
    Parameter("relevant_mix", "weights", "free", None, None, "no source"),
    Parameter(
        "invalidate_window_us",
        "µs",
        "derived",
        0.9,
        2.0,
        "memslot_perf_test unmap: 31 ms / 32,768 4 KiB madvise pairs = 0.95 µs (Szmigiero, "
        "cover.1618322001.git.maciej.szmigiero@oracle.com)",
    ),
    Parameter(
        "memslot_walk_ns",
        "ns per slot",
        "derived",
        1.0,
        2.5,
        "memslot_perf_test unmap with 32k slots: (118 - 1) µs / 32,764 slots / 2 callbacks",
    ),
    Parameter("memslot_lookup", "", "kernel", None, None, "linear up to v5.16; ed922739c919"),
    Parameter(
        "lock_op_us",
        "µs",
        "measured",
        0.008,
        0.017,
        "qrwlock lock + unlock 7.8-16 ns uncontended (Waiman Long, qrwlock v11, 2014-01)",
    ),
    Parameter(
        "zap_base_us",
        "µs",
        "derived",
        0.5,
        2.0,
        "memslot_perf_test 'unmap 2M': 348 µs / 64 = 5.4 µs per 2 MiB, split base + per MiB",
    ),
    Parameter("zap_us_per_mib", "µs per MiB", "derived", 1.5, 7.0, "as zap_base_us"),
    Parameter(
        "tlb_flush_base_us",
        "µs",
        "derived",
        1.0,
        3.0,
        "Matlack, batched flushes (20240823235648.3236880-1-dmatlack@google.com): (14.33 - "
        "4.79) s / (131,072 - 76) flushes = 73 µs a flush at most, with 64 vCPUs",
    ),
    Parameter(
        "tlb_flush_per_vcpu_us",
        "µs per vCPU",
        "derived",
        0.2,
        1.1,
        "as tlb_flush_base_us: 2 + 0.5 x 64 = 34 µs at 64 vCPUs, inside the 14-75 µs range",
    ),
    Parameter(
        "tlb_flush_exponent",
        "",
        "free",
        0.0,
        1.0,
        "no source measures a flush past 64 vCPUs: linear (1) is 210 µs at 416, flat (0) 34 µs",
        (0.0, 0.25, 0.5, 0.75, 1.0),
    ),
    Parameter("age_us", "µs", "free", 0.1, 2.0, "no source: test/clear Accessed on one page"),
    Parameter(
        "tdp_mmu",
        "",
        "kernel",
        None,
        None,
        "kvm.tdp_mmu: off by default in v5.10-v5.14, on from 71ba3f3189c7 (v5.15)",
    ),
    Parameter("mapped_share", "share", "free", 0.5, 1.0, "no source: a static VM is all mapped"),
    Parameter("young_share", "share", "free", 0.0, 1.0, "no source"),
    Parameter("aging_reclaim_share", "share", "free", 0.0, 1.0, "no source"),
    Parameter(
        "preempt",
        "",
        "kernel",
        None,
        None,
        "the booted preemption model; rwlock_needbreak() (a09a689a5341, c793a62823d1)",
    ),
    Parameter(
        "preempt_dynamic",
        "",
        "kernel",
        None,
        None,
        "CONFIG_PREEMPT_DYNAMIC: Proxmox's 6.x kernels (pve-devel 2024-01-17)",
    ),
    Parameter(
        "spte_kib",
        "KiB",
        "free",
        4.0,
        2048.0,
        "4 KiB SPTEs where KSM merged or split the memory, 2 MiB under THP; Yan Zhao's zap of "
        "gfns 0xb4000-0xb9800 stepped over 22,528 4 KiB SPTEs (ZNnPF4W26ZbAyGto@yzhao56-desk)",
        (4.0, 64.0, 2048.0),
    ),
    Parameter(
        "numa_scan_period_ms",
        "ms",
        "kernel",
        1000.0,
        60000.0,
        "kernel.numa_balancing_scan_period_min_ms 1000 / _max_ms 60000 (kernel/sched/fair.c); "
        "0 switches the balancer off",
    ),
    Parameter(
        "numa_scan_size_mib",
        "MiB",
        "kernel",
        None,
        None,
        "kernel.numa_balancing_scan_size_mb = 256 (kernel/sched/fair.c)",
    ),
    Parameter(
        "numa_scan_delay_ms",
        "ms",
        "kernel",
        None,
        None,
        "kernel.numa_balancing_scan_delay_ms = 1000 (kernel/sched/fair.c)",
    ),
)

PARAMETER_BY_NAME = {p.name: p for p in PARAMETERS}
"""The row of :data:`PARAMETERS` of each :class:`Scenario` field, by name."""
assert set(PARAMETER_BY_NAME) == {f.name for f in fields(Scenario)}, "one row per Scenario field"
assert all(p.status in STATUSES for p in PARAMETERS)


def parameter_table(scenario: Scenario | None = None) -> pd.DataFrame:
    """The calibration table: one row per :class:`Scenario` parameter.

    Parameters
    ----------
    scenario : Scenario, optional
        Whose values to show; default ``Scenario()``.

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter, value, unit, status, low, high, source``.
    """
    s = Scenario() if scenario is None else scenario
    rows = []
    for p in PARAMETERS:
        value = getattr(s, p.name)
        if isinstance(value, MemslotLayout):
            value = f"{len(value)} memslots"
        rows.append(
            {
                "parameter": p.name,
                "value": value,
                "unit": p.unit,
                "status": p.status,
                "low": p.low,
                "high": p.high,
                "source": p.source,
            }
        )
    return pd.DataFrame(rows)
