"""The stall figures and their live update: the CDF of the fault stalls (or of the attempts'
waits), the brownout curve, the brownout split by what the faults waited behind, and the two
side by side (:func:`stall_by_kernel`). Each run's artists are found by gid, so that
:func:`update_stalls` gives them new runs' data and :func:`restyle_stalls` a new highlight
without drawing anything new (the dashboard's hot path); a run with no stall at all is named in
words, never left as a line flat at zero.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, NullFormatter

from ..stats.metrics import BEHIND, kernel_table
from . import theme
from .metric_labels import (
    NONE_WORDS,
    as_kernel_table,
    kernel_order,
    kernel_tick,
    value_label,
    zero_note,
)
from .stall_data import WAIT_FLOOR_US, any_stall, brownout_points, run_cdf
from .theme import POLICY_STYLES

__all__ = [
    "brownout_curve",
    "live_artists",
    "restyle_stalls",
    "stall_by_kernel",
    "stall_cdf",
    "stall_split",
    "update_stalls",
]


def _runs(runs) -> dict:
    """Accept a Run, a sequence of Runs or a {label: Run} mapping."""
    if isinstance(runs, Mapping):
        return dict(runs)
    if hasattr(runs, "faults"):
        return {runs.kernel: runs}
    return {run.kernel: run for run in runs}


# What each per-run distribution is called on the axes: per fault (the stall the vCPU feels,
# what kernels are ranked by) or per attempt (the lock's own wait, chapter 03).
_PER = {
    "fault": {
        "gid": "cdf",
        "xlabel": "stall per fault: mmu_lock waits + retried attempts\n"
        "(µs, log scale; faults that never stalled at the left edge)",
        "ylabel": "share of faults",
        "title": "Fault stalls",
        "none": "no fault stalled",
    },
    "attempt": {
        "gid": "wait-cdf",
        "xlabel": "mmu_lock wait per fault attempt\n"
        "(µs, log scale; attempts that never waited at the left edge)",
        "ylabel": "share of fault attempts",
        "title": "Waits for mmu_lock",
        "none": "no fault attempt waited",
    },
}
_CDF_KIND = {spec["gid"]: per for per, spec in _PER.items()}
_BROWNOUT_NONE = "no vCPU stalled"
_NOTE_STEP = 0.08  # axes fraction between two CDF notes (one per run with no stall)
_NOTE_STEP_PT = 11.0  # points between two brownout notes


def _check_per(per: str) -> str:
    if per not in _PER:
        raise ValueError(f"per = {per!r}: expected 'fault' or 'attempt'")
    return per


def _notes(ax) -> dict:
    """The "no stall" notes of an axes, by label."""
    return {
        t.get_gid().partition("|")[2]: t
        for t in ax.texts
        if (t.get_gid() or "").startswith("note|")
    }


def _stack_notes(ax) -> None:
    """Stack the visible "no stall" notes of a CDF or brownout axes from their corner, in the
    order of the runs: a CDF's top left, beside the left edge where such a run's line stands;
    a brownout's bottom left, just above the axis where such a run's line lies. Notes hidden
    (their run stalled, or not among the ``shown`` of :func:`restyle_stalls`) take no place."""
    cdf = any((line.get_gid() or "").partition("|")[0] in _CDF_KIND for line in ax.get_lines())
    shown = [note for note in _notes(ax).values() if note.get_visible()]
    for k, note in enumerate(shown):
        if cdf:
            note.xy = (WAIT_FLOOR_US, 0.97 - _NOTE_STEP * k)
        else:
            note.xyann = (0.0, 3.0 + _NOTE_STEP_PT * k)


def _add_note(ax, label: str, text: str, *, xy, xycoords, offset_pt, ha="left", va="top"):
    """A run's "no stall" note, in words, in its colour; drawn only while its run has none."""
    style = _style(label, None)
    return ax.annotate(
        f"{label}: {text}",
        xy=xy,
        xycoords=xycoords,
        xytext=offset_pt,
        textcoords="offset points",
        ha=ha,
        va=va,
        fontsize="small",
        color=style["color"],
        bbox={"boxstyle": "round,pad=0.15", "facecolor": theme.color("note_face"),
              "edgecolor": "none", "alpha": 0.85},
        gid=f"note|{label}",
        visible=False,
    )  # fmt: skip


def update_stalls(
    ax,
    runs,
    *,
    highlight: str | None = None,
    table: pd.DataFrame | None = None,
    shown=None,
):
    """Give the artists of an axes drawn by :func:`stall_cdf`, :func:`brownout_curve` or
    :func:`stall_split` new runs' data and the highlight, reusing every artist: the
    dashboard's hot path.

    Each line is found by its gid (``"cdf|<label>"``, ``"wait-cdf|<label>"`` or
    ``"brownout|<label>"``) and given the points a new draw would give it; lines whose label
    is not in ``runs`` are left as they are. Each run's note ("v5.15: no fault stalled",
    gid ``"note|<label>"``) is shown exactly while its run has no stall at all, so that a
    line flat at zero is never taken for missing data. The bars of :func:`stall_split` get
    the new heights and labels. In place, updating and blitting the three kernels' lines is
    about five times faster than drawing new ones with ``seaborn.ecdfplot``
    (``benchmarks/plot.py``). Every run gets its new data, shown or not, so that a later
    :func:`restyle_stalls` may show any of them.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Drawn by :func:`stall_cdf`, :func:`brownout_curve` or :func:`stall_split`.
    runs : Run, sequence of Run, or mapping of label to Run
    highlight : str, optional
        As in :func:`restyle_stalls`.
    table : pandas.DataFrame, optional
        :func:`kvmviz.metrics.kernel_table` of ``runs``, if already computed (the bars of
        :func:`stall_split` are drawn from it).
    shown : collection of str, optional
        As in :func:`restyle_stalls`: the labels drawn, the others hidden (default every one).

    Returns
    -------
    matplotlib.axes.Axes
    """
    runs = _runs(runs)
    notes = _notes(ax)
    top, moved = WAIT_FLOOR_US, False
    for line in ax.get_lines():
        kind, _, label = (line.get_gid() or "").partition("|")
        if label not in runs or kind not in (*_CDF_KIND, "brownout"):
            continue
        if kind in _CDF_KIND:
            x, y = run_cdf(runs[label], _CDF_KIND[kind])
            top = max(top, x[-1])
            stalled = any_stall(runs[label], _CDF_KIND[kind])
        else:
            x, y = brownout_points(runs[label])
            stalled = bool((y > 0).any())
        line.set_data(x, y)
        moved = True
        if label in notes:
            notes[label].set_visible(not stalled)
            notes[label]._kvmviz_by_data = not stalled
    _stack_notes(ax)
    if moved:
        if ax.get_xscale() == "log":
            ax.set_xlim(WAIT_FLOOR_US * 0.8, max(top * 1.5, 10.0))
        else:
            ax.relim()
            ax.autoscale_view(scaley=False)
    if any((p.get_gid() or "").startswith("split|") for p in ax.patches):
        _fill_split(ax, kernel_table(runs) if table is None else table)
        for artist in _split_artists(ax):  # what the new values show, before `shown` hides
            artist._kvmviz_by_data = artist.get_visible()
    return restyle_stalls(ax, highlight=highlight, shown=shown)


def restyle_stalls(ax, *, highlight: str | None, shown=None):
    """Re-apply the highlight, and which runs are shown, to an axes drawn by
    :func:`stall_cdf`, :func:`brownout_curve` or :func:`stall_split`, without drawing
    anything new.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    highlight : str or None
        The label drawn bold (the others faint); None, every line alike.
    shown : collection of str, optional
        The labels (kernels) to draw; the lines, notes, bars, bar labels and legend entries
        of every other label are hidden (kept, with their data, for a later call to show).
        The bars of :func:`stall_split` then close up, one slot per label shown, in their
        order, each named under its bar: its x ticks and limits change, so a view that blits
        redraws ``ax.xaxis`` too. The legend of a CDF or brownout axes is made again with
        the lines shown (at the same place, in the same font). Beside the highlight, the
        other labels shown are drawn thin but not faint: the reference. None (default):
        every label, as drawn.

    Returns
    -------
    matplotlib.axes.Axes
    """
    shown = None if shown is None else set(shown)

    def drawn(label: str) -> bool:
        return shown is None or label in shown

    lines = {}
    for line in ax.get_lines():
        kind, _, label = (line.get_gid() or "").partition("|")
        if not label:
            continue
        style = _style(label, highlight)
        line.set_linewidth(style.get("linewidth", 1.8))
        alpha = style.get("alpha", 1.0)
        line.set_alpha(alpha if shown is None or label == highlight else max(alpha, 0.8))
        if kind in (*_CDF_KIND, "brownout"):
            line.set_visible(drawn(label))
            lines[line.get_label()] = line
    split = _split_artists(ax)  # (its notes are shown below, with its bars)
    for label, note in _notes(ax).items():
        alpha = _style(label, highlight).get("alpha", 1.0)
        note.set_alpha(alpha if shown is None or label == highlight else max(alpha, 0.8))
        if not split:
            note.set_visible(_by_data(note) and drawn(label))
    for artist in split:
        kind, _, rest = artist.get_gid().partition("|")
        kernel = rest.split("|")[0]
        if kind != "note":
            alpha = 1.0 if highlight in (None, kernel) else (0.45 if shown is None else 0.75)
            artist.set_alpha(alpha)
        artist.set_visible(_by_data(artist) and drawn(kernel))
    if split:
        _close_up(ax, shown)
    else:
        _stack_notes(ax)
    _legend_of_shown(ax, lines)
    return ax


def _legend_of_shown(ax, lines: dict) -> None:
    """The legend of a CDF or brownout axes, made again with the ``lines`` (by label) shown
    when they are not the ones it lists (at the same place, in the same font); its handles
    drawn as wide and as faint as their lines."""
    legend = ax.get_legend()
    if legend is not None and lines:
        visible = [line for line in lines.values() if line.get_visible()]
        if [t.get_text() for t in legend.get_texts()] != [line.get_label() for line in visible]:
            legend.remove()
            anchor = legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted())
            ncols = getattr(legend, "_kvmviz_ncols", legend._ncols)  # as asked, not as fitted
            legend = ax.legend(
                handles=visible,
                loc=legend._loc,
                bbox_to_anchor=anchor.bounds,
                borderaxespad=legend.borderaxespad,
                prop=legend.prop,
                ncols=ncols,
                frameon=legend.get_frame_on(),
            )
            legend._kvmviz_ncols = ncols
        for handle, text in zip(legend.get_lines(), legend.get_texts(), strict=False):
            line = lines.get(text.get_text())
            if line is not None:
                handle.set_linewidth(line.get_linewidth())
                handle.set_alpha(line.get_alpha())


def live_artists(ax) -> list:
    """Every artist of ``ax`` that :func:`update_stalls` and :func:`restyle_stalls` may change:
    the runs' lines, their notes, the bars of :func:`stall_split` and their labels, and the
    legend. A live view redraws these alone over a saved background
    (:class:`kvmviz.animate.Blitter`). A view passing ``shown`` to a :func:`stall_split` axes
    also redraws its ``ax.xaxis`` (the bars close up and are named again); a view that changes
    the limits, its axes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes

    Returns
    -------
    list of matplotlib.artist.Artist
    """
    live = ("cdf|", "wait-cdf|", "brownout|", "note|", "split")
    artists = [
        a for a in [*ax.patches, *ax.get_lines(), *ax.texts] if (a.get_gid() or "").startswith(live)
    ]
    legend = ax.get_legend()
    return artists + ([legend] if legend is not None else [])


def _split_artists(ax) -> list:
    """The bars of :func:`stall_split` on ``ax``, their labels, totals and notes (none on
    other axes)."""
    if not any((p.get_gid() or "").startswith("split|") for p in ax.patches):
        return []
    kinds = ("split|", "split-label|", "split-total|", "note|")
    return [a for a in [*ax.patches, *ax.texts] if (a.get_gid() or "").startswith(kinds)]


def _by_data(artist) -> bool:
    """Whether ``artist`` (a note, a bar or its label) is drawn by its run's data alone,
    before :func:`restyle_stalls`'s ``shown`` hides it: as it was when first asked, then as
    :func:`update_stalls` last set it."""
    if not hasattr(artist, "_kvmviz_by_data"):
        artist._kvmviz_by_data = artist.get_visible()
    return artist._kvmviz_by_data


def _close_up(ax, shown) -> None:
    """Put the bars of :func:`stall_split` of the kernels ``shown`` (None: all) side by side,
    one slot each in their order, named under them; the x limits fit as many slots (at least
    two, so that one bar is not drawn twice as wide)."""
    bars = [p.get_gid() for p in ax.patches if (p.get_gid() or "").startswith("split|")]
    kernels = list(dict.fromkeys(gid.split("|")[1] for gid in bars))
    visible = [k for k in kernels if shown is None or k in shown]
    slot = {kernel: j for j, kernel in enumerate(visible)}
    for artist in _split_artists(ax):
        kind, _, rest = artist.get_gid().partition("|")
        j = slot.get(rest.split("|")[0])
        if j is None:
            continue
        if kind == "split":
            artist.set_x(j - _SPLIT_WIDTH / 2)
        elif kind == "split-label" and artist.get_horizontalalignment() == "left":
            artist.xy = (j + _SPLIT_WIDTH / 2, artist.xy[1])
        else:
            artist.xy = (j, artist.xy[1])
    labels = [kernel_tick(k) for k in visible]
    ticks = ax.get_xticklabels()
    if [t.get_text() for t in ticks] != labels:
        size = {"fontsize": ticks[0].get_fontsize()} if ticks else {}
        ax.set_xticks(range(len(visible)), labels, **size)
    centre, half = (len(visible) - 1) / 2, max(len(visible), 2) / 2 + 0.1
    ax.set_xlim(centre - half, centre + half)


def _style(label: str, highlight: str | None) -> dict:
    """A run's line style, for the current page: its kernel's, its policy's, or the faults'
    colour (:mod:`kvmviz.theme`'s accessors)."""
    base = theme.policy_style(label) if label in POLICY_STYLES else theme.kernel_style(label)
    base.setdefault("label", label)
    if highlight is not None:
        if label == highlight:
            base["linewidth"] = 2.6
        else:
            base["alpha"] = 0.45
            base["linewidth"] = 1.2
    return base


def stall_cdf(runs, *, ax=None, highlight: str | None = None, per: str = "fault"):
    """Cumulative distribution of the fault stalls, one line per run.

    By default one value per *fault*: everything it lost to ``mmu_lock`` from its first exit
    to the install that sticks, its waits plus the attempts it had to retry
    (:func:`kvmviz.metrics.fault_stalls`), so that a kernel cannot look better by turning
    waits into retries. ``per="attempt"`` draws each attempt's wait for the lock instead,
    the lock's own view (chapter 03).

    Parameters
    ----------
    runs : Run, sequence of Run, or mapping of label to Run
    ax : matplotlib.axes.Axes, optional
    highlight : str, optional
        Label (kernel) to draw bold, the others faint.
    per : {"fault", "attempt"}
        One value per fault (its stall) or per fault attempt (its wait).

    Returns
    -------
    matplotlib.axes.Axes
        Each line has gid ``"cdf|<label>"`` (``"wait-cdf|<label>"`` per attempt).

    Notes
    -----
    The x axis is logarithmic; faults that never stalled sit at its left edge (0.1 µs), so the
    height of the curve there is the share that never stalled. A run with no stall at all is
    a line straight up that edge, which reads as missing data: it is named in words beside it
    ("v5.15: no fault stalled"). The legend is placed where it covers the fewest lines.
    """
    per = _check_per(per)
    spec = _PER[per]
    ax = ax or plt.gca()
    top = WAIT_FLOOR_US
    for j, (label, run) in enumerate(_runs(runs).items()):
        x, y = run_cdf(run, per)
        ax.step(x, y, where="post", gid=f"{spec['gid']}|{label}", **_style(label, highlight))
        top = max(top, x[-1])
        note = _add_note(
            ax,
            label,
            spec["none"],
            xy=(WAIT_FLOOR_US, 0.97 - _NOTE_STEP * j),
            xycoords=("data", "axes fraction"),
            offset_pt=(5, 0),
        )
        note.set_visible(not any_stall(run, per))
    ax.set_xscale("log")
    # Plain numbers (0.1, 1, 10, ...) read faster than 10^n and skip mathtext's parser.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(WAIT_FLOOR_US * 0.8, max(top * 1.5, 10.0))
    ax.set_ylim(0, 1.02)
    _stack_notes(ax)
    ax.set_xlabel(spec["xlabel"])
    ax.set_ylabel(spec["ylabel"])
    ax.set_title(spec["title"])
    ax.legend(loc="best")
    return restyle_stalls(ax, highlight=highlight)


def brownout_curve(runs, *, ax=None, bin_us: float | None = None, highlight: str | None = None):
    """The brownout over time: the share of the VM's vCPUs stalled on ``mmu_lock``, one line
    per run (:func:`kvmviz.metrics.brownout`).

    Parameters
    ----------
    runs : Run, sequence of Run, or mapping of label to Run
    ax : matplotlib.axes.Axes, optional
    bin_us : float, optional
        Averaging window, µs (default: 200 windows over the run).
    highlight : str, optional
        Label (kernel) to draw bold, the others faint.

    Returns
    -------
    matplotlib.axes.Axes
        Each line has gid ``"brownout|<label>"``; a run that never stalls is named in words
        just above the time axis ("v5.15: no vCPU stalled", gid ``"note|<label>"``).
    """
    ax = ax or plt.gca()
    for j, (label, run) in enumerate(_runs(runs).items()):
        x, y = brownout_points(run, bin_us)
        ax.step(x, y, where="post", gid=f"brownout|{label}", **_style(label, highlight))
        note = _add_note(
            ax,
            label,
            _BROWNOUT_NONE,
            xy=(0.01, 0.0),
            xycoords=("axes fraction", "data"),
            offset_pt=(0, 3 + _NOTE_STEP_PT * j),
            va="bottom",
        )
        note.set_visible(not bool((y > 0).any()))
    _stack_notes(ax)
    ax.set_ylim(0, 100)
    ax.set_xlabel("simulated time (ms)")
    ax.set_ylabel("share of the VM's vCPUs stalled (%)")
    ax.set_title("Brownout")
    return restyle_stalls(ax, highlight=highlight)


def _split_style(part: str) -> dict:
    style = theme.behind_style(part)
    return {
        "facecolor": style["color"],
        "hatch": style["hatch"],
        "edgecolor": theme.color("background"),
        "linewidth": 0.8,
    }


_SPLIT_WIDTH = 0.62
_PART_NAMES = {"miss": "misses", "hit": "hits", "fault": "faults"}
_SPLIT_HEADROOM = 1.65  # the y limit over the tallest bar: room for its total and the legend


def stall_split(table_or_runs, *, ax=None, highlight: str | None = None):
    """Each kernel's brownout split by what the stalled faults waited behind, as stacked bars.

    One bar per kernel: the share of the VM's vCPU time stalled (``brownout_mean``, written
    on top), made of the part owed to notifications that missed every memslot (grey,
    hatched: what 8931a454ae and 071064f14d87 remove), to notifications that hit guest
    memory (vermilion: a zap no kernel can skip) and, where faults take ``mmu_lock`` for
    write, to other faults only (blue, cross-hatched; drawn only when not zero). Each part
    is labelled with its value. On the volatile setup this is the figure where the part
    behind misses goes to zero on v5.15 while the part behind hits stays.

    Parameters
    ----------
    table_or_runs : pandas.DataFrame or mapping of kernel to Run
        :func:`kvmviz.metrics.kernel_table` (with ``brownout_mean``, ``brownout_miss``,
        ``brownout_hit``, ``brownout_fault``), or runs of one scenario on each kernel. A
        table with the columns ``brownout_low`` and ``brownout_high`` (the total's range,
        over seeds say, as :func:`kvmviz.experiments.headline` names them) has the range
        drawn through the top of each bar, a line with caps, the total written above it;
        ``table.attrs["range_label"]`` names it in the legend.
    ax : matplotlib.axes.Axes, optional
    highlight : str, optional
        Kernel drawn in full, the others faint.

    Returns
    -------
    matplotlib.axes.Axes
        The parts have gids ``"split|<kernel>|<part>"`` (part in :data:`kvmviz.metrics.BEHIND`),
        their labels ``"split-label|<kernel>|<part>"``, the totals ``"split-total|<kernel>"``,
        the ranges ``"split-range|<kernel>"``; a kernel with no stall at all has the note "no
        fault stalled" (``"note|<kernel>"``) where its bar would stand. :func:`update_stalls`
        moves them all to new runs (a table without the range columns hides the ranges).
    """
    table = as_kernel_table(table_or_runs)
    needed = ["brownout_mean", *(f"brownout_{part}" for part in BEHIND)]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise KeyError(f"table has no column {missing[0]!r}: expected kvmviz.metrics.kernel_table")
    ax = ax or plt.gca()
    order = kernel_order(table.index)
    for i, kernel in enumerate(order):
        for part in BEHIND:
            ax.add_patch(
                Rectangle((i - _SPLIT_WIDTH / 2, 0), _SPLIT_WIDTH, 0.0,
                          gid=f"split|{kernel}|{part}", **_split_style(part))
            )  # fmt: skip
            ax.annotate(
                "", (i, 0), xytext=(0, 0), textcoords="offset points", ha="center",
                va="center", fontsize="x-small", color=theme.color("text"),
                bbox={"boxstyle": "round,pad=0.15", "facecolor": theme.color("note_face"),
                      "edgecolor": "none",
                      "alpha": 0.85},
                gid=f"split-label|{kernel}|{part}",
            )  # fmt: skip
        ax.annotate(
            "", (i, 0), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
            fontsize="small", fontweight="bold", color=theme.color("text"),
            gid=f"split-total|{kernel}",
        )  # fmt: skip
        ax.plot(
            [i, i], [0.0, 0.0], color=theme.color("text"), linewidth=1.2, marker="_",
            markersize=7, markeredgewidth=1.2, visible=False, gid=f"split-range|{kernel}",
        )  # fmt: skip
        color = theme.kernel_style(kernel)["color"]
        zero_note(ax, i, NONE_WORDS["brownout_mean"], gid=f"note|{kernel}", color=color)
    totals = 100 * table.loc[order, "brownout_mean"].astype(float).to_numpy()
    if "brownout_high" in table.columns:
        totals = np.maximum(totals, 100 * table.loc[order, "brownout_high"].astype(float))
    top = float(np.nanmax(totals)) if len(totals) else 0.0
    ax.set_ylim(0, top * _SPLIT_HEADROOM if top > 0 else 1.0)
    ax.set_xticks(range(len(order)), [kernel_tick(k) for k in order], fontsize="small")
    ax.tick_params(axis="x", length=0)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylabel("share of the VM's vCPU time stalled (%)")
    ax.set_title("Brownout, by what the faults waited behind")
    _fill_split(ax, table)
    return restyle_stalls(ax, highlight=highlight)


def _fill_split(ax, table: pd.DataFrame) -> None:
    """Give the bars of :func:`stall_split` the values of ``table``: heights, labels, totals,
    the notes of kernels with no stall, and a legend of the parts drawn."""
    patches = {p.get_gid(): p for p in ax.patches if (p.get_gid() or "").startswith("split|")}
    texts = {t.get_gid(): t for t in ax.texts if (t.get_gid() or "").startswith(("split", "note|"))}
    kernels = list(dict.fromkeys(gid.split("|")[1] for gid in patches))
    low, high = ax.get_ylim()
    # A part too thin for its label inside has it beside the bar, right of it.
    room = 0.06 * (high - low)
    values = {
        (kernel, part): 100 * float(table.loc[kernel, f"brownout_{part}"])
        if kernel in table.index
        else 0.0
        for kernel in kernels
        for part in BEHIND
    }
    drawn = [part for part in BEHIND if any(values[k, part] > 0 for k in kernels)]
    ranges = {
        line.get_gid(): line
        for line in ax.get_lines()
        if (line.get_gid() or "").startswith("split-range|")
    }
    spans = ("low", "high")
    has_range = all(f"brownout_{e}" in table.columns for e in spans)
    for i, kernel in enumerate(kernels):
        total = 100 * float(table.loc[kernel, "brownout_mean"]) if kernel in table.index else 0.0
        parts = [part for part in BEHIND if values[kernel, part] > 0]
        bottom = 0.0
        zero_on_top = False  # a part at 0 said at the top of the stack, where the total goes
        for part in BEHIND:
            value = values[kernel, part]
            bar, label = patches[f"split|{kernel}|{part}"], texts[f"split-label|{kernel}|{part}"]
            bar.set_y(bottom)
            bar.set_height(value)
            bar.set_visible(value > 0)
            # A part the figure shows for another kernel and not this one is said to be 0 in
            # words at the foot of the bar (v5.15's misses on the volatile setup); a bar of one
            # part has its value written once, on top.
            zero = value == 0 and part in drawn and total > 0
            label.set_visible(zero or (value > 0 and len(parts) > 1))
            _place_part_label(label, part, i, bottom, value, zero=zero, room=room)
            zero_on_top = zero_on_top or (zero and not any(_after(p, part) for p in parts))
            bottom += value
        # The total's range (over seeds, say) as a bar with caps through the top of the
        # stack, the total written above whichever is higher.
        span = ranges.get(f"split-range|{kernel}")
        if span is not None:
            shown = has_range and kernel in table.index and total > 0
            if shown:
                low_, high_ = (100 * float(table.loc[kernel, f"brownout_{e}"]) for e in spans)
                span.set_data([i, i], [low_, high_])
                bottom = max(bottom, high_)
            span.set_visible(shown)
        texts[f"split-total|{kernel}"].set_text(value_label(total, "%"))
        texts[f"split-total|{kernel}"].xy = (i, bottom)
        # Above a part said to be 0 at the top of the stack (a v6.8 fault part beside v5.12).
        texts[f"split-total|{kernel}"].xyann = (0.0, 16.0 if zero_on_top else 2.0)
        texts[f"split-total|{kernel}"].set_visible(total > 0)
        texts[f"note|{kernel}"].set_visible(kernel in table.index and total == 0)
    _split_legend(ax, table, drawn, ranges)


def _after(part: str, other: str) -> bool:
    """Whether ``part`` is stacked above ``other`` in a bar of :func:`stall_split`."""
    return list(BEHIND).index(part) > list(BEHIND).index(other)


def _place_part_label(label, part: str, i: int, bottom: float, value: float, *, zero, room):
    """Write a part's value on its bar ``i`` (from ``bottom``, ``value`` high): inside it, or
    beside it, right of the bar, where the part is thinner than ``room``; a part at 0 that
    the figure shows for another kernel (``zero``) is said to be 0 at the foot of the bar."""
    if zero:
        label.set_text(f"{_PART_NAMES[part]}: 0%")
        label.xy = (i, bottom)
        label.set_horizontalalignment("center")
        label.xyann = (0.0, 7.0)
    elif value > 0:
        label.set_text(value_label(value, "%"))
        label.xy = (i, bottom + value / 2)
        if value >= room:
            label.set_horizontalalignment("center")
            label.xyann = (0.0, 0.0)
        else:
            label.set_horizontalalignment("left")
            label.xy = (i + _SPLIT_WIDTH / 2, bottom + value / 2)
            label.xyann = (3.0, 0.0)


def _split_legend(ax, table: pd.DataFrame, drawn: list, ranges: dict) -> None:
    """The legend of :func:`stall_split`: the parts ``drawn``, and the total's range where one
    of the ``ranges`` (lines, by gid) is shown."""
    handles = [
        Patch(label=theme.behind_style(part)["label"], **_split_style(part))
        for part in BEHIND
        if part in drawn
    ]
    if any(line.get_visible() for line in ranges.values()):
        handles.append(
            Line2D([], [], color=theme.color("text"), marker="|", linestyle="none",
                   markersize=9, markeredgewidth=1.2,
                   label=table.attrs.get("range_label", "range of the total"))
        )  # fmt: skip
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize="x-small")


def stall_by_kernel(runs, *, ax=None, highlight: str | None = None):
    """The fault stalls of each kernel in one static figure: their distribution, and the
    brownout split by what the faults waited behind.

    Left, :func:`stall_cdf` of every run, one value per fault (waits plus retried attempts);
    right, :func:`stall_split`: each kernel's share of the VM's vCPU time stalled, in parts
    behind misses, hits and other faults, with the notifier callbacks' mean wait for
    ``mmu_lock`` written under each bar: the readers' stall beside the writers' wait
    (:data:`kvmviz.metrics.KERNEL_TABLE_COLUMNS`), so a kernel or lock policy that moves the
    waiting onto the writers cannot look like a win.

    Parameters
    ----------
    runs : mapping of kernel to Run, or sequence of Run
        Runs of one scenario and seed on each kernel (``{k: kv.simulate(scenario, kernel=k,
        seed=0) for k in kv.KERNELS}``).
    ax : pair of Axes, optional
        ``(cdf_ax, split_ax)``; default a new figure with the two side by side
        (``fig.axes == [cdf_ax, split_ax]``).
    highlight : str, optional
        Kernel to draw bold, the others faint.

    Returns
    -------
    matplotlib.axes.Axes
        The distribution's axes (``ax.figure`` is the figure).

    Examples
    --------
    >>> static = kv.presets.static_setup()
    >>> runs = {k: kv.simulate(static, kernel=k) for k in kv.KERNELS}  # doctest: +SKIP
    >>> kv.plot.stall_by_kernel(runs)  # doctest: +SKIP
    """
    runs = _runs(runs)
    if not runs:
        raise ValueError("runs is empty: expected one Run per kernel")
    if ax is None:
        fig = plt.figure(figsize=(10, 3.8), layout="constrained")
        ax_cdf, ax_split = fig.subplots(1, 2, width_ratios=[1.5, 1])
    elif isinstance(ax, Axes):
        raise ValueError("stall_by_kernel draws two panels: pass a pair (cdf_ax, split_ax)")
    else:
        ax_cdf, ax_split = ax
    stall_cdf(runs, ax=ax_cdf, highlight=highlight)
    table = kernel_table(runs)
    stall_split(table, ax=ax_split, highlight=highlight)
    order = kernel_order(table.index)
    labels = []
    for kernel in order:
        wait = float(table.loc[kernel, "writer_wait_mean_us"])
        writers = f"writers wait\n{value_label(wait, 'µs')}"
        if int(table.loc[kernel, "lock_taken"]) == 0:
            writers = "no callback\ntook the lock"
        labels.append(f"{kernel_tick(kernel)}\n{writers}")
    ax_split.set_xticks(range(len(order)), labels, fontsize="small")
    return ax_cdf
