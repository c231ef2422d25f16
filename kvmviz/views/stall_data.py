"""What the stall figures derive from a run: the points of its stall and wait CDFs and of its
brownout curve, remembered while the run lives (a live view flipping back to runs it has drawn
before computes nothing again)."""

from __future__ import annotations

import weakref

import numpy as np

from ..stats import metrics

__all__ = ["PERS", "WAIT_FLOOR_US", "any_stall", "brownout_points", "precompute", "run_cdf"]

WAIT_FLOOR_US = 0.1
"""µs: stalls and waits below this are drawn at the floor of the CDFs' log axis (a fault that
never stalled at the left edge)."""

PERS = ("fault", "attempt")
"""What a stall distribution has one value per: each fault (its stall) or each fault attempt
(its wait for ``mmu_lock``)."""

# What the views derive from a run (its stall pieces, the points of its lines), remembered
# while the run lives: a Run is never changed once made, and a live view (the dashboard)
# flipping back to runs it has drawn before should not compute them again.
_DERIVED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _derived(run, key, compute):
    """``compute()``, remembered for ``run`` under ``key``."""
    try:
        memo = _DERIVED.setdefault(run, {})
    except TypeError:  # not weakly referenceable or hashable (a stand-in in a test): no memo
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _pieces(run):
    return _derived(run, "pieces", lambda: metrics.stall_pieces(run))


def _stall_values(run, per: str) -> np.ndarray:
    """The values a CDF of ``per`` draws: each fault's stall (waits plus retried attempts,
    :func:`kvmviz.metrics.fault_stalls`), or each attempt's wait for ``mmu_lock``."""
    if per == "attempt":
        return run.faults["wait_us"].to_numpy()
    return metrics.fault_stalls(run, _pieces(run))["stall_us"].to_numpy()


def run_cdf(run, per: str) -> tuple[np.ndarray, np.ndarray]:
    """The steps of ``run``'s CDF as :func:`kvmviz.plot.stall_cdf` draws them, remembered
    while the run lives.

    Parameters
    ----------
    run : Run
    per : {"fault", "attempt"}
        Each fault's stall, or each attempt's wait for ``mmu_lock``.

    Returns
    -------
    (x_us, share) : tuple of numpy.ndarray
        Values at or below :data:`WAIT_FLOOR_US` drawn at the floor; at most ~2,000 points.
    """
    return _derived(run, ("cdf", per), lambda: _cdf_points(_stall_values(run, per)))


def any_stall(run, per: str) -> bool:
    """Whether any fault of ``run`` stalled at all (``per="attempt"``: any attempt waited),
    remembered while the run lives.

    Parameters
    ----------
    run : Run
    per : {"fault", "attempt"}

    Returns
    -------
    bool
    """
    return _derived(run, ("stalled", per), lambda: bool((_stall_values(run, per) > 0).any()))


def _cdf_points(values) -> tuple[np.ndarray, np.ndarray]:
    """The steps of the empirical CDF of ``values`` (µs): those at or below the floor of the
    log axis drawn at the floor, at most ~2,000 points."""
    values = np.sort(np.maximum(np.asarray(values, dtype=float), WAIT_FLOOR_US))
    if values.size == 0:
        return np.array([WAIT_FLOOR_US]), np.array([0.0])
    share = np.arange(1, values.size + 1) / values.size
    # Keep the curve's shape with at most ~2,000 points (a 10^6-row run draws instantly).
    keep = np.unique(np.linspace(0, values.size - 1, min(values.size, 2000)).astype(int))
    return (
        np.concatenate([[WAIT_FLOOR_US], values[keep]]),
        np.concatenate([[0.0], share[keep]]),
    )


def brownout_points(run, bin_us=None) -> tuple[np.ndarray, np.ndarray]:
    """The points of ``run``'s brownout curve as :func:`kvmviz.plot.brownout_curve` draws them:
    time (ms) and the share of the VM's vCPUs stalled (%), per bin; remembered while the run
    lives.

    Parameters
    ----------
    run : Run
    bin_us : float, optional
        The bin width, µs (default: :func:`kvmviz.metrics.brownout`'s).

    Returns
    -------
    (t_ms, stalled_pct) : tuple of numpy.ndarray
    """

    def compute():
        curve = metrics.brownout(run, bin_us=bin_us, pieces=_pieces(run))
        return curve["t_us"].to_numpy() / 1000, 100 * curve["stalled_share"].to_numpy()

    return _derived(run, ("brownout", bin_us), compute)


def precompute(run) -> None:
    """Compute ahead what the stall views draw of ``run`` (its stall pieces, its per-fault and
    per-attempt CDFs, its brownout curve), kept while the run lives: a live view warming the
    runs a learner may flip to next (:class:`kvmviz.widgets.ToggleDashboard`), so that
    :func:`kvmviz.plot.update_stalls` then only moves artists.

    Parameters
    ----------
    run : Run
    """
    for per in PERS:
        run_cdf(run, per)
    brownout_points(run)
