"""``Scenario``: every parameter of a simulation, with its unit and where its default comes from.

Times are microseconds (``_us``), rates are per second (``_hz``), sizes are 4 KiB pages unless a
name says otherwise. Defaults come from the sources of docs/parameters.md (``kvmviz.calibration``);
the ones no public source measures are marked *free* and are there to be played with.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np

from .memslots import MemslotLayout

__all__ = ["NOTIFIER_CAUSES", "Scenario"]

# Causes of MMU notifications (see notifiers.py): the first two miss every memslot.
NOTIFIER_CAUSES = ("vmm_self", "vmm_aging", "migration", "ksm", "guest_aging")


def _default_layout() -> MemslotLayout:
    from .presets import large_vm_layout

    return large_vm_layout()


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
        the write lock, as in Ben Gardon's parallel-fault series (:mod:`kvmviz.calibration`).
    read_hold_per_vcpu_us : float
        Extra cost per fault per faulting vCPU when many vCPUs take ``mmu_lock`` for read at
        once: cache-line bouncing on the lock word and on shared page-table pages. *Fitted*:
        0.18 µs x N makes 96 vCPUs populate 288 GiB in 16.1 s under the read lock, as in Ben
        Gardon's parallel-fault series (:mod:`kvmviz.calibration`). Set to 0 to switch it off.
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
            if f.name in ("n_vcpus", "layout", "relevant_mix", "memslot_lookup", "tdp_mmu"):
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
