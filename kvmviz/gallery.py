"""The named blog figures and animations, one builder each: ``kvmviz figures`` and ``examples/``.

Each figure has a name (its file name, a key of :data:`FIGURES`) and a builder that draws it
from seeded simulations with the functions of :mod:`kvmviz.plot` and :mod:`kvmviz.timelines`.
Everything that shows one of them calls that builder:

* :func:`render` draws one figure (``examples/<name>.py`` save it with :func:`kvmviz.plot.save`),
  of the VM and kernels of one's choice (``scenario=``, ``kernels=``) and at the width of
  one's page (``width=``, inches or a name of :data:`WIDTHS`);
* :func:`render_all` writes them all, and the standard animations, reproducibly (the same seed
  gives byte-identical SVG files), all or nothing: that is ``kvmviz figures``;
* :func:`caption` gives a figure's caption as text (its alt text, when drawn without title);
* :func:`table` gives the text tables of :data:`TABLES` (``examples/contention_table.py``).

The gallery is a controller: it simulates (:func:`kvmviz.simulate`,
:mod:`kvmviz.experiments`) and hands the tables to the views. The animations of
:mod:`kvmviz.animate` are built here too (:func:`standard_animations`) and written by
:func:`render_animations`.

Sizes
-----
A figure is laid out for its width, never scaled: ``width=`` sets how wide it is in inches,
the text keeps the size the theme's context gives it (:func:`kvmviz.set_theme`), and the
layout makes room for that text. So a larger context makes the text larger *relative to the
figure*, and a narrow figure stacks panels that stand side by side in a wide one (three bar
charts become three rows); the height follows from the layout.
"""

from __future__ import annotations

import contextlib
import math
import textwrap
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._shared._checks import strict_booleans
from ._shared._files import check_free, staged_folder
from ._shared._prose import pct
from .inputs import presets
from .inputs.kernels import KERNELS_2021, RELEASES, resolve
from .inputs.notifiers import generate_stream
from .inputs.presets import SETUPS, VMM_HEAP, q35_512m_layout, static_setup, volatile_setup
from .inputs.scenario import Scenario
from .model import classify
from .model.engine import simulate
from .stats import experiments, metrics
from .views import animate, plot, theme, timelines
from .views._fit import fit_text

__all__ = [
    "ANIMATION_FORMATS",
    "FIGURES",
    "FIGURE_FORMATS",
    "FORMATS",
    "MEMSLOT_SCENARIO",
    "QUEUE_SCENARIO",
    "TABLES",
    "WIDTHS",
    "caption",
    "render",
    "render_all",
    "render_animations",
    "standard_animations",
    "table",
]

FIGURE_FORMATS = plot.FIGURE_FORMATS
FORMATS = FIGURE_FORMATS  # the name before the traces and animations had formats of their own
ANIMATION_FORMATS = ("html", "gif")

WIDTHS = {"column": 6.5, "wide": 10.0}
"""Named figure widths, inches, for ``width=`` and ``kvmviz figures --width``.

* ``"column"``, 6.5 in: a blog's text column (720 CSS px and less) and a US-letter page
  between 1-inch margins. Saved at ``savefig.dpi`` = 200 it is 1,300 px wide, shown in a
  720 px column at 111 px per inch: the paper context's 8.8 pt tick labels are 13 px there,
  where the 10 in figure they used to be shrunk from made them 9 px (and its small text 6).
* ``"wide"``, 10 in: the gallery's own width for its multi-panel figures (the README's, a
  full-width page or a slide), panels side by side.

``width=None`` keeps each figure's own width: 10 in, or 6.4 in for the one-panel figures.
"""

# The VM of the notebooks: 416 vCPUs, 12 TiB, every parameter at its cited default (the maps of
# its memslots and the perf-lock tables).
LARGE_VM = presets.LARGE_VM
# The two setups of 8931a454ae's message (kvmviz.presets): the chapter-04 figures open on the
# static one, where v5.15 stalls nothing, and show the volatile one where it makes the point.
STATIC = static_setup()
VOLATILE = volatile_setup()
SETUP_NAMES = {STATIC: "static", VOLATILE: "volatile"}
# A fault storm on a small VM (guest runs 10 µs between faults, 5,000 notifications a second),
# so that a window of a few tens of µs shows readers queueing behind a writer.
SMALL_VM = presets.STORM_FIGURE_VM
# The memslot maps draw the notifications of a longer stretch (200 ms) than the runs (20 ms),
# so that a few of the rare hits show up; only the stream is generated, nothing is simulated.
MAP_DURATION_US = 200_000.0
# The seeds of a headline's range: the headline itself is the render's seed (the dashboard's
# and chapter 04's seed 0), its range the lowest to highest over this many seeds from it; the
# headline-ranges figure averages over them.
HEADLINE_SEEDS = 4

# The standard animations' workloads (free parameters, chosen to be watched). The queue: the
# static setup on 24 vCPUs (every waiter fits on screen) faulting every ~30 µs of guest time, so
# that several readers are inside at once when a spurious writer arrives.
QUEUE_SCENARIO = presets.QUEUE_STORY_VM
# Hits and misses in even measure, so both are seen landing within a few seconds.
MEMSLOT_SCENARIO = presets.MEMSLOT_STORY_VM

# The commits the comparison figures are about (docs/kernel.md §1.3-1.5).
_COMMITS = {
    "v5.13": "8931a454ae: an unpaired notifier callback takes mmu_lock only if its range hits "
    "a memslot",
    "v5.15": "071064f14d87: a start/end pair takes mmu_lock only if its range hits a memslot",
}

# Below this width per em of text (inches at the paper context's fonts), panels side by side
# would crowd their labels: they are stacked instead.
_SIDE_BY_SIDE_IN = {2: 7.5, 3: 8.5}
# Height of a panel's text around its plot (title, tick labels, axis label), inches at paper
# size: it grows with the context's fonts, the plot itself with the width.
_DECOR_IN = 1.0


def _font_scale(context: str) -> float:
    """The context's text size over the paper context's (1, 1.25, 1.875, 2.5)."""
    return theme.rc_params(context)["font.size"] / theme.rc_params("paper")["font.size"]


class _Render:
    """What the builders share in one render: seed, layout (width, text size), the VM and
    kernels asked for, and the runs made so far.

    ``cache`` may be shared between renders (a dict): runs, streams and sensitivity tables
    depend only on their scenario, kernel and seeds, not on the layout.
    """

    def __init__(
        self,
        seed: int = 0,
        context: str = "paper",
        *,
        width: float | None = None,
        scenario: Scenario | None = None,
        kernels: tuple[str, ...] | None = None,
        title: bool = True,
        cache: dict | None = None,
    ) -> None:
        self.seed = seed
        self.context = context
        self.em = _font_scale(context)
        self.width = width
        self.scenario = scenario
        self.kernels = kernels
        self.title = title
        self._cache = _SHARED if cache is None and _SHARED is not None else cache
        if self._cache is None:
            self._cache = {}

    # -- layout ------------------------------------------------------------------------------
    def figure_width(self, default: float) -> float:
        """The figure's width, inches: the one asked for, else the figure's own."""
        return default if self.width is None else self.width

    def side_by_side(self, width: float, panels: int) -> bool:
        """Whether ``panels`` panels fit side by side in ``width`` inches at this text size."""
        return width / self.em >= _SIDE_BY_SIDE_IN[panels]

    def panel_height(self, plot_in: float, width: float, default_width: float) -> float:
        """A panel's height: its plot, ``plot_in`` inches at the figure's own width (following
        the width, within 80-120 %), and its text around it at this context's size."""
        scale = min(max(width / default_width, 0.8), 1.2)
        return plot_in * scale + _DECOR_IN * self.em

    def caption_height(self, text: str, width: float) -> float:
        """Room for a caption of ``text`` at ``width`` inches (it wraps) beyond the one line
        every figure's height allows for, inches (a line less without a title)."""
        size = theme.rc_params(self.context)["font.size"]  # "medium", bold
        line = 1.35 * size / 72
        if not self.title:
            return -line
        per_line = max(int(width * 72 / (0.62 * size)), 20)
        return line * (len(textwrap.wrap(text, per_line)) - 1)

    def figure(self, width_in: float, height_in: float) -> Figure:
        """A new figure of this size, inches."""
        # Figure, not pyplot: no GUI backend, no global figure list to leak into. On an Agg
        # canvas, the renderer kvmviz.views._fit lays it out and measures its text with.
        fig = Figure(figsize=(width_in, height_in), layout="constrained")
        FigureCanvasAgg(fig)
        return fig

    # -- what to draw ------------------------------------------------------------------------
    def vm(self, default: Scenario) -> Scenario:
        """The scenario asked for, else the figure's own."""
        return default if self.scenario is None else self.scenario

    def kernel_list(self, default: Sequence[str]) -> list[str]:
        """The kernels asked for, else the figure's own."""
        return list(default if self.kernels is None else self.kernels)

    # -- simulations, each made once ---------------------------------------------------------
    def run(self, scenario: Scenario, kernel: str, seed: int | None = None):
        seed = self.seed if seed is None else seed
        key = ("run", scenario, kernel, seed)
        if key not in self._cache:
            self._cache[key] = simulate(scenario, kernel, "qrwlock", seed)
        return self._cache[key]

    def runs(self, scenario: Scenario, kernels: Sequence[str], seed: int | None = None) -> dict:
        return {kernel: self.run(scenario, kernel, seed) for kernel in kernels}

    def table(self, scenario: Scenario, kernels: Sequence[str], seed: int | None = None):
        """:func:`kvmviz.metrics.kernel_table` of :meth:`runs` (a copy)."""
        seed = self.seed if seed is None else seed
        key = ("table", scenario, tuple(kernels), seed)
        if key not in self._cache:
            self._cache[key] = metrics.kernel_table(self.runs(scenario, kernels, seed))
        return self._cache[key].copy()

    def seeds(self) -> tuple[int, ...]:
        """The seeds of a headline's range: :data:`HEADLINE_SEEDS` from the render's."""
        return tuple(range(self.seed, self.seed + HEADLINE_SEEDS))

    def sensitivity(self, scenario: Scenario, kernels: Sequence[str]):
        """:func:`kvmviz.experiments.sensitivity` over :meth:`seeds`."""
        key = ("sensitivity", scenario, tuple(kernels), self.seeds())
        if key not in self._cache:
            self._cache[key] = experiments.sensitivity(
                scenario, seeds=self.seeds(), kernels=list(kernels)
            )
        return self._cache[key]

    def stream(self, scenario: Scenario):
        """A notification stream with the hit column the memslot maps need."""
        key = ("stream", scenario, self.seed)
        if key not in self._cache:
            stream = generate_stream(scenario, self.seed)
            stream["hit"] = classify.event_hits(stream, scenario.layout)
            self._cache[key] = stream
        return self._cache[key]


# A cache every render shares while _shared_runs() is active (the layout tests draw each
# figure in many sizes from the same runs).
_SHARED: dict | None = None


@contextlib.contextmanager
def _shared_runs():
    """Within this block every render shares one cache of runs, streams and sweeps."""
    global _SHARED
    previous, _SHARED = _SHARED, {} if _SHARED is None else _SHARED
    try:
        yield _SHARED
    finally:
        _SHARED = previous


# --------------------------------------------------------------------------------------------
# Captions: the suptitle, or text beside the figure.
# --------------------------------------------------------------------------------------------
_CAPTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _caption(fig: Figure, render: _Render, text: str, **style) -> None:
    """Give ``fig`` its caption: kept for :func:`caption`, drawn as the suptitle if the render
    has titles (wrapped to the figure's width)."""
    _CAPTIONS[fig] = text
    if render.title:
        style = {"x": 0.01, "ha": "left", "fontweight": "bold", **style}
        fig.suptitle(text, fontsize="medium", wrap=True, **style)


def caption(fig: Figure) -> str:
    """The caption of a figure of the gallery, as text: its suptitle, or, drawn with
    ``title=False``, what the suptitle would have said (the alt text of a blog's image).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Drawn by :func:`render`.

    Returns
    -------
    str

    Examples
    --------
    >>> fig = kv.gallery.render("brownout", title=False)  # doctest: +SKIP
    >>> kv.gallery.caption(fig)  # doctest: +SKIP
    'The static setup (416 vCPUs, every MMU notification spurious): ...'
    """
    if fig in _CAPTIONS:
        return _CAPTIONS[fig]
    if fig.get_suptitle():
        return fig.get_suptitle()
    raise ValueError("this figure has no caption: expected a figure of kvmviz.gallery.render")


# --------------------------------------------------------------------------------------------
# Words for what a figure shows.
# --------------------------------------------------------------------------------------------
def _notifications(stream) -> str:
    return (
        f"{len(stream):,} MMU notifications in {MAP_DURATION_US / 1000:.0f} ms, "
        f"{int(stream['hit'].sum()):,} of them hit guest memory"
    )


def _brownout(share: float) -> str:
    """A brownout as the captions and line labels write it: the README's and the
    dashboard's format (:func:`kvmviz._shared._prose.pct`, "12.5 %"), "none" at exactly 0."""
    return "none" if share == 0 else pct(share)


def _setup_name(scenario: Scenario) -> str:
    """The setup whose notifications ``scenario`` has, or ``"custom"``."""
    for name in SETUPS:
        if presets.with_setup(scenario, name) == scenario:
            return name
    return "custom"


def _describe_setup(scenario: Scenario) -> str:
    """What a setup's notifications are, from its own parameters."""
    name = _setup_name(scenario)
    guest = scenario.notifier_rate_hz * (1 - scenario.spurious_share)
    if guest == 0:
        what = "every MMU notification spurious"
    else:
        what = f"{guest:,.0f} of {scenario.notifier_rate_hz:,.0f} notifications/s on guest memory"
    if not scenario.tdp_mmu:
        what += ", shadow MMU"
    return f"the {name} setup ({scenario.n_vcpus:,} vCPUs, {what})"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _kernel_count(kernels: Sequence[str]) -> str:
    words = {1: "one kernel", 2: "two kernels", 3: "three kernels"}
    return words.get(len(kernels), f"{len(kernels)} kernels")


def _each(values: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    values = list(values)
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


# --------------------------------------------------------------------------------------------
# The figures.
# --------------------------------------------------------------------------------------------
def _memslot_figure(render: _Render, layout, stream, title: str) -> Figure:
    rows = len({s.as_id for s in layout})
    width = render.figure_width(10.0)
    plots = 0.6 + 1.2 * rows  # the two maps' bars, at the figure's own width
    height = render.panel_height(plots, width, 10.0) + render.em * 1.0  # two panels' text
    fig = render.figure(width, height + render.caption_height(title, width))
    axes = fig.subplots(2, 1, height_ratios=[rows + 1, rows])
    plot.memslot_map(layout, stream, ax=axes, regions=[VMM_HEAP], gfn_view=True)
    _caption(fig, render, title)
    return fig


def _fig_memslots_large_vm(render: _Render) -> Figure:
    """The 12 TiB VM's memslots, hva and gfn sides, with 200 ms of notifications on them.

    ``scenario``: the VM whose memslots (its ``layout``) and notifications are drawn."""
    scenario = render.vm(LARGE_VM).replace(duration_us=MAP_DURATION_US)
    stream = render.stream(scenario)
    ram_tib = sum(s.size_bytes for s in scenario.layout if s.as_id == 0) / 2**40
    return _memslot_figure(
        render,
        scenario.layout,
        stream,
        f"A {ram_tib:.0f} TiB q35 VM: {_notifications(stream)}",
    )


def _fig_memslots_q35(render: _Render) -> Figure:
    """The memslots QEMU 7.2 registers for ``-machine q35 -m 512``, with notifications.

    ``scenario``: whose notifications (rate, spurious share, causes) land on the q35
    memslots; the layout stays q35's."""
    scenario = render.vm(Scenario()).replace(layout=q35_512m_layout(), duration_us=MAP_DURATION_US)
    stream = render.stream(scenario)
    return _memslot_figure(
        render,
        scenario.layout,
        stream,
        f"qemu-system-x86_64 -machine q35 -m 512: {_notifications(stream)}",
    )


def _one_panel(render: _Render, text: str) -> tuple[Figure, object]:
    width = render.figure_width(6.4)
    height = render.panel_height(3.0, width, 6.4) + render.caption_height(text, width)
    fig = render.figure(width, height)
    return fig, fig.subplots()


def _fig_stall_cdf(render: _Render) -> Figure:
    """Each fault's stall on the three kernels, as cumulative distributions (static setup)."""
    scenario = render.vm(STATIC)
    text = _sentence(_describe_setup(scenario))
    fig, ax = _one_panel(render, text)
    plot.stall_cdf(render.runs(scenario, render.kernel_list(KERNELS_2021)), ax=ax)
    _caption(fig, render, text)
    return fig


def _fig_brownout(render: _Render) -> Figure:
    """The share of the VM's vCPUs stalled over time on the three kernels (static setup)."""
    scenario = render.vm(STATIC)
    text = _sentence(_describe_setup(scenario))
    fig, ax = _one_panel(render, text)
    plot.brownout_curve(render.runs(scenario, render.kernel_list(KERNELS_2021)), ax=ax)
    _label_lines(ax)
    _caption(fig, render, text)
    return fig


def _panels(render: _Render, n: int, plot_in: float, text: str, **grid) -> tuple[Figure, list]:
    """``n`` panels side by side at the figure's own width (10 in), stacked when narrow."""
    width = render.figure_width(10.0)
    extra = render.caption_height(text, width)
    if render.side_by_side(width, n):
        fig = render.figure(width, render.panel_height(plot_in, width, 10.0) + extra)
        axes = fig.subplots(1, n, **grid)
    else:
        # Stacked, each panel full width: its plot a little lower than side by side.
        per = render.panel_height(0.8 * plot_in, width, 10.0)
        fig = render.figure(width, n * per + extra)
        grid = {k.replace("width_ratios", "height_ratios"): v for k, v in grid.items()}
        if "height_ratios" in grid:
            grid["height_ratios"] = [1] * n
        axes = fig.subplots(n, 1, **grid)
    return fig, list(np.ravel(axes))


def _fig_kernel_comparison(render: _Render) -> Figure:
    """Cause and effect per kernel: callbacks taking the lock, p99 stall per fault, share of
    the VM's vCPU time stalled (static setup)."""
    scenario = render.vm(STATIC)
    kernels = render.kernel_list(KERNELS_2021)
    table = render.table(scenario, kernels)
    text = (
        f"{_sentence(_describe_setup(scenario))}: the same workload and "
        f"{scenario.duration_us / 1000:.0f} ms of notifications on {_kernel_count(kernels)}"
    )
    fig, axes = _panels(render, 3, 2.4, text)
    for ax, metric in zip(axes, ("lock_taken", "stall_p99_us", "brownout_mean"), strict=True):
        plot.kernel_bars(table, ax=ax, metric=metric)
    _caption(fig, render, text)
    return fig


def _stall_by_kernel(render: _Render, scenario: Scenario) -> Figure:
    kernels = render.kernel_list(KERNELS_2021)
    text = f"{_sentence(_describe_setup(scenario))} on {_kernel_count(kernels)}"
    fig, axes = _panels(render, 2, 2.8, text, width_ratios=[1.5, 1])
    plot.stall_by_kernel(render.runs(scenario, kernels), ax=axes)
    _caption(fig, render, text)
    return fig


def _fig_stall_by_kernel(render: _Render) -> Figure:
    """Chapter 04's static per-kernel figure on the static setup: each fault's stall as a
    distribution, and each kernel's brownout split by what the faults waited behind, with its
    writers' mean wait."""
    return _stall_by_kernel(render, render.vm(STATIC))


def _fig_stall_by_kernel_volatile(render: _Render) -> Figure:
    """The same figure on the volatile setup: v5.15 still stalls, behind hits.

    ``scenario``: the VM the volatile setup's notifications are applied to."""
    return _stall_by_kernel(render, presets.with_setup(render.vm(STATIC), "volatile"))


def _split_table(render: _Render, scenario: Scenario, kernels: Sequence[str]):
    """:func:`kvmviz.metrics.kernel_table` at the render's seed, with the lowest and highest
    brownout over :meth:`_Render.seeds` (``brownout_low``, ``brownout_high``)."""
    table = render.table(scenario, kernels)
    per_seed = [render.table(scenario, kernels, seed)["brownout_mean"] for seed in render.seeds()]
    table["brownout_low"] = np.min(per_seed, axis=0)
    table["brownout_high"] = np.max(per_seed, axis=0)
    seeds = render.seeds()
    table.attrs["range_label"] = f"lowest to highest, seeds {seeds[0]}-{seeds[-1]}"
    return table


def _fig_stall_split(render: _Render) -> Figure:
    """The brownout split by what the faults waited behind, static and volatile side by side:
    the part behind misses goes to zero on v5.15 in both, the part behind hits stays.

    The bars are the render's seed (the dashboard's and chapter 04's seed 0), each total
    marked with its range over :data:`HEADLINE_SEEDS` seeds from it. ``scenario``: the VM
    (size, memory, timings) both setups' notifications are applied to."""
    vm = render.vm(STATIC)
    kernels = render.kernel_list(KERNELS_2021)
    seeds = render.seeds()
    text = (
        f"What the stalled faults of a {vm.n_vcpus:,}-vCPU VM waited behind, on "
        f"{_kernel_count(kernels)} (seed {render.seed}; marks: the range over seeds "
        f"{seeds[0]}-{seeds[-1]})"
    )
    fig, axes = _panels(render, 2, 2.8, text, sharey=True)
    for ax, setup in zip(axes, SETUPS, strict=True):
        scenario = presets.with_setup(vm, setup)
        plot.stall_split(_split_table(render, scenario, kernels), ax=ax)
        name, _, what = _describe_setup(scenario).removeprefix("the ").partition(" (")
        ax.set_title(f"{name}\n{what.rstrip(')')}", loc="left", fontsize="medium")
    if render.side_by_side(fig.get_figwidth(), 2):
        axes[1].set_ylabel("")
    _caption(fig, render, text)
    return fig


def _timeline_figure(render: _Render, run, width_us: float, plot_in: float, title: str) -> Figure:
    """A lock timeline about ``width_us`` wide around the run's longest writer wait, widened
    (:func:`kvmviz.metrics.busiest_window`) so that no stall is cut off at an edge."""
    width = render.figure_width(10.0)
    height = render.panel_height(plot_in, width, 10.0) + 0.6 * render.em
    fig = render.figure(width, height + render.caption_height(title, width))
    axes = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    timelines.lock_timeline(run, *metrics.busiest_window(run, width_us), ax=axes)
    _caption(fig, render, title)
    return fig


def _fig_lock_timeline_8_vcpus(render: _Render) -> Figure:
    """Eight vCPUs in a fault storm on v5.12: a writer waits, and new faults queue behind it.

    ``kernels``: the first is drawn."""
    vm = render.vm(SMALL_VM)
    kernel = render.kernel_list(["v5.12"])[0]
    return _timeline_figure(
        render,
        render.run(vm, kernel),
        60.0,
        3.2,
        f"A fault storm on {vm.n_vcpus:,} vCPUs (a fault every ~{vm.guest_run_us:.0f} µs "
        f"of guest time, {vm.notifier_rate_hz:,.0f} notifications/s) on {kernel}, around the "
        "longest writer wait",
    )


def _fig_lock_timeline_416_vcpus(render: _Render) -> Figure:
    """The 416-vCPU VM of the static setup on v5.12 around its longest writer wait, vCPUs
    grouped in lanes. ``kernels``: the first is drawn."""
    vm = render.vm(STATIC)
    kernel = render.kernel_list(["v5.12"])[0]
    return _timeline_figure(
        render,
        render.run(vm, kernel),
        3_000.0,
        4.6,
        f"{_sentence(_describe_setup(vm))} on {kernel}, around its longest writer wait",
    )


def _comparison(render: _Render, default: Sequence[str], lead: str = "") -> Figure:
    """Stall CDF and brownout of some kernels side by side, the caption stating each
    kernel's brownout (seed ``render.seed``) from its run."""
    scenario = render.vm(STATIC)
    kernels = render.kernel_list(default)
    runs = render.runs(scenario, kernels)
    shares = {kernel: _brownout(run.summary()["brownout_mean"]) for kernel, run in runs.items()}
    first, *others = kernels
    text = (
        f"{lead}{_sentence(_describe_setup(scenario))}: {shares[first]} of the VM's vCPU time "
        f"stalled on {first}"
    )
    if others:
        text += ", " + _each([f"{shares[k]} on {k}" for k in others])
    fig, (ax_cdf, ax_brownout) = _panels(render, 2, 2.8, text)
    plot.stall_cdf(runs, ax=ax_cdf)
    plot.brownout_curve(runs, ax=ax_brownout)
    _label_lines(ax_brownout)
    _caption(fig, render, text)
    return fig


def _fig_before_after(render: _Render) -> Figure:
    """v5.12 against v5.15 on the static setup, stall CDF and brownout side by side."""
    return _comparison(render, ("v5.12", "v5.15"))


def _fig_commit_8931a454ae(render: _Render) -> Figure:
    """The commit itself: v5.12 against v5.13 (8931a454ae) on the static setup, stall CDF and
    brownout side by side, each kernel's brownout in the caption."""
    return _comparison(render, ("v5.12", "v5.13"), f"{_COMMITS['v5.13']}. ")


def _fig_follow_up_071064f14d87(render: _Render) -> Figure:
    """Its follow-up: v5.13 against v5.15 (071064f14d87) on the static setup."""
    return _comparison(render, ("v5.13", "v5.15"), f"{_COMMITS['v5.15']}. ")


def _label_lines(ax, gap: float = 1.2) -> None:
    """Name each kernel's line at the right edge, at the height of its mean (no legend); names
    closer than ``gap`` lines of their text are moved apart (at each draw, from the axes'
    size then), the mark beside each staying at its mean."""
    left, right = ax.get_xlim()
    rows = []
    notes = {t.get_gid() for t in ax.texts if t.get_visible()}  # "v5.15: no vCPU stalled"
    for line in ax.get_lines():
        kernel = (line.get_gid() or "").partition("|")[2]
        mean = float(line.get_ydata().mean()) if kernel in RELEASES else None
        if mean is not None and not (mean == 0 and f"note|{kernel}" in notes):
            rows.append((mean, kernel, line.get_color()))
    rows.sort()
    texts = []
    for mean, kernel, color in rows:
        mark = [right - 0.015 * (right - left), right]
        ax.plot(mark, [mean, mean], color=color, clip_on=False)
        text = f"{kernel}: none stalled" if mean == 0 else f"{kernel}: mean {_brownout(mean / 100)}"
        texts.append(
            ax.annotate(
                text,
                xy=(right, mean),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
                color=color,
                annotation_clip=False,
                gid=f"line-label|{kernel}",
            )
        )
    ax.set_xlim(left, right)
    ax.add_artist(_LineLabels(texts, gap))


class _LineLabels(Artist):
    """Spaces the names of :func:`_label_lines` at each draw: each at its line's mean, those
    closer than ``gap`` lines of text pushed up, and all moved down together if the top one
    would stand above the axes."""

    def __init__(self, texts, gap: float) -> None:
        super().__init__()
        self.texts, self.gap = texts, gap
        self.set_zorder(min(t.get_zorder() for t in texts) - 0.01 if texts else 3.0)

    def draw(self, renderer) -> None:
        if not self.texts:
            return
        ax = self.texts[0].axes
        to_px = ax.transData.transform
        size = self.texts[0].get_fontsize() * renderer.points_to_pixels(1.0)
        step = self.gap * size
        wanted = [to_px(text.xy)[1] for text in self.texts]  # ascending means
        placed: list[float] = []
        for y in wanted:
            placed.append(max(y, placed[-1] + step) if placed else y)
        top = ax.bbox.y1 + 0.5 * size  # at most half a line above the axes
        overshoot = placed[-1] - top
        if overshoot > 0:  # move the crowd down, as far as the lowest may go
            overshoot = min(overshoot, placed[0] - (ax.bbox.y0 - 0.5 * size))
            placed = [y - max(overshoot, 0.0) for y in placed]
        points = 1.0 / renderer.points_to_pixels(1.0)
        for text, y, at in zip(self.texts, wanted, placed, strict=True):
            text.xyann = (4.0, (at - y) * points)


def _fig_headline_ranges(render: _Render) -> Figure:
    """The headline with its range, on the static setup (top) and the volatile one (bottom):
    each kernel's brownout and p99 stall per fault as each free parameter moves over its
    plausible range (:func:`kvmviz.plot.tornado`), the others at the setup's values, each the
    mean of :data:`HEADLINE_SEEDS` seeds. ``scenario``: the VM both setups are applied to."""
    vm = render.vm(STATIC)
    kernels = render.kernel_list(KERNELS_2021)
    scenarios = [presets.with_setup(vm, setup) for setup in SETUPS]
    tables = {s: render.sensitivity(s, kernels) for s in scenarios}
    n_parameters = max(table["parameter"].nunique() for table in tables.values())
    seeds = render.seeds()
    text = (
        "Each bar one parameter over its plausible range (dot: the setup's value), TDP MMU: "
        f"means of seeds {seeds[0]}-{seeds[-1]}, not seed {render.seed} alone"
    )
    width = render.figure_width(10.0)
    stacked = not render.side_by_side(width, 2)
    rows = 2 * len(tables) if stacked else len(tables)
    per_row = (0.45 * n_parameters + 0.2) * (1.25 if stacked else 1.0) + 0.75 * render.em
    height = rows * per_row + 0.5 * render.em + render.caption_height(text, width)
    fig = render.figure(width, height)
    axes = plot.tornado_grid(
        {_sentence(_describe_setup(scenario)): table for scenario, table in tables.items()},
        fig=fig,
        stacked=stacked,
    )
    for ax in axes[-1] if not stacked else axes.ravel():
        if ax.get_xlabel():
            ax.set_xlabel(f"{ax.get_xlabel()}, mean of seeds {seeds[0]}-{seeds[-1]}")
    _caption(fig, render, text)
    return fig


FIGURES: dict[str, Callable[[_Render], Figure]] = {
    "memslots-large-vm": _fig_memslots_large_vm,
    "memslots-q35": _fig_memslots_q35,
    "stall-cdf": _fig_stall_cdf,
    "brownout": _fig_brownout,
    "kernel-comparison": _fig_kernel_comparison,
    "stall-by-kernel": _fig_stall_by_kernel,
    "stall-by-kernel-volatile": _fig_stall_by_kernel_volatile,
    "stall-split": _fig_stall_split,
    "lock-timeline-8-vcpus": _fig_lock_timeline_8_vcpus,
    "lock-timeline-416-vcpus": _fig_lock_timeline_416_vcpus,
    "before-after": _fig_before_after,
    "commit-8931a454ae": _fig_commit_8931a454ae,
    "follow-up-071064f14d87": _fig_follow_up_071064f14d87,
    "headline-ranges": _fig_headline_ranges,
}
"""Figure name (the file name, without suffix) -> builder ``builder(render) -> Figure``."""

_BUILDERS = dict(FIGURES)  # the builders of this module (a test may stand others in)

# The figures that simulate no kernel (the memslot maps draw a notification stream alone):
# ``kernels=`` does not apply to them.
_NO_KERNELS = ("memslots-large-vm", "memslots-q35")


def _contention_table(kernel: str) -> Callable[[_Render], str]:
    def build(render: _Render) -> str:
        """``perf lock contention`` for the simulated mmu_lock of the 416-vCPU VM."""
        return metrics.contention_text(render.run(LARGE_VM, kernel))

    return build


TABLES: dict[str, Callable[[_Render], str]] = {
    f"contention-{kernel}": _contention_table(kernel) for kernel in ("v5.12", "v5.15")
}
"""Table name (the file name, without ``.txt``) -> builder ``builder(render) -> str``."""


def _check_kernels(kernels) -> tuple[str, ...] | None:
    """``kernels`` as a tuple of canonical releases (:func:`kvmviz.kernels.resolve`), if it is
    a non-empty sequence of distinct releases from v5.12 to v6.18."""
    if kernels is None:
        return None
    if isinstance(kernels, str):
        raise ValueError(f"kernels = {kernels!r}: expected a list of kernels, e.g. ['v5.12']")
    kernels = tuple(kernels)
    names, unknown = [], []
    for kernel in kernels:
        try:
            names.append(resolve(kernel))
        except ValueError:
            unknown.append(kernel)
    if unknown or not kernels:
        raise ValueError(
            f"kernels = {list(kernels)!r}: expected releases from {RELEASES[0]} to "
            f"{RELEASES[-1]}, spelled 'v6.8' or '6.8'"
            + (f" (unknown: {', '.join(map(str, unknown))})" if unknown else "")
        )
    if len(set(names)) != len(names):
        raise ValueError(f"kernels = {list(kernels)!r}: each kernel once")
    kernels = tuple(names)
    return kernels


def _check_width(width) -> float | None:
    """``width`` in inches: a name of :data:`WIDTHS` or a number between 3 and 30."""
    if width is None:
        return None
    if isinstance(width, str):
        if width not in WIDTHS:
            raise ValueError(f"width = {width!r}: expected one of {', '.join(WIDTHS)} or inches")
        return WIDTHS[width]
    value = float(width)
    if not (math.isfinite(value) and 3.0 <= value <= 30.0):
        raise ValueError(f"width = {width!r}: expected inches between 3 and 30, or {list(WIDTHS)}")
    return value


def _make_render(
    seed: int, context: str, width, scenario, kernels, title: bool, cache=None
) -> _Render:
    if context not in theme.CONTEXTS:
        raise ValueError(f"unknown context {context!r}; expected one of {theme.CONTEXTS}")
    if scenario is not None and not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a kvmviz.Scenario, got {type(scenario).__name__}")
    return _Render(
        seed,
        context,
        width=_check_width(width),
        scenario=scenario,
        kernels=_check_kernels(kernels),
        title=bool(title),
        cache=cache,
    )


def _build(name: str, render: _Render) -> Figure:
    """Draw the figure ``name`` for ``render`` (its kernels apart from the memslot maps), its
    text fitted to the layout (:func:`kvmviz.views._fit.fit_text`)."""
    if render.kernels is not None and name in _NO_KERNELS:
        render = _without_kernels(render)
    fig = FIGURES[name](render)
    if name in _BUILDERS and FIGURES[name] is _BUILDERS[name]:  # not a stand-in of a test
        fit_text(fig)
    return fig


def _without_kernels(render: _Render) -> _Render:
    """The same render without kernels (shares its cache)."""
    clone = object.__new__(_Render)
    clone.__dict__.update(render.__dict__, kernels=None)
    return clone


@strict_booleans
def render(
    name: str,
    *,
    scenario: Scenario | None = None,
    kernels: Sequence[str] | None = None,
    seed: int = 0,
    context: str = "paper",
    width: float | str | None = None,
    title: bool = True,
) -> Figure:
    """Draw one figure of :data:`FIGURES`, as :func:`render_all` draws it.

    The figure is drawn under the current matplotlib settings: call
    :func:`kvmviz.set_theme` with the same ``context`` first (and keep it while saving), and
    :func:`kvmviz.plot.save` writes the same bytes as ``kvmviz figures``.

    Parameters
    ----------
    name : str
        A key of :data:`FIGURES`.
    scenario : Scenario, optional
        The VM the figure simulates, instead of its own (:data:`STATIC` for most; the q35
        map keeps its layout and takes the notifications of ``scenario``). The figures of both
        setups (``stall-split``, ``headline-ranges``) and ``stall-by-kernel-volatile`` take it
        as the VM, its size, memory and timings, and apply each setup's notifications to it
        (rate, spurious share, guest causes: :data:`kvmviz.presets.SETUPS`), so that
        ``scenario=kv.presets.static_setup(n_vcpus=96)`` draws both setups on 96 vCPUs.
    kernels : sequence of str, optional
        The kernels to compare, any releases from v5.12 to v6.18 (``"v6.8"`` or ``"6.8"``) in
        any order, instead of the figure's own (the three of 2021; v5.12 and v5.15 for
        ``before-after``; v5.12 and v5.13 for ``commit-8931a454ae``; v5.13 and v5.15 for
        ``follow-up-071064f14d87``). The timelines draw one kernel, the first. The memslot
        maps simulate no kernel and refuse it.
    seed : int
        Seeds every simulation the figure draws. ``stall-split`` draws this seed and marks
        each total's range over it and the next three; ``headline-ranges`` averages these
        four seeds.
    context : {"paper", "notebook", "talk", "poster"}
        The context of :func:`kvmviz.set_theme` the figure is drawn in: the layout makes room
        for its text (the figure's size does not follow it).
    width : float or str, optional
        The figure's width, inches or a name of :data:`WIDTHS`; default the figure's own
        (10 in, 6.4 for one panel). The figure is laid out for it (panels stacked when side
        by side they would not fit), its height follows.
    title : bool
        Draw the caption as the figure's title; without it the caption is still
        :func:`caption` of the figure (alt text for a blog).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        An unknown figure, context, width or kernel, or ``kernels`` for a memslot map.

    Examples
    --------
    >>> kv.set_theme("paper")  # doctest: +SKIP
    >>> kv.plot.save(kv.gallery.render("stall-cdf"), "figs/stall-cdf")  # doctest: +SKIP
    >>> fig = kv.gallery.render(
    ...     "stall-split", scenario=kv.presets.static_setup(n_vcpus=96), width="column"
    ... )  # doctest: +SKIP
    """
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; expected one of {list(FIGURES)}")
    if kernels is not None and name in _NO_KERNELS:
        raise ValueError(f"{name} draws notifications on memslots, no kernel: drop kernels=")
    return _build(name, _make_render(seed, context, width, scenario, kernels, title))


def table(name: str, *, seed: int = 0) -> str:
    """One text table of :data:`TABLES`, e.g. ``"contention-v5.12"``.

    Parameters
    ----------
    name : str
        A key of :data:`TABLES`.
    seed : int
        Seeds the simulation.

    Returns
    -------
    str
    """
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; expected one of {list(TABLES)}")
    return TABLES[name](_Render(seed))


# --------------------------------------------------------------------------------------------
# The standard animations.
# --------------------------------------------------------------------------------------------
def _standard_queue(seed: int) -> animate.Animation:
    runs = {k: simulate(QUEUE_SCENARIO, k, seed=seed) for k in ("v5.12", "v5.15")}
    # The window the story is seen in, by animate.story_window's rule: the spurious callback
    # with the most faults queued behind it on v5.12, which skips the lock on v5.15.
    window = animate.story_window(runs, animate.QUEUE_WINDOW_US).window
    return animate.queue_animation(runs, *window, n_frames=120)


def _standard_memslots(seed: int) -> animate.Animation:
    return animate.memslot_animation(simulate(MEMSLOT_SCENARIO, "v5.13", seed=seed))


_STANDARD: dict[str, Callable[[int], animate.Animation]] = {
    "queue-v5.12-vs-v5.15": _standard_queue,
    "memslot-arrivals-v5.13": _standard_memslots,
}


def standard_animations(
    seed: int = 0, names: Sequence[str] | None = None
) -> dict[str, animate.Animation]:
    """The animations of the blog and the notebooks, by file name.

    * ``queue-v5.12-vs-v5.15``: :data:`QUEUE_SCENARIO` on both kernels, 120 frames over the
      60 µs :func:`kvmviz.animate.story_window` picks: the spurious callback with the most
      faults queued behind it on v5.12, which skips the lock on v5.15;
    * ``memslot-arrivals-v5.13``: the first 24 notification events of :data:`MEMSLOT_SCENARIO`
      on v5.13, 5 frames each.

    Parameters
    ----------
    seed : int
    names : sequence of str, optional
        Build only these (default all).

    Returns
    -------
    dict of str to kvmviz.animate.Animation
    """
    names = list(_STANDARD) if names is None else list(names)
    unknown = [n for n in names if n not in _STANDARD]
    if unknown:
        raise ValueError(f"unknown animations {unknown}; expected among {list(_STANDARD)}")
    return {name: _STANDARD[name](seed) for name in names}


def _animation_targets(out: Path, formats: Sequence[str]) -> list[Path]:
    return [out / f"{name}.{fmt}" for name in _STANDARD for fmt in formats]


@strict_booleans
def render_animations(
    out_dir, *, formats: Sequence[str] = ANIMATION_FORMATS, force: bool = False, seed: int = 0
) -> list[Path]:
    """Write the standard animations (:func:`standard_animations`) into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing.
    formats : sequence of {"html", "gif"}
    force : bool
        Overwrite existing files; otherwise an existing one raises ``FileExistsError`` before
        anything is built or written.
    seed : int

    Returns
    -------
    list of Path
        The files written, animation by animation, in the order of ``formats``.
    """
    formats = tuple(formats)
    unknown = [f for f in formats if f not in ANIMATION_FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be among {ANIMATION_FORMATS}, got {formats!r}")
    out = Path(out_dir)
    check_free(_animation_targets(out, formats), force=force)
    written = []
    for name, animation in standard_animations(seed).items():
        for fmt in formats:
            export = animate.to_html if fmt == "html" else animate.to_gif
            written.append(export(animation, out / f"{name}.{fmt}", force=force))
    return written


# --------------------------------------------------------------------------------------------
# Everything, all or nothing: `kvmviz figures`.
# --------------------------------------------------------------------------------------------
@strict_booleans
def render_all(
    out_dir,
    *,
    formats: Sequence[str] = ("svg", "png"),
    context: str = "paper",
    seed: int = 0,
    force: bool = False,
    only: Sequence[str] | None = None,
    animations: bool = True,
    scenario: Scenario | None = None,
    kernels: Sequence[str] | None = None,
    width: float | str | None = None,
    style: str = "light",
    transparent: bool = False,
    title: bool = True,
) -> list[Path]:
    """Render every figure into ``out_dir``, one file per figure and format, and the
    standard animations.

    Parameters
    ----------
    out_dir : str or Path
        Created if needed.
    formats : sequence of {"svg", "png", "pdf"}
        The figures' formats (the animations are written as HTML and GIF).
    context : {"paper", "notebook", "talk", "poster"}
        Passed to :func:`kvmviz.set_theme` (for this call only: the global matplotlib
        settings are restored afterwards): the size of the text, not of the figures.
    seed : int
        Seeds every simulation; the same seed gives byte-identical SVG files.
    force : bool
        Overwrite existing files. Otherwise, if any file to be written exists, raise
        ``FileExistsError`` before doing any work.
    only : sequence of str, optional
        Names of :data:`FIGURES` to render (default all).
    animations : bool
        Also write the standard animations (:func:`render_animations`, which take most of the
        time), before the figures.
    scenario : Scenario, optional
        The VM every figure simulates, instead of each one's own (as in :func:`render`). The
        animations keep theirs.
    kernels : sequence of str, optional
        The kernels every figure compares (as in :func:`render`; the memslot maps, which
        simulate none, ignore them).
    width : float or str, optional
        Every figure's width, inches or a name of :data:`WIDTHS` (default each one's own).
    style : {"light", "dark"}
        Passed to :func:`kvmviz.set_theme`.
    transparent : bool
        Leave the background out of the files (:func:`kvmviz.plot.save`).
    title : bool
        Draw each caption as its figure's title. Without it each figure's caption is written
        beside it as ``NAME.txt`` (its alt text).

    Returns
    -------
    list of Path
        The files written: the animations', then the figures' (each figure's formats, then
        its ``.txt`` without ``title``).

    Notes
    -----
    The whole set is written into a hidden temporary folder beside ``out_dir`` (on the same
    file system) and moved into place only once every file is complete: a run interrupted or
    failing halfway leaves ``out_dir`` as it was (the old set, if any, stays until the new one
    replaces it) and removes its temporary folder, so the next run starts clean.
    """
    names = list(FIGURES) if only is None else list(only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figures {unknown}; expected some of {list(FIGURES)}")
    out = Path(out_dir)
    formats = tuple(formats)
    if not formats or any(f not in FIGURE_FORMATS for f in formats):
        raise ValueError(f"formats must be among {FIGURE_FORMATS}, got {formats!r}")
    if style not in theme.STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {theme.STYLES}")
    render = _make_render(seed, context, width, scenario, kernels, title)
    suffixes = [*formats, *([] if title else ["txt"])]
    if not force:
        _refuse_existing(out, names, suffixes, animations)
    with staged_folder(out, force=force) as staging, theme.isolated(context, style):
        if animations:
            staging.add(*render_animations(staging.path, force=True, seed=seed))
        for name in names:
            fig = _build(name, render)
            staging.add(
                *plot.save(
                    fig, staging.path / name, formats=formats, force=True, transparent=transparent
                )
            )
            if not title:
                staging.write(f"{name}.txt", (_alt_text(fig) + "\n").encode("utf-8"))
    return staging.files


def _refuse_existing(out: Path, names, suffixes, animations: bool) -> None:
    """Raise ``FileExistsError`` naming the files of the set that already exist in ``out``,
    before any work (:func:`render_all` without ``force``)."""
    targets = _animation_targets(out, ANIMATION_FORMATS) if animations else []
    targets += [out / f"{name}.{suffix}" for name in names for suffix in suffixes]
    existing = [t.name for t in targets if t.exists()]
    if existing:
        shown = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise FileExistsError(
            f"refusing to overwrite {len(existing)} existing file(s) in {out}: {shown} "
            "(pass force=True)"
        )


def _alt_text(fig: Figure) -> str:
    """The caption of a figure, or nothing for a figure drawn by a builder of one's own."""
    try:
        return caption(fig)
    except ValueError:
        return ""
