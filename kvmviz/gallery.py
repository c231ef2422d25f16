"""The named blog figures and animations, one builder each: ``kvmviz figures`` and ``examples/``.

Each figure has a name (its file name, a key of :data:`FIGURES`), a fixed size in inches and a
builder that draws it from seeded simulations with the functions of :mod:`kvmviz.plot` and
:mod:`kvmviz.timelines`. Everything that shows one of them calls that builder:

* :func:`render` draws one figure (``examples/<name>.py`` save it with :func:`kvmviz.plot.save`);
* :func:`render_all` writes them all, and the standard animations, reproducibly (the same seed
  gives byte-identical SVG files), all or nothing: that is ``kvmviz figures``;
* :func:`table` gives the text tables of :data:`TABLES` (``examples/contention_table.py``).

The gallery is a controller: it simulates (:func:`kvmviz.simulate`,
:mod:`kvmviz.experiments`) and hands the tables to the views. The animations of
:mod:`kvmviz.animate` are built here too (:func:`standard_animations`) and written by
:func:`render_animations`.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure

from . import animate, classify, experiments, metrics, plot, timelines
from ._files import check_free, umask
from .engine import simulate
from .kernels import KERNELS
from .notifiers import generate_stream
from .presets import VMM_HEAP, q35_512m_layout, static_setup, volatile_setup
from .scenario import Scenario
from .theme import KERNEL_STYLES, set_theme

__all__ = [
    "ANIMATION_FORMATS",
    "FIGURES",
    "FORMATS",
    "MEMSLOT_SCENARIO",
    "QUEUE_SCENARIO",
    "TABLES",
    "render",
    "render_all",
    "render_animations",
    "standard_animations",
    "table",
]

FORMATS = plot.FORMATS
ANIMATION_FORMATS = ("html", "gif")

# The VM of the notebooks: 416 vCPUs, 12 TiB, every parameter at its cited default (the maps of
# its memslots and the perf-lock tables).
LARGE_VM = Scenario()
# The two setups of 8931a454ae's message (kvmviz.presets): the chapter-04 figures open on the
# static one, where v5.15 stalls nothing, and show the volatile one where it makes the point.
STATIC = static_setup()
VOLATILE = volatile_setup()
SETUP_NAMES = {STATIC: "static", VOLATILE: "volatile"}
# A fault storm on a small VM (guest runs 10 µs between faults, 5,000 notifications a second),
# so that a window of a few tens of µs shows readers queueing behind a writer.
SMALL_VM = Scenario(
    n_vcpus=8, faulting_share=1.0, guest_run_us=10.0, notifier_rate_hz=5_000.0, duration_us=5_000.0
)
# The memslot maps draw the notifications of a longer stretch (200 ms) than the runs (20 ms),
# so that a few of the rare hits show up; only the stream is generated, nothing is simulated.
MAP_DURATION_US = 200_000.0
# The headline's range: each free parameter over its plausible range, averaged over 4 seeds.
HEADLINE_SEEDS = 4

# The standard animations' workloads (free parameters, chosen to be watched). The queue: the
# static setup on 24 vCPUs (every waiter fits on screen) faulting every ~30 µs of guest time, so
# that several readers are inside at once when a spurious writer arrives.
QUEUE_SCENARIO = static_setup(n_vcpus=24, duration_us=4_000.0, guest_run_us=30.0)
# Hits and misses in even measure, so both are seen landing within a few seconds.
MEMSLOT_SCENARIO = Scenario(
    n_vcpus=24, duration_us=4_000.0, notifier_rate_hz=20_000.0, spurious_share=0.6
)
_QUEUE_WINDOW_US = 60.0


# Figure sizes are given for the "paper" context; others scale them with their fonts
# (seaborn's font scales 0.8 / 1 / 1.5), so that every context keeps the same layout.
_SIZE_SCALE = {"paper": 1.0, "notebook": 1.25, "talk": 1.875}


class _Render:
    """What the builders share in one render: the seed, the size scale, the runs made so far."""

    def __init__(self, seed: int, context: str = "paper") -> None:
        self.seed = seed
        self.scale = _SIZE_SCALE[context]
        self._cache: dict = {}

    def figure(self, width_in: float, height_in: float) -> Figure:
        """A new figure, its size given in inches for the paper context."""
        # Figure, not pyplot: no GUI backend, no global figure list to leak into.
        size = (width_in * self.scale, height_in * self.scale)
        return Figure(figsize=size, layout="constrained")

    def run(self, scenario: Scenario, kernel: str):
        key = ("run", scenario, kernel)
        if key not in self._cache:
            self._cache[key] = simulate(scenario, kernel, "qrwlock", self.seed)
        return self._cache[key]

    def kernels(self, scenario: Scenario = STATIC) -> dict:
        return {kernel: self.run(scenario, kernel) for kernel in KERNELS}

    def sensitivity(self, scenario: Scenario = STATIC):
        """:func:`kvmviz.experiments.sensitivity` over :data:`HEADLINE_SEEDS` seeds from
        this render's seed."""
        key = ("sensitivity", scenario)
        if key not in self._cache:
            seeds = tuple(range(self.seed, self.seed + HEADLINE_SEEDS))
            self._cache[key] = experiments.sensitivity(scenario, seeds=seeds)
        return self._cache[key]

    def setups(self, seeds: tuple[int, ...]):
        """:func:`kvmviz.experiments.compare_setups` over ``seeds``, computed once."""
        key = ("setups", seeds)
        if key not in self._cache:
            self._cache[key] = experiments.compare_setups(seeds=seeds)
        return self._cache[key]

    def stream(self, scenario: Scenario):
        """A notification stream with the hit column the memslot maps need."""
        key = ("stream", scenario)
        if key not in self._cache:
            stream = generate_stream(scenario, self.seed)
            stream["hit"] = classify.event_hits(stream, scenario.layout)
            self._cache[key] = stream
        return self._cache[key]


def _caption(fig: Figure, text: str) -> None:
    fig.suptitle(text, x=0.01, ha="left", fontsize="medium", fontweight="bold")


def _notifications(stream) -> str:
    return (
        f"{len(stream)} MMU notifications in {MAP_DURATION_US / 1000:.0f} ms, "
        f"{int(stream['hit'].sum())} of them hit guest memory"
    )


def _memslot_figure(render: _Render, layout, stream, title: str) -> Figure:
    rows = len({s.as_id for s in layout})
    fig = render.figure(10, 2.6 + 1.2 * rows)
    axes = fig.subplots(2, 1, height_ratios=[rows + 1, rows])
    plot.memslot_map(layout, stream, ax=axes, regions=[VMM_HEAP], gfn_view=True)
    _caption(fig, title)
    return fig


def _fig_memslots_large_vm(render: _Render) -> Figure:
    """The 12 TiB VM's memslots, hva and gfn sides, with 200 ms of notifications on them."""
    scenario = LARGE_VM.replace(duration_us=MAP_DURATION_US)
    stream = render.stream(scenario)
    ram_tib = sum(s.size_bytes for s in scenario.layout if s.as_id == 0) / 2**40
    return _memslot_figure(
        render,
        scenario.layout,
        stream,
        f"A {ram_tib:.0f} TiB q35 VM: {_notifications(stream)}",
    )


def _fig_memslots_q35(render: _Render) -> Figure:
    """The memslots QEMU 7.2 registers for ``-machine q35 -m 512``, with notifications."""
    scenario = Scenario(layout=q35_512m_layout(), duration_us=MAP_DURATION_US)
    stream = render.stream(scenario)
    return _memslot_figure(
        render,
        scenario.layout,
        stream,
        f"qemu-system-x86_64 -machine q35 -m 512: {_notifications(stream)}",
    )


def _percent(share: float) -> str:
    """A share as the captions write it: "none" at exactly 0, "under 1%" below 0.5 %."""
    if share == 0:
        return "none"
    return "under 1%" if share < 0.005 else f"{share:.0%}"


def _describe_setup(scenario: Scenario) -> str:
    """What a setup's notifications are, from its own parameters."""
    name = SETUP_NAMES.get(scenario, "custom")
    guest = scenario.notifier_rate_hz * (1 - scenario.spurious_share)
    if guest == 0:
        what = "every MMU notification spurious"
    else:
        what = f"{guest:,.0f} of {scenario.notifier_rate_hz:,.0f} notifications/s on guest memory"
    return f"the {name} setup ({scenario.n_vcpus} vCPUs, {what})"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fig_stall_cdf(render: _Render) -> Figure:
    """Each fault's stall on the three kernels, as cumulative distributions (static setup)."""
    fig = render.figure(6.4, 4.0)
    plot.stall_cdf(render.kernels(STATIC), ax=fig.subplots())
    _caption(fig, _sentence(_describe_setup(STATIC)))
    return fig


def _fig_brownout(render: _Render) -> Figure:
    """The share of the VM's vCPUs stalled over time on the three kernels (static setup)."""
    fig = render.figure(6.4, 4.0)
    ax = plot.brownout_curve(render.kernels(STATIC), ax=fig.subplots())
    _label_lines(ax)
    _caption(fig, _sentence(_describe_setup(STATIC)))
    return fig


def _fig_kernel_comparison(render: _Render) -> Figure:
    """Cause and effect per kernel: callbacks taking the lock, p99 stall per fault, share of
    the VM's vCPU time stalled (static setup)."""
    table = metrics.kernel_table(render.kernels(STATIC))
    fig = render.figure(10, 3.4)
    for ax, metric in zip(
        fig.subplots(1, 3), ("lock_taken", "stall_p99_us", "brownout_mean"), strict=True
    ):
        plot.kernel_bars(table, ax=ax, metric=metric)
    _caption(
        fig,
        f"{_sentence(_describe_setup(STATIC))}: the same workload and "
        f"{STATIC.duration_us / 1000:.0f} ms of notifications on three kernels",
    )
    return fig


def _stall_by_kernel(render: _Render, scenario: Scenario) -> Figure:
    fig = render.figure(10, 3.8)
    plot.stall_by_kernel(render.kernels(scenario), ax=fig.subplots(1, 2, width_ratios=[1.5, 1]))
    _caption(fig, f"{_sentence(_describe_setup(scenario))} on three kernels")
    return fig


def _fig_stall_by_kernel(render: _Render) -> Figure:
    """Chapter 04's static per-kernel figure on the static setup: each fault's stall as a
    distribution, and each kernel's brownout split by what the faults waited behind, with its
    writers' mean wait."""
    return _stall_by_kernel(render, STATIC)


def _fig_stall_by_kernel_volatile(render: _Render) -> Figure:
    """The same figure on the volatile setup: v5.15 still stalls, behind hits."""
    return _stall_by_kernel(render, VOLATILE)


def _fig_stall_split(render: _Render) -> Figure:
    """The brownout split by what the faults waited behind, static and volatile side by side:
    the part behind misses goes to zero on v5.15 in both, the part behind hits stays."""
    fig = render.figure(10, 4.0)
    axes = fig.subplots(1, 2, sharey=True)
    # The README's headline numbers: the means of HEADLINE_SEEDS seeds (compare_setups).
    seeds = tuple(range(render.seed, render.seed + HEADLINE_SEEDS))
    table = render.setups(seeds)
    for ax, (setup, scenario) in zip(
        axes, (("static", STATIC), ("volatile", VOLATILE)), strict=True
    ):
        plot.stall_split(table.loc[setup], ax=ax)
        name, _, what = _describe_setup(scenario).removeprefix("the ").partition(" (")
        ax.set_title(f"{name}\n{what.rstrip(')')}", loc="left", fontsize="medium")
    axes[1].set_ylabel("")
    _caption(
        fig,
        f"What the stalled faults waited behind, on three kernels (means of seeds "
        f"{seeds[0]}-{seeds[-1]})",
    )
    return fig


def _timeline_figure(render: _Render, run, width_us: float, height: float, title: str) -> Figure:
    """A lock timeline about ``width_us`` wide around the run's longest writer wait, widened
    (:func:`kvmviz.metrics.busiest_window`) so that no stall is cut off at an edge."""
    fig = render.figure(10, height)
    axes = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    timelines.lock_timeline(run, *metrics.busiest_window(run, width_us), ax=axes)
    _caption(fig, title)
    return fig


def _fig_lock_timeline_8_vcpus(render: _Render) -> Figure:
    """Eight vCPUs in a fault storm on v5.12: a writer waits, and new faults queue behind it."""
    return _timeline_figure(
        render,
        render.run(SMALL_VM, "v5.12"),
        60.0,
        4.8,
        f"A fault storm on {SMALL_VM.n_vcpus} vCPUs (a fault every ~{SMALL_VM.guest_run_us:.0f} µs "
        f"of guest time, {SMALL_VM.notifier_rate_hz:,.0f} notifications/s), around the longest "
        "writer wait",
    )


def _fig_lock_timeline_416_vcpus(render: _Render) -> Figure:
    """The 416-vCPU VM of the static setup on v5.12 around its longest writer wait, vCPUs
    grouped in lanes."""
    return _timeline_figure(
        render,
        render.run(STATIC, "v5.12"),
        3_000.0,
        6.2,
        f"{_sentence(_describe_setup(STATIC))} on v5.12, around its longest writer wait",
    )


def _fig_before_after(render: _Render) -> Figure:
    """v5.12 against v5.15 on the static setup, stall CDF and brownout side by side."""
    pair = {k: render.run(STATIC, k) for k in ("v5.12", "v5.15")}
    fig = render.figure(10, 3.8)
    ax_cdf, ax_brownout = fig.subplots(1, 2)
    plot.stall_cdf(pair, ax=ax_cdf)
    plot.brownout_curve(pair, ax=ax_brownout)
    _label_lines(ax_brownout)
    before, after = (run.summary()["brownout_mean"] for run in pair.values())
    _caption(
        fig,
        f"{_sentence(_describe_setup(STATIC))}: {_percent(before)} of the VM's vCPU time "
        f"stalled on v5.12, {_percent(after)} on v5.15",
    )
    return fig


def _label_lines(ax, gap_pt: float = 9.0) -> None:
    """Name each kernel's line at the right edge, at the height of its mean (no legend);
    names closer than ``gap_pt`` are moved apart, the mark beside each staying at its mean."""
    left, right = ax.get_xlim()
    rows = []
    for line in ax.get_lines():
        kernel = (line.get_gid() or "").partition("|")[2]
        if kernel in KERNEL_STYLES:
            rows.append((float(line.get_ydata().mean()), kernel, line.get_color()))
    rows.sort()
    low, high = ax.get_ylim()
    height_pt = ax.get_position().height * ax.figure.get_figheight() * 72
    placed: list[float] = []  # each name's height, points above the axis
    for mean, _kernel, _color in rows:
        at = (mean - low) / (high - low) * height_pt
        placed.append(max(at, placed[-1] + gap_pt) if placed else at)
    for (mean, kernel, color), at in zip(rows, placed, strict=True):
        mark = [right - 0.015 * (right - left), right]
        ax.plot(mark, [mean, mean], color=color, clip_on=False)
        text = f"{kernel}: none stalled" if mean == 0 else f"{kernel}: mean {_percent(mean / 100)}"
        shift = at - (mean - low) / (high - low) * height_pt
        ax.annotate(
            text,
            xy=(right, mean),
            xytext=(4, shift),
            textcoords="offset points",
            va="center",
            fontsize="small",
            color=color,
            annotation_clip=False,
        )
    ax.set_xlim(left, right)


def _fig_headline_ranges(render: _Render) -> Figure:
    """The headline with its range, on the static setup (top) and the volatile one (bottom):
    each kernel's brownout and p99 stall per fault as each free parameter moves over its
    plausible range (:func:`kvmviz.plot.tornado`), the others at the setup's values."""
    tables = {scenario: render.sensitivity(scenario) for scenario in (STATIC, VOLATILE)}
    n_parameters = max(table["parameter"].nunique() for table in tables.values())
    fig = render.figure(10, 1.0 + 2 * (0.5 + 0.5 * n_parameters))
    plot.tornado_grid(
        {_sentence(_describe_setup(scenario)): table for scenario, table in tables.items()},
        fig=fig,
    )
    last = render.seed + HEADLINE_SEEDS - 1
    fig.suptitle(
        f"Each bar one parameter over its plausible range, TDP MMU (seeds {render.seed}-{last})",
        fontsize="medium",
    )
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
    "headline-ranges": _fig_headline_ranges,
}
"""Figure name (the file name, without suffix) -> builder ``builder(render) -> Figure``."""


def _contention_table(kernel: str) -> Callable[[_Render], str]:
    def build(render: _Render) -> str:
        """``perf lock contention`` for the simulated mmu_lock of the 416-vCPU VM."""
        return metrics.contention_text(render.run(LARGE_VM, kernel))

    return build


TABLES: dict[str, Callable[[_Render], str]] = {
    f"contention-{kernel}": _contention_table(kernel) for kernel in ("v5.12", "v5.15")
}
"""Table name (the file name, without ``.txt``) -> builder ``builder(render) -> str``."""


def render(name: str, *, seed: int = 0, context: str = "paper") -> Figure:
    """Draw one figure of :data:`FIGURES`, as :func:`render_all` draws it.

    The figure is drawn under the current matplotlib settings: call
    :func:`kvmviz.set_theme` with the same ``context`` first (and keep it while saving), and
    :func:`kvmviz.plot.save` writes the same bytes as ``kvmviz figures``.

    Parameters
    ----------
    name : str
        A key of :data:`FIGURES`.
    seed : int
        Seeds every simulation the figure draws.
    context : {"paper", "notebook", "talk"}
        Scales the figure's size with the theme's fonts.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> kv.set_theme("paper")  # doctest: +SKIP
    >>> kv.plot.save(kv.gallery.render("stall-cdf"), "figs/stall-cdf")  # doctest: +SKIP
    """
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; expected one of {list(FIGURES)}")
    return FIGURES[name](_Render(seed, context))


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
    window = animate.story_window(runs, _QUEUE_WINDOW_US).window
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
def render_all(
    out_dir,
    *,
    formats: Sequence[str] = ("svg", "png"),
    context: str = "paper",
    seed: int = 0,
    force: bool = False,
    only: Sequence[str] | None = None,
    animations: bool = True,
) -> list[Path]:
    """Render every figure into ``out_dir``, one file per figure and format, and the
    standard animations.

    Parameters
    ----------
    out_dir : str or Path
        Created if needed.
    formats : sequence of {"svg", "png", "pdf"}
        The figures' formats (the animations are written as HTML and GIF).
    context : {"paper", "notebook", "talk"}
        Passed to :func:`kvmviz.set_theme` (for this call only: the global matplotlib
        settings are restored afterwards).
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

    Returns
    -------
    list of Path
        The files written: the animations', then the figures'.

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
    if not formats or any(f not in FORMATS for f in formats):
        raise ValueError(f"formats must be among {FORMATS}, got {formats!r}")
    if not force:
        targets = _animation_targets(out, ANIMATION_FORMATS) if animations else []
        targets += [out / f"{name}.{fmt}" for name in names for fmt in formats]
        existing = [t.name for t in targets if t.exists()]
        if existing:
            shown = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
            raise FileExistsError(
                f"refusing to overwrite {len(existing)} existing file(s) in {out}: {shown} "
                "(pass force=True)"
            )
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(out))
    created = _make_parents(out.parent)  # removed again if the run does not complete
    try:
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    except OSError as error:
        _remove_empty(created)
        # mkdtemp names a random file of its own: name the folder it could not write into.
        reason = f"{error.strerror or error} (creating a temporary folder there)"
        raise OSError(error.errno, reason, str(out.parent)) from error
    complete = False
    try:
        staged: list[Path] = []
        render = _Render(seed, context)
        with mpl.rc_context():
            set_theme(context)
            if animations:
                staged += render_animations(staging, force=True, seed=seed)
            for name in names:
                fig = FIGURES[name](render)
                staged += plot.save(fig, staging / name, formats=formats, force=True)
        written = _move_into_place(staging, staged, out)
        complete = True
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not complete:
            _remove_empty(created)


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing ancestors; return those created, innermost first."""
    missing = []
    for path in (folder, *folder.parents):
        if path.is_dir():
            break
        if path.exists():  # a regular file: mkdir would say "File exists", which misleads
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(path))
        missing.append(path)
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed run created (innermost first), if they are still empty."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            return  # not empty (something else wrote there) or already gone: leave it


def _move_into_place(staging: Path, staged: list[Path], out: Path) -> list[Path]:
    """Move a complete set from ``staging`` to ``out``: one rename of the folder when ``out``
    does not exist yet, else one atomic rename per file (each replaces its old version)."""
    relative = [p.relative_to(staging) for p in staged]
    staging.chmod(0o777 & ~umask())  # mkdtemp makes 0700; the figures are for everyone
    if not out.exists():
        staging.rename(out)
    else:
        for rel in relative:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, out / rel)
    return [out / rel for rel in relative]
