"""ipywidgets front ends: the kernel toggle dashboard over cached simulations, the zoomable
lock timeline, and the player of an :class:`~kvmviz.animate.Animation`.

The views draw (:mod:`kvmviz.plot`, :mod:`kvmviz.timelines`, :mod:`kvmviz.animate`); this
module simulates (through :func:`cached_simulate`), wires the controls and shows the pictures.
The dashboard, the timeline and the animations redraw only what moves
(:class:`kvmviz.animate.Blitter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import html
import time
import weakref
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import plot, presets
from ._checks import check_seed
from .animate import Animation, Blitter, set_spans
from .classify import first_callbacks
from .engine import simulate
from .kernels import KERNELS
from .metrics import KERNEL_TABLE_COLUMNS, busiest_window, kernel_table
from .presets import VMM_HEAP
from .scenario import Scenario
from .theme import KERNEL_STYLES, set_theme
from .timelines import LockTimeline, check_window

__all__ = [
    "TimelineExplorer",
    "ToggleDashboard",
    "cached_simulate",
    "player",
    "timeline_explorer",
    "toggle_dashboard",
]


def _kernel_buttons(kernel: str):
    """The kernel toggle both widgets show: one button per kernel, its commit as tooltip."""
    import ipywidgets as w

    return w.ToggleButtons(
        options=list(KERNELS),
        value=kernel,
        description="kernel",
        tooltips=[KERNEL_STYLES[k]["label"] for k in KERNELS],
    )


@functools.lru_cache(maxsize=128)
def cached_simulate(scenario: Scenario, kernel: str, policy: str = "qrwlock", seed: int = 0):
    """:func:`kvmviz.simulate`, remembered: moving a slider back costs nothing."""
    return simulate(scenario, kernel, policy, seed)


@functools.lru_cache(maxsize=128)
def _cached_table(runs: tuple) -> pd.DataFrame:
    """:func:`kvmviz.metrics.kernel_table` of cached runs, remembered with them (a run is
    hashed by identity, and :func:`cached_simulate` hands out the same run again)."""
    return kernel_table(list(runs))


_MMU_LABELS = {True: "TDP MMU (faults read-lock)", False: "shadow MMU (faults write-lock)"}


def _percent_cell(share: float) -> str:
    """A share of the VM's vCPU time as a table cell, in %: exactly 0 is "0"."""
    value = 100 * float(share)
    if value == 0:
        return "0"
    return "<0.1" if value < 0.05 else f"{value:.1f}"


# The header and format of each column of metrics.KERNEL_TABLE_COLUMNS, the table every front
# end prints: the brownout and its parts, the stall per fault (waits plus retried attempts),
# and the writers' wait beside it, so a policy that starves the notifiers (reader-pref) cannot
# look like a win.
_TABLE_CELLS = {
    "brownout_mean": ("brownout (% of vCPU time)", _percent_cell),
    "brownout_miss": ("… behind misses (%)", _percent_cell),
    "brownout_hit": ("… behind hits (%)", _percent_cell),
    "stall_p99_us": ("p99 stall per fault (µs)", lambda v: f"{v:.1f}"),
    "stall_mean_us": ("mean stall per fault (µs)", lambda v: f"{v:.1f}"),
    "writer_wait_mean_us": ("writers' mean wait (µs)", lambda v: f"{v:.1f}"),
    "writer_wait_max_us": ("writers' max wait (µs)", lambda v: f"{v:.1f}"),
    "faults_retried": ("attempts retried", lambda v: f"{int(v)}"),
    "lock_taken": ("callbacks taking the lock", lambda v: f"{int(v)}"),
    "lock_avoided": ("callbacks skipping it", lambda v: f"{int(v)}"),
}


def _table_html(table, selected: str) -> str:
    """The per-kernel table as HTML: one row per kernel, the columns of
    ``KERNEL_TABLE_COLUMNS`` under readable headers, the ``selected`` kernel's row
    highlighted. ``table`` is :func:`kvmviz.metrics.kernel_table` (or a mapping of kernel to
    its row)."""
    rows = table.iterrows() if isinstance(table, pd.DataFrame) else table.items()
    head = "<tr><th>kernel</th>" + "".join(
        f'<th data-column="{c}">{html.escape(_TABLE_CELLS[c][0])}</th>'
        for c in KERNEL_TABLE_COLUMNS
    )
    body = []
    for kernel, s in rows:
        style = ' style="font-weight:bold;background:#e8f1f8"' if kernel == selected else ""
        cells = "".join(
            f'<td data-column="{c}">{_TABLE_CELLS[c][1](s[c])}</td>' for c in KERNEL_TABLE_COLUMNS
        )
        body.append(f'<tr{style} data-kernel="{kernel}"><td>{kernel}</td>{cells}</tr>')
    return f'<table class="kvmviz-summary">{head}</tr>{"".join(body)}</table>'


def _percent(share: float) -> str:
    """A share of the VM's vCPU time in a sentence: "0%" only when it is exactly 0."""
    value = 100 * float(share)
    if value == 0:
        return "0%"
    return "under 0.1%" if value < 0.05 else f"{value:.1f}%"


def _headline_html(table: pd.DataFrame, selected: str, run, *, setup: str) -> str:
    """The sentence over the dashboard's figure, from the per-kernel table and the selected
    kernel's run: the brownout of the selected kernel against v5.12's, its split by what the
    faults waited behind, and in words why it is 0 when it is. Its data attributes carry the
    numbers (read by ui-tests/test_dashboard.py and ui-tests/test_lab.py)."""
    scenario = run.scenario
    s, ref = table.loc[selected], table.loc["v5.12"]
    mmu = "tdp" if scenario.tdp_mmu else "shadow"
    attributes = {
        "kernel": selected,
        "mmu": mmu,
        "setup": setup,
        "vcpus": f"{scenario.n_vcpus}",
        "brownout": f"{s['brownout_mean']:.5f}",
        "brownout-miss": f"{s['brownout_miss']:.5f}",
        "brownout-hit": f"{s['brownout_hit']:.5f}",
        "brownout-fault": f"{s['brownout_fault']:.5f}",
        "p99-us": f"{s['stall_p99_us']:.3f}",
    }
    attrs = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in attributes.items())
    label = html.escape(KERNEL_STYLES[selected]["label"])
    where = (
        f"the {setup} setup, {scenario.n_vcpus} vCPUs, {html.escape(_MMU_LABELS[scenario.tdp_mmu])}"
    )
    compare = "" if selected == "v5.12" else f" (v5.12: {_percent(ref['brownout_mean'])})"
    parts = [
        f"<b>{label}</b> on {where}: <b>{_percent(s['brownout_mean'])}</b> of the VM's vCPU "
        f"time stalled on mmu_lock{compare}."
    ]
    taken, callbacks = int(s["lock_taken"]), int(s["notifier_callbacks"])
    if s["brownout_mean"] == 0:
        hits = int(run.notifiers["hit"].sum())
        if taken == 0:
            why = (
                "every notification missed guest memory and skipped the lock"
                if hits == 0
                else "every notification skipped the lock"
            )
        else:
            why = f"the {taken} callbacks that took mmu_lock never made a fault wait or retry"
        parts.append(f"<b>{selected}: no vCPU stalled</b>: {why}.")
    else:
        split = [
            f"{_percent(s['brownout_miss'])} behind notifications that missed guest memory "
            "(spurious)",
            f"{_percent(s['brownout_hit'])} behind ones that hit it",
        ]
        if s["brownout_fault"] > 0:
            split.append(f"{_percent(s['brownout_fault'])} behind other faults only")
        p99 = f"p99 stall per fault {s['stall_p99_us']:,.0f} µs"
        if selected != "v5.12":
            p99 += f" (v5.12: {ref['stall_p99_us']:,.0f} µs)"
        parts.append(f"Of it, {', '.join(split[:-1])} and {split[-1]}; {p99}.")
    parts.append(f"{int(s['lock_avoided'])} of {callbacks} callbacks skipped the lock.")
    shares = table["brownout_mean"].to_numpy(dtype=float)
    if (100 * shares < 0.05).all():
        parts.append(
            f"With {scenario.n_vcpus} vCPUs every kernel loses "
            f"{'nothing' if (shares == 0).all() else 'under 0.1%'} of the VM's vCPU time: few "
            "faults are in flight when a notifier takes the lock, so few queue behind it; the "
            "brownout grows with the vCPUs (move the slider up)."
        )
    if not scenario.tdp_mmu:
        parts.append(
            "Without the TDP MMU every fault takes mmu_lock for write: the faults serialise "
            "each other, whatever the notifiers do."
        )
    return f'<p class="kvmviz-p99 kvmviz-brownout" {attrs}>{" ".join(parts)}</p>'


def _with_setup(vm: Scenario, name: str) -> Scenario:
    """``vm`` with the notifications of the setup ``name`` (:data:`kvmviz.presets.SETUPS`): every
    field a setup sets (where one of them differs from ``Scenario()``: the rate, the spurious
    share, the mix of guest causes) is taken from the preset; the VM's size, memory and
    timings stay."""
    preset = presets.setup(name)
    return vm.replace(**{field: getattr(preset, field) for field in _setup_fields()})


@functools.cache
def _setup_fields() -> tuple[str, ...]:
    """The fields of :class:`Scenario` some setup of :data:`kvmviz.presets.SETUPS` sets:
    those in which one of them differs from ``Scenario()``."""
    default = Scenario()
    return tuple(
        f.name
        for f in dataclasses.fields(Scenario)
        if any(
            getattr(presets.setup(n), f.name) != getattr(default, f.name) for n in presets.SETUPS
        )
    )


class ToggleDashboard:
    """The kernel toggle (v5.12 / v5.13 / v5.15), the setup toggle (static or volatile, the two
    setups of 8931a454ae's message: :data:`kvmviz.presets.SETUPS`), the MMU toggle (TDP or
    shadow, the kernel's ``kvm.tdp_mmu``) and a few sliders, driving five views.

    The views: the per-fault stall CDF, the brownout curve (the selected kernel bold, the
    others faint for reference) and each kernel's brownout split by what its faults waited
    behind (:func:`kvmviz.plot.stall_split`); a memslot map with the notifier ranges of the run
    coloured hit/miss; and a table of :data:`kvmviz.metrics.KERNEL_TABLE_COLUMNS` per kernel.
    The sentence above them leads with the selected kernel's brownout (the share of the VM's
    vCPU time stalled) against v5.12's, and its split; where a kernel stalls nothing, it and
    every figure say so in words. It opens on the static setup, where v5.15 stalls nothing.
    Runs are cached (both setups are simulated ahead), so flipping a toggle or returning to a
    slider position redraws without simulating again.

    Parameters
    ----------
    scenario : Scenario, optional
        The VM (size, memory, timings; default ``Scenario()``, the 416-vCPU VM). The setup
        toggle sets its notifications (rate, spurious share, guest causes) from the preset;
        the sliders then change ``n_vcpus``, ``spurious_share`` and ``notifier_rate_hz``, and
        switching setup puts them back to that setup's values.
    seed : int
    kernel : str
        The kernel selected at first.
    setup : {"static", "volatile"}
        The setup shown at first.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        seed: int = 0,
        kernel: str = "v5.12",
        setup: str = "static",
    ):
        import ipywidgets as w

        if setup not in presets.SETUPS:
            raise ValueError(f"setup {setup!r}: expected one of {', '.join(presets.SETUPS)}")
        self.vm = Scenario() if scenario is None else scenario
        self.seed = check_seed(seed)
        self._setups = {name: _with_setup(self.vm, name) for name in presets.SETUPS}
        set_theme("notebook")
        self.kernel = _kernel_buttons(kernel)
        self.setup = w.ToggleButtons(
            options=list(presets.SETUPS),
            value=setup,
            description="setup",
            tooltips=[
                "8931a454ae's static setup: every notification from the VMM's own memory",
                "a volatile setup: KSM, page migration and guest aging hit guest memory",
            ],
        )
        # The MMU is its own axis (kvm.tdp_mmu): faults read-lock mmu_lock only with the TDP
        # MMU (direct_page_fault, a2855afc7ee8); stock v5.12-v5.14 hosts had it off.
        self.mmu = w.ToggleButtons(
            options=[(label, value) for value, label in _MMU_LABELS.items()],
            value=self.vm.tdp_mmu,
            description="MMU",
            tooltips=[
                "kvm.tdp_mmu=1: faults take mmu_lock for read (default from v5.15, 71ba3f3189c7)",
                "kvm.tdp_mmu=0: every fault takes mmu_lock for write (stock v5.12-v5.14)",
            ],
        )
        start = self._setups[setup]
        self.vcpus = w.IntSlider(
            value=start.n_vcpus,
            min=8,
            max=512,
            step=8,
            description="vCPUs",
            continuous_update=False,
        )
        self.spurious = w.FloatSlider(
            value=start.spurious_share,
            min=0.0,
            max=1.0,
            step=0.05,
            description="spurious share",
            continuous_update=False,
            readout_format=".2f",
        )
        self.rate = w.FloatLogSlider(
            value=start.notifier_rate_hz,
            base=10,
            min=2,
            max=4.5,
            step=0.05,
            description="notifications/s",
            continuous_update=False,
            readout_format=".0f",
        )
        for slider in (self.vcpus, self.spurious, self.rate):
            slider.style.description_width = "120px"
            slider.layout.width = "440px"
        self.headline = w.HTML()
        self.headline.add_class("kvmviz-headline")
        self.table = w.HTML()
        self.image = w.Image(format="png")
        self.image.layout.max_width = "100%"
        self.timing = w.HTML()
        # One figure, drawn in full once; afterwards only the lines, bars and marks move.
        self.figure = Figure(figsize=(11, 6.2), dpi=80, layout="constrained")
        self._blitter = Blitter(self.figure)
        self.canvas = self._blitter.canvas
        grid = self.figure.add_gridspec(
            2, 3, height_ratios=[1.5, 1], width_ratios=[1.25, 1.25, 1.0]
        )
        self.ax_cdf = self.figure.add_subplot(grid[0, 0])
        self.ax_brownout = self.figure.add_subplot(grid[0, 1])
        self.ax_split = self.figure.add_subplot(grid[0, 2])
        self.ax_map = self.figure.add_subplot(grid[1, :])
        self._drawn_scenario = None
        self._resetting = False
        for control in (self.kernel, self.mmu, self.vcpus, self.spurious, self.rate):
            control.observe(self._changed, names="value")
        self.setup.observe(self._setup_changed, names="value")
        self.widget = w.VBox(
            [
                self.kernel,
                self.setup,
                self.mmu,
                w.HBox(
                    [
                        w.VBox(
                            [self.vcpus, self.spurious, self.rate],
                            layout=w.Layout(min_width="460px", flex="0 0 auto"),
                        ),
                        self.table,
                    ]
                ),
                self.headline,
                self.image,
                self.timing,
            ]
        )
        self.update()
        # The other setup simulated and measured ahead, so that its first flip is as quick as
        # the next; the other MMU too, on the event loop while it is idle (in a notebook).
        for name in presets.SETUPS:
            if name != setup:
                self._warm(self._setups[name].replace(tdp_mmu=self.vm.tdp_mmu))
        _run_ahead(
            [
                functools.partial(self._warm, base.replace(tdp_mmu=not self.vm.tdp_mmu))
                for base in self._setups.values()
            ],
            self.widget,
        )

    @property
    def base(self) -> Scenario:
        """The selected setup on the dashboard's VM, before the sliders."""
        return self._setups[self.setup.value]

    @property
    def scenario(self) -> Scenario:
        """The scenario the controls describe now."""
        return self.base.replace(
            n_vcpus=int(self.vcpus.value),
            spurious_share=round(float(self.spurious.value), 4),
            notifier_rate_hz=round(float(self.rate.value), 3),
            tdp_mmu=bool(self.mmu.value),
        )

    def _warm(self, scenario: Scenario) -> None:
        """Simulate ``scenario`` on every kernel and measure what the views draw of it, ahead
        of the learner (everything lands in the caches a redraw reads)."""
        runs = self.runs(scenario)
        _cached_table(tuple(runs.values()))
        for run in runs.values():
            plot.precompute(run)

    def runs(self, scenario: Scenario | None = None) -> dict:
        """The cached runs of ``scenario`` (default the current one), one per kernel."""
        scenario = self.scenario if scenario is None else scenario
        return {k: cached_simulate(scenario, k, "qrwlock", self.seed) for k in KERNELS}

    def _changed(self, _change) -> None:
        if not self._resetting:
            self.update()

    def _setup_changed(self, change) -> None:
        """A new setup: the sliders go back to its values, then one redraw."""
        base = self._setups[change["new"]]
        self._resetting = True
        try:
            self.vcpus.value = base.n_vcpus
            self.spurious.value = base.spurious_share
            self.rate.value = base.notifier_rate_hz
        finally:
            self._resetting = False
        self.update()

    def update(self) -> float:
        """Re-simulate (from cache when possible) and redraw; returns the seconds it took."""
        started = time.perf_counter()
        runs = self.runs()
        selected = self.kernel.value
        table = _cached_table(tuple(runs.values()))
        scenario = self.scenario
        if not self._blitter.prepared:
            self._draw_static(runs, table, selected)
        if scenario != self._drawn_scenario:
            for ax in (self.ax_cdf, self.ax_brownout, self.ax_split):
                plot.update(ax, runs, highlight=selected, table=table)
            self._fix_limits(scenario)
            spans = plot._notifier_spans(self._to_x, first_callbacks(runs[selected].notifiers))
            for kind, collection in self._span_collections.items():
                set_spans(collection, spans[kind], *self._span_y)
            self._drawn_scenario = scenario
        else:
            for ax in (self.ax_cdf, self.ax_brownout, self.ax_split):
                plot.restyle(ax, highlight=selected)
        self._blitter.moving = self._moving()
        self._blitter.blit()
        self.image.value = self._blitter.png()
        self.table.value = _table_html(table, selected)
        self.headline.value = _headline_html(
            table, selected, runs[selected], setup=self.setup.value
        )
        elapsed = time.perf_counter() - started
        self.timing.value = (
            f'<small style="color:#777">{self.setup.value} setup, {scenario.n_vcpus} vCPUs, '
            f"{scenario.duration_us / 1000:.0f} ms simulated, seed {self.seed}; "
            f"updated in {1000 * elapsed:.0f} ms</small>"
        )
        self.last_update_s = elapsed
        return elapsed

    # -- drawing: everything static once, then only the moving artists (Blitter) -----------
    def _moving(self) -> list:
        """What a redraw changes: the views' live artists and the map's range bars."""
        moving = [
            *(a for ax in (self.ax_cdf, self.ax_brownout, self.ax_split)
              for a in plot.live_artists(ax)),
            *self._span_collections.values(),
        ]  # fmt: skip
        for artist in moving:
            artist.set_animated(True)
        return moving

    def _draw_static(self, runs, table, selected) -> None:
        plot.stall_cdf(runs, ax=self.ax_cdf, highlight=selected)
        plot.brownout_curve(runs, ax=self.ax_brownout, highlight=selected)
        plot.stall_split(table, ax=self.ax_split, highlight=selected)
        # Shorter words for the narrow panels of the dashboard.
        self.ax_cdf.set_xlabel("stall per fault: waits + retried attempts\n(µs, log scale)")
        self.ax_split.set_title("Brownout, split")
        self.ax_split.set_ylabel("VM's vCPU time stalled (%)")
        self.ax_split.set_xticks(range(len(KERNELS)), list(KERNELS), fontsize="small")
        # The map's axis is fixed by the memslots and the VMM's own memory, not by the ranges
        # of one run, so a new run only moves its range marks.
        plot.memslot_map(
            self.vm.layout,
            runs[selected].notifiers,
            ax=self.ax_map,
            regions=[VMM_HEAP],
            counts=False,  # the bars move with each run; a count in the legend would not
        )
        intervals = [(x.hva_start, x.hva_end) for x in self.vm.layout]
        self._to_x = plot._segments(intervals, [VMM_HEAP])[0]
        gids = {"hit": "notifiers-hit", "wide": "notifiers-hit-wide", "miss": "notifiers-miss"}
        self._span_collections = {
            kind: next(c for c in self.ax_map.collections if c.get_gid() == gid)
            for kind, gid in gids.items()
        }
        # The bars' rows as memslot_map draws them: 0.6 high, room above for the hit markers.
        self._span_y = (len({x.as_id for x in self.vm.layout}) + 0.15, 0.6)
        self._fix_limits(self.scenario)
        plot.update(self.ax_split, runs, highlight=selected, table=table)  # on the fixed scale
        self._blitter.moving = self._moving()
        self._blitter.prepare()  # solves the layout once and draws every static artist
        self._drawn_scenario = self.scenario

    def _fix_limits(self, scenario) -> None:
        # Fixed limits keep the ticks (the static part) valid for every run: a new scale
        # would mean drawing the whole figure again (about 130 ms).
        self.ax_cdf.set_xlim(0.08, 1e5)
        self.ax_brownout.set_xlim(0, scenario.duration_us / 1000)
        self.ax_split.set_ylim(0, 100)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def toggle_dashboard(
    scenario: Scenario | None = None, seed: int = 0, kernel: str = "v5.12", setup: str = "static"
):
    """Build and return a :class:`ToggleDashboard` (display it as a cell's last line)."""
    return ToggleDashboard(scenario, seed=seed, kernel=kernel, setup=setup)


# ---------------------------------------------------------------------------------------------
# The lock timeline, zoomable
# ---------------------------------------------------------------------------------------------
def _check_kernel(kernel) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"kernel {kernel!r}: expected one of {', '.join(KERNELS)}")
    return kernel


def _fmt_us(t: float) -> str:
    return f"{t:,.1f}"


class TimelineExplorer:
    """The lock timeline (:func:`kvmviz.timelines.lock_timeline`) to zoom and pan: a window
    slider, zoom and pan buttons, the kernel toggle and a choice of VM size.

    The window stays where it is when the kernel or the VM size changes, so the same stretch of
    simulated time can be compared across kernels (every run has the same notifications, the
    same seed). The lanes are one per vCPU up to 32 vCPUs and grouped beyond (at 416 vCPUs,
    eight lanes of the faulting vCPUs); each notification event's arrival is marked, vermilion
    if it hits guest memory, grey if it is spurious.

    Each size has its own figure, drawn in full once; a new window or kernel redraws only the
    lanes' data, the time axis, the title and the legend onto it
    (:class:`kvmviz.timelines.LockTimeline`, :class:`kvmviz.animate.Blitter`), and the runs of
    every kernel and size are simulated once, at construction (:func:`cached_simulate`), so no
    redraw simulates. ``benchmarks/timeline.py`` measures a redraw and the alternatives.

    Parameters
    ----------
    scenario : Scenario, optional
        The VM; each size offered is ``scenario.replace(n_vcpus=n)``. Default ``Scenario()``.
    seed : int
    kernel : str
        The kernel shown at first, one of :data:`kvmviz.KERNELS`.
    sizes : sequence of int
        The vCPU counts offered (default 8, one lane per vCPU, and 416, grouped lanes).
    n_vcpus : int, optional
        The size shown at first, one of ``sizes``; default the scenario's own if offered, else
        the first.
    window : (float, float), optional
        The first window, µs, inside the run; default :func:`kvmviz.metrics.busiest_window`
        of the v5.12 run of the size shown first, ``width_us`` wide.
    width_us : float
        The default window's width, µs.

    Attributes
    ----------
    kernel, vcpus : ipywidgets.ToggleButtons
    window : ipywidgets.FloatRangeSlider
        The window, µs of simulated time.
    zoom_in, zoom_out, pan_left, pan_right, busiest, whole : ipywidgets.Button
    image : ipywidgets.Image
        The figure as PNG.
    label : ipywidgets.HTML
        What is shown, as the axes' limits say: a ``<p class="kvmviz-window">`` with
        ``data-kernel``, ``data-vcpus``, ``data-start-us`` and ``data-end-us``.
    widget : ipywidgets.VBox
        Everything, in a box with CSS class ``kvmviz-timeline``.

    Examples
    --------
    >>> explorer = kv.widgets.timeline_explorer(kv.Scenario(), seed=0)  # doctest: +SKIP
    >>> explorer.set_window(4_000, 4_500); explorer.timeline.xlim_us()  # doctest: +SKIP
    (4000.0, 4500.0)
    """

    ZOOM = 2.0  # the zoom buttons halve or double the window's width
    PAN = 0.5  # the pan buttons move it by half its width
    MIN_WIDTH_US = 1.0  # the narrowest window the zoom button goes to
    STEP_US = 0.1  # the slider's resolution; windows are rounded outwards to it

    def __init__(
        self,
        scenario: Scenario | None = None,
        seed: int = 0,
        kernel: str = "v5.12",
        *,
        sizes=(8, 416),
        n_vcpus: int | None = None,
        window: tuple[float, float] | None = None,
        width_us: float = 1_000.0,
    ):
        import ipywidgets as w

        base = Scenario() if scenario is None else scenario
        self.seed = check_seed(seed)
        _check_kernel(kernel)
        sizes = tuple(sizes)
        if not sizes or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes
        ):
            raise ValueError(f"sizes = {sizes!r}: expected vCPU counts, positive integers")
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"sizes = {sizes!r}: expected each vCPU count once")
        if n_vcpus is None:
            n_vcpus = base.n_vcpus if base.n_vcpus in sizes else sizes[0]
        elif n_vcpus not in sizes:
            raise ValueError(f"n_vcpus = {n_vcpus!r}: expected one of sizes {sizes}")
        if not (width_us > 0):
            raise ValueError(f"width_us = {width_us!r}: expected a positive number of µs")
        set_theme("notebook")
        self.scenarios = {n: base.replace(n_vcpus=n) for n in sizes}
        self.duration_us = float(base.duration_us)
        for n in sizes:  # every run, once: no redraw simulates
            for k in KERNELS:
                cached_simulate(self.scenarios[n], k, "qrwlock", self.seed)
        if window is None:
            first = cached_simulate(self.scenarios[n_vcpus], "v5.12", "qrwlock", self.seed)
            start, end = busiest_window(first, width_us)
            window = (start, min(end, self.duration_us))
        window = self._rounded(*window)
        self._views = {}
        for n in sizes:
            figure = Figure(figsize=(10, 5), dpi=80, layout="constrained")
            blitter = Blitter(figure)
            axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
            run = cached_simulate(self.scenarios[n], kernel, "qrwlock", self.seed)
            timeline = LockTimeline(run, *window, ax=axes, arrivals=True)
            _wrap_title(timeline.lanes)
            blitter.moving = timeline.moving
            blitter.prepare()  # solves the layout and keeps the lanes' labels as background
            self._views[n] = (timeline, blitter)
        self._looks: dict = {}  # the pixels of each look of a title, legend or axis label
        # Each kernel's title and legend, and the axis in ms, drawn once ahead of the learner:
        # the first redraw of a look costs about twice the next ones (text).
        for n in sizes:
            runs = {k: cached_simulate(self.scenarios[n], k, "qrwlock", self.seed) for k in KERNELS}
            self._show(n, runs["v5.12"], 0.0, self.duration_us)
            for run in runs.values():
                self._show(n, run, *window)

        self.kernel = _kernel_buttons(kernel)
        self.vcpus = w.ToggleButtons(
            options=[(f"{n} vCPUs", n) for n in sizes],
            value=n_vcpus,
            description="VM",
            tooltips=[
                "one lane per vCPU" if n <= 32 else "the faulting vCPUs in grouped lanes"
                for n in sizes
            ],
        )
        self.window = w.FloatRangeSlider(
            value=window,
            min=0.0,
            max=self.duration_us,
            step=self.STEP_US,
            description="window (µs)",
            continuous_update=False,
            readout_format=",.1f",
        )
        self.window.style.description_width = "90px"
        self.window.layout.width = "760px"
        buttons = {
            "zoom_in": ("zoom in", "halve the window, about its centre"),
            "zoom_out": ("zoom out", "double the window, about its centre"),
            "pan_left": ("◀ earlier", "move the window back by half its width"),
            "pan_right": ("later ▶", "move the window on by half its width"),
            "busiest": ("busiest", "around the longest writer wait of the v5.12 run"),
            "whole": ("whole run", f"0 to {self.duration_us:,.0f} µs"),
        }
        for name, (text, tooltip) in buttons.items():
            button = w.Button(description=text, tooltip=tooltip)
            button.layout.width = "110px"
            button.add_class(f"kvmviz-{name.replace('_', '-')}")
            setattr(self, name, button)
        self.zoom_in.on_click(lambda _b: self.zoom(self.ZOOM))
        self.zoom_out.on_click(lambda _b: self.zoom(1 / self.ZOOM))
        self.pan_left.on_click(lambda _b: self.pan(-self.PAN))
        self.pan_right.on_click(lambda _b: self.pan(self.PAN))
        self.busiest.on_click(lambda _b: self.set_window(*self.busiest_window(width_us)))
        self.whole.on_click(lambda _b: self.set_window(0.0, self.duration_us))
        self.image = w.Image(format="png")
        self.image.layout.max_width = "100%"
        self.label = w.HTML()
        self.timing = w.HTML()
        for control in (self.kernel, self.vcpus, self.window):
            control.observe(self._changed, names="value")
        self.widget = w.VBox(
            [
                self.kernel,
                self.vcpus,
                self.window,
                w.HBox([getattr(self, name) for name in buttons]),
                self.label,
                self.image,
                self.timing,
            ]
        )
        self.widget.add_class("kvmviz-timeline")
        self.update()

    # -- what is shown ------------------------------------------------------------------------
    @property
    def timeline(self) -> LockTimeline:
        """The timeline of the size shown now (its axes, run and window)."""
        return self._views[self.vcpus.value][0]

    @property
    def figure(self) -> Figure:
        """The figure of the size shown now."""
        return self.timeline.lanes.figure

    def runs(self) -> dict:
        """The cached runs of the size shown now, one per kernel."""
        scenario = self.scenarios[self.vcpus.value]
        return {k: cached_simulate(scenario, k, "qrwlock", self.seed) for k in KERNELS}

    def busiest_window(self, width_us: float = 1_000.0) -> tuple[float, float]:
        """:func:`kvmviz.metrics.busiest_window` of the v5.12 run of the size shown, inside
        the run."""
        start, end = busiest_window(self.runs()["v5.12"], width_us)
        return start, min(end, self.duration_us)

    # -- moving the window ---------------------------------------------------------------------
    def _rounded(self, start_us, end_us) -> tuple[float, float]:
        """The window checked (inside the run, end after start) and rounded outwards to the
        slider's step, so that the slider holds it exactly."""
        start_us, end_us = check_window(start_us, end_us, self.duration_us)
        step = self.STEP_US
        start = max(0.0, round(np.floor(start_us / step + 1e-9) * step, 6))
        end = min(self.duration_us, round(np.ceil(end_us / step - 1e-9) * step, 6))
        return start, end

    def set_window(self, start_us: float, end_us: float) -> None:
        """Show ``[start_us, end_us)``, µs: moves the slider, which redraws.

        Raises
        ------
        ValueError
            If the window is not inside the run (``0 <= start_us < end_us <= duration_us``).
        """
        self.window.value = self._rounded(start_us, end_us)

    def zoom(self, factor: float) -> None:
        """Divide the window's width by ``factor`` about its centre (2: zoom in, 0.5: out),
        kept inside the run and at least :attr:`MIN_WIDTH_US` wide."""
        if not (isinstance(factor, (int, float)) and factor > 0):
            raise ValueError(f"factor = {factor!r}: expected a positive number (2 zooms in)")
        start, end = self.window.value
        centre = (start + end) / 2
        width = min(self.duration_us, max(self.MIN_WIDTH_US, (end - start) / factor))
        start = min(max(0.0, centre - width / 2), self.duration_us - width)
        self.set_window(start, start + width)

    def pan(self, fraction: float) -> None:
        """Move the window by ``fraction`` of its width (negative: earlier), stopping at the
        run's ends."""
        if not isinstance(fraction, (int, float)):
            raise ValueError(f"fraction = {fraction!r}: expected a number (0.5, -0.5, ...)")
        start, end = self.window.value
        width = end - start
        start = min(max(0.0, start + fraction * width), self.duration_us - width)
        self.set_window(start, start + width)

    # -- drawing -------------------------------------------------------------------------------
    def _changed(self, _change) -> None:
        self.update()

    def update(self) -> float:
        """Redraw the window, kernel and size the controls say; returns the seconds it took.

        Python's cyclic garbage collector is paused while it draws: a redraw allocates tens of
        thousands of small matplotlib objects, and a full collection falling inside one added
        60-140 ms to it (``benchmarks/timeline.py``; the slowest of 60 random redraws at 416
        vCPUs went from 170-250 ms to 104-114 ms). It resumes at the end, and collects then."""
        with _gc_paused():
            return self._update()

    def _update(self) -> float:
        started = time.perf_counter()
        kernel = _check_kernel(self.kernel.value)
        n_vcpus = self.vcpus.value
        timeline, blitter = self._views[n_vcpus]
        run = cached_simulate(self.scenarios[n_vcpus], kernel, "qrwlock", self.seed)
        start, end = self.window.value
        self._show(n_vcpus, run, start, end)
        self.image.value = blitter.png()
        low, high = timeline.xlim_us()
        self.label.value = (
            f'<p class="kvmviz-window" data-kernel="{kernel}" data-vcpus="{n_vcpus}" '
            f'data-start-us="{low:.3f}" data-end-us="{high:.3f}">'
            f"<b>{html.escape(KERNEL_STYLES[kernel]['label'])}</b>, {n_vcpus} vCPUs: "
            f"{_fmt_us(low)} to {_fmt_us(high)} µs of {self.duration_us:,.0f} "
            f"({_fmt_us(high - low)} µs wide)</p>"
        )
        elapsed = time.perf_counter() - started
        self.timing.value = (
            f'<small style="color:#777">seed {self.seed}; redrawn in {1000 * elapsed:.0f} ms'
            "</small>"
        )
        self.last_update_s = elapsed
        return elapsed

    def _show(self, n_vcpus: int, run, start_us: float, end_us: float) -> None:
        """Draw a window of a run onto the size's background: the timeline's moving artists
        blitted, its title, legend and axis labels each drawn once per look and restored from
        their pixels after (they sit beside the axes, on the background alone, and text is
        what costs most in Agg)."""
        timeline, blitter = self._views[n_vcpus]
        moving = timeline.show(run, start_us, end_us)
        _wrap_title(timeline.lanes)
        title, legend = timeline.lanes._left_title, timeline.lanes.get_legend()
        labels = [timeline.queue.xaxis.label, timeline.queue.yaxis.label]
        for label in labels:  # drawn by their _Look, after the axis has placed them
            label.set_visible(False)
        blitter.moving = [
            _Look(title, n_vcpus, self._looks),
            _Look(legend, n_vcpus, self._looks),
            *(a for a in moving if a is not title and a is not legend),
            *(_Look(label, n_vcpus, self._looks) for label in labels),
        ]
        blitter.blit()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector for a redraw; restore its state after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Look:
    """A text or legend beside the axes, drawn once per look (its texts and place) and then
    restored from the pixels kept for that look; the blitted counterpart of an Artist, as
    :class:`kvmviz.animate.Blitter` draws its moving artists. Only for an artist over the
    static background alone: what lies under it is restored with it."""

    def __init__(self, artist, size: int, pixels: dict) -> None:
        self.artist, self.size, self.pixels = artist, size, pixels

    def key(self) -> tuple:
        artist = self.artist
        texts = artist.get_texts() if hasattr(artist, "get_texts") else [artist]
        return (
            self.size,
            type(artist).__name__,
            *((t.get_text(), t.get_position()) for t in texts),
        )

    def draw(self, renderer) -> None:
        key = self.key()
        region = self.pixels.get(key)
        if region is not None:
            renderer.restore_region(region)
            return
        hidden = not self.artist.get_visible()
        self.artist.set_visible(True)
        try:
            self.artist.draw(renderer)
            box = self.artist.get_window_extent(renderer)
        finally:
            self.artist.set_visible(not hidden)
        if box.width > 0 and box.height > 0:
            self.pixels[key] = renderer.copy_from_bbox(box.padded(2))


def _wrap_title(ax) -> None:
    """Break :func:`kvmviz.timelines.lock_timeline`'s long title of grouped lanes before its
    parenthesis, so that it fits the explorer's figure."""
    title = ax.get_title(loc="left")
    if "\n" not in title and " (share" in title:
        ax.set_title(title.replace(" (share", "\n(share", 1), loc="left")


def timeline_explorer(
    scenario: Scenario | None = None, seed: int = 0, kernel: str = "v5.12", **options
):
    """Build and return a :class:`TimelineExplorer` (display it as a cell's last line).

    Parameters
    ----------
    scenario : Scenario, optional
    seed : int
    kernel : str
    **options
        ``sizes``, ``n_vcpus``, ``window``, ``width_us``: as :class:`TimelineExplorer`.

    Returns
    -------
    TimelineExplorer
    """
    return TimelineExplorer(scenario, seed=seed, kernel=kernel, **options)


# ---------------------------------------------------------------------------------------------
# The player of an animation
# ---------------------------------------------------------------------------------------------
def player(animation: Animation):
    """An ipywidgets player: Play and a frame slider (linked in the browser) over an image.

    In a notebook, every frame is rendered ahead and kept, one frame per turn of the kernel's
    event loop while it is idle, so playback then only sends bytes to the browser. Display
    the returned box as a cell's last line. Outside a running event loop (a script, a test)
    a frame is rendered when it is first shown.

    All drawing happens on the thread that runs the kernel's event loop, the one that also
    runs the cells and the slider's callbacks: the animation's figure is never drawn from two
    threads at once (matplotlib is not thread-safe), however the learner steps, plays or
    exports it meanwhile.

    Parameters
    ----------
    animation : kvmviz.animate.Animation

    Returns
    -------
    ipywidgets.VBox
        Its ``.children``: an HBox of (Play, IntSlider), then the Image; CSS class
        ``kvmviz-player``.

    Examples
    --------
    >>> kv.widgets.player(kv.animate.queue_animation(runs))  # doctest: +SKIP
    """
    import ipywidgets as w

    last = len(animation) - 1
    play = w.Play(
        value=0,
        min=0,
        max=last,
        step=1,
        interval=max(1, round(1000 / animation.fps)),
        description="play",
    )
    slider = w.IntSlider(value=0, min=0, max=last, description="frame", readout=True)
    w.jslink((play, "value"), (slider, "value"))
    image = w.Image(value=animation.png(0), format="png")
    image.layout.max_width = "100%"
    rendered = {0: image.value}

    def frame(i: int) -> bytes:
        if i not in rendered:
            rendered[i] = animation.png(i)
        return rendered[i]

    def show(change) -> None:
        image.value = frame(int(change["new"]))

    slider.observe(show, names="value")
    box = w.VBox([w.HBox([play, slider]), image])
    box.add_class("kvmviz-player")
    _render_ahead(frame, len(animation), box)
    return box


def _run_ahead(tasks: list[Callable[[], None]], owner) -> bool:
    """Call each of ``tasks`` on the running event loop, one per turn, while ``owner`` (a
    widget) lives; nothing without a running loop (a script, a test). Returns whether there
    was one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    alive = weakref.ref(owner)

    def step(i: int) -> None:
        widget = alive()
        if i >= len(tasks) or widget is None or getattr(widget, "comm", True) is None:
            return
        tasks[i]()
        loop.call_soon(step, i + 1)

    loop.call_soon(step, 0)
    return True


def _render_ahead(frame: Callable[[int], bytes], n_frames: int, owner) -> bool:
    """Call ``frame(1)`` .. ``frame(n_frames - 1)`` on the running event loop, one per turn,
    so the messages of the widgets (a slider moved) are served in between. Stops early when
    ``owner`` (the player) is garbage-collected or its widget closed. Returns whether an event
    loop was there to do it (ipykernel runs one on the main thread; a plain script has none).

    No thread: the frames are drawn on the loop's thread, the one that runs the cells and the
    slider's callbacks, so a frame drawn ahead never races the caller's own draw."""
    return _run_ahead([functools.partial(frame, i) for i in range(1, n_frames)], owner)
