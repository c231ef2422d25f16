"""Named setups from real systems, and the named layouts they use, each citing its source.

The setups are the two of 8931a454ae's message: :func:`static_setup` (every notification
spurious for KVM: the VM the commit was written for) and :func:`volatile_setup` (most
notifications on guest memory: where it "barely qualifies as an optimization").
:data:`SETUPS` names both, for the toggles. The layouts (:mod:`kvmviz.layouts`) are re-exported
here: ``kv.presets.large_vm_layout()`` and friends.
"""

from __future__ import annotations

import dataclasses

from .layouts import VMM_HEAP, large_vm_layout, many_memslots_layout, q35_512m_layout
from .memslots import Memslot, MemslotLayout
from .scenario import Scenario

__all__ = [
    "FREEZE_KERNELS",
    "FREEZE_PREEMPTS",
    "LARGE_VM",
    "MEMSLOT_STORY_VM",
    "QUEUE_STORY_VM",
    "RETRY_VM",
    "SETUPS",
    "STORM_FIGURE_VM",
    "STORM_VM",
    "SWEEP_DURATION_US",
    "SWEEP_MEASURE",
    "SWEEP_SEEDS",
    "SWEEP_SHARES",
    "SWEEP_VCPUS",
    "VMM_HEAP",
    "large_vm_layout",
    "many_memslots_layout",
    "numa_balancing_setup",
    "q35_512m_layout",
    "setup",
    "setup_fields",
    "static_setup",
    "volatile_setup",
    "with_setup",
]

# --------------------------------------------------------------------------------------------
# The two setups of 8931a454aea0's message.
# --------------------------------------------------------------------------------------------
# The VMM's own churn (munmap/madvise of its heap, the host aging its own pages): no public
# number exists (docs/parameters.md, table C), so it is the free notifier_rate_hz default.
VMM_CHURN_HZ = 2_000.0
# Notifications on guest memory in the volatile setup, events per second, each bounded by a
# documented kernel default (docs/parameters.md, "the volatile setup"):
KSM_MERGES_HZ = 500.0  # ksmd scans 100 pages every 20 ms (ksm.rst): 5,000 pages/s, 1 in 10 merge
MIGRATIONS_HZ = 500.0  # NUMA balancing marks <= 256 MB per scan, >= 100 ms apart (sched/fair.c)
GUEST_AGING_HZ = 2_000.0  # DAMON samples >= 10 regions every 5 ms (mm/damon/core.c defaults)


def static_setup(**changes) -> Scenario:
    """The VM 8931a454ae was written for: hundreds of vCPUs, every notification spurious.

    "For large VMs (hundreds of threads) with static setups, e.g. no page migration, no
    swapping, etc..., the vast majority of MMU notifier callbacks will be unrelated to the
    guest, e.g. will often be in response to the userspace VMM adjusting its own virtual
    address space" (8931a454aea0's message). Here *all* of them are: the 416-vCPU, 12 TiB VM of
    :class:`~kvmviz.Scenario` (Gardon's m2-ultramem-416), rebuilding its huge pages after live
    migration ("a significant percentage of vCPUs will be attempting to handle page faults"),
    while the VMM munmaps and madvises its own heap and the host ages the VMM's own pages, at
    ``VMM_CHURN_HZ`` = 2,000 events/s (*free*: no public number exists for a VMM's own churn).
    No notification reaches guest memory, so on v5.15 no callback takes ``mmu_lock``.

    Parameters
    ----------
    **changes
        Any :class:`~kvmviz.Scenario` field to change (validated as usual).

    Returns
    -------
    Scenario
    """
    base = {"notifier_rate_hz": VMM_CHURN_HZ, "spurious_share": 1.0}
    return Scenario(**{**base, **changes})


def volatile_setup(**changes) -> Scenario:
    """The same VM with most notifications on guest memory, where 8931a454ae "barely
    qualifies".

    "For 'volatile' setups where the majority of notifications _are_ relevant, this barely
    qualifies as an optimization" (8931a454aea0's message). The VMM's own churn is that of
    :func:`static_setup` (2,000 events/s), and on top of it the host works on guest memory at
    rates each bounded by a documented kernel default (docs/parameters.md):

    * KSM merges 500 pages/s: ``ksmd`` scans ``pages_to_scan`` = 100 pages every
      ``sleep_millisecs`` = 20 ms (Documentation/admin-guide/mm/ksm.rst, mm/ksm.c), 5,000
      pages/s; one in ten merging is *free*. Each merge is ``write_protect_page()`` then
      ``replace_page()``, two start / ``change_pte`` / end triples on one page.
    * 500 page migrations/s: NUMA balancing marks up to ``numa_balancing_scan_size_mb`` = 256 MB
      per scan, scans at least 100 ms apart on a large VM (``MAX_SCAN_WINDOW`` = 2,560 MB/s,
      kernel/sched/fair.c); how many of the marked pages then migrate is *free*.
    * 2,000 aging calls/s on guest pages: DAMON samples each of at least ``min_nr_regions`` =
      10 regions every ``sample_interval`` = 5 ms (mm/damon/core.c defaults).

    That is 3,000 of 5,000 events/s on guest memory: the majority relevant, as the commit says.

    Parameters
    ----------
    **changes
        Any :class:`~kvmviz.Scenario` field to change.

    Returns
    -------
    Scenario
    """
    hits = KSM_MERGES_HZ + MIGRATIONS_HZ + GUEST_AGING_HZ
    base = {
        "notifier_rate_hz": VMM_CHURN_HZ + hits,
        "spurious_share": VMM_CHURN_HZ / (VMM_CHURN_HZ + hits),
        # (migration, ksm, guest_aging), as notifiers.generate_stream draws the causes
        "relevant_mix": (MIGRATIONS_HZ, KSM_MERGES_HZ, GUEST_AGING_HZ),
    }
    return Scenario(**{**base, **changes})


def numa_balancing_setup(**changes) -> Scenario:
    """The 2024 freeze: a VM on a NUMA host whose balancer invalidates guest memory.

    Proxmox VE users saw VMs freeze for one to more than sixty seconds from host kernel 6.2 on
    NUMA hosts (pve-devel, Friedrich Weber, 2024-01-17; upstream report 2024-01-04, bugzilla
    218259): ``task_numa_work()`` -> ``change_prot_numa()`` fires invalidate_range_start/end over
    ``numa_balancing_scan_size_mb`` = 256 MB of guest memory every scan period (1 s at least,
    kernel/sched/fair.c); the zap of that range holds ``mmu_lock`` for write while the vCPUs
    touching it fault. Their kernels were built PREEMPT_DYNAMIC and booted ``preempt=voluntary``
    ("kernel 6.7, PREEMPT_DYNAMIC, preempt=voluntary": the fix combinations of the report), so
    before c793a62823d1 the zap yields the lock to every vCPU that queues for it.

    The VM: 32 vCPUs all running, 8 GiB of guest RAM mapped with 4 KiB SPTEs (KSM-merged or
    split memory: disabling KSM helped in the report), each vCPU touching a random guest page
    every 100 µs on average; no other notifications; the window opens as a scan begins
    (``numa_scan_delay_ms`` = 0.5, a choice) and lasts 1.5 s. The guest size, the vCPUs, the
    touch rate and ``spte_kib`` are *free* (the report gives none); the scan size and period are
    the kernel defaults.

    Parameters
    ----------
    **changes
        Any :class:`~kvmviz.Scenario` field to change.

    Returns
    -------
    Scenario
    """
    base = {
        "n_vcpus": 32,
        "faulting_share": 1.0,
        "layout": _guest_ram_layout(8 << 30),
        "guest_run_us": 100.0,
        "notifier_rate_hz": 0.0,
        "duration_us": 1.5e6,
        "preempt": "voluntary",
        "preempt_dynamic": True,
        "spte_kib": 4.0,
        "numa_scan_period_ms": 1000.0,
        "numa_scan_size_mib": 256.0,
        "numa_scan_delay_ms": 0.5,
    }
    return Scenario(**{**base, **changes})


def _guest_ram_layout(ram_bytes: int) -> MemslotLayout:
    """One memslot over the guest's RAM, backed by one anonymous mapping of the VMM (QEMU's
    ``memory-backend-ram``): the one VMA the NUMA balancer scans through."""
    return MemslotLayout([Memslot(0, 1 << 20 >> 12, ram_bytes >> 12, 0x7F0000000000)])


FREEZE_KERNELS = ("v6.7", "v6.8", "v6.18")
"""The freeze's toggle: the last release without the pre-check, the first with it, today."""
FREEZE_PREEMPTS = ("none", "voluntary", "full")
"""The preemption models the freeze's toggle offers (``Scenario.preempt``)."""


SETUPS = {"static": static_setup, "volatile": volatile_setup}
"""The two setups by name, in the order the toggles show them."""


def setup(name: str, **changes) -> Scenario:
    """:data:`SETUPS` by name: ``setup("static")`` or ``setup("volatile")``."""
    if not isinstance(name, str) or name not in SETUPS:
        raise ValueError(f"unknown setup {name!r}; expected one of {tuple(SETUPS)}")
    return SETUPS[name](**changes)


def setup_fields() -> tuple[str, ...]:
    """The fields of :class:`~kvmviz.Scenario` a setup of :data:`SETUPS` sets: those in which
    one of them differs from ``Scenario()`` (the rate, the spurious share, the mix of guest
    causes).

    Returns
    -------
    tuple of str
    """
    return _SETUP_FIELDS


def with_setup(vm: Scenario, name: str) -> Scenario:
    """``vm`` with the notifications of the setup ``name``: every field of
    :func:`setup_fields` comes from the preset, the VM's size, memory and timings stay. The
    dashboard's setup toggle and the gallery's ``scenario=`` apply a setup this way.

    Parameters
    ----------
    vm : Scenario
    name : {"static", "volatile"}

    Returns
    -------
    Scenario
        ``with_setup(Scenario(), name) == setup(name)``.
    """
    preset = setup(name)
    return vm.replace(**{field: getattr(preset, field) for field in _SETUP_FIELDS})


_SETUP_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(Scenario)
    if any(getattr(setup(n), f.name) != getattr(Scenario(), f.name) for n in SETUPS)
)


# --------------------------------------------------------------------------------------------
# The named VMs of the course: every scenario a figure, an animation, an exercise or a test
# fixture is drawn from, one name each (the gallery and the exercises keep their old names as
# aliases). Their workloads are free parameters, chosen to be watched.
# --------------------------------------------------------------------------------------------
LARGE_VM = Scenario()
"""The VM of the notebooks: 416 vCPUs, 12 TiB, every parameter at its cited default (the maps of
its memslots and the perf-lock tables). ``kvmviz.gallery.LARGE_VM``."""

STORM_VM = Scenario(
    n_vcpus=8, faulting_share=1.0, guest_run_us=10, notifier_rate_hz=5_000, duration_us=3_000
)
"""A fault storm on a small VM: 8 vCPUs all faulting, 10 µs in the guest between faults, 5,000
notifications a second, 3 ms; on v5.12 writers wait and readers queue behind them. The quiz's
queue exercises (``kvmviz.exercises.QUEUE_SCENE``) and the tests' ``busy8`` run."""

STORM_FIGURE_VM = STORM_VM.replace(guest_run_us=10.0, notifier_rate_hz=5_000.0, duration_us=5_000.0)
""":data:`STORM_VM` for 5 ms: the gallery's figures of a small VM (``kvmviz.gallery.SMALL_VM``),
so that a window of a few tens of µs shows readers queueing behind a writer."""

QUEUE_STORY_VM = static_setup(n_vcpus=24, duration_us=4_000.0, guest_run_us=30.0)
"""The queue animation's VM (``kvmviz.gallery.QUEUE_SCENARIO``): the static setup on 24 vCPUs
(every waiter fits on screen) faulting every ~30 µs of guest time, so that several readers are
inside at once when a spurious writer arrives."""

MEMSLOT_STORY_VM = Scenario(
    n_vcpus=24, duration_us=4_000.0, notifier_rate_hz=20_000.0, spurious_share=0.6
)
"""The memslot animation's VM (``kvmviz.gallery.MEMSLOT_SCENARIO``): hits and misses in even
measure, so both are seen landing within a few seconds."""

RETRY_VM = Scenario(
    n_vcpus=3,
    faulting_share=1.0,
    duration_us=40.0,
    layout=q35_512m_layout(),
    guest_run_us=8.0,
    resolve_pfn_us=10.0,
    read_hold_per_vcpu_us=0.0,
    invalidate_window_us=4.0,
)
"""Chapter 05's tiny VM (section 2, ``kvmviz.exercises.RETRY_SCENE``): three vCPUs on QEMU's
512 MiB q35 layout that fault all the time, resolving a pfn in 10 µs on average, for 40 µs;
4 µs between a start and its end."""


# Chapter 06's first sweep (Figure 6.1, and the quiz's first-vcpus-above): the default VM for
# 10 ms at these sizes and seeds (``kvmviz.exercises.SWEEP_*``).
SWEEP_VCPUS = (16, 32, 64, 128, 256, 416)
SWEEP_SEEDS = (0, 1, 2, 3)
SWEEP_DURATION_US = 10_000.0
SWEEP_SHARES = (0.5, 0.8, 0.95)
"""The shares of spurious notifications the first-vcpus-above exercise asks about."""
SWEEP_MEASURE = "stall_p99_us"
"""What the first-vcpus-above exercise reads off the sweep: the p99 of the per-fault stall
(:func:`kvmviz.metrics.stall_stats`), the measure the kernels are ranked by."""
