"""ipywidgets front ends: the kernel toggle dashboard over cached simulations, and the player
of an :class:`~kvmviz.animate.Animation`.

The views draw (:mod:`kvmviz.plot`, :mod:`kvmviz.animate`); this module simulates (through
:func:`cached_simulate`), wires the controls and shows the pictures. Both the dashboard and
the animations redraw only what moves (:class:`kvmviz.animate.Blitter`).
"""

from __future__ import annotations

import asyncio
import functools
import html
import time
import weakref
from collections.abc import Callable

import pandas as pd
from matplotlib.figure import Figure

from . import plot
from ._checks import check_seed
from .animate import Animation, Blitter, set_spans
from .classify import first_callbacks
from .engine import simulate
from .kernels import KERNELS
from .metrics import KERNEL_TABLE_COLUMNS, kernel_table
from .presets import VMM_HEAP
from .scenario import Scenario
from .theme import KERNEL_STYLES, set_theme

__all__ = ["ToggleDashboard", "cached_simulate", "player", "toggle_dashboard"]


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


# The header and format of each column of metrics.KERNEL_TABLE_COLUMNS, the table every front
# end prints: the writers' wait sits beside the readers' stall, so a policy that starves the
# notifiers (reader-pref) cannot look like a win.
_TABLE_CELLS = {
    "p99_us": ("p99 stall (µs)", lambda v: f"{v:.1f}"),
    "mean_us": ("mean stall (µs)", lambda v: f"{v:.1f}"),
    "writer_wait_mean_us": ("writers' mean wait (µs)", lambda v: f"{v:.1f}"),
    "writer_wait_max_us": ("writers' max wait (µs)", lambda v: f"{v:.1f}"),
    "brownout_mean": ("brownout (% vCPU time)", lambda v: f"{100 * v:.1f}"),
    "faults_retried": ("faults retried", lambda v: f"{int(v)}"),
    "lock_taken": ("lock taken", lambda v: f"{int(v)}"),
    "lock_avoided": ("lock avoided", lambda v: f"{int(v)}"),
}


def _table_html(table, selected: str) -> str:
    """The per-kernel table as HTML: one row per kernel, the columns of
    ``KERNEL_TABLE_COLUMNS``, the ``selected`` kernel's row highlighted. ``table`` is
    :func:`kvmviz.metrics.kernel_table` (or a mapping of kernel to its row)."""
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


class ToggleDashboard:
    """The kernel toggle (v5.12 / v5.13 / v5.15), the MMU toggle (TDP or shadow, the kernel's
    ``kvm.tdp_mmu``) and a few sliders, driving four views.

    The views: the stall CDF and the brownout curve (the selected kernel bold, the others faint
    for reference), a memslot map with the notifier ranges of the run coloured hit/miss, and a
    table of :data:`kvmviz.metrics.KERNEL_TABLE_COLUMNS` per kernel: the readers' p99 and mean
    stall beside the writers' (notifiers') mean and max wait, brownout, faults retried and
    lock acquisitions taken and avoided. Runs are cached, so flipping
    the toggle or returning to a slider position redraws without simulating again.

    Parameters
    ----------
    scenario : Scenario, optional
        The starting point; sliders change ``n_vcpus``, ``spurious_share`` and
        ``notifier_rate_hz``.
    seed : int
    kernel : str
        The kernel selected at first.
    """

    def __init__(self, scenario: Scenario | None = None, seed: int = 0, kernel: str = "v5.12"):
        import ipywidgets as w

        self.base = Scenario() if scenario is None else scenario
        self.seed = check_seed(seed)
        set_theme("notebook")
        self.kernel = w.ToggleButtons(
            options=list(KERNELS),
            value=kernel,
            description="kernel",
            tooltips=[KERNEL_STYLES[k]["label"] for k in KERNELS],
        )
        # The MMU is its own axis (kvm.tdp_mmu): faults read-lock mmu_lock only with the TDP
        # MMU (direct_page_fault, a2855afc7ee8); stock v5.12-v5.14 hosts had it off.
        self.mmu = w.ToggleButtons(
            options=[(label, value) for value, label in _MMU_LABELS.items()],
            value=self.base.tdp_mmu,
            description="MMU",
            tooltips=[
                "kvm.tdp_mmu=1: faults take mmu_lock for read (default from v5.15, 71ba3f3189c7)",
                "kvm.tdp_mmu=0: every fault takes mmu_lock for write (stock v5.12-v5.14)",
            ],
        )
        self.vcpus = w.IntSlider(
            value=self.base.n_vcpus,
            min=8,
            max=512,
            step=8,
            description="vCPUs",
            continuous_update=False,
        )
        self.spurious = w.FloatSlider(
            value=self.base.spurious_share,
            min=0.0,
            max=1.0,
            step=0.05,
            description="spurious share",
            continuous_update=False,
            readout_format=".2f",
        )
        self.rate = w.FloatLogSlider(
            value=self.base.notifier_rate_hz,
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
        # One figure, drawn in full once; afterwards only the lines and range marks move.
        self.figure = Figure(figsize=(11, 6.2), dpi=80, layout="constrained")
        self._blitter = Blitter(self.figure)
        self.canvas = self._blitter.canvas
        grid = self.figure.add_gridspec(2, 2, height_ratios=[1.5, 1])
        self.ax_cdf = self.figure.add_subplot(grid[0, 0])
        self.ax_brownout = self.figure.add_subplot(grid[0, 1])
        self.ax_map = self.figure.add_subplot(grid[1, :])
        self._drawn_scenario = None
        for control in (self.kernel, self.mmu, self.vcpus, self.spurious, self.rate):
            control.observe(self._changed, names="value")
        self.widget = w.VBox(
            [
                self.kernel,
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

    @property
    def scenario(self) -> Scenario:
        """The scenario the sliders describe now."""
        return self.base.replace(
            n_vcpus=int(self.vcpus.value),
            spurious_share=round(float(self.spurious.value), 4),
            notifier_rate_hz=round(float(self.rate.value), 3),
            tdp_mmu=bool(self.mmu.value),
        )

    def runs(self) -> dict:
        """The cached runs of the current scenario, one per kernel."""
        return {k: cached_simulate(self.scenario, k, "qrwlock", self.seed) for k in KERNELS}

    def _changed(self, _change) -> None:
        self.update()

    def update(self) -> float:
        """Re-simulate (from cache when possible) and redraw; returns the seconds it took."""
        started = time.perf_counter()
        runs = self.runs()
        selected = self.kernel.value
        table = _cached_table(tuple(runs.values()))
        scenario = self.scenario
        if not self._blitter.prepared:
            self._draw_static(runs, selected)
        if scenario != self._drawn_scenario:
            for ax in (self.ax_cdf, self.ax_brownout):
                plot.update(ax, runs, highlight=selected)
            self._fix_limits(scenario)
            spans = plot._notifier_spans(self._to_x, first_callbacks(runs[selected].notifiers))
            for hit, collection in self._span_collections.items():
                set_spans(collection, spans[hit], *self._span_y)
            self._drawn_scenario = scenario
        else:
            for ax in (self.ax_cdf, self.ax_brownout):
                plot.restyle(ax, highlight=selected)
        self._blitter.blit()
        self.image.value = self._blitter.png()
        self.table.value = _table_html(table, selected)
        s, ref = table.loc[selected], table.loc["v5.12"]
        mmu = "tdp" if scenario.tdp_mmu else "shadow"
        self.headline.value = (
            f'<p class="kvmviz-p99" data-kernel="{selected}" data-mmu="{mmu}" '
            f'data-p99-us="{s["p99_us"]:.3f}" data-brownout="{s["brownout_mean"]:.5f}">'
            f"<b>{html.escape(KERNEL_STYLES[selected]['label'])}</b>, "
            f"{html.escape(_MMU_LABELS[scenario.tdp_mmu])}: p99 fault stall "
            f"<b>{s['p99_us']:.1f} µs</b> (v5.12: {ref['p99_us']:.1f} µs); "
            f"{100 * s['brownout_mean']:.1f}% of vCPU time stalled on mmu_lock; "
            f"{int(s['lock_avoided'])} of {int(s['notifier_callbacks'])} callbacks "
            "skipped the lock."
            + (
                ""
                if scenario.tdp_mmu
                else " Without the TDP MMU every fault takes mmu_lock for write: the faults "
                "serialise each other, whatever the notifiers do."
            )
            + "</p>"
        )
        elapsed = time.perf_counter() - started
        self.timing.value = (
            f'<small style="color:#777">{scenario.n_vcpus} vCPUs, '
            f"{scenario.duration_us / 1000:.0f} ms simulated, seed {self.seed}; "
            f"updated in {1000 * elapsed:.0f} ms</small>"
        )
        self.last_update_s = elapsed
        return elapsed

    # -- drawing: everything static once, then only the moving artists (Blitter) -----------
    def _draw_static(self, runs, selected) -> None:
        plot.stall_cdf(runs, ax=self.ax_cdf, highlight=selected)
        plot.brownout_curve(runs, ax=self.ax_brownout, highlight=selected)
        # The map's axis is fixed by the memslots and the VMM's own memory, not by the ranges
        # of one run, so a new run only moves its range marks.
        plot.memslot_map(
            self.base.layout,
            runs[selected].notifiers,
            ax=self.ax_map,
            regions=[VMM_HEAP],
            counts=False,  # the bars move with each run; a count in the legend would not
        )
        intervals = [(x.hva_start, x.hva_end) for x in self.base.layout]
        self._to_x = plot._segments(intervals, [VMM_HEAP])[0]
        self._span_collections = {
            hit: next(c for c in self.ax_map.collections if c.get_gid() == f"notifiers-{key}")
            for hit, key in ((True, "hit"), (False, "miss"))
        }
        # The bars' rows as memslot_map draws them: 0.6 high, room above for the hit markers.
        self._span_y = (len({x.as_id for x in self.base.layout}) + 0.15, 0.6)
        self._fix_limits(self.scenario)
        legends = [ax.get_legend() for ax in (self.ax_cdf, self.ax_brownout)]
        self._blitter.moving = [
            *self.ax_cdf.get_lines(),
            *self.ax_brownout.get_lines(),
            *self._span_collections.values(),
            *(legend for legend in legends if legend is not None),
        ]
        self._blitter.prepare()  # solves the layout once and draws every static artist
        self._drawn_scenario = self.scenario

    def _fix_limits(self, scenario) -> None:
        # Fixed limits keep the ticks (the static part) valid for every run.
        self.ax_cdf.set_xlim(0.08, 1e5)
        self.ax_brownout.set_xlim(0, scenario.duration_us / 1000)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def toggle_dashboard(scenario: Scenario | None = None, seed: int = 0, kernel: str = "v5.12"):
    """Build and return a :class:`ToggleDashboard` (display it as a cell's last line)."""
    return ToggleDashboard(scenario, seed=seed, kernel=kernel)


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


def _render_ahead(frame: Callable[[int], bytes], n_frames: int, owner) -> bool:
    """Call ``frame(1)`` .. ``frame(n_frames - 1)`` on the running event loop, one per turn,
    so the messages of the widgets (a slider moved) are served in between. Stops early when
    ``owner`` (the player) is garbage-collected or its widget closed. Returns whether an event
    loop was there to do it (ipykernel runs one on the main thread; a plain script has none).

    No thread: the frames are drawn on the loop's thread, the one that runs the cells and the
    slider's callbacks, so a frame drawn ahead never races the caller's own draw."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    alive = weakref.ref(owner)

    def step(i: int) -> None:
        box = alive()
        if i >= n_frames or box is None or getattr(box, "comm", True) is None:
            return
        frame(i)
        loop.call_soon(step, i + 1)

    loop.call_soon(step, 1)
    return True
