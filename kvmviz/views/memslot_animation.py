"""Notifier ranges arriving one by one on the memslot map (:func:`memslot_animation`).

Each notification's range drops onto :func:`kvmviz.plot.memslot_map`: a hit takes ``mmu_lock``
for write, and the padlock beside the map flashes shut; a miss passes by without it where the
kernel allows (the ``locked`` column of ``Run.notifiers``). Drawn from the run's tables, never
simulated; the map is drawn once, the ranges and the padlock blitted
(:class:`~kvmviz.animate.Animation`).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Arc, FancyBboxPatch, Patch, Rectangle

from .._shared._checks import renamed_keywords
from .._shared._prose import size_bytes
from ..inputs.presets import VMM_HEAP
from . import theme
from .blit import Animation, set_spans, themed_animation
from .memslot_maps import RANGE_STYLE, map_parts, memslot_map
from .theme import HATCHES, SHORT_CALLBACKS, kernel_label

__all__ = ["memslot_animation"]

_WORK = {  # what KVM does under the lock for a range that hits (__kvm_handle_hva_range)
    "invalidate_range_start": "zap SPTEs + TLB flush",
    "change_pte": "zap SPTEs + TLB flush",
    "clear_flush_young": "clear Accessed\n+ TLB flush",
    "clear_young": "clear Accessed bits",
    "test_young": "test Accessed bits",
}


def _notifications(run, first: int, n: int) -> pd.DataFrame:
    """One row per notification (its first callback's range and arrival; ``event`` is its
    number), with how many of its callbacks took the lock and which callbacks it ran."""
    notifiers = run.notifiers.sort_values(["t_arrive_us", "event"], kind="stable")
    grouped = notifiers.groupby("event", sort=False)
    notifications = grouped.first()
    notifications["n_locked"] = grouped["locked"].sum().astype(int)
    notifications["n_callbacks"] = grouped.size()
    notifications["callbacks"] = grouped["callback"].agg(
        lambda c: " → ".join(SHORT_CALLBACKS.get(x, x) for x in c)
    )
    notifications = notifications.sort_values("t_arrive_us", kind="stable").reset_index()
    return notifications.iloc[first : first + n].reset_index(drop=True)


def _slots(layout, notification: pd.Series) -> str:
    """The memslots a notification's range reaches, by id: ``"slot 1, slot 3"``."""
    reached = layout.gfn_ranges(notification.hva_start, notification.hva_end)
    return ", ".join(sorted({f"slot {g.slot}" for g in reached}))


def _why(kernel: str, notification: pd.Series, slots: str) -> str:
    """Why the notification took ``mmu_lock`` or not, in a few short lines."""
    if notification["hit"]:
        return f"hits {slots}:\n{_WORK.get(notification['callback'], 'update SPTEs')}"
    if notification["n_locked"] and kernel == "v5.12":
        return "misses, but v5.12\nlocks for every\ncallback"
    if notification["n_locked"]:
        # 8931a454ae: the on_lock path of start/end "does not yet support lock elision".
        return "misses, but start/end\nstill lock on v5.13\n(8931a454ae)"
    return "misses every\nmemslot: nothing\nto do"


@dataclass(frozen=True)
class _Arrivals:
    """The notifications shown, and what each frame needs of them, computed once.

    Frame ``i`` shows notification ``k`` at ``phase`` (``divmod(i, frames_per)``); its range
    lands at phase ``landing``."""

    notifications: pd.DataFrame  # _notifications
    why: list[str]  # why each took mmu_lock or not (_why)
    hits: np.ndarray
    locked_before: np.ndarray  # callbacks that took the lock before each notification (and all)
    callbacks_before: np.ndarray  # callbacks before each notification (and all)
    frames_per: int
    landing: int

    @classmethod
    def of(cls, run, notifications: pd.DataFrame, frames_per: int) -> _Arrivals:
        layout = run.scenario.layout
        landing = min(2, frames_per - 1)  # the frame (within a notification) its range lands at
        why = [
            _why(run.kernel, notification, _slots(layout, notification))
            for _, notification in notifications.iterrows()
        ]
        return cls(
            notifications=notifications,
            why=why,
            hits=notifications["hit"].to_numpy(dtype=bool),
            locked_before=np.concatenate([[0], np.cumsum(notifications["n_locked"])]),
            callbacks_before=np.concatenate([[0], np.cumsum(notifications["n_callbacks"])]),
            frames_per=frames_per,
            landing=landing,
        )

    def __len__(self) -> int:
        return len(self.notifications)


def _draw_map(fig, ax, run, arrivals: _Arrivals, regions) -> None:
    """The static map of the notifications shown (:func:`memslot_map`), titled, its legend
    moved to the figure."""
    notifiers = run.notifiers
    shown = notifiers[notifiers["event"].isin(arrivals.notifications["event"])]
    memslot_map(run.scenario.layout, shown, ax=ax, regions=regions)
    fig.suptitle(
        f"Notifier ranges arriving on the memslots: {kernel_label(run.kernel)}",
        x=0.01,
        ha="left",
        fontsize="large",
        weight="bold",
    )
    # The map's legend moves to the figure, out of the way of the notification line.
    ax.get_legend().remove()
    fig.legend(
        handles=[
            Patch(facecolor=theme.color("memslot"), label="memslot"),
            Patch(**RANGE_STYLE["hit"], label="range hits a memslot"),
            Patch(**RANGE_STYLE["miss"], label="range misses (spurious)"),
        ],
        loc="outside lower center",
        ncols=3,
        fontsize="small",
    )


class _FallingRange:
    """The map's moving part: the ranges of the notifications before on the notifier row, the
    current one falling onto it with a pointer above, a band down through what it lands on,
    and the line over the map naming the notification."""

    def __init__(self, ax, arrivals: _Arrivals) -> None:
        notifications = arrivals.notifications
        # The axis memslot_map drew, its bars, and the row they sit in.
        parts = map_parts(ax)
        to_x = parts.axis.x
        self.past = {True: parts.bars["hit"], False: parts.bars["miss"]}
        self.top = parts.rows
        self.row_y = parts.notifier_row[0]
        ax.set_ylim(-0.35, self.top + 2.3)  # room above the notifier row for ranges to fall from
        x0 = np.array([to_x(int(a)) for a in notifications["hva_start"]])
        x1 = np.array([to_x(int(b)) for b in notifications["hva_end"]])
        # A 4 KiB range in a 12 TiB slot is far below a pixel: draw every range wide enough
        # to be seen, centred on where it is.
        self.width = np.maximum(x1 - x0, 0.1)
        self.left = (x0 + x1) / 2 - self.width / 2
        self.title = ax.set_title(" ", loc="left", fontsize="medium")
        self.current = Rectangle((0, 0), 0, 0.7, zorder=5, linewidth=0)
        ax.add_patch(self.current)
        (self.pointer,) = ax.plot([], [], marker="v", markersize=12, linestyle="", zorder=6)
        self.band = Rectangle((0, -0.1), 0, self.top + 0.1, alpha=0.45, zorder=0.5, linewidth=0)
        ax.add_patch(self.band)

    @property
    def moving(self) -> list:
        return [*self.past.values(), self.band, self.current, self.pointer]

    def show(self, arrivals: _Arrivals, k: int, phase: int) -> None:
        """Notification ``k`` at ``phase``: falling, then landed."""
        notification = arrivals.notifications.iloc[k]
        hits, left, width = arrivals.hits, self.left, self.width
        hit = bool(hits[k])
        for h, collection in self.past.items():
            before = np.flatnonzero(hits[:k] == h)
            set_spans(collection, zip(left[before], width[before], strict=True), self.row_y, 0.7)
        colour = theme.color("hit" if hit else "miss")
        landed = phase >= arrivals.landing
        y = self.row_y + (arrivals.landing - phase) * 0.5
        self.current.set_bounds(left[k], y, width[k], 0.7)
        self.current.set_facecolor(colour)
        self.current.set_hatch(None if hit else HATCHES["miss"])
        self.pointer.set_data([left[k] + width[k] / 2], [y + 0.9])
        self.pointer.set_color(colour)
        self.band.set_visible(landed)
        self.band.set_bounds(left[k], -0.1, width[k], self.top + 0.2)
        self.band.set_facecolor(colour)
        size = size_bytes(int(notification["hva_end"]) - int(notification["hva_start"]))
        self.title.set_text(
            f"event {int(notification['event'])} at t = {notification['t_arrive_us']:,.1f} µs: "
            f"{notification['callbacks']} on {size}" + (f" → {'hit' if hit else 'miss'}" * landed)
        )


class _Padlock:
    """``mmu_lock`` beside the map: shut and flashing vermilion when a notification's callbacks
    take it, open and grey when they skip it; why, and a tally of the notifications so far."""

    def __init__(self, ax) -> None:
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.75, 1.45)
        ax.set_axis_off()
        ax.text(0.5, 1.3, "mmu_lock", ha="center", weight="bold", fontsize="medium")
        self.body = FancyBboxPatch(
            (0.22, 0.42), 0.56, 0.36, boxstyle="round,pad=0.03", linewidth=2.0, zorder=3
        )
        ax.add_patch(self.body)
        self.shackle = Arc((0.5, 0.78), 0.34, 0.46, theta1=0, theta2=180, linewidth=5, zorder=2)
        ax.add_patch(self.shackle)
        self.status = ax.text(0.5, 0.3, "", ha="center", va="top", weight="bold", fontsize="small")
        self.reason = ax.text(0.5, 0.1, "", ha="center", va="top", fontsize="x-small")
        self.tally = ax.text(0.5, -0.5, "", ha="center", va="top", fontsize="x-small")

    @property
    def moving(self) -> list:
        return [self.body, self.shackle]

    @property
    def texts(self) -> list:
        return [self.status, self.reason, self.tally]

    def show(self, arrivals: _Arrivals, k: int, phase: int) -> None:
        """Notification ``k`` at ``phase``: the padlock as it is once its range has landed."""
        landing, frames_per = arrivals.landing, arrivals.frames_per
        n_locked = int(arrivals.notifications.iloc[k]["n_locked"])
        landed = phase >= landing
        flash = 1.0 - 0.6 * (phase - landing) / max(frames_per - 1 - landing, 1)
        closed, lock_colour, fill, style = True, theme.color("miss"), "#eeeeee", "-"
        self.status.set_text("")
        self.reason.set_text(arrivals.why[k] if landed else "")
        if landed and n_locked:
            lock_colour, fill = theme.color("write"), _mix(theme.color("write"), flash)
            self.status.set_text("taken for write" + (f" ({n_locked}×)" if n_locked > 1 else ""))
        elif landed:
            closed, fill, style = False, theme.color("background"), "--"
            self.status.set_text("not taken")
        self.body.set(facecolor=fill, edgecolor=lock_colour, linestyle=style)
        self.shackle.set(center=(0.5, 0.78 if closed else 0.9), edgecolor=lock_colour)
        self.status.set_color(lock_colour)
        done = k + 1 if landed else k
        taken = int(arrivals.locked_before[done])
        self.tally.set_text(
            f"so far: taken {taken}×,\nskipped {int(arrivals.callbacks_before[done]) - taken}×\n"
            f"({done} of {len(arrivals)} events)"
        )


def _mix(colour: str, amount: float) -> tuple:
    """``colour`` blended with white: ``amount`` 1 is the colour, 0 white."""
    rgb = np.array(mpl.colors.to_rgb(colour))
    return tuple(1 - amount * (1 - rgb))


@renamed_keywords(
    n_events="n_notifications",
    frames_per_event="frames_per_notification",
    first_event="first_notification",
)
def memslot_animation(
    run,
    *,
    n_notifications: int = 24,
    frames_per_notification: int = 5,
    first_notification: int = 0,
    regions=(VMM_HEAP,),
    fps: float = 20,
    figsize: tuple[float, float] = (11, 4.4),
    dpi: float = 80,
) -> Animation:
    """Notifier ranges arriving one by one on the memslot map of ``run``.

    Each notification's range drops onto the map: a hit is vermilion and the ``mmu_lock``
    padlock beside the map flashes shut (taken for write); a miss is grey and hatched, and on
    v5.13 (unpaired callbacks) and v5.15 (all callbacks) the padlock stays open. Earlier ranges
    stay on the map. The map itself (:func:`kvmviz.plot.memslot_map`) is drawn once.

    Parameters
    ----------
    run : Run
    n_notifications : int
        Notifications (events of ``run.notifiers``) shown, from ``first_notification`` in
        arrival order.
    frames_per_notification : int
        Frames per notification: the range falls, lands, the padlock flashes and fades.
    first_notification : int
    regions : sequence of (hva_start, hva_end)
        Drawn as segments of the map even with no range on them (the VMM's heap).
    fps : float
    figsize : (float, float)
        Inches.
    dpi : float

    Returns
    -------
    Animation

    Other Parameters
    ----------------
    n_events, frames_per_event, first_event : int
        The older names of ``n_notifications``, ``frames_per_notification`` and
        ``first_notification``, still accepted.
    """
    if int(frames_per_notification) < 1:
        raise ValueError(f"frames_per_notification must be >= 1, got {frames_per_notification}")
    frames_per = int(frames_per_notification)
    notifications = _notifications(run, int(first_notification), int(n_notifications))
    if notifications.empty:
        raise ValueError(f"run has no notification events from number {first_notification}")
    arrivals = _Arrivals.of(run, notifications, frames_per)

    def build(rc):
        fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        grid = fig.add_gridspec(1, 2, width_ratios=[6.0, 1.2])
        ax = fig.add_subplot(grid[0])
        ax_lock = fig.add_subplot(grid[1])
        _draw_map(fig, ax, run, arrivals, regions)
        falling = _FallingRange(ax, arrivals)
        padlock = _Padlock(ax_lock)

        def update(i: int) -> None:
            k, phase = divmod(i, frames_per)
            falling.show(arrivals, k, phase)
            padlock.show(arrivals, k, phase)

        return Animation(
            fig,
            len(arrivals) * frames_per,
            update,
            [*falling.moving, *padlock.moving],
            sprites=[[text] for text in (falling.title, *padlock.texts)],
            fps=fps,
            name=f"memslots-{run.kernel}",
            rc=rc,
        )

    return themed_animation(build)
