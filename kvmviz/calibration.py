"""Calibration: where each number of the model comes from, and the model beside the measurements.

Every parameter of :class:`kvmviz.Scenario` has one row in :data:`PARAMETERS`: its value, its
unit, its *status* and its source (docs/parameters.md tells each source's story):

``measured``
    read off a published measurement;
``derived``
    arithmetic on a published measurement (the arithmetic is in the source column);
``fitted``
    chosen so that the model reproduces a published measurement; :func:`fits` runs the model
    on that measurement's set-up and tests/test_calibration.py checks it stays within 5 %;
``free``
    no source pins it down; its plausible range is given, and :func:`kvmviz.sensitivity.sweep`
    shows how far every headline moves over it;
``kernel`` / ``scenario``
    a kernel constant or mode, or a choice of the VM studied.

:func:`predictions` puts the model beside published measurements that no parameter was fitted
to, whatever that shows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from ._checks import check_seed
from .memslots import PAGE_SIZE, Memslot, MemslotLayout
from .scenario import Scenario

__all__ = ["PARAMETERS", "Parameter", "fits", "populate_seconds", "predictions", "table"]

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
        The points :func:`kvmviz.sensitivity.sweep` visits (low to high, the default among them).
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
)

_BY_NAME = {p.name: p for p in PARAMETERS}
assert set(_BY_NAME) == {f.name for f in fields(Scenario)}, "one row per Scenario field"
assert all(p.status in STATUSES for p in PARAMETERS)


def table(scenario: Scenario | None = None) -> pd.DataFrame:
    """The calibration table: one row per :class:`~kvmviz.Scenario` parameter.

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


# -- Gardon's populate: the measurement read_hold_us and read_hold_per_vcpu_us are fitted to ---
GARDON_VCPUS = 96
GARDON_GIB_PER_VCPU = 3
GARDON_SECONDS = {"write": 110.193, "read": 16.112}  # populate, partitioned, TDP MMU


def _populate_scenario(n_vcpus: int, base: Scenario | None) -> Scenario:
    """dirty_log_perf_test's populate: every vCPU touches each 4 KiB page of its own memory
    once, each touch an EPT violation, no notifier (a store and a loop step between faults)."""
    ram = Memslot(slot=0, base_gfn=0, npages=1 << 20, userspace_addr=0x7F0000000000)
    base = Scenario() if base is None else base
    return base.replace(
        n_vcpus=n_vcpus,
        faulting_share=1.0,
        guest_run_us=0.1,
        notifier_rate_hz=0.0,
        duration_us=5_000.0,
        layout=MemslotLayout([ram]),
    )


def populate_seconds(
    lock: str,
    *,
    n_vcpus: int = GARDON_VCPUS,
    gib_per_vcpu: float = GARDON_GIB_PER_VCPU,
    scenario: Scenario | None = None,
    seed: int = 0,
) -> float:
    """Seconds the model takes to populate ``gib_per_vcpu`` GiB on each of ``n_vcpus`` vCPUs.

    Parameters
    ----------
    lock : {"write", "read"}
        Faults under ``mmu_lock`` for write (Gardon's baseline: the TDP MMU with the spinlock,
        the model's ``"spinlock"`` policy) or for read (``"qrwlock"``, a2855afc7ee8).
    n_vcpus, gib_per_vcpu : int, float
        Default Gardon's 96 vCPUs x 3 GiB.
    scenario : Scenario, optional
        Costs to use (default ``Scenario()``); its workload is replaced by the populate loop.
    seed : int

    Returns
    -------
    float
        Fault throughput measured over a 5 ms window, extrapolated to every 4 KiB page.
    """
    from .engine import simulate

    if lock not in ("write", "read"):
        raise ValueError(f"lock={lock!r}: expected 'write' or 'read'")
    s = _populate_scenario(n_vcpus, scenario)
    policy = "spinlock" if lock == "write" else "qrwlock"
    run = simulate(s, "v5.15", policy, check_seed(seed))
    done = run.faults[~run.faults["retry"] & (run.faults["t_release_us"] <= s.duration_us)]
    per_us = len(done) / s.duration_us
    pages = n_vcpus * gib_per_vcpu * 2**30 / PAGE_SIZE
    return pages / per_us * 1e-6


def fits(scenario: Scenario | None = None, seed: int = 0) -> pd.DataFrame:
    """The measurements the fitted parameters were fitted to, and what the model gives.

    Returns
    -------
    pandas.DataFrame
        One row per measurement: ``measurement, parameter, measured, model, unit, ratio``
        (model / measured).
    """
    rows = []
    for lock, parameter in (("write", "read_hold_us"), ("read", "read_hold_per_vcpu_us")):
        model = populate_seconds(lock, scenario=scenario, seed=seed)
        measured = GARDON_SECONDS[lock]
        rows.append(
            {
                "measurement": f"Gardon: populate 96 vCPUs x 3 GiB, faults under the {lock} lock",
                "parameter": parameter,
                "measured": measured,
                "model": model,
                "unit": "s",
                "ratio": model / measured,
            }
        )
    return pd.DataFrame(rows)


# -- predictions: measurements no parameter was fitted to -------------------------------------
def _fault_seconds(n_vcpus: int, faults_per_vcpu: int, lock: str, scenario, seed) -> float:
    gib = faults_per_vcpu * PAGE_SIZE / 2**30
    return populate_seconds(lock, n_vcpus=n_vcpus, gib_per_vcpu=gib, scenario=scenario, seed=seed)


def _waiting_share(n_vcpus: int, scenario, seed) -> float:
    """Share of the faulting vCPUs' time spent waiting for ``mmu_lock`` when faults take it
    for write (the MMU before the TDP MMU's parallel faults)."""
    from .engine import simulate

    s = _populate_scenario(n_vcpus, scenario)
    run = simulate(s, "v5.15", "spinlock", check_seed(seed))
    f = run.faults[run.faults["t_release_us"] <= s.duration_us]
    busy = s.n_faulting * s.duration_us
    return float(f["wait_us"].sum() / busy)


def _memslot_pair_us(n_slots: int, scenario: Scenario | None) -> float:
    """The model's cost of one 4 KiB ``madvise(MADV_DONTNEED)`` start/end pair on guest memory
    with ``n_slots`` memslots and one vCPU, on v5.12 (memslot_perf_test's era, linear walk)."""
    from .engine import _Model

    base = Scenario() if scenario is None else scenario
    npages = 1 << 8  # 1 MiB slots, one after the other
    slots = [
        Memslot(
            slot=i,
            base_gfn=i * npages,
            npages=npages,
            userspace_addr=0x7F0000000000 + i * (1 << 20),
        )
        for i in range(n_slots)
    ]
    s = base.replace(n_vcpus=1, layout=MemslotLayout(slots), memslot_lookup="linear")
    hva = slots[-1].userspace_addr
    stream = pd.DataFrame(
        {
            "event": [0],
            "cause": pd.Categorical(["migration"]),
            "kind": ["pair"],
            "t_us": [0.0],
            "hva_start": np.array([hva], dtype=np.uint64),
            "hva_end": np.array([hva + PAGE_SIZE], dtype=np.uint64),
        }
    )
    model = _Model(s, "v5.12", stream, seed=0)
    return float(s.invalidate_window_us + model.cb_cost.sum())


def _aging_slowdown(scenario: Scenario | None, seed: int) -> float:
    """Houghton's access_tracking_perf_test at 112 vCPUs: how much longer the faulting vCPUs
    take while MGLRU ages their memory under ``mmu_lock``. The aging is a stream of
    ``clear_young`` calls on guest memory (one per 2 MiB of the 112 GiB per pass, at the pace
    the locked pass took: 57,344 calls in 13.474 s), each holding the write lock on a hit."""
    from .engine import simulate
    from .notifiers import stream_from_callbacks

    s = _populate_scenario(112, scenario)
    rate_hz = (112 * 2**30 / 2**21) / 13.474
    n = int(rate_hz * s.duration_us * 1e-6)
    ram = next(iter(s.layout))
    rng = np.random.default_rng(check_seed(seed))
    pages = rng.integers(0, ram.npages, n).astype(np.uint64)
    hva = np.uint64(ram.userspace_addr) + pages * np.uint64(PAGE_SIZE)
    events = pd.DataFrame(
        {
            "t_us": (np.arange(n) + 0.5) * s.duration_us / n,
            "kind": "clear_young",
            "hva_start": hva,
            "hva_end": hva + np.uint64(PAGE_SIZE),
            "cause": "guest_aging",
        }
    )
    rates = []
    for stream in (events.iloc[:0], events):
        run = simulate(s, "v5.15", stream=stream_from_callbacks(stream), seed=check_seed(seed))
        done = run.faults[~run.faults["retry"] & (run.faults["t_release_us"] <= s.duration_us)]
        rates.append(len(done))
    return rates[0] / rates[1] - 1.0


MEMSLOT_PERF_PAIR_US = {10: 0.0313e6 / 32768, 509: 0.0724e6 / 32768, 32764: 3.88e6 / 32768}


def predictions(scenario: Scenario | None = None, seed: int = 0) -> pd.DataFrame:
    """The model beside published measurements that no parameter was fitted to.

    * Matlack, fast page fault for the TDP MMU (20210611235701.3941724-1-dmatlack@google.com):
      64 vCPUs x 262,144 write-protect faults under the read lock took 3.545 s;
    * Gardon, TDP MMU cover (20201014182700.2888246-1-bgardon@google.com): with 416 vCPUs
      demand paging under the old MMU lock, 98 % of the time was spent waiting for it, and the
      TDP MMU cut the test by 89 % (the test also waits on userfaultfd, which the model lacks);
    * Houghton, MGLRU aging of the secondary MMU (20240529180510.2295118-1-jthoughton@google.com):
      with 112 vCPUs, aging under ``mmu_lock`` made the vCPUs' run 20 % longer (8.498 s ->
      10.214 s);
    * Szmigiero, memslot_perf_test (cover.1618322001.git.maciej.szmigiero@oracle.com): one
      4 KiB unmap pair with 509 slots, linear walk (32k slots fitted memslot_walk_ns, 10
      slots invalidate_window_us), and the growth from 10 to 509 slots.

    Returns
    -------
    pandas.DataFrame
        ``measurement, measured, model, unit, ratio``; a ratio far from 1 is shown, not hidden.
    """
    rows = []

    def add(measurement, measured, model, unit):
        rows.append(
            {
                "measurement": measurement,
                "measured": measured,
                "model": model,
                "unit": unit,
                "ratio": model / measured,
            }
        )

    add(
        "Matlack: 64 vCPUs x 262,144 faults under the read lock",
        3.545,
        _fault_seconds(64, 262_144, "read", scenario, seed),
        "s",
    )
    add(
        "Gardon: 416 vCPUs faulting under the write lock, share of time waiting",
        0.98,
        _waiting_share(416, scenario, seed),
        "share",
    )
    write = _fault_seconds(416, 1 << 20, "write", scenario, seed)
    read = _fault_seconds(416, 1 << 20, "read", scenario, seed)
    add("Gardon: 416 vCPUs x 4 GiB, time saved by the TDP MMU", 0.89, 1 - read / write, "share")
    add(
        "Houghton: 112 vCPUs slowed by aging under mmu_lock",
        10.214 / 8.498 - 1,
        _aging_slowdown(scenario, seed),
        "share",
    )
    pair = {n: _memslot_pair_us(n, scenario) for n in (10, 509)}
    add(
        "Szmigiero: one 4 KiB unmap pair, 509 memslots (linear walk)",
        MEMSLOT_PERF_PAIR_US[509],
        pair[509],
        "µs",
    )
    add(
        "Szmigiero: growth of that pair from 10 to 509 memslots",
        MEMSLOT_PERF_PAIR_US[509] - MEMSLOT_PERF_PAIR_US[10],
        pair[509] - pair[10],
        "µs",
    )
    return pd.DataFrame(rows)
