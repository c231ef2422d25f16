"""The ``mmu_lock`` queue drawn: holders inside a box, waiters in a FIFO line beside it, the
notifier callbacks that skip the lock passing by below (:func:`draw_queue`), and frame after
frame for a window, one panel per kernel on the same workload (:func:`queue_animation`).

The states come from :func:`kvmviz.stats.lock_state.queue_frames` (behind which writer each
waiting fault queued: ``run.faults["blocked_by"]``); the default window from
:func:`kvmviz.stats.story.story_window`. Each panel's artists are pooled and blitted
(:class:`~kvmviz.animate.Blitter`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch, Rectangle

from .._shared._checks import strict_booleans
from .._shared._prose import plural
from ..stats import metrics
from ..stats.lock_state import QueueState, queue_frames
from ..stats.story import QUEUE_WINDOW_US, story_window
from . import theme
from .blit import Animation, themed_animation
from .theme import HATCHES, SHORT_CALLBACKS, Themed, kernel_label

__all__ = ["draw_queue", "queue_animation"]


# One panel, in data units of one slot (a square is 0.7 wide): the lock is a box of
# _BOX_COLS x _BOX_ROWS reader slots; the queue is one line of _QUEUE_SLOTS to its right, its
# head next to the box; notifier callbacks that skip the lock pass by in a lane below.
_BOX_COLS, _BOX_ROWS = 5, 3
_QUEUE_SLOTS = 23
_QUEUE_X0 = _BOX_COLS + 1.3  # centre of the head of the queue
_QUEUE_Y = _BOX_ROWS - 0.5  # centre of the queue's line (level with the box's top row)
_PASS_SLOTS = 6
_PASS_Y = 0.5
_SQUARE = 0.7  # a 0.3 gap: room for the outlines, kept apart for blitting (Blitter's sprites)
_XLIM = (-0.5, _QUEUE_X0 + _QUEUE_SLOTS + 0.9)
_YLIM = (-1.75, 4.75)
# Waiting: an orange dashed outline (a hatch would be the usual second channel, but Agg takes a
# millisecond per hatched patch, too slow for 15 frames a second with 30 squares).
_WAITING = Themed(edgecolor="wait", linestyle=(0, (2.2, 1.2)), linewidth=2.2)
_INSIDE = Themed(edgecolor="background", linestyle="-", linewidth=0.8)
_ID_STYLE = {
    "ha": "center",
    "va": "center",
    "fontsize": 7,
    "color": "white",
    "weight": "bold",
    "zorder": 4,
}
_MORE = Themed(ha="center", va="center", fontsize=8, weight="bold", color="text")


@dataclass(frozen=True)
class _QueuePlan:
    """What one panel shows at one frame, in plain Python values (cheap to apply)."""

    clock: str
    readers: tuple[str, ...]  # vCPU numbers of the readers inside, as shown
    readers_more: int
    writer: str  # label of the writer inside, "" if none
    queue: tuple[tuple[str, str, str], ...]  # (kind, square text, label) per waiter, head first
    queue_more: int
    gate: int  # queue position of the first waiting writer, -1 if none shown
    blocked: int  # fault attempts blocked by a waiting writer (their blocked_by)
    writers_waiting: int
    passing: int
    passing_text: str
    caption: str
    stats: str


def _writer_label(callback: str, event) -> str:
    """A callback named with its event, so that the same notification can be found on every
    panel."""
    return f"{SHORT_CALLBACKS.get(callback, callback)}, event {event}"


def _passing_text(passing: pd.DataFrame) -> str:
    """What passed by: the callbacks by name while they fit (so that the event a kernel locks
    for can be found passing by on another), else how many."""
    if passing.empty:
        return ""
    names = [
        _writer_label(c, e)
        for c, e in zip(passing["callback"].astype(str), passing["event"], strict=True)
    ]
    what = " and ".join(names) if len(names) <= 2 else plural(len(names), "notifier callback")
    return f"{what} passed by without the lock (missed every memslot)"


def _queue_plan(state: QueueState) -> _QueuePlan:
    kinds = state.holders["kind"].to_numpy()
    who = state.holders["who"].to_numpy()
    readers = [str(v) for v in who[kinds == "reader"]]
    cap_inside = _BOX_COLS * _BOX_ROWS
    n_in = len(readers) if len(readers) <= cap_inside else cap_inside - 1
    writer = ""
    if (kinds == "writer").any():
        row = state.holders[kinds == "writer"].iloc[0]
        writer = (
            f"writer\n{SHORT_CALLBACKS.get(row['callback'], row['callback'])}\nevent {row['who']}"
        )
    w_kind = state.waiters["kind"].to_numpy()
    w_who = state.waiters["who"].to_numpy()
    w_cb = state.waiters["callback"].astype(str).to_numpy()
    n_q = len(w_kind) if len(w_kind) <= _QUEUE_SLOTS else _QUEUE_SLOTS - 1
    # A reader's square shows its vCPU; a writer's shows W and its event (the same event on
    # every panel), its callback written above it.
    queue = tuple(
        (k, str(v), "") if k == "reader" else (k, f"W{v}", SHORT_CALLBACKS.get(c, c))
        for k, v, c in zip(w_kind[:n_q], w_who[:n_q], w_cb[:n_q], strict=True)
    )
    head = state.head_writer
    gate = int(head["position"]) if head is not None and int(head["position"]) < n_q else -1
    return _QueuePlan(
        clock=f"t = {state.t_us:,.1f} µs",
        readers=tuple(readers[:n_in]),
        readers_more=len(readers) - n_in,
        writer=writer,
        queue=queue,
        queue_more=len(w_kind) - n_q,
        gate=gate,
        blocked=state.blocked_readers,
        writers_waiting=int((w_kind == "writer").sum()),
        passing=len(state.passing),
        passing_text=_passing_text(state.passing),
        caption=state.caption,
        stats=(
            f"notifier callbacks so far: {state.callbacks_locked} took mmu_lock, "
            f"{state.callbacks_waiting} waiting for it, {state.callbacks_skipped} skipped it"
        ),
    )


def _draw_lock_box(ax, title: str) -> None:
    """The static part of a queue panel: the lock's box and its labels, the queue's arrow."""
    ax.set_xlim(*_XLIM)
    ax.set_ylim(*_YLIM)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title, loc="left")
    text = theme.color("text")
    ax.add_patch(
        FancyBboxPatch(
            (0, 0),
            _BOX_COLS,
            _BOX_ROWS,
            boxstyle="round,pad=0.12",
            facecolor=theme.color("box_face"),
            edgecolor=text,
            linewidth=1.6,
            zorder=1,
        )
    )
    ax.text(0, _BOX_ROWS + 0.3, "inside mmu_lock", fontsize="small", weight="bold", color=text)
    ax.text(
        _QUEUE_X0 - 0.4,
        _BOX_ROWS + 1.15,
        "waiting (FIFO): the first in line, next to the lock, goes in next",
        fontsize="small",
        weight="bold",
        color=theme.color("wait"),
    )
    ax.annotate(
        "",
        xy=(_BOX_COLS + 0.25, _QUEUE_Y),
        xytext=(_QUEUE_X0 - 0.45, _QUEUE_Y),
        arrowprops={"arrowstyle": "-|>", "color": theme.color("wait"), "lw": 1.4},
    )


class _QueueView:
    """The artists of one queue panel: static ones drawn once, moving ones pooled (a fixed
    number of squares and labels, shown or hidden per frame, so frames blit fast)."""

    def __init__(self, ax, title: str) -> None:
        self.ax = ax
        _draw_lock_box(ax, title)
        text = theme.color("text")
        # Moving artists, pooled.
        self.clock = ax.set_title(" ", loc="right")
        self.readers = [
            self._square(c + 0.5, _BOX_ROWS - 0.5 - r)
            for r in range(_BOX_ROWS)
            for c in range(_BOX_COLS)
        ]
        self.reader_ids = [ax.text(*self._centre(p), "", **_ID_STYLE) for p in self.readers]
        self.more_inside = ax.text(_BOX_COLS - 0.5, 0.5, "", **_MORE)
        # A writer holds mmu_lock alone: one big square filling the box.
        self.writer = self._square(_BOX_COLS / 2, _BOX_ROWS / 2, size=2.2)
        self.writer.set(facecolor=theme.color("write"), **_INSIDE)
        self.writer_label = ax.text(_BOX_COLS / 2, _BOX_ROWS / 2, "", **_ID_STYLE)
        self.queue = [self._square(_QUEUE_X0 + k, _QUEUE_Y) for k in range(_QUEUE_SLOTS)]
        self.queue_ids = [ax.text(*self._centre(p), "", **_ID_STYLE) for p in self.queue]
        self.queue_labels = [
            ax.text(
                _QUEUE_X0 + k - 0.25,
                _QUEUE_Y + 0.5,
                "",
                rotation=30,
                rotation_mode="anchor",
                fontsize=7,
                color=theme.color("write"),
            )
            for k in range(_QUEUE_SLOTS)
        ]
        self.more_queue = ax.text(_QUEUE_X0 + _QUEUE_SLOTS - 1, _QUEUE_Y, "", **_MORE)
        write = theme.color("write")
        (self.gate,) = ax.plot([], [], color=write, linewidth=3.5, solid_capstyle="butt")
        (self.bracket,) = ax.plot([], [], color=write, linewidth=1.2)
        self.bracket_text = ax.text(0, 0, "", ha="center", va="top", fontsize=8, color=text)
        self.passing = [self._square(_QUEUE_X0 + k, _PASS_Y, size=0.6) for k in range(_PASS_SLOTS)]
        for patch in self.passing:
            patch.set(facecolor=theme.color("background"), edgecolor=theme.color("miss"),
                      hatch=HATCHES["miss"])  # fmt: skip
        miss = theme.color("miss")
        self.passing_text = ax.text(0, _PASS_Y, "", va="center", fontsize=8, color=miss)
        self.caption = ax.text(0, -0.55, "", va="top", fontsize="medium", color=text)
        self.stats = ax.text(0, -1.35, "", va="top", fontsize="small", color=miss)

    def _square(self, x: float, y: float, size: float = _SQUARE) -> Rectangle:
        patch = Rectangle((x - size / 2, y - size / 2), size, size, visible=False, zorder=3)
        self.ax.add_patch(patch)
        return patch

    @staticmethod
    def _centre(patch: Rectangle) -> tuple[float, float]:
        return patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height() / 2

    @property
    def sprites(self) -> list[list]:
        """The moving artists that never overlap one another, each with its look's key."""

        squares = [
            *zip(self.readers, self.reader_ids, strict=True),
            *zip(self.queue, self.queue_ids, strict=True),
            (self.writer, self.writer_label),
        ]
        texts = [self.clock, self.more_inside, self.more_queue, self.bracket_text]
        texts += [self.passing_text, self.caption, self.stats]
        return [
            *(list(pair) for pair in squares),
            *([t] for t in texts),
            *([p] for p in self.passing),
        ]

    @property
    def overlays(self) -> list:
        """The moving artists that may overlap others: drawn every frame, on top."""
        return [self.gate, self.bracket, *self.queue_labels]

    def update(self, plan: _QueuePlan) -> None:
        self.clock.set_text(plan.clock)
        for k, (patch, label) in enumerate(zip(self.readers, self.reader_ids, strict=True)):
            shown = k < len(plan.readers)
            patch.set_visible(shown)
            _set_id(label, plan.readers[k] if shown else "")
            if shown:
                patch.set(facecolor=theme.color("read"), **_INSIDE)
        self.more_inside.set_text(f"+{plan.readers_more}" if plan.readers_more else "")
        self.writer.set_visible(bool(plan.writer))
        self.writer_label.set_text(plan.writer)
        # The queue, its head next to the box.
        for k, (patch, label, name) in enumerate(
            zip(self.queue, self.queue_ids, self.queue_labels, strict=True)
        ):
            shown = k < len(plan.queue)
            patch.set_visible(shown)
            kind, text, above = plan.queue[k] if shown else ("", "", "")
            _set_id(label, text)
            name.set_text(above)
            if shown:
                patch.set(facecolor=theme.color("write" if kind == "writer" else "read"),
                          **_WAITING)  # fmt: skip
        self.more_queue.set_text(f"+{plan.queue_more}" if plan.queue_more else "")
        # The first waiting writer shuts the door on every reader that comes after it.
        self.gate.set_data([], [])
        self.bracket.set_data([], [])
        self.bracket_text.set_text("")
        if plan.gate >= 0:
            x_gate = _QUEUE_X0 + plan.gate + 0.5
            self.gate.set_data([x_gate, x_gate], [_QUEUE_Y - 0.7, _QUEUE_Y + 0.7])
            last = len(plan.queue) - 1
            if last > plan.gate and plan.blocked:
                x0, x1 = _QUEUE_X0 + plan.gate + 0.65, _QUEUE_X0 + last + 0.4
                y = _QUEUE_Y - 0.6
                self.bracket.set_data([x0, x0, x1, x1], [y + 0.12, y, y, y + 0.12])
                self.bracket_text.set_position(((x0 + x1) / 2, y - 0.1))
                writers = "writer" if plan.writers_waiting == 1 else "writers"
                self.bracket_text.set_text(
                    f"{plural(plan.blocked, 'reader')} blocked by the waiting {writers}"
                )
        # Callbacks that skip the lock pass by below, without queueing.
        n_pass = min(plan.passing, _PASS_SLOTS)
        for k, patch in enumerate(self.passing):
            patch.set_visible(k < n_pass)
        self.passing_text.set_position((_QUEUE_X0 + n_pass - 0.1, _PASS_Y))
        self.passing_text.set_text(plan.passing_text)
        self.caption.set_text(plan.caption)
        self.stats.set_text(plan.stats)


def _set_id(label, text: str) -> None:
    """Write a vCPU number (or W and an event number) in its square, smaller from three
    characters on (416-vCPU VMs, events past 99)."""
    label.set_text(text)
    n = len(text)
    label.set_fontsize(_ID_STYLE["fontsize"] if n < 3 else 5.5 if n == 3 else 4.5)


def _legend_handles() -> list[Patch]:
    return [
        Patch(
            facecolor=theme.color("read"),
            edgecolor=theme.color("background"),
            label="reader: vCPU fault (vCPU no.)",
        ),
        Patch(
            facecolor=theme.color("write"),
            edgecolor=theme.color("background"),
            label="writer: notifier callback (W, event)",
        ),
        Patch(facecolor=theme.color("faint"), label="waiting (dashed outline)", **_WAITING),
        Patch(
            facecolor=theme.color("background"),
            edgecolor=theme.color("miss"),
            hatch=HATCHES["miss"],
            label="callback that skips the lock",
        ),
    ]


@strict_booleans
def draw_queue(state: QueueState, *, ax=None, title: str | None = None, legend: bool = True):
    """Draw ``mmu_lock`` at one instant: holders inside the box, waiters queued outside.

    Readers (vCPU page faults) are blue squares numbered with their vCPU, writers (notifier
    callbacks) vermilion; a waiting one has an orange dashed outline. The queue runs left to
    right from its head, next to the box. The first waiting writer is marked by a bar: every
    reader behind it waits although the lock is only held for read (the qrwlock's fairness).

    Parameters
    ----------
    state : QueueState
        From :func:`queue_frames`.
    ax : matplotlib.axes.Axes, optional
    title : str, optional
        Default: the kernel's label. The time is shown on the right.
    legend : bool
        Add the key (reader, writer, waiting, skips the lock) below the axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    view = _QueueView(ax, kernel_label(state.kernel) if title is None else title)
    view.update(_queue_plan(state))
    if legend:
        ax.legend(
            handles=_legend_handles(),
            loc="upper left",
            bbox_to_anchor=(0.0, 0.0),
            ncols=4,
            fontsize="small",
        )
    return ax


def _default_window(runs: dict, width_us: float) -> tuple[float, float]:
    """:func:`story_window` where it finds a story, else the first run's busiest window."""
    if len(runs) >= 2:
        try:
            return story_window(runs, width_us).window
        except ValueError:
            pass
    return metrics.busiest_window(next(iter(runs.values())), width_us, whole=False)


def queue_animation(
    runs,
    start_us: float | None = None,
    end_us: float | None = None,
    n_frames: int = 120,
    *,
    fps: float = 20,
    width_us: float = QUEUE_WINDOW_US,
    figsize: tuple[float, float] | None = None,
    dpi: float = 80,
) -> Animation:
    """The ``mmu_lock`` queue over a window, one panel per run, one above the other.

    Give runs of the same scenario and seed on two kernels (``{"v5.12": run_a, "v5.15":
    run_b}``): the vCPUs fault identically until the notifiers' locking differs, and the panels
    share one scale, so the queues' lengths compare directly.

    Parameters
    ----------
    runs : Run or mapping of label to Run
        A label that is a kernel name is shown as that kernel's long label.
    start_us, end_us : float, optional
        The window, µs. Default, for two runs or more: the story's window
        (:func:`story_window`): a spurious callback that waits for ``mmu_lock`` on the first
        run, with the most faults queued behind it, passing by without the lock on the others.
        For one run, or runs with no such callback: ``width_us`` wide around the first run's
        callback that waited longest (:func:`kvmviz.metrics.busiest_window`, ``whole=False``:
        the frames span a fixed window).
    n_frames : int
    fps : float
    width_us : float
        Width of the default window, µs.
    figsize : (float, float), optional
        Inches; default 11 wide and 2.5 high per panel.
    dpi : float

    Returns
    -------
    Animation
    """
    runs = {runs.kernel: runs} if hasattr(runs, "lock") else dict(runs)
    if not runs:
        raise ValueError("queue_animation needs at least one run")
    if start_us is None or end_us is None:
        start_us, end_us = _default_window(runs, width_us)
    # A callback that skips the lock stays in view for a second of playback, long enough to
    # be seen passing by while its twin on the other panel waits.
    recent_us = max(3, round(fps)) * (float(end_us) - float(start_us)) / max(int(n_frames), 1)
    frames = [
        queue_frames(run, start_us, end_us, n_frames=n_frames, recent_us=recent_us)
        for run in runs.values()
    ]
    plans: list[list[_QueuePlan | None]] = [[None] * len(f) for f in frames]

    def build(rc):
        fig = Figure(figsize=figsize or (11, 0.6 + 2.5 * len(runs)), dpi=dpi, layout="constrained")
        axes = fig.subplots(len(runs), 1, squeeze=False)[:, 0]
        titles = [kernel_label(label) for label in runs]
        views = [_QueueView(ax, title) for ax, title in zip(axes, titles, strict=True)]
        fig.legend(handles=_legend_handles(), loc="outside upper center", ncols=4, fontsize="small")

        def update(i: int) -> None:
            for view, states, cache in zip(views, frames, plans, strict=True):
                if cache[i] is None:
                    cache[i] = _queue_plan(states[i])
                view.update(cache[i])

        name = "queue-" + "-vs-".join(str(label) for label in runs)
        return Animation(
            fig,
            len(frames[0]),
            update,
            [a for view in views for a in view.overlays],
            sprites=[s for view in views for s in view.sprites],
            fps=fps,
            name=name,
            rc=rc,
        )

    return themed_animation(build)
