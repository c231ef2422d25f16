"""Metrics: pure functions of a :class:`~kvmviz.Run` (or of its tables), nothing simulated.

Reader stalls (:func:`stall_stats`), the brownout curve (:func:`brownout`), a run's headline
numbers (:func:`summarize`) and the per-kernel table of several runs (:func:`kernel_table`); the
notifier counters through a run (:func:`notifier_counters`); the one interval-coverage
integral (:func:`coverage`) and the queue depth; the windows a timeline should show
(:func:`busiest_window`, :func:`whole_stalls`); and the ``perf lock contention`` table
(:func:`contention_table`, :func:`contention_text`). Loops over :func:`kvmviz.simulate` live
in :mod:`kvmviz.experiments`; views draw what these return.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._shared._checks import check_number, strict_booleans
from ..inputs.kernels import CALLBACKS, rule
from ..model import classify

__all__ = [
    "BEHIND",
    "KERNEL_TABLE_COLUMNS",
    "brownout",
    "busiest_window",
    "contention_table",
    "contention_text",
    "coverage",
    "fault_stalls",
    "freeze",
    "kernel_table",
    "notifier_counters",
    "queue_depth",
    "spin_causes",
    "stall_pieces",
    "stall_split",
    "stall_stats",
    "summarize",
    "wait_stats",
    "waiting_steps",
    "whole_stalls",
]


# The per-kernel table every front end prints (CLI simulate and replay, the dashboard): the
# faults' whole stall (waits plus retried attempts, so a kernel cannot look better by moving
# its cost into retries), split by what the faults waited behind, beside the writers' wait, so
# a policy that starves the writers (reader-pref) cannot look like a win either.
KERNEL_TABLE_COLUMNS = (
    "brownout_mean",
    "brownout_miss",
    "brownout_hit",
    "stall_p99_us",
    "stall_mean_us",
    "writer_wait_mean_us",
    "writer_wait_max_us",
    "faults_retried",
    "lock_taken",
    "lock_avoided",
)

BEHIND = ("miss", "hit", "fault")
"""What a stall is attributed to (:func:`stall_pieces`): a notification that missed every
memslot (spurious for KVM: what 8931a454ae and 071064f14d87 remove), one that hit guest memory
(a zap and a flush no kernel can skip), or, where faults take ``mmu_lock`` for write (the
shadow MMU, a spinlock), only other faults."""


def wait_stats(run) -> pd.Series:
    """How long fault *attempts* waited for ``mmu_lock``, µs: the lock's own view, attempt by
    attempt (a fault that retries makes several attempts).

    Returns
    -------
    pandas.Series
        ``wait_mean_us, wait_p50_us, wait_p99_us, wait_max_us`` of ``wait_us`` over all fault
        attempts, ``waited_share`` (share of attempts that waited at all) and
        ``wait_total_ms`` (vCPU time spent waiting, summed).

    See Also
    --------
    stall_stats : what a whole fault loses, retries included.
    """
    wait = run.faults["wait_us"].to_numpy()
    keys = ["wait_mean_us", "wait_p50_us", "wait_p99_us", "wait_max_us", "waited_share"]
    if wait.size == 0:
        return pd.Series({**dict.fromkeys(keys, 0.0), "wait_total_ms": 0.0})
    values = [
        wait.mean(),
        np.percentile(wait, 50),
        np.percentile(wait, 99),
        wait.max(),
        float((wait > 0).mean()),
    ]
    return pd.Series({**dict(zip(keys, values, strict=True)), "wait_total_ms": wait.sum() * 1e-3})


def _fault_groups(faults: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each fault, fault number of each row): the rows of one fault (a vCPU's
    attempts at one access) are contiguous, as the engines sort them (vCPU, then time)."""
    vcpu = faults["vcpu"].to_numpy()
    fault = faults["fault"].to_numpy()
    new = np.ones(len(faults), dtype=bool)
    new[1:] = (vcpu[1:] != vcpu[:-1]) | (fault[1:] != fault[:-1])
    return np.flatnonzero(new), np.cumsum(new) - 1


def stall_pieces(run) -> pd.DataFrame:
    """Every stretch of time a fault lost to ``mmu_lock``, and the callback it is owed to.

    A fault *stalls* while one of its attempts waits for ``mmu_lock`` (from ``t_request_us`` to
    ``t_grant_us``), owed to the callback it waited behind (``run.faults.blocked_by``); and for
    the whole of every attempt that had to retry, from its exit to the next attempt's exit,
    except its own wait, owed to the callback that made it retry (``retried_by``). A retried
    attempt is exit, pfn, lock and check done for nothing: a kernel that turns waits into
    retries saves the vCPU nothing, and this counts both. The lockless retries of a pre-check
    kernel (``run.faults.spins``, v6.8+) are retries too: an attempt that spun before reaching
    the lock stalled from its first exit to its last, owed to the invalidation in flight over
    its address (:func:`spin_causes`). The pieces of one vCPU never overlap.

    Returns
    -------
    pandas.DataFrame
        One row per piece: ``vcpu, fault, row`` (of ``run.faults``), ``kind`` ("wait" or
        "retry"), ``t_start_us, t_end_us``, ``notifier`` (row of ``run.notifiers``, -1 for a
        wait behind faults only), ``behind`` (one of :data:`BEHIND`) and ``cause`` (the
        notifier's cause, ``"fault"`` for ``behind == "fault"``).
    """
    f = run.faults
    n = len(f)
    t_exit = f["t_exit_us"].to_numpy(dtype=float)
    t_req = f["t_request_us"].to_numpy(dtype=float)
    t_grant = f["t_grant_us"].to_numpy(dtype=float)
    t_release = f["t_release_us"].to_numpy(dtype=float)
    retry = f["retry"].to_numpy(dtype=bool)
    vcpu = f["vcpu"].to_numpy()
    # The next attempt of a retried one is the vCPU's next row (it faults again at once).
    next_exit = np.append(t_exit[1:], np.nan)
    same = np.append(vcpu[1:] == vcpu[:-1], False)
    next_exit = np.where(same, next_exit, t_release)
    waited = np.flatnonzero(t_grant > t_req)
    rows = [waited, np.flatnonzero(retry & (t_req > t_exit)), np.flatnonzero(retry)]
    starts = [t_req[rows[0]], t_exit[rows[1]], t_grant[rows[2]]]
    ends = [t_grant[rows[0]], t_req[rows[1]], next_exit[rows[2]]]
    who = [
        f["blocked_by"].to_numpy()[rows[0]],
        f["retried_by"].to_numpy()[rows[1]],
        f["retried_by"].to_numpy()[rows[2]],
    ]
    if "spins" in f and bool(f["spins"].any()):
        spun = np.flatnonzero((f["spins"].to_numpy() > 0) & ~retry)
        last_exit = f["t_snapshot_us"].to_numpy(dtype=float) - run.scenario.vmexit_us / 2
        rows.append(spun)
        starts.append(t_exit[spun])
        ends.append(last_exit[spun])
        who.append(spin_causes(run)[spun])
    kinds = np.array(["wait", "retry", "retry", "retry"][: len(rows)])
    kind = np.repeat(kinds, [len(r) for r in rows])
    row = np.concatenate(rows).astype(np.int64) if n else np.empty(0, dtype=np.int64)
    start = np.concatenate(starts) if n else np.empty(0)
    end = np.concatenate(ends) if n else np.empty(0)
    notifier = np.concatenate(who).astype(np.int64) if n else np.empty(0, dtype=np.int64)
    keep = end > start
    row, kind, start, end, notifier = row[keep], kind[keep], start[keep], end[keep], notifier[keep]
    hits = run.notifiers["hit"].to_numpy(dtype=bool)
    causes = run.notifiers["cause"]
    if not isinstance(causes.dtype, pd.CategoricalDtype):
        causes = causes.astype("category")
    names = [str(c) for c in causes.cat.categories]
    cause_codes = causes.cat.codes.to_numpy().astype(np.int64)
    known = notifier >= 0
    # Codes: BEHIND's order for behind; the notifiers' causes, then "fault", for cause.
    behind = np.full(len(row), BEHIND.index("fault"), dtype=np.int8)
    behind[known] = np.where(hits[notifier[known]], BEHIND.index("hit"), BEHIND.index("miss"))
    extra = [] if "fault" in names else ["fault"]
    cause = np.full(len(row), (names + extra).index("fault"), dtype=np.int64)
    cause[known] = cause_codes[notifier[known]]
    order = np.lexsort((start, row))
    return pd.DataFrame(
        {
            "vcpu": vcpu[row[order]],
            "fault": f["fault"].to_numpy()[row[order]],
            "row": row[order],
            "kind": pd.Categorical.from_codes(
                (kind[order] == "retry").astype(np.int8), ["wait", "retry"]
            ),
            "t_start_us": start[order],
            "t_end_us": end[order],
            "notifier": notifier[order],
            "behind": pd.Categorical.from_codes(behind[order], BEHIND),
            "cause": pd.Categorical.from_codes(cause[order], names + extra),
        }
    )


def spin_causes(run) -> np.ndarray:
    """Which invalidation made each attempt spin (lockless retries, ``run.faults.spins``).

    The newest ``invalidate_range_start`` that took ``mmu_lock`` at or before the attempt's
    first sample of seq, whose range holds the attempt's hva and whose event had not yet ended
    then (d02c357e5bfa checks ``mmu_invalidate_in_progress`` and the range), else the newest
    such one that had begun (the sample came as it ended: its end moved seq); else the first
    ``invalidate_range_end`` to bump seq after the sample (a spin on a moved seq). -1 for
    attempts that did not spin, or where none is found.

    Returns
    -------
    numpy.ndarray of int64
        The row of ``run.notifiers`` per row of ``run.faults``.
    """
    f, n = run.faults, run.notifiers
    out = np.full(len(f), -1, dtype=np.int64)
    if "spins" not in f:
        return out
    rows = np.flatnonzero(f["spins"].to_numpy() > 0)
    if rows.size == 0:
        return out
    start = np.flatnonzero(
        n["locked"].to_numpy(dtype=bool) & (n["callback"].to_numpy() == "invalidate_range_start")
    )
    event = n["event"].to_numpy()
    done = n.groupby("event", sort=False)["t_done_us"].max()  # the event's last callback done
    grant = n["t_grant_us"].to_numpy(dtype=float)[start]
    end = done.reindex(event[start]).to_numpy(dtype=float)
    lo = n["hva_start"].to_numpy(dtype=np.uint64)[start]
    hi = n["hva_end"].to_numpy(dtype=np.uint64)[start]
    # The callbacks that bump seq from v6.8 (the only kernels that spin): a locked
    # invalidate_range_end (071064f14d87), in the order they released.
    bumps = np.flatnonzero(
        n["locked"].to_numpy(dtype=bool) & (n["callback"].to_numpy() == "invalidate_range_end")
    )
    bump_t = n["t_release_us"].to_numpy(dtype=float)[bumps]
    order = np.argsort(bump_t, kind="stable")
    bump_cb, bump_t = bumps[order], bump_t[order]
    t = f["t_exit_us"].to_numpy(dtype=float)[rows] + run.scenario.vmexit_us / 2
    hva = f["hva"].to_numpy(dtype=np.uint64)[rows]
    for j, (tj, hj) in enumerate(zip(t.tolist(), hva.tolist(), strict=True)):
        covers = (grant <= tj) & (lo <= hj) & (hi > hj)
        ok = np.flatnonzero(covers & (end > tj))
        if not ok.size:
            # Its first sample came as the invalidation ended (its end bumped seq after the
            # sample): the newest one over the hva that had begun.
            ok = np.flatnonzero(covers)
        if ok.size:
            out[rows[j]] = start[ok[np.argmax(grant[ok])]]
            continue
        # Else seq moved between its sample and its check: the first end to bump it after.
        k = np.searchsorted(bump_t, tj, side="right")
        if k < len(bump_t):
            out[rows[j]] = bump_cb[k]
    return out


def freeze(run, *, frozen_ms: float = 1.0) -> pd.Series:
    """The freeze of a run: how long faults hung on ``mmu_lock`` and what the zaps did.

    Parameters
    ----------
    run : Run
    frozen_ms : float
        A vCPU counts as frozen when one of its faults took longer than this, ms.

    Returns
    -------
    pandas.Series
        ``freeze_max_ms`` (the longest fault, from its first exit to its last release),
        ``freeze_p99_ms`` (99th percentile over faults), ``frozen_vcpus`` (vCPUs with a fault
        over ``frozen_ms``), ``futile_reads`` (acquisitions of ``mmu_lock`` that ended in a
        retry), ``lockless_retries`` (the pre-check's retries, ``faults.spins``), ``yields``
        (times a zap gave the lock up), ``flushes`` (remote TLB flushes by the callbacks, one
        per yield and one per flushing release), ``zap_ms`` (the longest
        invalidate_range_start from its first grant to its last release: how long the
        invalidation crawled).
    """
    frozen_ms = check_number(frozen_ms, "frozen_ms", minimum=0.0)
    f, n = run.faults, run.notifiers
    first, _ = _fault_groups(f)
    t0 = f["t_exit_us"].to_numpy(dtype=float)[first]
    release = f["t_release_us"].to_numpy(dtype=float)
    t1 = np.maximum.reduceat(release, first) if len(f) else t0
    latency = t1 - t0
    vcpu = f["vcpu"].to_numpy()[first]
    start = n["locked"].to_numpy(dtype=bool) & (
        n["callback"].to_numpy() == "invalidate_range_start"
    )
    span = (n["t_release_us"] - n["t_grant_us"]).to_numpy(dtype=float)[start]
    return pd.Series(
        {
            "freeze_max_ms": float(latency.max()) / 1e3 if len(latency) else 0.0,
            "freeze_p99_ms": float(np.percentile(latency, 99)) / 1e3 if len(latency) else 0.0,
            "frozen_vcpus": len(np.unique(vcpu[latency > frozen_ms * 1e3])),
            "futile_reads": int(f["retry"].sum()),
            "lockless_retries": int(f["spins"].sum()) if "spins" in f else 0,
            "yields": int(n["yields"].sum()) if "yields" in n else 0,
            "flushes": int(run.write_holds["flushed"].sum()),
            "zap_ms": float(span.max()) / 1e3 if len(span) else 0.0,
        },
        name=f"{run.kernel} {run.scenario.preempt}",
    )


def fault_stalls(run, pieces: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each fault whole, from its first exit to the install that sticks, µs.

    Parameters
    ----------
    run : Run
    pieces : pandas.DataFrame, optional
        :func:`stall_pieces` of the run, if already computed.

    Returns
    -------
    pandas.DataFrame
        One row per fault: ``vcpu, fault, attempts, t_exit_us`` (its first exit),
        ``t_install_us`` (the release of its last attempt, which installed the SPTE),
        ``latency_us`` (the two apart) split into ``wait_us`` (every wait for ``mmu_lock``),
        ``retried_us`` (the rest of the attempts that had to retry) and ``work_us`` (the rest
        of the last attempt: exit, pfn, the lock's acquisition and the install); ``stall_us``
        (``wait_us + retried_us``), and ``stall_miss_us``, ``stall_hit_us``,
        ``stall_fault_us``: the stall split by what it is owed to (:data:`BEHIND`).
    """
    f = run.faults
    first, group = _fault_groups(f)
    last = np.append(first[1:], len(f))[: len(first)] - 1
    pieces = stall_pieces(run) if pieces is None else pieces
    n = len(first)
    length = (pieces["t_end_us"] - pieces["t_start_us"]).to_numpy()
    owner = group[pieces["row"].to_numpy()]
    is_wait = (pieces["kind"] == "wait").to_numpy()
    behind = pieces["behind"].cat.codes.to_numpy()
    out = pd.DataFrame(
        {
            "vcpu": f["vcpu"].to_numpy()[first],
            "fault": f["fault"].to_numpy()[first],
            "attempts": last - first + 1,
            "t_exit_us": f["t_exit_us"].to_numpy()[first],
            "t_install_us": f["t_release_us"].to_numpy()[last],
        }
    )
    out["latency_us"] = out["t_install_us"] - out["t_exit_us"]
    out["wait_us"] = np.bincount(owner[is_wait], length[is_wait], minlength=n)
    out["retried_us"] = np.bincount(owner[~is_wait], length[~is_wait], minlength=n)
    out["stall_us"] = out["wait_us"] + out["retried_us"]
    out["work_us"] = out["latency_us"] - out["stall_us"]
    for code, name in enumerate(BEHIND):
        mine = behind == code
        out[f"stall_{name}_us"] = np.bincount(owner[mine], length[mine], minlength=n)
    return out


def stall_stats(run, stalls: pd.DataFrame | None = None) -> pd.Series:
    """What whole faults lost to ``mmu_lock``, µs: waits plus retried attempts, per fault.

    Parameters
    ----------
    run : Run
    stalls : pandas.DataFrame, optional
        :func:`fault_stalls` of the run, if already computed.

    Returns
    -------
    pandas.Series
        ``stall_mean_us, stall_p50_us, stall_p99_us, stall_max_us`` of ``stall_us`` over all
        faults (those that never stalled count as 0), ``stalled_share`` (share of faults that
        stalled at all), ``stall_total_ms`` (vCPU time lost, summed) and
        ``latency_mean_us, latency_p99_us`` (first exit to install, stall and work).

    See Also
    --------
    wait_stats : the waits, attempt by attempt.
    """
    stalls = fault_stalls(run) if stalls is None else stalls
    keys = ["stall_mean_us", "stall_p50_us", "stall_p99_us", "stall_max_us", "stalled_share"]
    if len(stalls) == 0:
        zeros = ["stall_total_ms", "latency_mean_us", "latency_p99_us"]
        return pd.Series(dict.fromkeys(keys + zeros, 0.0))
    stall = stalls["stall_us"].to_numpy()
    latency = stalls["latency_us"].to_numpy()
    values = [
        stall.mean(),
        np.percentile(stall, 50),
        np.percentile(stall, 99),
        stall.max(),
        float((stall > 0).mean()),
    ]
    return pd.Series(
        {
            **dict(zip(keys, values, strict=True)),
            "stall_total_ms": stall.sum() * 1e-3,
            "latency_mean_us": latency.mean(),
            "latency_p99_us": np.percentile(latency, 99),
        }
    )


def brownout(run, bin_us: float | None = None, *, behind=None, pieces=None) -> pd.DataFrame:
    """The brownout: the share of the VM's vCPUs stalled on ``mmu_lock``, over time.

    A vCPU is *stalled* while its fault waits for ``mmu_lock`` or repeats an attempt the lock's
    notifiers made it retry (:func:`stall_pieces`). The share is of all ``n_vcpus`` of the VM,
    averaged exactly over each time bin (it integrates the stalled stretches); its mean over
    the run, ``brownout_mean`` of :func:`summarize`, is the share of the VM's vCPU time lost.
    This is the one meaning of *brownout* in kvmviz.

    Parameters
    ----------
    run : Run
    bin_us : float, optional
        Bin width, µs; default: 200 bins over the scenario's duration.
    behind : str or sequence of str, optional
        Count only the stalls owed to these (:data:`BEHIND`: ``"miss"``, ``"hit"``,
        ``"fault"``); default all.
    pieces : pandas.DataFrame, optional
        :func:`stall_pieces` of the run, if already computed.

    Returns
    -------
    pandas.DataFrame
        ``t_us`` (bin start), ``stalled_share`` in [0, 1] of all ``n_vcpus``.
    """
    duration = run.scenario.duration_us
    bin_us = duration / 200 if bin_us is None else float(bin_us)
    if not bin_us > 0:
        raise ValueError(f"bin_us must be > 0, got {bin_us}")
    edges = np.arange(0.0, duration + bin_us, bin_us)
    nbins = len(edges) - 1
    pieces = stall_pieces(run) if pieces is None else pieces
    if behind is not None:
        wanted = [behind] if isinstance(behind, str) else list(behind)
        unknown = sorted(set(wanted) - set(BEHIND))
        if unknown:
            raise ValueError(f"behind = {unknown}: expected among {BEHIND}")
        pieces = pieces[pieces["behind"].isin(wanted).to_numpy()]
    starts = np.clip(pieces["t_start_us"].to_numpy(), 0, edges[-1])
    ends = np.clip(pieces["t_end_us"].to_numpy(), 0, edges[-1])
    area = coverage(starts, ends, edges)  # the integral of the number stalled over each bin
    share = area / (bin_us * run.scenario.n_vcpus)
    return pd.DataFrame({"t_us": edges[:-1], "stalled_share": share[:nbins]})


def stall_split(run) -> pd.DataFrame:
    """The faults' stalls by what they are owed to: a miss or a hit, and its cause.

    Returns
    -------
    pandas.DataFrame
        One row per (``behind``, ``cause``) that stalled anyone, ``behind`` in
        :data:`BEHIND` order: ``brownout`` (the share of the VM's vCPU time it cost, over the
        run: the rows sum to ``brownout_mean``), ``stall_ms`` (vCPU time, summed, the work in
        flight at the end included), ``faults`` (faults it stalled), ``stall_p99_us`` (p99 over
        all faults of the stall owed to it).
    """
    pieces = stall_pieces(run)
    stalls = fault_stalls(run, pieces)
    _, group = _fault_groups(run.faults)
    duration = run.scenario.duration_us
    rows = []
    length = (pieces["t_end_us"] - pieces["t_start_us"]).to_numpy()
    inside = np.clip(pieces["t_end_us"].to_numpy(), 0, duration) - np.clip(
        pieces["t_start_us"].to_numpy(), 0, duration
    )
    owner = group[pieces["row"].to_numpy()]
    for (behind, cause), part in pieces.groupby(["behind", "cause"], observed=True, sort=False):
        idx = part.index.to_numpy()
        per_fault = np.bincount(owner[idx], length[idx], minlength=len(stalls))
        rows.append(
            {
                "behind": behind,
                "cause": cause,
                "brownout": inside[idx].sum() / (duration * run.scenario.n_vcpus),
                "stall_ms": length[idx].sum() * 1e-3,
                "faults": int((per_fault > 0).sum()),
                "stall_p99_us": float(np.percentile(per_fault, 99)) if len(per_fault) else 0.0,
            }
        )
    columns = ["behind", "cause", "brownout", "stall_ms", "faults", "stall_p99_us"]
    frame = pd.DataFrame(rows, columns=columns)
    order = np.lexsort(
        (frame["cause"].to_numpy(dtype=str), [BEHIND.index(b) for b in frame["behind"]])
    )
    return frame.iloc[order].reset_index(drop=True)


def summarize(run) -> pd.Series:
    """The headline numbers of one run, as the per-kernel tables print them.

    Returns
    -------
    pandas.Series
        ``brownout_mean`` (the share of the VM's vCPU time stalled: :func:`brownout`),
        ``brownout_peak`` (the largest share in any of 200 bins), ``brownout_miss``,
        ``brownout_hit`` and ``brownout_fault`` (the part owed to misses, hits, faults only);
        the per-fault stall (:func:`stall_stats`) and the per-attempt wait
        (:func:`wait_stats`); ``faults``, ``faults_retried`` (attempts that retried),
        ``notifier_callbacks``, ``lock_taken`` and ``lock_avoided`` (callbacks that did not
        take ``mmu_lock``), ``writer_wait_mean_us`` and ``writer_wait_max_us`` (how long the
        notifier callbacks that took ``mmu_lock`` waited for it; 0 when none took it).
    """
    pieces = stall_pieces(run)
    stalls = fault_stalls(run, pieces)
    curve = brownout(run, pieces=pieces)
    share = curve["stalled_share"]
    parts = {
        f"brownout_{name}": float(brownout(run, behind=name, pieces=pieces)["stalled_share"].mean())
        if len(curve)
        else 0.0
        for name in BEHIND
    }
    notifiers = run.notifiers
    locked = notifiers["locked"]
    return pd.Series(
        {
            "brownout_mean": float(share.mean()) if len(curve) else 0.0,
            "brownout_peak": float(share.max()) if len(curve) else 0.0,
            **parts,
            **stall_stats(run, stalls).to_dict(),
            **wait_stats(run).to_dict(),
            "faults": len(stalls),
            "faults_retried": int(run.faults["retry"].sum()),
            "notifier_callbacks": len(notifiers),
            "lock_taken": int(locked.sum()),
            "lock_avoided": int((~locked).sum()),
            "writer_wait_mean_us": float(notifiers.loc[locked, "wait_us"].mean())
            if locked.any()
            else 0.0,
            "writer_wait_max_us": float(notifiers.loc[locked, "wait_us"].max())
            if locked.any()
            else 0.0,
        },
        name=f"{run.kernel} {run.policy}",
    )


def notifier_counters(run) -> pd.DataFrame:
    """``mmu_notifier_count`` and ``mmu_notifier_seq`` through a run, one row per change.

    Each callback changes them as :func:`kvmviz.kernels.rule` says for the run's kernel, at the
    moments the engine applies the change: ``count`` goes up when an ``invalidate_range_start``
    is granted ``mmu_lock`` (``kvm_inc_notifier_count``, under the write lock), and ``seq`` goes
    up then ``count`` down when an ``invalidate_range_end`` releases it (``seq++``, ``smp_wmb()``,
    ``count--``: docs/kernel.md §3.1). On v5.12 a ``change_pte`` bumps ``seq`` too (the bump removed
    by c13fda237f08). A callback that skipped the lock changes neither.

    Parameters
    ----------
    run : Run

    Returns
    -------
    pandas.DataFrame
        ``t_us, event, callback, hit, count_delta, seq_delta`` and the state after the change:
        ``count, seq`` (both starting from 0) and ``range_start, range_end``, the hvas
        ``mmu_notifier_retry_hva()`` checks while ``count`` is not 0: set to the callback's
        range when ``count`` goes 0 -> 1, else widened to cover both (4a42d848db95).

    Examples
    --------
    >>> import kvmviz as kv
    >>> run = kv.simulate(kv.Scenario(n_vcpus=4, duration_us=2_000), kernel="v5.12")
    >>> counters = notifier_counters(run)
    >>> int(counters["seq"].iloc[-1]) == int(counters["seq_delta"].sum())
    True
    """
    notifiers = run.notifiers
    rows = []
    hvas = []
    for row in notifiers[notifiers["locked"].to_numpy(dtype=bool)].itertuples(index=False):
        effect = rule(run.kernel, row.callback, bool(row.hit))
        seq_delta = int(effect.bumps_seq)
        if effect.count_delta == 0 and not seq_delta:
            continue
        # count++ right after the lock is taken; seq++ and count-- just before it is dropped.
        t_us = row.t_grant_us if effect.count_delta > 0 else row.t_release_us
        rows.append((t_us, row.event, row.callback, bool(row.hit), effect.count_delta, seq_delta))
        hvas.append((int(row.hva_start), int(row.hva_end)))
    columns = ["t_us", "event", "callback", "hit", "count_delta", "seq_delta"]
    frame = pd.DataFrame(rows, columns=columns)
    # At one instant the engines apply a release (seq++, count--) before a grant (count++): the
    # writer granted then was waiting for the one that released.
    grant = frame["count_delta"].to_numpy() > 0
    order = np.lexsort((grant, frame["t_us"].to_numpy()))
    frame = frame.iloc[order].reset_index(drop=True)
    state = classify.Counters()
    counts, starts, ends = [], [], []
    for i, delta in zip(order.tolist(), frame["count_delta"].tolist(), strict=True):
        if delta > 0:
            state.grant(delta, *hvas[i])
        else:
            state.release(False, delta)  # seq is summed below
        counts.append(state.count)
        starts.append(state.range_start)
        ends.append(state.range_end)
    frame["count"] = np.array(counts, dtype=np.int64)
    frame["seq"] = frame["seq_delta"].cumsum().astype(np.int64)
    frame["range_start"] = np.array(starts, dtype=np.uint64)
    frame["range_end"] = np.array(ends, dtype=np.uint64)
    return frame


def kernel_table(runs) -> pd.DataFrame:
    """The per-kernel summary table: one row of :func:`summarize` per run, indexed by label.

    Parameters
    ----------
    runs : Run, sequence of Run, or mapping of label to Run
        A sequence is labelled by each run's kernel.

    Returns
    -------
    pandas.DataFrame
        Index ``kernel`` (the labels), the columns of :func:`summarize`; front ends print
        :data:`KERNEL_TABLE_COLUMNS` of it.
    """
    if hasattr(runs, "faults"):
        runs = {runs.kernel: runs}
    elif not isinstance(runs, Mapping):
        runs = {run.kernel: run for run in runs}
    frame = pd.DataFrame([summarize(run) for run in runs.values()])
    frame.index = pd.Index(list(runs), name="kernel")
    return frame


# --------------------------------------------------------------------------------------------
# Intervals: the coverage integral, the queue, the windows worth drawing.
# --------------------------------------------------------------------------------------------
def coverage(starts, ends, edges) -> np.ndarray:
    """Per bin of ``edges``, the time covered by the intervals ``[starts, ends)``, summed.

    The one interval-coverage integral of the package (the brownout, the timelines' aggregated
    lanes and the animations use it): ``F(x)``, the summed overlap of the intervals with
    ``(-inf, x)``, is piecewise linear in ``x``, so each bin's area ``F(b) - F(a)`` is exact.

    Parameters
    ----------
    starts, ends : array_like
        The intervals, ``ends >= starts``, in any order.
    edges : array_like
        Increasing bin edges; intervals are clipped to ``[edges[0], edges[-1]]``.

    Returns
    -------
    numpy.ndarray
        ``len(edges) - 1`` areas (time × intervals; divide by the bin width for a mean count).

    Examples
    --------
    >>> coverage([0, 1], [2, 4], [0, 2, 4]).tolist()
    [3.0, 2.0]
    """
    edges = np.asarray(edges, dtype=float)
    starts = np.sort(np.clip(np.asarray(starts, dtype=float), edges[0], edges[-1]))
    ends = np.sort(np.clip(np.asarray(ends, dtype=float), edges[0], edges[-1]))
    cum_s = np.concatenate([[0.0], np.cumsum(starts)])
    cum_e = np.concatenate([[0.0], np.cumsum(ends)])
    n_s = np.searchsorted(starts, edges, "right")
    n_e = np.searchsorted(ends, edges, "right")
    # F(x) = sum of overlaps of the intervals with (-inf, x): piecewise linear in x.
    covered = (n_s * edges - cum_s[n_s]) - (n_e * edges - cum_e[n_e])
    return np.diff(covered)


def queue_depth(
    run, start_us: float, end_us: float, *, holder: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """How many acquisitions of ``mmu_lock`` wait at each instant of a window, as steps.

    Parameters
    ----------
    run : Run
    start_us, end_us : float
        The window, µs.
    holder : {None, "vcpu", "notifier"}
        Count only the faults (``"vcpu"``: a vCPU has one attempt at a time, so this is the
        number of vCPUs stalled on the lock) or only the callbacks; default both.

    Returns
    -------
    (t_us, waiting) : tuple of numpy.ndarray
        Step edges from ``start_us`` to ``end_us`` and the number waiting from each edge on
        (``matplotlib`` ``drawstyle="steps-post"``); at one instant, grants count before
        requests.
    """
    lock = run.lock
    waited = lock["wait_us"].to_numpy() > 0
    if holder is not None:
        if holder not in ("vcpu", "notifier"):
            raise ValueError(f"holder must be None, 'vcpu' or 'notifier', got {holder!r}")
        waited &= (lock["holder"] == holder).to_numpy()
    requests = lock["t_request_us"].to_numpy()[waited]
    grants = lock["t_grant_us"].to_numpy()[waited]
    return waiting_steps(requests, grants, start_us, end_us)


def waiting_steps(requests, grants, start_us: float, end_us: float):
    """How many of the waits ``[requests[i], grants[i])`` are in progress at each instant of a
    window, as steps: the one computation behind :func:`queue_depth` and the waiters counter
    of a Perfetto export.

    Parameters
    ----------
    requests, grants : array_like of float
        When each wait began and ended, µs (only waits that lasted: ``grants > requests``).
    start_us, end_us : float
        The window, µs.

    Returns
    -------
    (t_us, waiting) : tuple of numpy.ndarray
        Step edges from ``start_us`` to ``end_us`` and the number waiting from each edge on;
        at one instant, grants count before requests.
    """
    requests = np.asarray(requests, dtype=float)
    grants = np.asarray(grants, dtype=float)
    times = np.concatenate([requests, grants])
    delta = np.concatenate([np.ones(requests.size), -np.ones(grants.size)])
    order = np.lexsort((delta, times))  # at one instant, grants before requests
    times, depth = times[order], np.cumsum(delta[order])
    first = np.searchsorted(times, start_us, "right")
    last = np.searchsorted(times, end_us, "left")
    before = depth[first - 1] if first > 0 else 0.0
    t = np.concatenate([[start_us], times[first:last], [end_us]])
    waiting = np.concatenate([[before], depth[first:last], [depth[last - 1] if last > 0 else 0]])
    return t, waiting


def _contention_episodes(run) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the maximal stretches of time in which someone waits for
    ``mmu_lock``: the union of every acquisition's ``[t_request_us, t_grant_us)`` that waited,
    faults and callbacks alike, overlapping or touching intervals merged. Sorted, disjoint."""
    lock = run.lock
    waited = lock["wait_us"].to_numpy() > 0
    request = lock["t_request_us"].to_numpy()[waited]
    grant = lock["t_grant_us"].to_numpy()[waited]
    if request.size == 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(request, kind="stable")
    request, grant = request[order], grant[order]
    reach = np.maximum.accumulate(grant)
    first = np.flatnonzero(np.concatenate([[True], request[1:] > reach[:-1]]))
    return request[first], np.maximum.reduceat(grant, first)


def whole_stalls(run, start_us: float, end_us: float) -> tuple[float, float]:
    """Widen a timeline window so that no stall is cut off at either edge.

    A stall is any acquisition of ``mmu_lock`` that waited (a fault or a notifier callback,
    from ``t_request_us`` to ``t_grant_us`` in ``run.lock``). The window is widened to the
    bounds of every contention episode it overlaps (a maximal stretch of time in which someone
    waits, overlapping waits merged), so every stall that overlaps the window is shown whole,
    and so is every stall that overlaps the widened one: its edges fall where nobody waits.

    Parameters
    ----------
    run : Run
    start_us, end_us : float
        The window, µs of simulated time; ``end_us`` after ``start_us``.

    Returns
    -------
    (start_us, end_us) : tuple of float
        Never narrower than the window given; the same window if it cuts no stall. An edge
        that had to move gets a margin of calm (2 % of the window, less if the next episode
        is closer) so that the last stall is seen to end.

    Examples
    --------
    >>> kv.timelines.lock_timeline(run, *whole_stalls(run, 1_000, 1_400))  # doctest: +SKIP
    """
    start_us = check_number(start_us, "start_us")
    end_us = check_number(end_us, "end_us")
    if not end_us > start_us:
        raise ValueError(f"end_us must be after start_us, got [{start_us:g}, {end_us:g})")
    starts, ends = _contention_episodes(run)
    cut = (starts < end_us) & (ends > start_us)
    if not cut.any():
        return start_us, end_us
    new_start = min(start_us, float(starts[cut].min()))
    new_end = max(end_us, float(ends[cut].max()))
    # A widened edge would sit exactly where the last stall ends, which reads as a cut: leave
    # 2 % of the window of calm beyond it, but never so much that the margin cuts the next
    # episode (nor before t = 0).
    margin = 0.02 * (new_end - new_start)
    if new_start < start_us:
        before = ends[ends <= new_start]
        floor = float(before.max()) if before.size else 0.0
        new_start = max(new_start - margin, floor, min(0.0, new_start))
    if new_end > end_us:
        after = starts[starts >= new_end]
        ceiling = float(after.min()) if after.size else np.inf
        new_end = min(new_end + margin, ceiling)
    return new_start, new_end


@strict_booleans
def busiest_window(
    run, width_us: float, *, lead: float = 0.25, whole: bool = True
) -> tuple[float, float]:
    """A timeline window around the notifier callback that waited longest for ``mmu_lock``,
    widened to show whole stalls.

    The window starts ``lead * width_us`` before that callback arrives (at 0 at the earliest)
    and is ``width_us`` wide; then :func:`whole_stalls` widens it to the bounds of the
    contention episodes it would cut, so the long wait and every stall around it are shown from
    start to end. With no callback that took the lock, the acquisition that waited longest is
    used; with no wait at all, the run's first ``width_us``.

    Parameters
    ----------
    run : Run
    width_us : float
        The width asked for, µs (the window returned may be wider, never narrower).
    lead : float
        Share of ``width_us`` shown before the callback arrives, in [0, 1].
    whole : bool
        Widen the window with :func:`whole_stalls` (the timelines); ``False`` keeps it exactly
        ``width_us`` wide (the animations, whose frames span a fixed window).

    Returns
    -------
    (start_us, end_us) : tuple of float

    Examples
    --------
    >>> kv.timelines.lock_timeline(run, *kv.metrics.busiest_window(run, 3_000))  # doctest: +SKIP
    """
    width_us = check_number(width_us, "width_us")
    if not width_us > 0:
        raise ValueError(f"width_us = {width_us!r}: expected a positive number of µs")
    lead = check_number(lead, "lead", minimum=0.0)
    if lead > 1:
        raise ValueError(f"lead = {lead!r}: expected a share of the window, in [0, 1]")
    notifiers = run.notifiers
    taken = notifiers[notifiers["locked"].to_numpy(dtype=bool)]
    if len(taken):
        when = float(taken["t_arrive_us"].to_numpy()[np.argmax(taken["wait_us"].to_numpy())])
    elif len(run.lock) and (run.lock["wait_us"].to_numpy() > 0).any():
        lock = run.lock
        when = float(lock["t_request_us"].to_numpy()[np.argmax(lock["wait_us"].to_numpy())])
    else:
        return 0.0, width_us
    start = max(0.0, when - lead * width_us)
    return whole_stalls(run, start, start + width_us) if whole else (start, start + width_us)


# --------------------------------------------------------------------------------------------
# perf lock contention.
# --------------------------------------------------------------------------------------------
# Where each acquisition takes mmu_lock, as perf would name the caller: the fault path
# (direct_page_fault, arch/x86/kvm/mmu/mmu.c) and the MMU-notifier callbacks of
# virt/kvm/kvm_main.c, into which __kvm_handle_hva_range() is inlined (__always_inline).
_CALLERS = {
    "page_fault": "direct_page_fault",
    **{cb: f"kvm_mmu_notifier_{cb}" for cb in CALLBACKS},
}
_CONTENTION_COLUMNS = ["contended", "total_wait_us", "max_wait_us", "avg_wait_us", "type", "caller"]


def contention_table(run) -> pd.DataFrame:
    """``mmu_lock`` contention of a run by lock type and caller, as ``perf lock contention``.

    Parameters
    ----------
    run : Run

    Returns
    -------
    pandas.DataFrame
        One row per (type, caller) whose acquisitions ever waited: ``contended`` (acquisitions
        that waited longer than 0), ``total_wait_us``, ``max_wait_us``, ``avg_wait_us`` (total
        over contended, as perf), ``type`` (``rwlock:R`` for faults and ``rwlock:W`` for
        notifier callbacks; ``spinlock`` under the ``"spinlock"`` policy) and ``caller``
        (``direct_page_fault``, ``kvm_mmu_notifier_invalidate_range_start``, ...). Sorted by
        total wait, longest first (perf's default ``-k wait_total``).

    See Also
    --------
    contention_text : the same table as perf prints it.
    """
    lock = run.lock
    waited = lock[lock["wait_us"].to_numpy() > 0]
    if run.policy == "spinlock":
        lock_type = np.full(len(waited), "spinlock", dtype=object)
    else:
        lock_type = np.where(waited["mode"].to_numpy() == "read", "rwlock:R", "rwlock:W")
    frame = pd.DataFrame(
        {
            "type": lock_type,
            "caller": waited["callback"].astype(str).map(_CALLERS).to_numpy(),
            "wait_us": waited["wait_us"].to_numpy(),
        }
    )
    table = frame.groupby(["type", "caller"], sort=True).agg(
        contended=("wait_us", "size"),
        total_wait_us=("wait_us", "sum"),
        max_wait_us=("wait_us", "max"),
    )
    table["avg_wait_us"] = table["total_wait_us"] / table["contended"]
    table = table.reset_index().sort_values(
        ["total_wait_us", "caller"], ascending=[False, True], kind="stable"
    )
    table["contended"] = table["contended"].astype(np.int64)
    return table[_CONTENTION_COLUMNS].reset_index(drop=True)


def _perf_time(ns: int, width: int = 12) -> str:
    """A duration as perf's ``lock_stat_key_print_time()`` prints it (tools/perf)."""
    for base, unit in ((3600e9, "h "), (60e9, "m "), (1e9, "s "), (1e6, "ms"), (1e3, "us")):
        if ns >= base:
            return f"{ns / base:{width - 3}.2f} {unit}"
    return f"{ns:{width - 3}d} ns"


def contention_text(run) -> str:
    """:func:`contention_table` as ``perf lock contention`` prints it on a terminal.

    The default fields and layout of ``perf lock contention`` (tools/perf/builtin-lock.c):
    ``contended``, ``total wait``, ``max wait``, ``avg wait``, then ``type`` and ``caller``;
    times in ns, µs ("us"), ms or s with two decimals; the average is the integer division of
    the total by the contended count, in ns. Callers have no ``+0x..`` offset: the model has
    no code addresses.

    Returns
    -------
    str

    Examples
    --------
    >>> print(kv.metrics.contention_text(run))  # doctest: +SKIP
     contended   total wait     max wait     avg wait         type   caller
    <BLANKLINE>
          8469       3.53 s       1.52 ms    417.20 us     rwlock:R   direct_page_fault
    ...
    """
    table = contention_table(run)
    lines = [
        f"{'contended':>10} {'total wait':>12} {'max wait':>12} {'avg wait':>12}   "
        f"{'type':>10}   caller",
        "",
    ]
    for row in table.itertuples(index=False):
        total_ns = round(row.total_wait_us * 1000)
        max_ns = round(row.max_wait_us * 1000)
        avg_ns = total_ns // row.contended
        lines.append(
            f"{row.contended:10d} {_perf_time(total_ns)} {_perf_time(max_ns)} "
            f"{_perf_time(avg_ns)}   {row.type:>10}   {row.caller}"
        )
    return "\n".join(lines) + "\n"
