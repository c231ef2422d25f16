"""Timelines of ``mmu_lock``: who waits, who holds, and the fault retries, over a window.

:func:`lock_timeline` draws per-vCPU lanes (or aggregated lanes at hundreds of vCPUs), the
notifier lane and the queue depth below; :func:`retry_timeline` follows faults through their
``mmu_notifier_seq`` snapshot, the check under the lock and their retries, with the counters
below. Both draw a :class:`~kvmviz.Run`'s tables; none simulates. Choose a window with
:func:`kvmviz.metrics.busiest_window` or :func:`kvmviz.metrics.whole_stalls`.
:func:`freeze_timeline` is the 2024 freeze up close (chapter 08): a zap's write holds one by
one, where it yields ``mmu_lock``, and the vCPUs' futile reads and lockless spins.

:class:`LockTimeline` is the lock timeline that moves: it redraws another window, or another
run of the same VM, into the same axes and names the artists that changed, so that a front end
(:class:`kvmviz.widgets.TimelineExplorer`) blits them onto a background drawn once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .._shared._checks import strict_booleans
from ..model.classify import first_callbacks
from ..stats.metrics import coverage, notifier_counters, queue_depth
from . import theme
from .metric_labels import counter_names
from .span_bars import SpanBars
from .theme import HATCHES, Themed

__all__ = [
    "LockTimeline",
    "check_window",
    "freeze_timeline",
    "freeze_window",
    "lock_timeline",
    "retry_timeline",
]


# --------------------------------------------------------------------------------------------
# The lock timeline.
# --------------------------------------------------------------------------------------------
def _spans(starts, widths, scale: float) -> list[tuple[float, float]]:
    """(x, width) of intervals, to scale: :class:`SpanBars` gives them a width on screen."""
    return [(a * scale, w * scale) for a, w in zip(starts, widths, strict=True)]


# Colours are names of the palette (kvmviz.theme.Themed), looked up as they are drawn.
_STATE_STYLE = {
    "read": Themed(facecolor="read", edgecolor="read", linewidth=0),
    "write": Themed(facecolor="write", edgecolor="write", linewidth=0),
    # The hatch takes the edge colour: dots of the page's colour on orange stay visible in
    # grey scale.
    "wait": Themed(facecolor="wait", edgecolor="background", linewidth=0, hatch=HATCHES["wait"]),
}
# A retried attempt: granted, it found an invalidation in flight over its hva or
# mmu_notifier_seq moved (mmu_notifier_retry_hva(), 4a42d848db95), let go at once and faults
# again. Its hold is a tenth of a µs, so it is drawn from its grant until the vCPU asks for the
# lock again (the exit and pfn it redoes): pale blue, cross-hatched in blue.
_STATE_STYLE["retry"] = Themed(facecolor="retry_face", edgecolor="read", linewidth=0, hatch="xxx")
_SKIP_MARK = Themed(marker="|", markersize=9, markeredgewidth=1.5, color="miss")
# Where a callback that takes the lock asks for it: its wait (orange) or hold (vermilion)
# starts at the triangle, so the lane tells each callback's waiting from its holding.
_ASK_MARK = Themed(
    marker=">", markersize=7, color="text", markeredgecolor="background", markeredgewidth=0.5
)


def _notifier_lane(ax, notifiers, start_us, end_us, y, height, scale):
    """The notifier lane of a timeline at ``y``: waits and write holds as bars, callbacks that
    skipped the lock as marks (an instant, shown if it falls in the window). Bars are to scale
    but at least :data:`MIN_SPAN_PT` wide on screen (a 40 ns write hold in a 3 ms window is
    the point of the lane). Returns the callbacks shown."""
    arrive = notifiers["t_arrive_us"].to_numpy()
    locked = notifiers["locked"].to_numpy(dtype=bool)
    release = np.where(locked, notifiers["t_release_us"].to_numpy(), arrive)
    shown = notifiers[(arrive < end_us) & (release >= start_us)]
    taken = shown[shown["locked"].to_numpy(dtype=bool)]
    waited = taken[taken["wait_us"].to_numpy() > 0]
    SpanBars.add(
        ax,
        _spans(waited["t_arrive_us"], waited["wait_us"], scale),
        (y, height),
        gid="lane-notifier-wait",
        **_STATE_STYLE["wait"],
    )
    SpanBars.add(
        ax,
        _spans(taken["t_grant_us"], taken["hold_us"], scale),
        (y, height),
        gid="lane-notifier-write",
        zorder=2.1,  # a write hold right after its wait is drawn over the wait's widened end
        **_STATE_STYLE["write"],
    )
    asks = taken[taken["t_arrive_us"].to_numpy() >= start_us]
    ax.plot(
        asks["t_arrive_us"].to_numpy() * scale,
        np.full(len(asks), y + height / 2),
        linestyle="none",
        gid="lane-notifier-asks",
        zorder=2.3,  # over the bars it starts
        **_ASK_MARK,
    )
    skipped = shown[~shown["locked"].to_numpy(dtype=bool)]
    ax.plot(
        skipped["t_arrive_us"].to_numpy() * scale,
        np.full(len(skipped), y + height / 2),
        linestyle="none",
        gid="lane-notifier-skipped",
        **_SKIP_MARK,
    )
    return shown


def _step_band(ax, edges, lower, upper, *, gid: str) -> PolyCollection:
    """The band between two step curves over bins (``lower``/``upper`` one value per bin of
    ``edges``, or a scalar): what ``fill_between(..., step="post")`` draws, as one polygon
    added directly, without its unit conversion and autoscaling: 0.5 ms less per band, 12 ms
    per redraw of the 24 bands of the grouped lanes (benchmarks/timeline.py's 64 vCPUs)."""
    n = len(edges) - 1
    lower = np.broadcast_to(np.asarray(lower, dtype=float), (n,))
    upper = np.broadcast_to(np.asarray(upper, dtype=float), (n,))
    x = np.repeat(np.asarray(edges, dtype=float), 2)[1:-1]  # x0 x1 x1 x2 ... x(n-1) xn
    top = np.column_stack([x, np.repeat(upper, 2)])
    bottom = np.column_stack([x[::-1], np.repeat(lower, 2)[::-1]])
    state = gid.rsplit("-", 1)[-1]
    band = PolyCollection([np.concatenate([top, bottom])], gid=gid, **_STATE_STYLE[state])
    ax.add_collection(band, autolim=False)
    return band


def _retrying(faults) -> tuple[np.ndarray, np.ndarray]:
    """When each fault attempt is *retrying*, as the lock timeline draws it.

    An attempt that had to retry (``retry`` in ``run.faults``) was granted ``mmu_lock``, found
    an invalidation in flight over its hva or ``mmu_notifier_seq`` moved since its snapshot
    (``mmu_notifier_retry_hva()``, 4a42d848db95), let go at once and faults again. Its hold is
    a tenth of a µs; what the vCPU loses is the exit and the pfn it redoes, so the stretch runs
    from the grant to the vCPU's next request for the lock (to the release for its last
    attempt). :func:`kvmviz.metrics.stall_pieces` charges the same work (an exit and a pfn) to
    the retried attempt itself, from its exit.

    Parameters
    ----------
    faults : pandas.DataFrame
        ``run.faults`` (sorted by vCPU, then time).

    Returns
    -------
    (retried, until_us) : tuple of numpy.ndarray
        Per attempt: whether it retried, and the end of its retrying stretch (its
        ``t_release_us`` when it did not retry).
    """
    retried = faults["retry"].to_numpy(dtype=bool)
    release = faults["t_release_us"].to_numpy(dtype=float)
    vcpu = faults["vcpu"].to_numpy()
    request = faults["t_request_us"].to_numpy(dtype=float)
    same = np.append(vcpu[1:] == vcpu[:-1], False)
    again = np.where(same, np.append(request[1:], np.nan), release)
    return retried, np.where(retried, again, release)


_ARRIVAL_STYLE = {
    True: Themed(color="hit", label="notification arrives\n(hits guest memory)"),
    False: Themed(color="miss", label="notification arrives\n(misses: spurious)"),
}
_ARRIVAL_LINE = {"linestyle": ":", "linewidth": 0.9}
_ARRIVAL_MARK = {"marker": "v", "markersize": 6, "linestyle": "none", "clip_on": False}


def _arrival_marks(ax, notifiers, start_us, end_us, top, bottom, scale) -> set[bool]:
    """Where each notification event arrives in the window (its first callback): a triangle
    on the top edge of the lanes and a dotted line down through every lane, vermilion for an
    event that hits guest memory, grey for a spurious one, behind the bars. Returns which of
    hit (``True``) and miss (``False``) were drawn, for the legend."""
    events = first_callbacks(notifiers)
    arrive = events["t_arrive_us"].to_numpy()
    events = events[(arrive >= start_us) & (arrive < end_us)]
    hit = events["hit"].to_numpy(dtype=bool)
    drawn = set()
    for kind in (True, False):
        x = events["t_arrive_us"].to_numpy()[hit == kind] * scale
        style = _ARRIVAL_STYLE[kind]
        key = "hit" if kind else "miss"
        lines = ax.vlines(
            x, top, bottom, color=style["color"], zorder=0.8, gid=f"arrivals-{key}", **_ARRIVAL_LINE
        )
        (marks,) = ax.plot(
            x,
            np.full(len(x), top),
            color=style["color"],
            zorder=2.5,
            gid=f"arrivals-{key}-mark",
            **_ARRIVAL_MARK,
        )
        for artist in (lines, marks):  # inside the axes: nothing for a layout to make room for
            artist.set_in_layout(False)
        if len(x):
            drawn.add(kind)
    return drawn


def _arrival_handles(drawn: set[bool]) -> list[Line2D]:
    return [
        Line2D([], [], color=_ARRIVAL_STYLE[kind]["color"], label=_ARRIVAL_STYLE[kind]["label"],
               **_ARRIVAL_LINE, **{k: v for k, v in _ARRIVAL_MARK.items() if k != "linestyle"})
        for kind in (True, False)
        if kind in drawn
    ]  # fmt: skip


def _drawn_states(faults, notifiers, start_us: float, end_us: float, until=None) -> set[str]:
    """Which states a timeline's window shows: ``"read"`` (a fault holding), ``"retry"`` (a
    fault retrying, when ``until``, the end of each attempt's retrying stretch, is given),
    ``"wait"`` (anyone waiting), ``"write"`` (a callback holding), ``"asks"`` (a callback
    asking for the lock), ``"skip"`` (a callback skipping it), so that its legend lists those
    and no others."""

    def overlaps(a, b) -> np.ndarray:
        return (np.asarray(a) < end_us) & (np.asarray(b) > start_us)

    drawn = set()
    grant = faults["t_grant_us"].to_numpy()
    if until is None:
        holding = overlaps(grant, faults["t_release_us"])
    else:
        retried = faults["retry"].to_numpy(dtype=bool)
        holding = ~retried & overlaps(grant, faults["t_release_us"])
        if (retried & overlaps(grant, until)).any():
            drawn.add("retry")
    if holding.any():
        drawn.add("read")
    fault_waits = overlaps(faults["t_request_us"], faults["t_grant_us"])
    locked = notifiers["locked"].to_numpy(dtype=bool)
    arrive = notifiers["t_arrive_us"].to_numpy()
    notifier_waits = locked & overlaps(notifiers["t_arrive_us"], notifiers["t_grant_us"])
    if (fault_waits & (faults["wait_us"].to_numpy() > 0)).any() or (
        notifier_waits & (notifiers["wait_us"].to_numpy() > 0)
    ).any():
        drawn.add("wait")
    if (locked & overlaps(notifiers["t_grant_us"], notifiers["t_release_us"])).any():
        drawn.add("write")
    arrived = (arrive >= start_us) & (arrive < end_us)
    if (locked & arrived).any():
        drawn.add("asks")
    if (~locked & arrived).any():
        drawn.add("skip")
    return drawn


_STATE_ORDER = ("read", "retry", "write", "wait", "asks", "skip")


def _state_handles(
    drawn: set[str], run, *, fault: str, notifier: str, wait: str = "waits for it"
) -> dict:
    """Legend entries for the states drawn. Under the ``"spinlock"`` policy (x86 before
    531810caa9f4) every holder is exclusive, and without the TDP MMU faults take ``mmu_lock``
    for write (:meth:`Scenario.faults_write`): a fault's hold is then not called a read."""
    if run.policy == "spinlock":
        mode = "\n(exclusive: spinlock)"
    elif run.scenario.faults_write(run.policy):
        mode = "\nfor write (no TDP MMU)"
    else:
        mode = "\nfor read"
    entries = {
        "read": Patch(label=f"{fault}{mode}", **_STATE_STYLE["read"]),
        "retry": Patch(
            label="fault retries: granted, found\nthe range in flight or seq moved,\n"
            "let go at once, faults again",
            **_STATE_STYLE["retry"],
        ),
        "write": Patch(label=f"{notifier} holds it\nfor write", **_STATE_STYLE["write"]),
        "wait": Patch(label=wait, **_STATE_STYLE["wait"]),
        "asks": Line2D([], [], linestyle="none", label="callback asks for it", **_ASK_MARK),
        "skip": Line2D([], [], linestyle="none", label="callback skips it", **_SKIP_MARK),
    }
    return {kind: entries[kind] for kind in _STATE_ORDER if kind in drawn}


_MS_FROM_US = 2000.0  # windows this wide or wider are labelled in ms


def _time_scale(width_us: float) -> tuple[float, str]:
    """The x axis' unit for a window ``width_us`` wide: (data units per µs, its name)."""
    return (1e-3, "ms") if width_us >= _MS_FROM_US else (1.0, "µs")


@strict_booleans
def lock_timeline(
    run,
    start_us: float,
    end_us: float,
    *,
    ax=None,
    max_lanes: int = 32,
    groups: int = 8,
    arrivals: bool = False,
):
    """Who holds and who waits for ``mmu_lock`` from ``start_us`` to ``end_us``.

    One lane per vCPU: empty (white) while it is not on the lock (running in the guest,
    exiting, resolving the pfn), orange with dots while it waits for ``mmu_lock``, blue while it
    holds it for read, and pale blue cross-hatched while it *retries*: the attempt was granted,
    found an invalidation in flight over its hva or ``mmu_notifier_seq`` moved
    (``mmu_notifier_retry_hva()``), let go at once (a tenth of a µs) and faults again; drawn
    from its grant until the vCPU asks for the lock again, the exit and pfn it redoes. Above
    them one lane for the notifier callbacks: a dark triangle where a callback asks for the
    lock, then orange while it waits and vermilion while it holds it for write (so a
    callback's wait reads apart from its hold, and one callback's wait from the next's), and a
    grey tick where a callback skipped the lock (the kernel's rule let it,
    :func:`kvmviz.takes_lock`). Below, in a second axes, the queue depth: how many
    acquisitions (faults and callbacks) wait at each instant.

    Every interval is at least :data:`MIN_SPAN_PT` wide on screen (a notifier's 40 ns hold in a
    3 ms window, say), so that none disappears; the legend lists only the states drawn.
    Choose windows with :func:`kvmviz.metrics.busiest_window` or
    :func:`kvmviz.metrics.whole_stalls` so that no stall is cut
    off at an edge.

    With more vCPUs than ``max_lanes``, lanes would be thinner than a line: the vCPUs that take
    faults are then split into ``groups`` lanes of consecutive vCPUs, and each lane shows, over
    300 time bins, the share of its vCPUs holding the lock (blue, from the bottom of the lane),
    retrying (pale blue, cross-hatched, stacked above) and waiting for it (orange, on top). A
    lane full of orange means every vCPU of the group is stalled; pale blue right after a
    writer leaves means the readers it let in found the range in flight or seq moved and fault
    again. The vCPUs that never fault (``Scenario.faulting_share``) are left out of
    the groups and counted in the title.

    Parameters
    ----------
    run : Run
    start_us, end_us : float
        The window, µs of simulated time. Windows of 2 ms or more are labelled in ms.
    ax : matplotlib.axes.Axes or pair of Axes, optional
        ``None``: a new figure with the lanes above the queue depth (``fig.axes == [lanes,
        queue]``, sharing x). A pair ``(lanes_ax, queue_ax)``: draw into them. A single Axes:
        the lanes only, without the queue depth.
    max_lanes : int
        Most vCPUs to draw one lane each.
    groups : int
        Lanes to group the faulting vCPUs into, beyond ``max_lanes`` vCPUs.
    arrivals : bool
        Mark where each notification event arrives (its first callback): a triangle on top of
        the lanes and a dotted line down through them, vermilion if the event hits guest
        memory, grey if it is spurious (artists with gids ``arrivals-hit`` and
        ``arrivals-miss``). Useful once a window is zoomed out so far that the notifier
        lane's bars blur.

    Returns
    -------
    matplotlib.axes.Axes
        The axes of the lanes.

    See Also
    --------
    LockTimeline : the same timeline, redrawn in place for another window or run.

    Examples
    --------
    >>> run = kv.simulate(kv.Scenario(n_vcpus=8), kernel="v5.12")  # doctest: +SKIP
    >>> kv.timelines.lock_timeline(run, 1_000, 1_400)  # doctest: +SKIP
    """
    start_us, end_us = float(start_us), float(end_us)
    if not end_us > start_us:
        raise ValueError(f"end_us must be after start_us, got [{start_us}, {end_us})")
    if max_lanes < 1 or groups < 1:
        raise ValueError(f"max_lanes and groups must be >= 1, got {max_lanes} and {groups}")
    if ax is None:
        _fig, (ax_lanes, ax_queue) = plt.subplots(
            2, 1, sharex=True, figsize=(10, 5), height_ratios=[3, 1], layout="constrained"
        )
    elif isinstance(ax, Axes):
        ax_lanes, ax_queue = ax, None
    else:
        ax_lanes, ax_queue = ax
    scale, unit = _time_scale(end_us - start_us)
    window = _FaultWindow.of(run.faults, start_us, end_us)
    if run.scenario.n_vcpus <= max_lanes:
        lanes = _vcpu_lanes(ax_lanes, run, window, scale)
    else:
        lanes = _grouped_lanes(ax_lanes, run, window, start_us, end_us, scale, groups)

    shown = _notifier_lane(ax_lanes, run.notifiers, start_us, end_us, 0.0, 0.8, scale)
    drawn = _drawn_states(window.faults, shown, start_us, end_us, window.until)
    ticks, height = lanes.ticks, lanes.height
    ax_lanes.set_yticks([0.4, *(t + height / 2 for t in ticks)], ["notifiers", *lanes.labels])
    ax_lanes.tick_params(axis="y", length=0)
    y_bottom = ticks[-1] + height + 0.2 if ticks else 1.0
    ax_lanes.set_ylim(y_bottom, -0.2)
    arrived = (
        _arrival_marks(ax_lanes, run.notifiers, start_us, end_us, -0.2, y_bottom, scale)
        if arrivals
        else set()
    )
    ax_lanes.set_xlim(start_us * scale, end_us * scale)
    ax_lanes.spines["left"].set_visible(False)
    ax_lanes.set_title(lanes.title + _lock_mode_note(run), loc="left")
    _lock_legend(ax_lanes, run, drawn, arrived)
    time_label = f"simulated time ({unit})"
    if ax_queue is None:
        ax_lanes.set_xlabel(time_label)
        return ax_lanes
    _queue_depth_axes(ax_queue, run, start_us, end_us, scale)
    ax_queue.set_xlabel(time_label)
    ax_lanes.tick_params(axis="x", labelbottom=False)
    return ax_lanes


@dataclass(frozen=True)
class _FaultWindow:
    """The fault attempts a lock timeline's window shows, each with its retrying stretch
    (:func:`_retrying`): ``faults`` (rows of ``run.faults``), ``retried`` and ``until``, one
    value per row."""

    faults: pd.DataFrame
    retried: np.ndarray
    until: np.ndarray

    @classmethod
    def of(cls, faults, start_us: float, end_us: float) -> _FaultWindow:
        """The attempts of ``faults`` on the lock or retrying within ``[start_us, end_us)``."""
        retried, until = _retrying(faults)
        in_window = (faults["t_request_us"].to_numpy() < end_us) & (until > start_us)
        return cls(faults[in_window], retried[in_window], until[in_window])


@dataclass(frozen=True)
class _Lanes:
    """The vCPU lanes as drawn: their tops (y grows downwards), names and height, and the
    title that says how they are laid out."""

    ticks: list
    labels: list
    height: float
    title: str


def _vcpu_lanes(ax, run, window: _FaultWindow, scale: float) -> _Lanes:
    """One lane per vCPU: its waits, read holds and retrying stretches as bars."""
    n_vcpus = run.scenario.n_vcpus
    height = 0.8
    faults, retried, until = window.faults, window.retried, window.until
    lane_y = 1.4 + np.arange(n_vcpus)  # rows from the top: notifiers, a gap, the vCPUs
    rows = np.argsort(faults["vcpu"].to_numpy(), kind="stable")  # sorted already, as a rule
    vcpus = faults["vcpu"].to_numpy()[rows]
    request = faults["t_request_us"].to_numpy()
    grant = faults["t_grant_us"].to_numpy()
    wait = faults["wait_us"].to_numpy()
    hold = faults["hold_us"].to_numpy()
    first = np.searchsorted(vcpus, np.arange(n_vcpus + 1))  # sorted by vCPU
    for v in range(n_vcpus):
        mine = rows[first[v] : first[v + 1]]
        if not mine.size:
            continue
        waited = mine[wait[mine] > 0]
        y = (lane_y[v], height)
        SpanBars.add(
            ax,
            _spans(request[waited], wait[waited], scale),
            y,
            gid=f"lane-vcpu{v}-wait",
            **_STATE_STYLE["wait"],
        )
        held, again = mine[~retried[mine]], mine[retried[mine]]
        SpanBars.add(
            ax,
            _spans(grant[held], hold[held], scale),
            y,
            gid=f"lane-vcpu{v}-read",
            **_STATE_STYLE["read"],
        )
        SpanBars.add(
            ax,
            _spans(grant[again], until[again] - grant[again], scale),
            y,
            gid=f"lane-vcpu{v}-retry",
            **_STATE_STYLE["retry"],
        )
    labels = [f"vCPU {v}" for v in range(n_vcpus)]
    return _Lanes(list(lane_y), labels, height, f"mmu_lock on {run.kernel}, {n_vcpus} vCPUs")


def _grouped_lanes(
    ax, run, window: _FaultWindow, start_us: float, end_us: float, scale: float, groups: int
) -> _Lanes:
    """The faulting vCPUs in ``groups`` lanes of consecutive vCPUs, each a small chart over
    300 time bins of the share of its vCPUs holding, retrying and waiting."""
    n_vcpus = run.scenario.n_vcpus
    faulting = run.scenario.n_faulting
    bounds = np.linspace(0, faulting, min(groups, max(faulting, 1)) + 1).round().astype(int)
    lane_y = 1.4 + 1.5 * np.arange(len(bounds) - 1)  # taller lanes: each is a small chart
    height = 1.3
    edges = np.linspace(start_us, end_us, 301)
    x = edges * scale
    faults, retried, until = window.faults, window.retried, window.until
    vcpu = faults["vcpu"].to_numpy()
    requests = faults["t_request_us"].to_numpy()
    grants = faults["t_grant_us"].to_numpy()
    releases = faults["t_release_us"].to_numpy()
    for lane, (first, stop) in enumerate(itertools.pairwise(bounds)):
        mine = (vcpu >= first) & (vcpu < stop)
        norm = np.diff(edges) * max(stop - first, 1)
        held, again = mine & ~retried, mine & retried
        # Stacked from the bottom of the lane: holding, retrying, waiting (a vCPU is in
        # one of the three at a time, or in none: the shares add up to at most 1).
        shares = (
            ("read", coverage(grants[held], releases[held], edges) / norm),
            ("retry", coverage(grants[again], until[again], edges) / norm),
            ("wait", coverage(requests[mine], grants[mine], edges) / norm),
        )
        top = lane_y[lane] + height  # y grows downwards (the axis is inverted)
        ax.axhline(top, color=theme.color("grid"), linewidth=0.5, zorder=0)
        for state, share in shares:
            below = top
            top = below - height * share
            _step_band(ax, x, below, top, gid=f"lane-group{lane}-{state}")
    ticks = list(lane_y)
    labels = [f"vCPUs {a}–{b - 1}" for a, b in itertools.pairwise(bounds)]
    title = (
        f"mmu_lock on {run.kernel}: the {faulting} faulting vCPUs of {n_vcpus}, "
        f"in {len(ticks)} lanes (share of each lane's vCPUs holding / retrying / waiting)"
    )
    return _Lanes(ticks, labels, height, title)


def _lock_mode_note(run) -> str:
    """What the lock timeline's title adds when faults do not read-lock ``mmu_lock``."""
    if run.policy == "spinlock":
        return " (spinlock: every holder exclusive)"
    if run.scenario.faults_write(run.policy):
        return " (no TDP MMU: faults take it for write)"
    return ""


def _lock_legend(ax, run, drawn: set[str], arrived: set[bool]) -> None:
    """The lock timeline's legend, right of the lanes: the states drawn, the empty lane, and
    the arrival marks drawn."""
    handles = [
        *_state_handles(drawn, run, fault="fault holds mmu_lock", notifier="notifier").values(),
        Patch(
            facecolor=theme.color("background"),
            edgecolor=theme.color("faint"),
            label="not on the lock\n(in the guest)",
        ),
        *_arrival_handles(arrived),
    ]
    _side_legend(ax, handles, labelspacing=0.9)


def _queue_depth_axes(ax, run, start_us: float, end_us: float, scale: float) -> None:
    """The queue depth under the lanes: how many acquisitions wait at each instant."""
    t, waiting = queue_depth(run, start_us, end_us)
    ax.fill_between(t * scale, waiting, step="post", gid="queue-depth", **_STATE_STYLE["wait"])
    ax.step(t * scale, waiting, where="post", color=theme.color("wait"), linewidth=0.8)
    ax.set_ylim(0, max(1.0, float(waiting.max()) * 1.1))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
    ax.set_xlim(start_us * scale, end_us * scale)
    ax.set_ylabel("waiting\n(acquisitions)")


def check_window(start_us, end_us, duration_us: float) -> tuple[float, float]:
    """A window of a run, checked: ``(start_us, end_us)`` as floats if ``0 <= start_us <
    end_us <= duration_us``.

    Parameters
    ----------
    start_us, end_us : float
        The window, µs of simulated time.
    duration_us : float
        The run's ``scenario.duration_us``.

    Returns
    -------
    (float, float)

    Raises
    ------
    ValueError
        Naming the window and what was expected: two numbers, the end after the start, both
        inside the run.
    """
    try:
        start_us, end_us = float(start_us), float(end_us)
    except (TypeError, ValueError):
        raise ValueError(f"window ({start_us!r}, {end_us!r}): expected two numbers of µs") from None
    if not end_us > start_us:
        raise ValueError(f"window [{start_us:g}, {end_us:g}) µs: expected end_us after start_us")
    if not (0.0 <= start_us and end_us <= duration_us):
        raise ValueError(
            f"window [{start_us:g}, {end_us:g}) µs is outside the run: expected "
            f"0 <= start_us < end_us <= {duration_us:g} (its duration_us)"
        )
    return start_us, end_us


def _lanes_of(run, max_lanes: int) -> tuple[int, int | None]:
    """What fixes a lock timeline's lanes: the vCPUs, and the faulting ones when grouped."""
    n_vcpus = run.scenario.n_vcpus
    return n_vcpus, (None if n_vcpus <= max_lanes else run.scenario.n_faulting)


class LockTimeline:
    """A :func:`lock_timeline` that moves to another window, or another run of the same VM,
    in place.

    The first drawing is :func:`lock_timeline`'s. :meth:`show` then removes what that drawing
    added to the data (lanes, notifier lane, arrival marks, queue depth) and draws the new
    window or run into the same axes: the lanes' labels, their limits and the spines stay,
    only :attr:`moving` changes (the data, both x axes, the queue depth's y axis, the title and
    the legend). A front end draws everything else once and blits :attr:`moving` onto it
    (:class:`kvmviz.animate.Blitter`); the picture is the one :func:`lock_timeline` would draw
    for that window, artist for artist.

    Parameters
    ----------
    run : Run
    start_us, end_us : float
        The first window, µs of simulated time, inside the run (``0 <= start_us < end_us <=
        run.scenario.duration_us``).
    ax : pair of Axes, optional
        ``(lanes_ax, queue_ax)``, owned by the timeline from now on (:meth:`show` removes
        every collection and line in them); default a new figure with the two, sharing x.
    max_lanes, groups : int
        As :func:`lock_timeline`.
    arrivals : bool
        Mark the notification events' arrivals (:func:`lock_timeline`'s ``arrivals``).

    Attributes
    ----------
    run : Run
        The run drawn.
    window : (float, float)
        The window drawn, µs.
    lanes, queue : matplotlib.axes.Axes

    Examples
    --------
    >>> timeline = kv.timelines.LockTimeline(run, 0, 2_000)  # doctest: +SKIP
    >>> changed = timeline.show(start_us=500, end_us=700)  # doctest: +SKIP
    >>> timeline.xlim_us()  # doctest: +SKIP
    (500.0, 700.0)
    """

    def __init__(
        self,
        run,
        start_us: float,
        end_us: float,
        *,
        ax=None,
        max_lanes: int = 32,
        groups: int = 8,
        arrivals: bool = True,
    ) -> None:
        if ax is None:
            _fig, ax = plt.subplots(
                2, 1, sharex=True, figsize=(10, 5), height_ratios=[3, 1], layout="constrained"
            )
        elif isinstance(ax, Axes):
            raise ValueError("ax: expected a pair of Axes (lanes, queue depth), got one Axes")
        self.lanes, self.queue = ax
        self._options = {"max_lanes": max_lanes, "groups": groups, "arrivals": bool(arrivals)}
        self._lanes_key = _lanes_of(run, max_lanes)
        self.run = None
        self.window = (float("nan"), float("nan"))
        self.show(run, start_us, end_us)

    def show(self, run=None, start_us: float | None = None, end_us: float | None = None) -> list:
        """Draw another window and/or run into the same axes; returns :attr:`moving`.

        Parameters
        ----------
        run : Run, optional
            Another run of the same VM (the same vCPUs and faulting vCPUs, hence the same
            lanes: another kernel, MMU or seed); default the run drawn.
        start_us, end_us : float, optional
            The new window, inside the run; each defaults to the one drawn.

        Returns
        -------
        list of matplotlib.artist.Artist
            The artists that changed, in drawing order.
        """
        run = self.run if run is None else run
        start_us = self.window[0] if start_us is None else start_us
        end_us = self.window[1] if end_us is None else end_us
        start_us, end_us = check_window(start_us, end_us, run.scenario.duration_us)
        key = _lanes_of(run, self._options["max_lanes"])
        if key != self._lanes_key:
            raise ValueError(
                f"run of {key[0]} vCPUs ({key[1]} faulting): expected a run with the lanes drawn, "
                f"{self._lanes_key[0]} vCPUs ({self._lanes_key[1]} faulting); draw a new "
                "LockTimeline for another VM"
            )
        for ax in (self.lanes, self.queue):
            for artist in [*ax.collections, *ax.lines]:
                artist.remove()
        lock_timeline(run, start_us, end_us, ax=(self.lanes, self.queue), **self._options)
        self.run, self.window = run, (start_us, end_us)
        return self.moving

    @property
    def moving(self) -> list:
        """The artists a new window or run changes, in the order the axes draw them: the
        data of each axes, its x axis and its spines (drawn over the data) by z-order (lanes,
        then queue depth), the queue depth's y axis (its limit follows the deepest queue),
        then the titles and the legend."""
        out = []
        for ax, axes_artists in (
            (self.lanes, [self.lanes.xaxis]),
            (self.queue, [self.queue.xaxis, self.queue.yaxis]),
        ):
            # The spines too: drawn over the data, as Axes.draw orders them by z-order.
            data = [*ax.collections, *ax.lines, *axes_artists, *ax.spines.values()]
            out += sorted(data, key=lambda a: a.get_zorder())  # stable, as Axes.draw sorts
        legend = self.lanes.get_legend()
        # The three titles of the lanes' axes (lock_timeline writes the left one).
        titles = [self.lanes.title, self.lanes._left_title, self.lanes._right_title]
        return [*out, *titles, legend]

    def xlim_us(self) -> tuple[float, float]:
        """The lanes' x limits as drawn, converted back to µs (windows of 2 ms or more are
        drawn in ms)."""
        low, high = self.lanes.get_xlim()
        scale, _unit = _time_scale(self.window[1] - self.window[0])
        return low / scale, high / scale


# --------------------------------------------------------------------------------------------
# Fault retries: the seq snapshot, the check, the counters.
# --------------------------------------------------------------------------------------------
_SHORT_CALLBACK = {
    "invalidate_range_start": "start",
    "invalidate_range_end": "end",
    "change_pte": "change_pte",
    "clear_flush_young": "clear_flush_young",
    "clear_young": "clear_young",
    "test_young": "test_young",
}
_RESOLVE_STYLE = Themed(color="read", linewidth=1.2, alpha=0.55)
_SNAPSHOT_MARK = Themed(marker="o", markersize=5, color="text", linestyle="none")
_RETRY_MARK = Themed(
    marker="X", markersize=9, color="write", markeredgecolor="background", linestyle="none"
)


def retry_timeline(run, start_us: float, end_us: float, *, ax=None, max_lanes: int = 12):
    """Each fault's race with the notifiers: seq snapshot, pfn, check, and retries.

    One lane per vCPU. A dot where the fault samples ``mmu_notifier_seq`` (half a VM exit after
    the EPT violation), a thin blue line while it resolves the pfn outside ``mmu_lock``, orange
    with dots while it waits for the lock, blue while it holds it for read; a vermilion cross
    where ``mmu_notifier_retry_hva()`` sent it back to the guest to fault again (an attempt with
    ``retry`` set in ``run.faults``). Above the vCPUs, the notifier callbacks as in
    :func:`lock_timeline`, each named. Below, in a second axes, ``mmu_notifier_seq`` and
    ``mmu_notifier_count`` over time (:func:`kvmviz.metrics.notifier_counters`).

    Parameters
    ----------
    run : Run
        A run with at most ``max_lanes`` vCPUs (use :func:`lock_timeline` for big ones).
    start_us, end_us : float
        The window, µs of simulated time.
    ax : pair of Axes, optional
        ``(lanes_ax, counters_ax)``; default a new figure with the two, sharing x.
    max_lanes : int

    Returns
    -------
    matplotlib.axes.Axes
        The axes of the lanes.

    Examples
    --------
    >>> run = kv.simulate(kv.Scenario(n_vcpus=3, duration_us=50), kernel="v5.12")  # doctest: +SKIP
    >>> kv.timelines.retry_timeline(run, 0, 50)  # doctest: +SKIP
    """

    start_us, end_us = float(start_us), float(end_us)
    if not end_us > start_us:
        raise ValueError(f"end_us must be after start_us, got [{start_us}, {end_us})")
    n_vcpus = run.scenario.n_vcpus
    if n_vcpus > max_lanes:
        raise ValueError(
            f"{n_vcpus} vCPUs do not fit in {max_lanes} lanes; draw a smaller run, or use "
            "kvmviz.timelines.lock_timeline, which groups vCPUs"
        )
    if ax is None:
        _fig, (ax_lanes, ax_count) = plt.subplots(
            2, 1, sharex=True, figsize=(10, 4.8), height_ratios=[3, 1.4], layout="constrained"
        )
    else:
        ax_lanes, ax_count = ax
    height = 0.6

    faults = run.faults
    t_snap = faults["t_snapshot_us"].to_numpy()
    keep = (t_snap < end_us) & (faults["t_release_us"].to_numpy() > start_us)
    window = faults[keep]
    lane_y = 1.5 + np.arange(n_vcpus)
    _retry_lanes(ax_lanes, window, lane_y, height)
    shown = _notifier_lane(ax_lanes, run.notifiers, start_us, end_us, 0.2, height, 1.0)
    _name_callbacks(ax_lanes, shown)
    ax_lanes.set_yticks(
        [0.2 + height / 2, *(y + height / 2 for y in lane_y)],
        ["notifiers", *(f"vCPU {v}" for v in range(n_vcpus))],
    )
    ax_lanes.tick_params(axis="y", length=0)
    ax_lanes.set_ylim(lane_y[-1] + height + 0.3, -0.9)
    ax_lanes.set_xlim(start_us, end_us)
    ax_lanes.spines["left"].set_visible(False)
    ax_lanes.set_title(f"Fault retries on {run.kernel}, {n_vcpus} vCPUs", loc="left")
    _retry_legend(ax_lanes, run, window, shown, start_us, end_us)
    _counter_axes(ax_count, run, start_us, end_us)
    ax_lanes.tick_params(axis="x", labelbottom=False)
    return ax_lanes


def _retry_lanes(ax, window, lane_y, height: float) -> None:
    """One lane per vCPU of the retry timeline: each attempt's seq snapshot (a dot), its pfn
    resolution (a thin line), its wait and hold for ``mmu_lock`` (bars) and, if it had to
    retry, a cross at its release."""
    for v, attempts in window.groupby("vcpu", sort=True):
        y = lane_y[int(v)]
        mid = y + height / 2
        ax.hlines(
            np.full(len(attempts), mid),
            attempts["t_snapshot_us"],
            attempts["t_request_us"],
            gid=f"lane-vcpu{v}-resolve",
            **_RESOLVE_STYLE,
        )
        ax.plot(attempts["t_snapshot_us"], np.full(len(attempts), mid), **_SNAPSHOT_MARK)
        waited = attempts[attempts["wait_us"].to_numpy() > 0]
        SpanBars.add(
            ax,
            _spans(waited["t_request_us"], waited["wait_us"], 1.0),
            (y, height),
            gid=f"lane-vcpu{v}-wait",
            **_STATE_STYLE["wait"],
        )
        SpanBars.add(
            ax,
            _spans(attempts["t_grant_us"], attempts["hold_us"], 1.0),
            (y, height),
            gid=f"lane-vcpu{v}-read",
            **_STATE_STYLE["read"],
        )
        retried = attempts[attempts["retry"].to_numpy(dtype=bool)]
        ax.plot(
            retried["t_release_us"],
            np.full(len(retried), mid),
            gid=f"lane-vcpu{v}-retry",
            **_RETRY_MARK,
        )


def _name_callbacks(ax, shown) -> None:
    """Name each event's callbacks above the notifier lane (``start → end (hit)``), while
    there is room: up to six events."""
    events = list(shown.groupby("event", sort=False))
    if len(events) > 6:
        return
    for _event, callbacks in events:
        names = " → ".join(_SHORT_CALLBACK[c] for c in callbacks["callback"])
        ax.annotate(
            f"{names} ({'hit' if callbacks['hit'].iloc[0] else 'miss'})",
            (callbacks["t_arrive_us"].iloc[0], 0.2),
            xytext=(-3, 3),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize="x-small",
            color=theme.color("text"),
        )


def _retry_legend(ax, run, window, shown, start_us: float, end_us: float) -> None:
    """The retry timeline's legend, right of the lanes, in the order of a fault's life: the
    snapshot, the pfn, the wait, the hold, the retry; then the callbacks' states drawn."""
    drawn = _drawn_states(window, shown, start_us, end_us)
    states = _state_handles(
        drawn, run, fault="holds it", notifier="notifier", wait="waits for mmu_lock"
    )
    handles = []
    if len(window):
        handles += [
            Line2D([], [], label=f"samples\n{counter_names(run.kernel)[0]}", **_SNAPSHOT_MARK),
            Line2D([], [], label="resolves the pfn\n(outside mmu_lock)", **_RESOLVE_STYLE),
        ]
    handles += [states[kind] for kind in ("wait", "read") if kind in states]
    if window["retry"].to_numpy(dtype=bool).any():
        handles.append(Line2D([], [], label="must retry", **_RETRY_MARK))
    handles += [states[kind] for kind in ("write", "asks", "skip") if kind in states]
    _side_legend(ax, handles, labelspacing=0.8)


def _counter_axes(ax, run, start_us: float, end_us: float) -> None:
    """``mmu_notifier_seq`` and ``mmu_notifier_count`` over the window, as steps, each named
    at its right end by the run's kernel's names (``mmu_invalidate_seq`` and
    ``mmu_invalidate_in_progress`` from v6.0, :func:`kvmviz.views.metric_labels.counter_names`;
    :func:`kvmviz.metrics.notifier_counters`)."""
    counters = notifier_counters(run)
    names = dict(zip(("seq", "count"), counter_names(run.kernel), strict=True))

    def value_at(name: str, when: float) -> int:
        earlier = counters.loc[counters["t_us"].to_numpy() <= when, name]
        return int(earlier.iloc[-1]) if len(earlier) else 0

    t_change = counters["t_us"].to_numpy()
    changes = counters[(t_change > start_us) & (t_change <= end_us)]
    t = np.concatenate([[start_us], changes["t_us"].to_numpy(), [end_us]])
    top = 1
    for name, style, offset in (
        ("seq", {"color": theme.color("text"), "linestyle": "-"}, 5),
        ("count", {"color": theme.color("write"), "linestyle": "--"}, -5),
    ):
        values = np.concatenate(
            [[value_at(name, start_us)], changes[name].to_numpy(), [value_at(name, end_us)]]
        )
        top = max(top, int(values.max()))
        ax.step(t, values, where="post", linewidth=1.8, gid=f"counter-{name}", **style)
        ax.annotate(
            names[name],
            (end_us, values[-1]),
            xytext=(4, offset),
            textcoords="offset points",
            va="center",
            fontsize="small",
            color=style["color"],
            annotation_clip=False,
        )
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
    ax.set_ylim(-0.3, top + 0.5)
    ax.set_xlim(start_us, end_us)
    ax.set_ylabel("value (count)")
    ax.set_xlabel("simulated time (µs)")


# --------------------------------------------------------------------------------------------
# The freeze: a zap that yields, the futile reads it lets in, the pre-check's spins.
# --------------------------------------------------------------------------------------------
# A fault's lockless retries (d02c357e5bfa, v6.8): faulting again and again without touching
# mmu_lock, from its first exit to its last sample of seq. Grey, hatched the other way from a
# miss, so that it reads as "not on the lock" yet lost.
_SPIN_STYLE = Themed(facecolor="miss_face", edgecolor="miss", linewidth=0, hatch="\\\\\\")
# Where a zap gives mmu_lock up (cond_resched_rwlock_write()): a tick through the zap lane.
_YIELD_MARK = Themed(
    marker="v", markersize=6, color="text", markeredgecolor="background", markeredgewidth=0.4
)
_FREEZE_PAD = 0.08  # of the zap's span, either side of it: freeze_window()


def freeze_window(run) -> tuple[float, float]:
    """The window of a run's longest invalidation: from a little before its
    ``invalidate_range_start`` asks for ``mmu_lock`` until a little after its last release
    (its last write hold, when the zap yielded), µs.

    Parameters
    ----------
    run : Run

    Returns
    -------
    (float, float)
        Inside ``[0, run.scenario.duration_us]`` when the zap is; the padding is
        :data:`_FREEZE_PAD` of the zap's span either side.

    Raises
    ------
    ValueError
        The run has no ``invalidate_range_start`` that took ``mmu_lock``.
    """
    n = run.notifiers
    zaps = n[n["locked"].to_numpy(dtype=bool) & (n["callback"] == "invalidate_range_start")]
    if zaps.empty:
        raise ValueError(
            f"the run ({run.kernel}) has no invalidate_range_start that took mmu_lock: "
            "no zap to show"
        )
    span = zaps["t_release_us"] - zaps["t_arrive_us"]
    zap = zaps.loc[span.idxmax()]
    start, end = float(zap["t_arrive_us"]), float(zap["t_release_us"])
    pad = max(_FREEZE_PAD * (end - start), 1.0)
    return max(0.0, start - pad), end + pad


def _freeze_counts(run, faults, holds, start_us: float, end_us: float) -> dict:
    """What the freeze timeline's legend counts in the window: the zap's yields, the futile
    reads (granted, then retry), the faults that spun without the lock and their spins."""
    release = holds["t_release_us"].to_numpy()
    inside = (release >= start_us) & (release < end_us)
    grant = faults["t_grant_us"].to_numpy()
    granted = (grant >= start_us) & (grant < end_us)
    spins = faults["spins"].to_numpy() if "spins" in faults else np.zeros(len(faults), int)
    return {
        "yields": int((holds["yielded"].to_numpy(dtype=bool) & inside).sum()),
        "futile": int((faults["retry"].to_numpy(dtype=bool) & granted).sum()),
        "spins": int(spins[granted].sum()),
    }


def _zap_lane(ax, holds, start_us: float, end_us: float, scale: float) -> None:
    """The write holds of the window, one bar each (vermilion), their waits (orange) and a
    triangle where a hold ended in a yield."""
    request = holds["t_request_us"].to_numpy()
    grant = holds["t_grant_us"].to_numpy()
    release = holds["t_release_us"].to_numpy()
    shown = (request < end_us) & (release >= start_us)
    request, grant, release = request[shown], grant[shown], release[shown]
    yielded = holds["yielded"].to_numpy(dtype=bool)[shown]
    waited = grant > request
    y = (0.0, 0.8)
    SpanBars.add(
        ax,
        _spans(request[waited], (grant - request)[waited], scale),
        y,
        gid="lane-zap-wait",
        **_STATE_STYLE["wait"],
    )
    SpanBars.add(
        ax,
        _spans(grant, release - grant, scale),
        y,
        gid="lane-zap-write",
        zorder=2.1,
        **_STATE_STYLE["write"],
    )
    at = release[yielded]
    at = at[(at >= start_us) & (at <= end_us)]  # drawn unclipped: only those in the window
    (marks,) = ax.plot(
        at * scale,
        np.full(at.size, -0.05),
        linestyle="none",
        gid="zap-yields",
        zorder=2.4,
        clip_on=False,
        **_YIELD_MARK,
    )
    marks.set_in_layout(False)  # on the lanes' top edge: nothing for a layout to make room for


def _freeze_vcpu_lanes(ax, run, window: _FaultWindow, vcpus, scale: float) -> list:
    """One lane per vCPU of ``vcpus``: lockless spins, futile reads (the retry style), waits,
    read holds, drawn in that order so that at a glance the lane shows where the time went: a
    futile read is a tenth of a µs under the lock and a few µs of exit and pfn, the wait
    before it in the queue is most of a frozen vCPU's time. Returns the lanes' tops."""
    faults, retried, until = window.faults, window.retried, window.until
    vcpu = faults["vcpu"].to_numpy()
    request = faults["t_request_us"].to_numpy()
    grant = faults["t_grant_us"].to_numpy()
    wait = faults["wait_us"].to_numpy()
    hold = faults["hold_us"].to_numpy()
    exit_ = faults["t_exit_us"].to_numpy()
    snapshot = faults["t_snapshot_us"].to_numpy()
    spins = faults["spins"].to_numpy() if "spins" in faults else np.zeros(len(faults), int)
    # A futile read ends where the vCPU faults again; if that next attempt spun without the
    # lock, its spins are drawn from its first exit on, so the futile read stops there.
    same = np.append(vcpu[1:] == vcpu[:-1], False)
    next_spun = same & np.append(spins[1:] > 0, False)
    until = np.where(retried & next_spun, np.append(exit_[1:], np.nan), until)
    tops = []
    for lane, v in enumerate(vcpus):
        y = (1.4 + lane, 0.8)
        tops.append(y[0])
        mine = vcpu == v
        spun = mine & (spins > 0)
        held, again = mine & ~retried, mine & retried
        waited = mine & (wait > 0)
        for state, rows, start, width in (
            ("spin", spun, exit_, snapshot - exit_),
            ("retry", again, grant, until - grant),
            ("wait", waited, request, wait),
            ("read", held, grant, hold),
        ):
            style = _SPIN_STYLE if state == "spin" else _STATE_STYLE[state]
            SpanBars.add(
                ax,
                _spans(start[rows], width[rows], scale),
                y,
                gid=f"lane-vcpu{v}-{state}",
                **style,
            )
    return tops


def _freeze_legend(ax, counts: dict, drawn_spins: bool) -> None:
    """The freeze timeline's legend: each state, with the window's counts."""
    handles = [
        Patch(label="zap holds mmu_lock\nfor write", **_STATE_STYLE["write"]),
        Line2D(
            [],
            [],
            linestyle="none",
            label=f"zap yields it, flushing\n(cond_resched_rwlock_write):\n"
            f"{counts['yields']:,} times",
            **_YIELD_MARK,
        ),
        Patch(label="waits for mmu_lock", **_STATE_STYLE["wait"]),
        Patch(label="fault holds it for read", **_STATE_STYLE["read"]),
        Patch(
            label=f"futile read: granted, finds its\npage being zapped, lets go,\n"
            f"faults again: {counts['futile']:,}",
            **_STATE_STYLE["retry"],
        ),
    ]
    if drawn_spins:
        handles.append(
            Patch(
                label=f"spins without the lock\n(pre-check, d02c357e5bfa):\n"
                f"{counts['spins']:,} retries",
                **_SPIN_STYLE,
            )
        )
    _side_legend(ax, handles, labelspacing=0.9)


def _freeze_title(run, holds, start_us: float, end_us: float) -> str:
    s = run.scenario
    build = "PREEMPT_DYNAMIC, " if s.preempt_dynamic else ""
    n = run.notifiers
    zaps = n[n["locked"].to_numpy(dtype=bool) & (n["callback"] == "invalidate_range_start")]
    inside = zaps[(zaps["t_arrive_us"] < end_us) & (zaps["t_release_us"] >= start_us)]
    if inside.empty:
        what = "no zap in the window"
    else:
        zap = inside.iloc[int((inside["t_release_us"] - inside["t_grant_us"]).argmax())]
        span_ms = (zap["t_release_us"] - zap["t_grant_us"]) / 1000
        yields = int(zap["yields"]) if "yields" in zap else 0
        what = (
            f"the zap crawls {span_ms:.2f} ms, yielding {yields:,} times"
            if yields
            else f"the zap runs {span_ms:.2f} ms without yielding"
        )
    return f"mmu_lock on {run.kernel} ({build}preempt={s.preempt}): {what}"


def freeze_timeline(
    run, start_us: float | None = None, end_us: float | None = None, *, ax=None,
    max_lanes: int = 32,
):  # fmt: skip
    """The 2024 freeze up close: a zap's write holds one by one, its yields, and the vCPUs.

    Top lane, the notifiers' write holds of ``mmu_lock`` (``run.write_holds``): each hold a
    vermilion bar, each wait for it orange, and a dark triangle under the lane where a hold
    ended in a *yield*: the zap found the lock contended (``rwlock_needbreak()``), flushed
    remote TLBs and gave it up (``cond_resched_rwlock_write()``), then queued for it again.
    Below, one lane per vCPU: orange while it waits for ``mmu_lock``, blue while it holds it
    for read (drawn over the other states: zoomed out, a lane shows where the time went),
    pale blue cross-hatched for a *futile read* (granted, found its address being
    invalidated or seq moved, let go at once and faulted again; drawn until it asks again, as
    in :func:`lock_timeline`), and grey hatched while it *spins* without the lock: on a
    release with the pre-check (d02c357e5bfa, v6.8) a fault whose address is being
    invalidated retries before taking ``mmu_lock`` (``run.faults.spins`` times), drawn from
    its first exit to its last sample of seq. Below, the queue depth. The legend counts the
    window's yields, futile reads and spins.

    Parameters
    ----------
    run : Run
    start_us, end_us : float, optional
        The window, µs; default :func:`freeze_window` (the longest invalidation).
    ax : pair of Axes or Axes, optional
        As :func:`lock_timeline`: ``None`` a new figure (lanes above the queue depth), a pair
        ``(lanes, queue)``, or one Axes for the lanes alone.
    max_lanes : int
        Most vCPUs to draw, a lane each (the first ones; the title says how many of how many).

    Returns
    -------
    matplotlib.axes.Axes
        The axes of the lanes.

    Examples
    --------
    >>> run = kv.simulate(kv.presets.numa_balancing_setup(), "v6.7")  # doctest: +SKIP
    >>> kv.timelines.freeze_timeline(run)  # doctest: +SKIP
    """
    if start_us is None or end_us is None:
        default = freeze_window(run)
        start_us = default[0] if start_us is None else start_us
        end_us = default[1] if end_us is None else end_us
    start_us, end_us = float(start_us), float(end_us)
    if not end_us > start_us:
        raise ValueError(f"end_us must be after start_us, got [{start_us}, {end_us})")
    if max_lanes < 1:
        raise ValueError(f"max_lanes must be >= 1, got {max_lanes}")
    if ax is None:
        lanes = min(run.scenario.n_vcpus, max_lanes)
        _fig, (ax_lanes, ax_queue) = plt.subplots(
            2,
            1,
            sharex=True,
            figsize=(11, 2.6 + 0.19 * lanes),
            height_ratios=[2 + 0.19 * lanes, 0.9],
            layout="constrained",
        )
    elif isinstance(ax, Axes):
        ax_lanes, ax_queue = ax, None
    else:
        ax_lanes, ax_queue = ax
    scale, unit = _time_scale(end_us - start_us)
    holds = run.write_holds
    window = _FaultWindow.of(run.faults, start_us, end_us)
    # A spin stretch starts at the attempt's first exit: keep attempts that spun into the window.
    vcpus = list(range(min(run.scenario.n_vcpus, max_lanes)))
    _zap_lane(ax_lanes, holds, start_us, end_us, scale)
    tops = _freeze_vcpu_lanes(ax_lanes, run, window, vcpus, scale)
    counts = _freeze_counts(run, window.faults, holds, start_us, end_us)
    spun = "spins" in window.faults and bool((window.faults["spins"] > 0).any())
    labels = [f"vCPU {v}" for v in vcpus]
    ax_lanes.set_yticks([0.4, *(t + 0.4 for t in tops)], ["zap\n(write holds)", *labels])
    ax_lanes.tick_params(axis="y", length=0)
    ax_lanes.set_ylim((tops[-1] + 1.0) if tops else 1.0, -0.3)
    ax_lanes.set_xlim(start_us * scale, end_us * scale)
    ax_lanes.spines["left"].set_visible(False)
    title = _freeze_title(run, holds, start_us, end_us)
    if run.scenario.n_vcpus > len(vcpus):
        title += f" (vCPUs 0-{len(vcpus) - 1} of {run.scenario.n_vcpus})"
    ax_lanes.set_title(title, loc="left")
    _freeze_legend(ax_lanes, counts, spun)
    time_label = f"simulated time ({unit})"
    if ax_queue is None:
        ax_lanes.set_xlabel(time_label)
        return ax_lanes
    _queue_depth_axes(ax_queue, run, start_us, end_us, scale)
    ax_queue.set_xlabel(time_label)
    ax_lanes.tick_params(axis="x", labelbottom=False)
    return ax_lanes


def _side_legend(ax, handles, *, labelspacing: float) -> None:
    """The timelines' legend: to the right of the axes, top-aligned, small."""
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
        handlelength=1.4,
        labelspacing=labelspacing,
    )
