"""MMU-notifier callbacks and seeded generators of notification streams, by cause.

An *event* is what the primary MMU does once (a munmap, a page migration, an aging pass over one
page); it fires one to three *callbacks* in a fixed order. Since 6bdb913f0a70 (v3.7)
``change_pte`` is always bracketed: ``invalidate_range_start`` -> ``change_pte`` ->
``invalidate_range_end`` (docs/kernel.md §1.2, §1.6). Only ``set_pte_at_notify()`` fires it, whose
callers are KSM, copy-on-write (``wp_page_copy``), uprobes and device-memory migration; ordinary
page migration installs the new PTE with a plain ``set_pte_at()`` in ``remove_migration_pte()``
(mm/migrate.c) and so fires only the start/end pair of ``try_to_migrate_one()``
(``try_to_unmap_one()`` before v5.16). A KSM merge is two such triples on v5.x (mm/ksm.c
``try_to_merge_one_page()``): ``write_protect_page()`` (start, ``change_pte`` when the PTE was
writable or dirty, end), then ``replace_page()`` (start, ``change_pte``, end). Aging calls are
unpaired, and which one depends on who ages: reclaim (``kswapd``, ``folio_referenced_one()``)
calls ``clear_flush_young``; DAMON (``kdamond``) calls ``clear_young``
(``damon_ptep_mkold()``) and ``test_young`` (``damon_young_pmd_entry()``), which never flush;
khugepaged calls ``test_young``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._shared._checks import check_seed, check_u64
from .kernels import CALLBACKS
from .layouts import VMM_HEAP
from .memslots import PAGE_SHIFT, MemslotLayout
from .scenario import NOTIFIER_CAUSES, Scenario

__all__ = [
    "CALLBACKS",
    "EVENT_KINDS",
    "NOTIFIER_CAUSES",
    "NUMA_CAUSE",
    "check_stream",
    "generate_stream",
    "numa_scan_events",
    "stream_from_callbacks",
]

START, END = "invalidate_range_start", "invalidate_range_end"
# Callback sequence of each kind of event.
EVENT_KINDS = {
    "pair": (START, END),  # munmap, madvise(MADV_DONTNEED), mprotect, page migration
    "move": (START, "change_pte", END),  # set_pte_at_notify: COW, uprobes (6bdb913f0a70)
    # KSM: write_protect_page() then replace_page(), each a set_pte_at_notify() triple (mm/ksm.c)
    "ksm_merge": (START, "change_pte", END, START, "change_pte", END),
    "clear_flush_young": ("clear_flush_young",),  # reclaim: kswapd, folio_referenced_one()
    "clear_young": ("clear_young",),  # DAMON (damon_ptep_mkold), idle page tracking
    "test_young": ("test_young",),  # DAMON (damon_young_pmd_entry), khugepaged
}

_STREAM_COLUMNS = ["event", "cause", "kind", "t_us", "hva_start", "hva_end"]


def generate_stream(scenario: Scenario, seed: int = 0) -> pd.DataFrame:
    """A seeded stream of notification events for ``scenario``.

    Events arrive as a Poisson process at ``scenario.notifier_rate_hz`` over
    ``scenario.duration_us``. Each is spurious (misses every memslot) with probability
    ``spurious_share``:

    * ``vmm_self``: the VMM munmaps or madvises its own memory, a start/end pair on 1-511 pages
      of its heap (the ``spurious_munmap`` / ``spurious_madv`` phases of the real trace);
    * ``vmm_aging``: the host ages the VMM's own pages, one aging call on one page: from reclaim
      (share ``aging_reclaim_share``, ``clear_flush_young``) or else from DAMON
      (``clear_young`` or ``test_young``, as ``kdamond`` in the real trace).

    Otherwise it hits guest memory, by ``relevant_mix``:

    * ``migration``: a page migrated (NUMA balancing, compaction), a start/end pair on one
      guest page (``try_to_migrate_one()``; ``remove_migration_pte()`` uses a plain
      ``set_pte_at()``, so no ``change_pte``);
    * ``ksm``: KSM merging one guest page, ``write_protect_page()`` then ``replace_page()``:
      two start, change_pte, end triples (kind ``ksm_merge``);
    * ``guest_aging``: an aging call on one guest page, chosen as for ``vmm_aging``.

    With the NUMA balancer on (``numa_scan_period_ms > 0``), the scans of
    :func:`numa_scan_events` join the stream (cause ``numa_balancing``).

    Returns
    -------
    pandas.DataFrame
        One row per event: ``event, cause, kind, t_us, hva_start, hva_end`` (hvas uint64,
        end exclusive), sorted by time.
    """
    stream = _random_stream(scenario, seed)
    if scenario.numa_scan_period_ms <= 0:
        return stream
    scans = numa_scan_events(scenario)
    causes = [*NOTIFIER_CAUSES, NUMA_CAUSE]
    both = pd.concat(
        [
            stream.astype({"cause": pd.CategoricalDtype(causes)}),
            scans.astype({"cause": pd.CategoricalDtype(causes)}),
        ],
        ignore_index=True,
    )
    both = both.sort_values("t_us", kind="stable").reset_index(drop=True)
    both["event"] = np.arange(len(both))
    return both[_STREAM_COLUMNS]


NUMA_CAUSE = "numa_balancing"
"""The cause of the NUMA balancer's invalidations (:func:`numa_scan_events`)."""


def numa_scan_events(scenario: Scenario) -> pd.DataFrame:
    """The NUMA balancer's invalidations of guest memory over ``scenario.duration_us``.

    ``task_numa_work()`` runs every ``numa_scan_period_ms`` from ``numa_scan_delay_ms`` on and
    marks the next ``numa_scan_size_mib`` of the task's memory PROT_NONE with
    ``change_prot_numa()``, which fires ``invalidate_range_start``/``end`` over that range
    (``MMU_NOTIFY_PROTECTION_VMA``; ``change_pmd_range()`` notifies up to a PUD, 1 GiB, per
    call). The scan resumes where the last one stopped (``mm->numa_scan_offset``), here through
    the guest RAM of address space 0 in slot order, wrapping at its end; a scan stops at the end
    of a memslot (a VMA ends there), so one scan is one start/end pair, deterministic.

    Parameters
    ----------
    scenario : Scenario

    Returns
    -------
    pandas.DataFrame
        In the form of :func:`generate_stream`, cause ``numa_balancing``, kind ``pair``.

    Examples
    --------
    >>> import kvmviz as kv
    >>> s = kv.Scenario(duration_us=3e6, numa_scan_period_ms=1000, numa_scan_delay_ms=500)
    >>> numa_scan_events(s)["t_us"].tolist()
    [500000.0, 1500000.0, 2500000.0]
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a kvmviz.Scenario, got {type(scenario).__name__}")
    period, first = scenario.numa_scan_period_ms * 1e3, scenario.numa_scan_delay_ms * 1e3
    times = np.arange(first, scenario.duration_us, period) if period > 0 else np.empty(0)
    slots = [s for s in scenario.layout if s.as_id == 0]
    size = max(1, int(scenario.numa_scan_size_mib * 2**20) >> PAGE_SHIFT)  # pages
    starts, ends = [], []
    slot, offset = 0, 0  # where the next scan begins: slot index, page in the slot
    for _ in times:
        s = slots[slot]
        n = min(size, s.npages - offset)
        base = s.userspace_addr + (offset << PAGE_SHIFT)
        starts.append(base)
        ends.append(base + (n << PAGE_SHIFT))
        offset += n
        if offset >= s.npages:
            slot, offset = (slot + 1) % len(slots), 0
    return pd.DataFrame(
        {
            "event": np.arange(len(times)),
            "cause": pd.Categorical([NUMA_CAUSE] * len(times), categories=[NUMA_CAUSE]),
            "kind": ["pair"] * len(times),
            "t_us": times.astype(float),
            "hva_start": np.array(starts, dtype=np.uint64),
            "hva_end": np.array(ends, dtype=np.uint64),
        }
    )[_STREAM_COLUMNS]


def _random_stream(scenario: Scenario, seed: int) -> pd.DataFrame:
    """The Poisson part of :func:`generate_stream`."""
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a kvmviz.Scenario, got {type(scenario).__name__}")
    rng = np.random.default_rng(np.random.SeedSequence([check_seed(seed), 0x6E6F74]))  # "not"
    expected = scenario.notifier_rate_hz * scenario.duration_us * 1e-6
    n = int(rng.poisson(expected))
    t_us = np.sort(rng.uniform(0.0, scenario.duration_us, n))
    spurious = rng.random(n) < scenario.spurious_share
    pair = rng.random(n) < scenario.spurious_pair_share
    mix = np.asarray(scenario.relevant_mix) / sum(scenario.relevant_mix)
    relevant_cause = rng.choice(3, size=n, p=mix)
    cause = np.where(spurious, np.where(pair, 0, 1), 2 + relevant_cause)
    # Aging calls: reclaim's clear_flush_young, or DAMON's clear_young / test_young (half each:
    # kdamond clears the Accessed bit of a sampled page, then tests it one interval later).
    reclaim = rng.random(n) < scenario.aging_reclaim_share
    damon = np.where(rng.random(n) < 0.5, "clear_young", "test_young")
    aging_kind = np.where(reclaim, "clear_flush_young", damon)
    kind = np.empty(n, dtype=object)
    kind[(cause == 0) | (cause == 2)] = "pair"
    kind[cause == 3] = "ksm_merge"
    unpaired = (cause == 1) | (cause == 4)
    kind[unpaired] = aging_kind[unpaired]
    # Sizes: spurious munmaps span 1..511 pages (log-uniform below 512); everything else one page.
    npages = np.where(cause == 0, np.exp(rng.uniform(0, np.log(512), n)).astype(np.int64), 1)
    heap_pages = (VMM_HEAP[1] - VMM_HEAP[0]) >> PAGE_SHIFT
    heap_page = rng.integers(0, heap_pages - 512, n)
    guest_hva = random_guest_hvas(scenario.layout, rng, n)
    start = np.where(
        cause <= 1,
        np.uint64(VMM_HEAP[0]) + (heap_page.astype(np.uint64) << np.uint64(PAGE_SHIFT)),
        guest_hva,
    )
    end = start + (npages.astype(np.uint64) << np.uint64(PAGE_SHIFT))
    return pd.DataFrame(
        {
            "event": np.arange(n),
            "cause": pd.Categorical.from_codes(cause, categories=list(NOTIFIER_CAUSES)),
            "kind": kind.astype(str),
            "t_us": t_us,
            "hva_start": start.astype(np.uint64),
            "hva_end": end.astype(np.uint64),
        }
    )[_STREAM_COLUMNS]


def random_guest_hvas(layout: MemslotLayout, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` page-aligned hvas drawn uniformly from the guest RAM of address space 0."""
    slots = [s for s in layout if s.as_id == 0]
    npages = np.array([s.npages for s in slots], dtype=np.int64)
    cumulative = np.cumsum(npages)
    page = rng.integers(0, cumulative[-1], n)
    which = np.searchsorted(cumulative, page, side="right")
    offset = page - (cumulative[which] - npages[which])
    base = np.array([s.userspace_addr for s in slots], dtype=np.uint64)
    return base[which] + (offset.astype(np.uint64) << np.uint64(PAGE_SHIFT))


def _check_rows(frame: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kinds, hvas and times of an event table, each refused by row if it cannot mean an
    event: an unknown kind, an hva that is not an integer in [0, 2**64), an empty or inverted
    range, a time that is not a finite number >= 0. Returns ``(t_us, hva_start, hva_end)``."""
    kind = frame["kind"].to_numpy(dtype=object)
    known = np.array([isinstance(k, str) and k in EVENT_KINDS for k in kind], dtype=bool)
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise ValueError(f"{what} row {i}: kind {kind[i]!r} is not one of {sorted(EVENT_KINDS)}")
    # check_u64 refuses floats, booleans and strings: 1.5 is not an hva, and int() would floor it.
    start = check_u64(frame["hva_start"].to_numpy(), f"{what} column hva_start")
    end = check_u64(frame["hva_end"].to_numpy(), f"{what} column hva_end")
    inverted = np.flatnonzero(start >= end)
    if inverted.size:
        i = int(inverted[0])
        raise ValueError(
            f"{what} row {i}: hva_start {int(start[i]):#x} is not below hva_end {int(end[i]):#x}"
        )
    t = frame["t_us"].to_numpy()
    if t.size and (t.dtype.kind not in "iuf"):
        raise TypeError(f"{what} column t_us: expected numbers (µs), got dtype {t.dtype}")
    t = t.astype(float)
    bad = np.flatnonzero(~np.isfinite(t) | (t < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{what} row {i}: t_us {float(t[i])!r} is not a time >= 0")
    return t, start, end


def check_stream(stream) -> pd.DataFrame:
    """Check a notification stream handed to :func:`kvmviz.simulate` and return it.

    Parameters
    ----------
    stream : pandas.DataFrame
        In the form of :func:`generate_stream` (columns ``event, cause, kind, t_us,
        hva_start, hva_end``), as :func:`stream_from_callbacks` makes any event table.

    Returns
    -------
    pandas.DataFrame
        ``stream`` itself, unchanged.

    Raises
    ------
    TypeError, ValueError
        Not a DataFrame, a missing column, repeated event ids, or a row that
        :func:`stream_from_callbacks` would refuse, named by row.
    """
    if not isinstance(stream, pd.DataFrame):
        raise TypeError(
            "stream: expected a pandas.DataFrame of notification events (generate_stream or "
            f"stream_from_callbacks makes one), got {type(stream).__name__}"
        )
    missing = [c for c in _STREAM_COLUMNS if c not in stream.columns]
    if missing:
        raise ValueError(
            f"stream lacks columns {missing}: expected {_STREAM_COLUMNS} "
            "(stream_from_callbacks adds event and cause)"
        )
    event = stream["event"].to_numpy()
    if event.size and event.dtype.kind not in "iu":
        raise TypeError(f"stream column event: expected integer ids, got dtype {event.dtype}")
    if len(np.unique(event)) != len(event):
        # Every table of a Run is keyed by event: a repeated id would merge two events.
        raise ValueError("stream column event: expected one row per event id, found repeats")
    _check_rows(stream, "stream")
    return stream


def stream_from_callbacks(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a hand-made or imported event table and return it in the generator's form.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``t_us, kind, hva_start, hva_end`` and optionally ``cause``; ``kind`` one of
        :data:`EVENT_KINDS`; hvas integers in ``[0, 2**64)`` with ``hva_start < hva_end``;
        times finite numbers >= 0, µs.

    Raises
    ------
    TypeError, ValueError
        Naming the first offending row (or column) and what was expected.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame: expected a pandas.DataFrame of events, got {type(frame).__name__}")
    missing = {"t_us", "kind", "hva_start", "hva_end"} - set(frame.columns)
    if missing:
        raise ValueError(f"event table lacks columns {sorted(missing)}")
    t, start, end = _check_rows(frame, "event")
    out = frame.copy()
    if "cause" not in out:
        out["cause"] = "unknown"
    out["t_us"], out["hva_start"], out["hva_end"] = t, start, end
    out = out.sort_values("t_us", kind="stable").reset_index(drop=True)
    out["event"] = np.arange(len(out))
    return out[_STREAM_COLUMNS]
