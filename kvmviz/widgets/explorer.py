"""The zoomable lock timeline (:class:`TimelineExplorer`): a window of one run's ``mmu_lock``
acquisitions, panned and zoomed by sliders and buttons, redrawn by blitting."""

from __future__ import annotations

import contextlib
import gc
import html
import time

import numpy as np
from matplotlib.figure import Figure

from .._shared._checks import check_seed
from ..inputs.kernels import KERNELS
from ..inputs.scenario import Scenario
from ..stats.metrics import busiest_window
from ..views.animate import Blitter
from ..views.theme import KERNEL_STYLES, set_theme
from ..views.timelines import LockTimeline, check_window
from .controls import cached_simulate, check_kernel, kernel_buttons

__all__ = ["TimelineExplorer", "timeline_explorer"]


def _check_sizes(sizes, n_vcpus, default: int) -> tuple[tuple[int, ...], int]:
    """A :class:`TimelineExplorer`'s ``sizes`` (distinct vCPU counts) and the size shown first
    (``n_vcpus``, default the scenario's own, ``default``, if offered, else the first)."""
    sizes = tuple(sizes)
    if not sizes or not all(
        isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes
    ):
        raise ValueError(f"sizes = {sizes!r}: expected vCPU counts, positive integers")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes = {sizes!r}: expected each vCPU count once")
    if n_vcpus is None:
        n_vcpus = default if default in sizes else sizes[0]
    elif n_vcpus not in sizes:
        raise ValueError(f"n_vcpus = {n_vcpus!r}: expected one of sizes {sizes}")
    return sizes, n_vcpus


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
        The kernel shown at first, one of the toggle's milestones :data:`kvmviz.KERNELS`
        (v5.12 to v6.18).
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
        base = Scenario() if scenario is None else scenario
        self.seed = check_seed(seed)
        kernel = check_kernel(kernel)
        sizes, n_vcpus = _check_sizes(sizes, n_vcpus, base.n_vcpus)
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
        self._draw_views(sizes, kernel, window)
        self._add_controls(sizes, kernel, n_vcpus, window, width_us)
        self.update()

    def _draw_views(self, sizes, kernel: str, window: tuple[float, float]) -> None:
        """Each size's figure, drawn in full once (its background), then each kernel's title
        and legend, and the axis in ms, drawn once ahead of the learner: the first redraw of a
        look costs about twice the next ones (text)."""
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
        for n in sizes:
            runs = {k: cached_simulate(self.scenarios[n], k, "qrwlock", self.seed) for k in KERNELS}
            self._show(n, runs["v5.12"], 0.0, self.duration_us)
            for run in runs.values():
                self._show(n, run, *window)

    def _add_controls(self, sizes, kernel: str, n_vcpus: int, window, width_us: float) -> None:
        """The kernel and size toggles, the window slider, the buttons, the picture and the
        box of them all, each control redrawing when it changes."""
        import ipywidgets as w

        self.kernel = kernel_buttons(kernel)
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
        buttons = self._add_buttons(width_us)
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
                w.HBox(buttons),
                self.label,
                self.image,
                self.timing,
            ]
        )
        self.widget.add_class("kvmviz-timeline")

    def _add_buttons(self, width_us: float) -> list:
        """The zoom, pan, busiest and whole-run buttons, as attributes; returns them in order."""
        import ipywidgets as w

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
        return [getattr(self, name) for name in buttons]

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
        kernel = check_kernel(self.kernel.value)
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
