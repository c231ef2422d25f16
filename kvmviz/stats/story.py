"""The window a queue animation tells its story in, chosen by a rule: a spurious notifier
callback waits for ``mmu_lock`` with readers queued behind it on the locking kernel, while the
same notification passes the lock by on the others (:func:`story_window`).

Pure pandas, from the runs' tables: :func:`kvmviz.animate.queue_animation` takes its default
window from here, the gallery and chapter 04 their story's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["QUEUE_WINDOW_US", "Story", "story_window"]

QUEUE_WINDOW_US = 60.0
"""The default width of a queue animation's window, µs (:func:`story_window`, the gallery)."""


@dataclass(frozen=True)
class Story:
    """Where a queue animation tells its story (:func:`story_window`).

    Attributes
    ----------
    start_us, end_us : float
        The window, µs.
    event : int
        The notification event (``run.notifiers["event"]``, the same in every run of one
        scenario and seed).
    callback : str
        Its callback that waited for ``mmu_lock`` on the first run.
    rows : dict of str to int
        That callback's row of ``run.notifiers`` in each run, by label.
    blocked : int
        Fault attempts of the first run whose ``blocked_by`` is that callback.
    wait_us : float
        How long that callback waited for the lock on the first run.
    """

    start_us: float
    end_us: float
    event: int
    callback: str
    rows: dict
    blocked: int
    wait_us: float

    @property
    def window(self) -> tuple[float, float]:
        """``(start_us, end_us)``, for :func:`queue_animation`."""
        return self.start_us, self.end_us


def _occurrence(notifiers: pd.DataFrame) -> np.ndarray:
    """Each callback's rank among the callbacks of the same name in its event (a KSM merge
    runs two start / change_pte / end triples): with ``event`` and ``callback``, a name for a
    callback that holds in every run of one stream."""
    return notifiers.groupby(["event", "callback"], sort=False).cumcount().to_numpy()


def story_window(runs, width_us: float = QUEUE_WINDOW_US, *, lead: float = 0.25) -> Story:
    """The window in which a spurious writer holds readers back on the first run and the same
    notification passes without the lock on the others: the rule behind
    :func:`queue_animation`'s default window.

    The rule: among the first run's notifier callbacks that missed every memslot (spurious),
    took ``mmu_lock`` and waited for it, keep those that skipped the lock in every other run
    (the same event and callback: a run of one scenario and seed has the same notification
    stream on every kernel) and that arrive, in every run, less than ``(1 - 2 * lead) *
    width_us`` apart; pick the one with the most fault attempts whose ``blocked_by`` is it
    (ties: the earliest to arrive). The window is ``width_us`` wide and starts ``lead *
    width_us`` before its earliest arrival (an ``invalidate_range_end`` arrives later where
    its start waited), so every frame-maker sees it arrive: on the first run it waits with
    readers queued behind it, on the others it passes by.

    Parameters
    ----------
    runs : mapping of label to Run
        Runs of one scenario and seed, the locking kernel first (``{"v5.12": ..., "v5.15":
        ...}``); at least two.
    width_us : float
        The window's width, µs.
    lead : float
        Share of the window before the callback arrives, in [0, 0.5).

    Returns
    -------
    Story

    Raises
    ------
    ValueError
        Fewer than two runs; runs of different notification streams; or no spurious callback
        that waited on the first run and skipped the lock on the others.

    Examples
    --------
    >>> setup = kv.presets.static_setup()  # doctest: +SKIP
    >>> runs = {k: kv.simulate(setup, k) for k in ("v5.12", "v5.15")}  # doctest: +SKIP
    >>> story = kv.animate.story_window(runs)  # doctest: +SKIP
    >>> kv.animate.queue_animation(runs, *story.window)  # doctest: +SKIP
    """
    runs = dict(runs)
    if len(runs) < 2:
        raise ValueError(
            f"story_window needs two runs or more (a locking kernel first), got {len(runs)}"
        )
    width_us = float(width_us)
    if not width_us > 0:
        raise ValueError(f"width_us = {width_us!r}: expected a positive number of µs")
    if not 0 <= lead < 0.5:
        raise ValueError(f"lead = {lead!r}: expected a share of the window in [0, 0.5)")
    labels = list(runs)
    first_label, first = labels[0], runs[labels[0]]
    _check_one_stream(runs)
    table = _candidates(runs, width_us, lead)
    if table.empty:
        raise ValueError(
            f"no spurious callback waited for mmu_lock on {first_label!r} and skipped it on "
            f"{', '.join(repr(x) for x in labels[1:])}: no story to tell in these runs"
        )
    n = first.notifiers
    blocked_by = first.faults["blocked_by"].to_numpy()
    counts = np.bincount(blocked_by[blocked_by >= 0], minlength=len(n))
    rows = table[f"row:{first_label}"].to_numpy()
    earliest = table[[c for c in table.columns if c.startswith("arrive")]].min(axis=1).to_numpy()
    pick = np.lexsort((earliest, -counts[rows]))[0]
    event, callback, _k = table.index[pick]
    start = max(0.0, float(earliest[pick]) - lead * width_us)
    duration = min(run.scenario.duration_us for run in runs.values())
    start = max(0.0, min(start, duration - width_us))
    return Story(
        start_us=start,
        end_us=start + width_us,
        event=int(event),
        callback=str(callback),
        rows={
            first_label: int(rows[pick]),
            **{label: int(table[f"row:{label}"].to_numpy()[pick]) for label in labels[1:]},
        },
        blocked=int(counts[rows[pick]]),
        wait_us=float(n["wait_us"].to_numpy()[rows[pick]]),
    )


def _keyed(run) -> pd.DataFrame:
    """Each notifier callback of ``run``: its ``row``, whether it ``locked``, when it
    arrives (``arrive``), indexed by ``(event, callback, occurrence)``, a name that holds in
    every run of one stream."""
    n = run.notifiers
    key = pd.MultiIndex.from_arrays(
        [n["event"].to_numpy(), n["callback"].astype(str).to_numpy(), _occurrence(n)]
    )
    return pd.DataFrame(
        {
            "row": np.arange(len(n)),
            "locked": n["locked"].to_numpy(dtype=bool),
            "arrive": n["t_arrive_us"].to_numpy(dtype=float),
        },
        index=key,
    )


def _check_one_stream(runs: dict) -> None:
    """Refuse runs of different notification streams: in runs of one stream, every event's
    first callback arrives at the same instant."""
    labels = list(runs)
    first_label = labels[0]
    starts = {
        label: runs[label].notifiers.groupby("event", sort=True)["t_arrive_us"].min()
        for label in labels
    }
    for label in labels[1:]:
        if not starts[label].equals(starts[first_label]):
            raise ValueError(
                f"runs {first_label!r} and {label!r} have different notification streams: "
                "expected runs of one scenario and seed"
            )


def _candidates(runs: dict, width_us: float, lead: float) -> pd.DataFrame:
    """The callbacks :func:`story_window` may pick: on the first run spurious, locked and
    waiting; on every other run skipping the lock; arriving, in every run, less than ``(1 - 2
    * lead) * width_us`` apart. One row each, with its ``row:<label>``, ``locked:<label>`` and
    ``arrive:<label>`` in every run."""
    labels = list(runs)
    first_label = labels[0]
    keyed = {label: _keyed(run) for label, run in runs.items()}
    n = runs[first_label].notifiers
    candidate = (
        n["locked"].to_numpy(dtype=bool)
        & ~n["hit"].to_numpy(dtype=bool)
        & (n["wait_us"].to_numpy(dtype=float) > 0)
    )
    table = keyed[first_label][candidate].rename(columns=lambda c: f"{c}:{first_label}")
    for label in labels[1:]:
        other = keyed[label].rename(columns=lambda c, label=label: f"{c}:{label}")
        table = table.join(other, how="inner")
        table = table[~table[f"locked:{label}"].to_numpy(dtype=bool)]
    arrivals = table[[c for c in table.columns if c.startswith("arrive")]].to_numpy()
    return table[arrivals.max(axis=1) - arrivals.min(axis=1) < (1 - 2 * lead) * width_us]
