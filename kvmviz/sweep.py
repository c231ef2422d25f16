"""Sweeps: one scenario run over a grid of parameters, kernels and seeds, into one tidy table.

:func:`grid` is the loop every "how does it scale?" question needs: for each point of the
Cartesian product of the parameter values it builds a :class:`~kvmviz.Scenario`, simulates it on
each kernel with each seed, and measures the run (:func:`measure`: the numbers of
:func:`kvmviz.summarize` plus how long notifiers held ``mmu_lock``). One row per (point, kernel,
seed), so ``pandas`` does the rest: ``groupby`` to average seeds, ``pivot_table`` for a grid.

:func:`heatmap`, :func:`heatmaps` and :func:`curves` draw such tables (they import matplotlib on
first use; the sweep itself does not).

Examples
--------
>>> import kvmviz as kv
>>> from kvmviz import sweep
>>> base = kv.Scenario(duration_us=2_000)
>>> table = sweep.grid(base, n_vcpus=[16, 64], kernels=["v5.12", "v5.15"])
>>> table[["n_vcpus", "kernel", "seed", "p99_us"]].shape
(4, 4)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields

import numpy as np
import pandas as pd

from ._checks import check_seed
from ._progress import reporter
from .engine import simulate
from .kernels import KERNELS
from .metrics import summarize
from .rwlock import POLICIES
from .scenario import Scenario

__all__ = ["curves", "grid", "heatmap", "heatmaps", "measure"]

_SCENARIO_FIELDS = tuple(f.name for f in fields(Scenario))
# Columns the sweep itself writes next to the parameters: a parameter may not take these names.
_RESERVED = ("kernel", "seed")


def measure(run) -> pd.Series:
    """The numbers a sweep records for one run.

    Parameters
    ----------
    run : Run

    Returns
    -------
    pandas.Series
        Every entry of :func:`kvmviz.summarize`, plus ``writer_hold_mean_us`` and
        ``writer_hold_max_us`` (how long the callbacks that took ``mmu_lock`` for write held
        it, µs) and ``spurious_event_hold_us``: over the notification events that missed every
        memslot yet took the lock, the mean of their callbacks' write holds summed per event,
        µs (on v5.12 that is the memslot walk alone, docs/kernel.md §2.1: one start/end pair costs
        what one madvise costs in memslot_perf_test's "unmap"). Each is 0 when no callback
        took the lock.
    """
    notifiers = run.notifiers
    locked = notifiers["locked"].to_numpy(dtype=bool)
    hold = notifiers["hold_us"].to_numpy(dtype=float)
    spurious = locked & ~notifiers["hit"].to_numpy(dtype=bool)
    # An event's callbacks share its hva range, so they all hit or all miss.
    per_event = pd.Series(hold[spurious]).groupby(notifiers["event"].to_numpy()[spurious]).sum()
    extra = {
        "writer_hold_mean_us": float(hold[locked].mean()) if locked.any() else 0.0,
        "writer_hold_max_us": float(hold[locked].max()) if locked.any() else 0.0,
        "spurious_event_hold_us": float(per_event.mean()) if len(per_event) else 0.0,
    }
    return pd.concat([summarize(run), pd.Series(extra)])


def grid(
    scenario: Scenario | None = None,
    *,
    kernels: Sequence[str] = KERNELS,
    seeds: Sequence[int] = (0,),
    policy: str = "qrwlock",
    build: Callable[..., Scenario] | None = None,
    measure: Callable = measure,
    progress=None,
    **axes: Sequence,
) -> pd.DataFrame:
    """Simulate ``scenario`` at every point of a parameter grid, on each kernel and seed.

    Parameters
    ----------
    scenario : Scenario, optional
        The base scenario; default ``Scenario()``.
    kernels : sequence of str
        Kernels to run each point on; default all of :data:`kvmviz.KERNELS`.
    seeds : sequence of int
        Seeds to run each (point, kernel) with; average over them with ``groupby``.
    policy : {"qrwlock", "reader-pref", "spinlock"}
        The lock, as in :func:`kvmviz.simulate`.
    build : callable, optional
        ``build(scenario, **point) -> Scenario``, for axes that are not fields of
        :class:`~kvmviz.Scenario` (e.g. ``n_memslots`` turned into a ``layout``). Called once
        per point, before the kernels and seeds run on it. Default:
        ``scenario.replace(**point)``.
    measure : callable
        ``measure(run)`` -> a mapping or :class:`pandas.Series` of numbers; default
        :func:`measure`.
    progress : None, True or callable, optional
        ``True``: a progress bar (an ipywidgets ``IntProgress`` in a Jupyter kernel, else one
        self-overwriting line on stderr). A callable is called as ``progress(done, total)``
        after each simulation, counted in runs.
    **axes : sequence
        The grid: parameter name -> the values it takes, e.g. ``n_vcpus=[64, 128, 256]``. The
        points are the Cartesian product, in the order the axes are given.

    Returns
    -------
    pandas.DataFrame
        One row per (point, kernel, seed), in that nesting order: one column per axis, then
        ``kernel``, ``seed`` and the columns ``measure`` returns.

    Raises
    ------
    ValueError
        No axes, an axis without values, an axis named ``kernel`` or ``seed``, without
        ``build`` an axis that is not a ``Scenario`` field, or an unknown kernel or policy.

    Examples
    --------
    >>> import kvmviz as kv
    >>> from kvmviz import sweep
    >>> layouts = {n: kv.presets.many_memslots_layout(n) for n in (10, 1000)}
    >>> table = sweep.grid(
    ...     kv.Scenario(n_vcpus=32, duration_us=2_000),
    ...     kernels=["v5.12"],
    ...     build=lambda s, n_memslots: s.replace(layout=layouts[n_memslots]),
    ...     n_memslots=[10, 1000],
    ... )
    >>> list(table["n_memslots"])
    [10, 1000]
    """
    scenario = Scenario() if scenario is None else scenario
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a kvmviz.Scenario, got {type(scenario).__name__}")
    if not axes:
        raise ValueError("no axes to sweep: pass at least one, e.g. n_vcpus=[64, 128, 256]")
    for name, values in axes.items():
        if name in _RESERVED:
            raise ValueError(f"an axis may not be called {name!r}: use kernels= or seeds=")
        if build is None and name not in _SCENARIO_FIELDS:
            raise ValueError(
                f"{name!r} is not a Scenario parameter (expected one of "
                f"{', '.join(_SCENARIO_FIELDS)}); pass build= to turn it into one"
            )
        if not _is_sequence(values):
            raise TypeError(f"axis {name!r} needs a sequence of values, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"axis {name!r} needs a non-empty sequence of values, got {values!r}")
    # A lone string or number is not a list of them: "v5.12" would become five kernels.
    for label, values, example in (("kernels", kernels, '["v5.12"]'), ("seeds", seeds, "[0, 1]")):
        if not _is_sequence(values):
            raise TypeError(f"{label} = {values!r}: expected a sequence, e.g. {label}={example}")
    kernels, seeds = list(kernels), [check_seed(s, "seeds") for s in seeds]
    unknown = [k for k in kernels if not isinstance(k, str) or k not in KERNELS]
    if unknown or not kernels:
        raise ValueError(f"kernels must be a non-empty subset of {KERNELS}, got {kernels}")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if policy not in POLICIES:
        raise ValueError(f"unknown lock policy {policy!r}; expected one of {POLICIES}")
    report = reporter(progress, "sweep", _describe_runs, "done, total")

    names = list(axes)
    points = list(itertools.product(*(axes[n] for n in names)))
    total = len(points) * len(kernels) * len(seeds)
    rows, done = [], 0
    for values in points:
        point = dict(zip(names, values, strict=True))
        at = build(scenario, **point) if build is not None else scenario.replace(**point)
        for kernel in kernels:
            for seed in seeds:
                measured = measure(simulate(at, kernel, policy, seed))
                rows.append({**point, "kernel": kernel, "seed": seed, **dict(measured)})
                done += 1
                if report is not None:
                    report(done, total)
    return pd.DataFrame(rows)


def _is_sequence(values) -> bool:
    """A list-like of values (list, tuple, range, array, Series), not a lone string or number."""
    if isinstance(values, str | bytes):
        return False
    return isinstance(values, Sequence | np.ndarray | pd.Series | pd.Index)


def _describe_runs(done: int, total: int) -> str:
    return f"{done} / {total} runs"


# --------------------------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------------------------
_HEATMAP_CMAP = "YlOrBr"  # ColorBrewer sequential, colour-blind safe; orange means stalled


def _describe(value: str) -> tuple[str, str, float]:
    """(what, unit, factor) of a measured column, from the table of :mod:`kvmviz.plot`."""
    from .plot import _METRICS

    extra = {
        "writer_hold_mean_us": ("mean mmu_lock write hold", "µs", 1.0),
        "writer_hold_max_us": ("longest mmu_lock write hold", "µs", 1.0),
        "spurious_event_hold_us": ("mmu_lock write hold per spurious event", "µs", 1.0),
    }
    return {**_METRICS, **extra}.get(value, (value, "", 1.0))


def _label(name: str, labels: Mapping[str, str] | None) -> str:
    return (labels or {}).get(name, name)


def _cell_text(value: float, unit: str) -> str:
    if not np.isfinite(value):
        return ""
    if value == 0:
        return "0"
    if unit == "%":
        return f"{value:.1f}" if value < 10 else f"{value:.0f}"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2g}"


def heatmap(
    table: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    *,
    ax=None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = _HEATMAP_CMAP,
    colorbar: bool = True,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
):
    """One measured column over two axes of a sweep, as an annotated grid of coloured cells.

    Rows with the same ``(x, y)`` (several seeds, say) are averaged. ``y`` grows upwards.

    Parameters
    ----------
    table : pandas.DataFrame
        A :func:`grid` table, or any tidy table with columns ``x``, ``y`` and ``value``;
        filter it to one kernel first.
    x, y : str
        Columns for the horizontal and vertical axes.
    value : str
        The column to colour by. Known metrics (``"p99_us"``, ``"brownout_mean"``, ...) get
        their unit; shares are shown in %.
    ax : matplotlib.axes.Axes, optional
    vmin, vmax : float, optional
        Colour scale, in the unit shown (% for shares); default the data's range, from 0.
    cmap : str
        A sequential colormap; default ColorBrewer ``"YlOrBr"`` (colour-blind safe).
    colorbar : bool
        Draw a colour bar labelled with the metric and its unit.
    labels : mapping, optional
        Axis labels for the column names, e.g. ``{"n_vcpus": "vCPUs"}``.
    title : str, optional
        Default: the metric.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    what, unit, factor = _describe(value)
    cells = table.pivot_table(index=y, columns=x, values=value, aggfunc="mean") * factor
    cells = cells.sort_index(ascending=True)
    data = cells.to_numpy(dtype=float)
    vmin = 0.0 if vmin is None else vmin
    vmax = float(np.nanmax(data)) if vmax is None else vmax
    vmax = max(vmax, vmin + 1e-12)
    mesh = ax.pcolormesh(
        np.arange(data.shape[1] + 1),
        np.arange(data.shape[0] + 1),
        data,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        edgecolors="white",
        linewidth=1.0,
    )
    colormap = mesh.get_cmap()
    for (i, j), v in np.ndenumerate(data):
        shade = colormap((v - vmin) / (vmax - vmin)) if np.isfinite(v) else (1, 1, 1, 1)
        dark = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] < 0.5
        ax.text(
            j + 0.5,
            i + 0.5,
            _cell_text(v, unit),
            ha="center",
            va="center",
            fontsize="small",
            color="white" if dark else "#222222",
        )
    ax.set_xticks(np.arange(data.shape[1]) + 0.5, [f"{c:g}" for c in cells.columns])
    ax.set_yticks(np.arange(data.shape[0]) + 0.5, [f"{r:g}" for r in cells.index])
    ax.tick_params(length=0)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(_label(x, labels))
    ax.set_ylabel(_label(y, labels))
    ax.set_title(what if title is None else title)
    if colorbar:
        bar = ax.figure.colorbar(mesh, ax=ax, shrink=0.9)
        bar.set_label(f"{what} ({unit})" if unit else what)
        bar.outline.set_visible(False)
    return ax


def heatmaps(
    table: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    *,
    col: str = "kernel",
    order: Sequence | None = None,
    labels: Mapping[str, str] | None = None,
    titles: Mapping | None = None,
    cmap: str = _HEATMAP_CMAP,
    figsize: tuple[float, float] | None = None,
):
    """:func:`heatmap` once per value of ``col`` (each kernel, say), on one shared colour scale.

    Parameters
    ----------
    table : pandas.DataFrame
    x, y, value : str
        As in :func:`heatmap`.
    col : str
        One panel per value of this column, default ``"kernel"``.
    order : sequence, optional
        Which values of ``col`` to draw, in order; default all, sorted.
    labels : mapping, optional
        Axis labels for column names.
    titles : mapping, optional
        Panel title per value of ``col``; default ``"<col value>"``.
    cmap : str
    figsize : (float, float), optional
        Inches; default 4.6 wide per panel plus the colour bar, 4 high.

    Returns
    -------
    matplotlib.figure.Figure
        Its axes: the panels, then the colour bar. With several panels the x label is written
        once, under all of them (``fig.supxlabel``).
    """
    import matplotlib.pyplot as plt

    order = sorted(table[col].unique()) if order is None else list(order)
    what, unit, factor = _describe(value)
    means = table.groupby([col, x, y])[value].mean() * factor
    vmax = float(means.max()) if len(means) else 1.0
    width = 4.6 * len(order) + 1.0
    fig, axes = plt.subplots(
        1, len(order), figsize=figsize or (width, 4.0), sharey=True, layout="constrained"
    )
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, order, strict=True):
        heatmap(
            table[table[col] == key],
            x,
            y,
            value,
            ax=ax,
            vmax=vmax,
            cmap=cmap,
            colorbar=False,
            labels=labels,
            title=(titles or {}).get(key, f"{key}"),
        )
    for ax in axes[1:]:
        ax.set_ylabel("")
    if len(axes) > 1:
        # One x label under all the panels: a long one repeated per panel runs into its neighbour.
        size = axes[0].xaxis.label.get_fontsize()
        fig.supxlabel(axes[0].get_xlabel(), fontsize=size)
        for ax in axes:
            ax.set_xlabel("")
    bar = fig.colorbar(axes[0].collections[0], ax=list(axes), shrink=0.9)
    bar.set_label(f"{what} ({unit})" if unit else what)
    bar.outline.set_visible(False)
    return fig


_CURVE_STYLES = (
    {"color": "#333333", "linestyle": "-", "marker": "o"},
    {"color": "#0173b2", "linestyle": "-", "marker": "s"},
    {"color": "#949494", "linestyle": "--", "marker": "^"},
    {"color": "#029e73", "linestyle": ":", "marker": "D"},
)


def curves(
    table: pd.DataFrame,
    x: str,
    y: str,
    *,
    hue: str,
    ax=None,
    styles: Mapping | None = None,
    logx: bool = True,
    logy: bool = False,
    labels: Mapping[str, str] | None = None,
    marks: Mapping[float, str] | None = None,
    title: str | None = None,
):
    """One measured column against one axis of a sweep, a line per value of ``hue``.

    Rows with the same ``(hue, x)`` are averaged. Each line is named at its right end instead
    of in a legend, and differs from the others by colour, line style and marker, so the figure
    survives grey-scale printing.

    Parameters
    ----------
    table : pandas.DataFrame
    x, y : str
        Columns for the horizontal and vertical axes; known metrics get their unit.
    hue : str
        One line per value of this column (e.g. a ``label`` column made for the purpose).
    ax : matplotlib.axes.Axes, optional
    styles : mapping, optional
        ``{hue value: dict of Line2D properties}``; default greys, blue, green in turn.
    logx, logy : bool
        Logarithmic axes; default log x only.
    labels : mapping, optional
        Axis labels for column names (for ``y``, the default is the metric and its unit).
    marks : mapping, optional
        ``{x value: text}``: a thin vertical line at each, labelled at the top (a limit, a
        default, ...).
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax = ax or plt.gca()
    what, unit, factor = _describe(y)
    means = table.groupby([hue, x], sort=False)[y].mean() * factor
    keys = list(dict.fromkeys(means.index.get_level_values(0)))
    for i, key in enumerate(keys):
        line = means.loc[key].sort_index()
        style = (styles or {}).get(key, _CURVE_STYLES[i % len(_CURVE_STYLES)])
        style = {"markersize": 5, "linewidth": 1.8, **style}
        ax.plot(line.index.to_numpy(), line.to_numpy(), label=str(key), gid=f"curve|{key}", **style)
        ax.annotate(
            str(key),
            (line.index[-1], line.iloc[-1]),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
            color=style.get("color", "#222222"),
        )
    if logx:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    else:
        ax.set_ylim(bottom=0)
    for at, text in (marks or {}).items():
        ax.axvline(at, color="#bbbbbb", linewidth=0.8, zorder=0, gid=f"mark|{at:g}")
        ax.annotate(
            text,
            (at, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -2),
            textcoords="offset points",
            va="top",
            fontsize="x-small",
            color="#555555",
        )
    ax.set_xlabel(_label(x, labels))
    ax.set_ylabel((labels or {}).get(y, f"{what} ({unit})" if unit else what))
    ax.set_title(what if title is None else title)
    return ax
