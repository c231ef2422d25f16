"""Metrics of a :class:`~kvmviz.engine.Run`: reader stalls, brownout, a kernel comparison.

Views call these; none of them re-simulates except :func:`compare_kernels`, which runs the same
scenario and seed once per kernel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._progress import reporter
from .kernels import KERNELS

__all__ = [
    "KERNEL_TABLE_COLUMNS",
    "brownout",
    "compare_kernels",
    "notifier_counters",
    "stall_stats",
    "summarize",
]


# The per-kernel table every front end prints (CLI simulate and replay, the dashboard): the
# readers' stall beside the writers' wait, so a policy that starves the writers (reader-pref)
# cannot look like a win.
KERNEL_TABLE_COLUMNS = (
    "p99_us",
    "mean_us",
    "writer_wait_mean_us",
    "writer_wait_max_us",
    "brownout_mean",
    "faults_retried",
    "lock_taken",
    "lock_avoided",
)


def stall_stats(run) -> pd.Series:
    """Reader stall: how long fault attempts waited for ``mmu_lock``, µs.

    Returns
    -------
    pandas.Series
        ``mean, p50, p99, max`` of ``wait_us`` over all fault attempts, ``stalled_share`` (share
        of attempts that waited at all) and ``total_ms`` (vCPU time lost, summed).
    """
    wait = run.faults["wait_us"].to_numpy()
    if wait.size == 0:
        values = dict.fromkeys(["mean_us", "p50_us", "p99_us", "max_us", "stalled_share"], 0.0)
        values["total_ms"] = 0.0
        return pd.Series(values)
    return pd.Series(
        {
            "mean_us": wait.mean(),
            "p50_us": np.percentile(wait, 50),
            "p99_us": np.percentile(wait, 99),
            "max_us": wait.max(),
            "stalled_share": float((wait > 0).mean()),
            "total_ms": wait.sum() * 1e-3,
        }
    )


def brownout(run, bin_us: float | None = None) -> pd.DataFrame:
    """Share of the VM's vCPUs stalled on ``mmu_lock`` over time.

    A vCPU is stalled from the moment its fault asks for ``mmu_lock`` until it is granted. The
    share is averaged exactly over each time bin (it integrates the waiting intervals).

    Parameters
    ----------
    run : Run
    bin_us : float, optional
        Bin width, µs; default: 200 bins over the scenario's duration.

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
    waiting = run.faults.loc[run.faults["wait_us"] > 0, ["t_request_us", "t_grant_us"]]
    starts = np.clip(waiting["t_request_us"].to_numpy(), 0, edges[-1])
    ends = np.clip(waiting["t_grant_us"].to_numpy(), 0, edges[-1])

    # Integral of (number waiting) over each bin = sum over intervals of their overlap.
    # F(x) = sum_i overlap([s_i, e_i), [0, x)) is piecewise linear; bin area = F(b) - F(a).
    def cumulative(x: np.ndarray) -> np.ndarray:
        s_sorted, e_sorted = np.sort(starts), np.sort(ends)
        cs, ce = (
            np.concatenate([[0], np.cumsum(s_sorted)]),
            np.concatenate([[0], np.cumsum(e_sorted)]),
        )
        ns = np.searchsorted(s_sorted, x, "right")
        ne = np.searchsorted(e_sorted, x, "right")
        return (ns * x - cs[ns]) - (ne * x - ce[ne])

    area = np.diff(cumulative(edges))
    share = area / (bin_us * run.scenario.n_vcpus)
    return pd.DataFrame({"t_us": edges[:-1], "stalled_share": share[:nbins]})


def summarize(run) -> pd.Series:
    """The headline numbers of one run, as shown in the toggle notebook's table.

    Returns
    -------
    pandas.Series
        Stall statistics (:func:`stall_stats`), ``brownout_mean`` (mean share of vCPUs stalled),
        ``brownout_peak`` (largest share in any of 200 bins), ``faults``, ``faults_retried``,
        ``notifier_callbacks``, ``lock_taken`` and ``lock_avoided`` (callbacks that did not
        take ``mmu_lock``), ``writer_wait_mean_us`` and ``writer_wait_max_us`` (how long the
        notifier callbacks that took ``mmu_lock`` waited for it; 0 when none took it).
    """
    stats = stall_stats(run)
    curve = brownout(run)
    notifiers = run.notifiers
    locked = notifiers["locked"]
    out = pd.Series(
        {
            **stats.to_dict(),
            "brownout_mean": float(curve["stalled_share"].mean()) if len(curve) else 0.0,
            "brownout_peak": float(curve["stalled_share"].max()) if len(curve) else 0.0,
            "faults": int((run.faults["retries"] == 0).sum()),
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
    return out


def compare_kernels(
    scenario=None,
    *,
    policy: str = "qrwlock",
    seed: int = 0,
    kernels=KERNELS,
    simulate=None,
    progress=None,
) -> pd.DataFrame:
    """Run the same scenario and seed on each kernel and tabulate :func:`summarize`.

    Parameters
    ----------
    scenario : Scenario, optional
    policy : str
    seed : int
    kernels : sequence of str
        Default all of :data:`kvmviz.KERNELS`.
    simulate : callable, optional
        ``simulate(scenario, kernel, policy, seed)``; default :func:`kvmviz.simulate`, pass a
        cached one to reuse runs.
    progress : None, True or callable, optional
        ``True``: a progress bar, one step per kernel (an ipywidgets bar in Jupyter, else a
        line on stderr); a callable is called as ``progress(done, total)``.

    Returns
    -------
    pandas.DataFrame
        One row per kernel (index ``kernel``), the columns of :func:`summarize`.
    """
    if simulate is None:
        from .engine import simulate
    kernels = list(kernels)
    report = reporter(
        progress, "simulate", lambda done, total: f"{done} / {total} kernels", "done, total"
    )
    rows = []
    for kernel in kernels:
        rows.append(summarize(simulate(scenario, kernel, policy, seed)))
        if report is not None:
            report(len(rows), len(kernels))
    frame = pd.DataFrame(rows)
    frame.index = pd.Index(list(kernels), name="kernel")
    return frame


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
    from .kernels import rule

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
    order = np.argsort(frame["t_us"].to_numpy(), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    count, lo, hi = 0, 0, 0
    counts, starts, ends = [], [], []
    for i, delta in zip(order.tolist(), frame["count_delta"].tolist(), strict=True):
        if delta > 0:  # kvm_inc_notifier_count: a new range at 0 -> 1, else the union
            start, end = hvas[i]
            lo, hi = (start, end) if count == 0 else (min(lo, start), max(hi, end))
        count += delta
        counts.append(count)
        starts.append(lo)
        ends.append(hi)
    frame["count"] = np.array(counts, dtype=np.int64)
    frame["seq"] = frame["seq_delta"].cumsum().astype(np.int64)
    frame["range_start"] = np.array(starts, dtype=np.uint64)
    frame["range_end"] = np.array(ends, dtype=np.uint64)
    return frame
