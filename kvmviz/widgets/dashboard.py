"""The kernel toggle dashboard (chapter 04, the projector page): the same VM on each kernel,
its stalls, brownout and table, redrawn in place as the toggles and sliders move."""

from __future__ import annotations

import functools
import html
import time

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axis import Axis, YAxis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import Bbox

from .._shared._checks import check_seed, strict_booleans
from ..inputs import presets
from ..inputs.kernels import KERNELS, KERNELS_2021
from ..inputs.presets import VMM_HEAP
from ..inputs.scenario import Scenario
from ..model.classify import first_callbacks
from ..stats.metrics import KERNEL_TABLE_COLUMNS, kernel_table
from ..views import plot
from ..views.address_axis import AddressAxis
from ..views.animate import Blitter, set_spans
from ..views.map_labels import AxisLabels
from ..views.theme import KERNEL_STYLES, set_theme
from .animation_player import run_ahead
from .controls import cached_simulate, check_kernel, kernel_buttons

__all__ = ["ToggleDashboard", "toggle_dashboard"]


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
    """The per-kernel table as HTML, transposed so that it stays narrow: one row per column
    of ``KERNEL_TABLE_COLUMNS`` (``<tr data-column=...>``, its readable name as the row's
    header), one column per kernel (``<td data-kernel=...>``), the ``selected`` kernel's
    column highlighted (class ``kvmviz-selected``). ``table`` is
    :func:`kvmviz.metrics.kernel_table` (or a mapping of kernel to its row). Wrapped in a box
    that scrolls sideways when even this is too wide (a browser zoomed to 200 %)."""
    rows = dict(table.iterrows() if isinstance(table, pd.DataFrame) else table.items())

    def marked(kernel: str) -> str:
        return ' class="kvmviz-selected"' if kernel == selected else ""

    head = '<tr><th scope="col">measure</th>' + "".join(
        f'<th scope="col" data-kernel="{html.escape(k)}"{marked(k)}>{html.escape(k)}</th>'
        for k in rows
    )
    body = "".join(
        f'<tr data-column="{c}"><th scope="row">{html.escape(_TABLE_CELLS[c][0])}</th>'
        + "".join(
            f'<td data-kernel="{html.escape(k)}"{marked(k)}>{_TABLE_CELLS[c][1](s[c])}</td>'
            for k, s in rows.items()
        )
        + "</tr>"
        for c in KERNEL_TABLE_COLUMNS
    )
    return (
        f'<div class="kvmviz-table-box"><table class="kvmviz-summary">{head}</tr>{body}'
        "</table></div>"
    )


def _percent(share: float) -> str:
    """A share of the VM's vCPU time in a sentence: "0%" only when it is exactly 0."""
    value = 100 * float(share)
    if value == 0:
        return "0%"
    return "under 0.1%" if value < 0.05 else f"{value:.1f}%"


def _big_percent(share: float) -> str:
    """A share for the big number, as HTML: as :func:`_percent`, "<0.1%" for a share under
    0.05 %."""
    text = _percent(share)
    return "&lt;0.1%" if text.startswith("under") else text


def _all_small(table: pd.DataFrame) -> bool:
    """Whether every kernel's brownout rounds to 0.0 % (a small VM)."""
    return bool((100 * table["brownout_mean"].to_numpy(dtype=float) < 0.05).all())


def _small_vm_sentence(table: pd.DataFrame, n_vcpus: int) -> str:
    """Why every kernel loses (almost) nothing on a small VM, in words."""
    shares = table["brownout_mean"].to_numpy(dtype=float)
    return (
        f"With {n_vcpus} vCPUs every kernel loses "
        f"{'nothing' if (shares == 0).all() else 'under 0.1%'} of the VM's vCPU time: few "
        "faults are in flight when a notifier takes the lock, so few queue behind it; the "
        "brownout grows with the vCPUs (move the slider up)."
    )


def _headline_html(table: pd.DataFrame, selected: str, run, *, setup: str) -> str:
    """The headline over the dashboard's figure, from the per-kernel table and the selected
    kernel's run: a big number, the selected kernel's brownout (the share of the VM's vCPU
    time stalled on mmu_lock), v5.12's beside it, and a sentence why: its split by what the
    faults waited behind, or in words that no vCPU stalled and why; how many callbacks
    skipped the lock; on a small VM, why every kernel loses almost nothing; under the shadow
    MMU, why the faults stall each other. Its data attributes carry the numbers (read by
    ui-tests/test_dashboard.py and ui-tests/test_lab.py)."""
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
        f"{setup} setup · {scenario.n_vcpus} vCPUs · {html.escape(_MMU_LABELS[scenario.tdp_mmu])}"
    )
    reference = (
        ""
        if selected == "v5.12"
        else f'<span class="kvmviz-reference">v5.12: <b>{_big_percent(ref["brownout_mean"])}</b>'
        "</span>"
    )
    top = (
        f'<div class="kvmviz-headline-top"><span class="kvmviz-big">'
        f"{_big_percent(s['brownout_mean'])}</span>"
        f'<span class="kvmviz-what"><b>{label}</b>: of the VM\'s vCPU time stalled on mmu_lock'
        f'<br><span class="kvmviz-where">{where}</span></span>{reference}</div>'
    )
    why = []
    taken, callbacks = int(s["lock_taken"]), int(s["notifier_callbacks"])
    if s["brownout_mean"] == 0:
        hits = int(run.notifiers["hit"].sum())
        if taken == 0:
            reason = (
                "every notification missed guest memory and skipped the lock"
                if hits == 0
                else "every notification skipped the lock"
            )
        else:
            reason = f"the {taken} callbacks that took mmu_lock never made a fault wait or retry"
        why.append(f"<b>{selected}: no vCPU stalled</b>: {reason}.")
    else:
        split = [
            f"{_percent(s['brownout_miss'])} behind notifications that missed guest memory "
            "(spurious)",
            f"{_percent(s['brownout_hit'])} behind ones that hit it",
        ]
        if s["brownout_fault"] > 0:
            split.append(f"{_percent(s['brownout_fault'])} behind other faults only")
        why.append(f"Of it, {', '.join(split[:-1])} and {split[-1]}.")
    if taken or s["brownout_mean"] > 0:  # (otherwise the sentence above said it)
        why.append(f"{int(s['lock_avoided'])} of {callbacks} callbacks skipped the lock.")
    if _all_small(table):
        why.append(_small_vm_sentence(table, scenario.n_vcpus))
    if not scenario.tdp_mmu:
        why.append(
            "Without the TDP MMU every fault takes mmu_lock for write: the faults serialise "
            "each other, whatever the notifiers do."
        )
    return (
        f'<div class="kvmviz-p99 kvmviz-brownout" {attrs}>{top}'
        f'<p class="kvmviz-why">{" ".join(why)}</p></div>'
    )


def _bytes(n: float) -> str:
    """A size in binary units, as the kernel writes them: 12 TiB, 512 MiB."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.3g} {unit}"
    return f"{n / 1024:.0f} KiB"


def _intro_html(
    table: pd.DataFrame, scenario: Scenario, *, setup: str, seed: int, moved: bool = False
) -> str:
    """What the dashboard shows, in words, written from the scenario the controls describe
    (so that it follows the sliders) and from its per-kernel table: the VM, the
    notifications, what each kernel does with them, what each view draws, and this
    scenario's brownout on every kernel; where every kernel's rounds to 0, it says so and
    why. ``moved``: the sliders have moved the scenario away from the setup's own."""
    share = scenario.spurious_share
    read = "read" if scenario.tdp_mmu else "write"
    n = scenario.n_vcpus
    article = "An" if str(n).startswith("8") or n in (11, 18) else "A"  # an 8-, an 11-vCPU
    vm = (
        f"{article} {n}-vCPU VM with {_bytes(scenario.layout.total_pages * 4096)} of "
        f"memory has just been live-migrated: {scenario.faulting_share:.0%} of its vCPUs are "
        f"faulting their memory back in, each fault taking KVM's <code>mmu_lock</code> for "
        f"<i>{read}</i> (the {'TDP' if scenario.tdp_mmu else 'shadow'} MMU). Meanwhile the host "
        f"sends KVM {scenario.notifier_rate_hz:,.0f} MMU notifications a second. "
    )
    if share >= 1:
        vm += (
            "Every one of them is spurious: it comes from the VMM tidying its own memory "
            "(<code>munmap</code>, <code>madvise</code>, the host aging the VMM's pages) and "
            "touches no guest memory"
        )
    elif share <= 0:
        vm += (
            "Every one of them hits guest memory (KSM merges, page migrations, the aging of "
            "guest pages)"
        )
    else:
        vm += (
            f"{share:.0%} of them are spurious (the VMM tidying its own memory: they touch no "
            f"guest memory); the other {1 - share:.0%} hit guest memory (KSM merges, page "
            "migrations, the aging of guest pages)"
        )
    if moved:
        vm += f". This is the {setup} setup as the sliders changed it."
    elif setup == "static":
        vm += ". This is the static setup of 8931a454ae's message."
    else:
        vm += '. This is a volatile setup, where the commit "barely qualifies as an optimization".'

    kernels = (
        "On <b>v5.12</b> every notification takes <code>mmu_lock</code> for write, hit or "
        "miss, and the faults queue behind it. <b>v5.13</b> (8931a454ae) stops the spurious "
        "unpaired callbacks (page aging, <code>change_pte</code>) from taking it; <b>v5.15</b> "
        "(071064f14d87) stops the spurious <code>invalidate_range_start/end</code> pairs too. "
        "A notification that hits guest memory takes the lock on each of them. The kernels "
        "since keep v5.15's rule for spurious notifications. <b>v6.8</b> (d02c357e5bfa) adds "
        "a pre-check: a fault on memory being invalidated retries before it asks for the lock "
        "(<b>v6.7</b> is the last release without it); from v6.10 (f3b65bbaed7c) a KSM merge "
        "is a plain start/end pair, and from v6.15 (aa34b811650c) aging guest pages takes no "
        "<code>mmu_lock</code> at all, so on <b>v6.18</b> only invalidations of guest memory "
        "take it."
    )
    parts = "grey, hatched: behind notifications that missed guest memory; vermilion: behind "
    parts += "ones that hit it"
    if not scenario.tdp_mmu:
        parts += "; blue, cross-hatched: behind other faults only (each holds the lock for write)"
    views = (
        "The big number is the chosen kernel's <b>brownout</b>: the share of the VM's vCPU "
        "time stalled on <code>mmu_lock</code>, v5.12's beside it. Left: the brownout over "
        "time, the share of the vCPUs stalled in each moment, v5.12 thin as the reference and "
        f"the chosen kernel bold. Right: the same two kernels' brownout split ({parts}). "
        "Bottom: the memslots (green) and where this run's notifications landed (grey: "
        "spurious, vermilion: guest memory). Where a kernel stalls nothing, the views say so "
        "in words."
    )
    numbers = ", ".join(
        f"{kernel} {_percent(table.loc[kernel, 'brownout_mean'])}" for kernel in table.index
    )
    here = f"Here the brownout is: {numbers}."
    if _all_small(table):
        here += " " + _small_vm_sentence(table, scenario.n_vcpus)
    model = (
        f"Every run is a seeded simulation of the kernel's rules (seed {seed}, "
        f"{scenario.duration_us / 1000:,.0f} ms of the VM), so the numbers on the projector "
        "are the ones on everyone's laptop (chapter 04 of the course). The sliders change the "
        "vCPUs, the share of spurious notifications and how many arrive a second; flipping the "
        "setup puts them back."
    )
    paragraphs = (vm, kernels, views, here, model)
    return '<div class="kvmviz-intro">' + "".join(f"<p>{p}</p>" for p in paragraphs) + "</div>"


def _shown(selected: str) -> tuple[str, ...]:
    """The kernels the dashboard's views draw: v5.12, the reference, and the selected one."""
    return tuple(k for k in KERNELS if k in ("v5.12", selected))


def _split_kernels(selected: str) -> tuple[str, ...]:
    """The kernels the split's bars are filled from: the three of 2021, as before the toggle
    reached v6.x (a part one of them stalls behind is named on each bar shown, "misses: 0%"),
    and the selected one. A v6 kernel not selected is left out, so that a part only it has
    (the pre-check's stalls behind other faults) is not named on bars that do not have it."""
    return tuple(k for k in KERNELS if k in KERNELS_2021 or k == selected)


def _nice_top(value: float) -> float:
    """The y limit of a share in %, just over ``value``: from 1, 2, 5, 10, 20, ... 100 (so
    that the ticks have at most three characters)."""
    for top in (1, 2, 5, 10, 20, 30, 40, 50, 60, 80, 100):
        if value <= top:
            return float(top)
    return float(np.ceil(value / 20) * 20)


# The dashboard's figure: one size in inches, drawn at two resolutions. On a projector it is
# 1,904 x 848 px (160 dpi), about the width of a 1080p screen, so that it is never stretched
# (the page's CSS caps its width at its pixels over the screen's pixel ratio); its smallest
# text is then about 21 px. In a notebook 85 dpi (1,011 x 450 px) is about the output's width.
_FIGSIZE = (11.9, 5.3)
_PROJECTOR_DPI = 160
_NOTEBOOK_DPI = 85
# matplotlib's relative sizes ("small", "x-small": the notes, the bars' labels, the split's
# legend) are fractions of font.size: 14 pt makes x-small about 9.7 pt, 21 px at 160 dpi.
_FIGURE_RC = {"font.size": 14.0}

_CSS = """
.kvmviz-dashboard .kvmviz-style { display: none; }
.kvmviz-dashboard .kvmviz-toggles { flex-wrap: wrap; column-gap: 1.5em; align-items: center; }
.kvmviz-dashboard .kvmviz-toggles > .widget-toggle-buttons { display: flex; width: auto;
  align-items: center; }
.kvmviz-dashboard .kvmviz-toggles > .widget-toggle-buttons > div { display: flex;
  flex-wrap: nowrap; }
.kvmviz-dashboard .kvmviz-toggles .widget-toggle-button { min-width: 4em; }
.kvmviz-dashboard .kvmviz-headline .widget-html-content { line-height: 1.3; }
.kvmviz-dashboard .kvmviz-headline-top { display: flex; align-items: center; gap: 0 0.8em;
  flex-wrap: wrap; }
.kvmviz-dashboard .kvmviz-big { font-size: 2.6em; font-weight: bold; line-height: 1.05; }
.kvmviz-dashboard .kvmviz-what { line-height: 1.25; }
.kvmviz-dashboard .kvmviz-where { color: var(--jp-ui-font-color2, #555); }
.kvmviz-dashboard .kvmviz-reference { font-size: 1.5em; color: var(--jp-ui-font-color2, #555);
  margin-left: 0.6em; }
.kvmviz-dashboard .kvmviz-why { margin: 0.2em 0 0.3em; line-height: 1.3; }
.kvmviz-dashboard .kvmviz-intro p { margin: 0 0 0.6em; line-height: 1.4; max-width: 70em; }
.kvmviz-dashboard .kvmviz-table-box { overflow-x: auto; max-width: 100%; }
.kvmviz-dashboard table.kvmviz-summary { border-collapse: collapse; }
.kvmviz-dashboard table.kvmviz-summary th,
.kvmviz-dashboard table.kvmviz-summary td { padding: 0.15em 0.7em; text-align: right;
  white-space: nowrap; }
.kvmviz-dashboard table.kvmviz-summary th[scope="row"] { text-align: left; font-weight: normal; }
.kvmviz-dashboard table.kvmviz-summary th:first-child { text-align: left; }
.kvmviz-dashboard .kvmviz-toggles .widget-label { margin-right: 0.4em; }
.kvmviz-dashboard table.kvmviz-summary .kvmviz-selected { font-weight: bold;
  background: #e8f1f8; }
.kvmviz-dashboard .kvmviz-timing { color: #777; font-size: 0.8em; }

/* Projector: text at least 20 px on a 1080p screen (16 px on a 720p one), the toggles, the
   headline and the figure on one screen, the figure filling what the rest leaves. */
.kvmviz-dashboard.kvmviz-projector {
  --kvmviz-font: max(16px, 1.9vh);
  --jp-widgets-font-size: var(--kvmviz-font);
  --jp-widgets-inline-height: calc(1.6 * var(--kvmviz-font));
  --jp-widgets-inline-label-width: 5.5em;
  --jp-widgets-inline-width-short: 6em;
  --jp-widgets-inline-width-tiny: 3em;
  font-size: var(--kvmviz-font);
}
.kvmviz-projector .widget-label, .kvmviz-projector .widget-html-content,
.kvmviz-projector .widget-readout, .kvmviz-projector .jupyter-widget-Collapse-header,
.kvmviz-projector .widget-toggle-button, .kvmviz-projector table.kvmviz-summary {
  font-size: var(--kvmviz-font);
}
.kvmviz-projector .kvmviz-screen {
  height: calc(100vh - var(--kvmviz-above, 0px) - 4px);
  flex-wrap: nowrap;
}
.kvmviz-projector .kvmviz-screen > * { flex: 0 0 auto; }
.kvmviz-projector .kvmviz-screen > .kvmviz-figure {
  flex: 1 1 0; min-height: 0; width: 100%; max-width: %(width)spx; height: auto;
  object-fit: contain; object-position: left top;
}
@media (min-resolution: 1.25dppx) {
  .kvmviz-projector .kvmviz-screen > .kvmviz-figure { max-width: calc(%(width)spx / 1.25); }
}
@media (min-resolution: 1.5dppx) {
  .kvmviz-projector .kvmviz-screen > .kvmviz-figure { max-width: calc(%(width)spx / 1.5); }
}
@media (min-resolution: 2dppx) {
  .kvmviz-projector .kvmviz-screen > .kvmviz-figure { max-width: calc(%(width)spx / 2); }
}
@media (min-resolution: 3dppx) {
  .kvmviz-projector .kvmviz-screen > .kvmviz-figure { max-width: calc(%(width)spx / 3); }
}
"""


class ToggleDashboard:
    """The kernel toggle (the milestones of :data:`kvmviz.KERNELS`: v5.12, v5.13 and v5.15 of
    2021, v6.7 and v6.8 either side of the 2024 pre-check, v6.18), the setup toggle (static or
    volatile, the two setups of 8931a454ae's message: :data:`kvmviz.presets.SETUPS`), the MMU
    toggle (TDP or shadow, the kernel's ``kvm.tdp_mmu``) and a few sliders, driving a headline
    and a figure.

    The headline's big number is the selected kernel's brownout, the share of the VM's vCPU
    time stalled on ``mmu_lock``, with v5.12's beside it and a sentence why (its split by what
    the faults waited behind; where a kernel stalls nothing, it says so in words). The figure
    shows the chosen kernel against v5.12 only: the brownout over time (v5.12 thin, the
    chosen kernel bold), the two kernels' brownout split by what the faults waited behind
    (:func:`kvmviz.plot.stall_split`), and a memslot map with the notifier ranges of the run
    coloured hit/miss. Under it, folded away: what the dashboard shows, in words written from
    the current scenario ("What am I looking at?"), the sliders ("Change the VM") and the
    table of :data:`kvmviz.metrics.KERNEL_TABLE_COLUMNS` for every kernel. It opens on the
    static setup, where v5.15 stalls nothing. Runs are cached (both setups are simulated
    ahead), so flipping a toggle or returning to a slider position redraws without
    simulating again.

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
    projector : bool
        Size everything for a projector (``dashboard/toggle.ipynb`` under Voila): text at
        least 20 px on a 1080p screen, the toggles, the headline and the whole figure on one
        screen without scrolling (at 1920 x 1080 and 1280 x 720), and the figure drawn at
        1,904 x 848 px, so that it is never stretched. Default False: a notebook's output
        (chapter 04), the figure at 1,011 x 450 px.

    Attributes
    ----------
    kernel, setup, mmu : ipywidgets.ToggleButtons
    vcpus : ipywidgets.IntSlider
    spurious : ipywidgets.FloatSlider
    rate : ipywidgets.FloatLogSlider
    headline : ipywidgets.HTML
        ``<div class="kvmviz-p99 kvmviz-brownout">`` with data attributes ``kernel``,
        ``mmu``, ``setup``, ``vcpus``, ``brownout``, ``brownout-miss``, ``brownout-hit``,
        ``brownout-fault`` and ``p99-us``.
    image : ipywidgets.Image
        The figure as PNG.
    intro, table : ipywidgets.HTML
        What the dashboard shows, in words; the per-kernel table (one row per measure, one
        column per kernel).
    details : ipywidgets.Accordion
        The intro, the sliders and the table, folded (all closed at first).
    widget : ipywidgets.VBox
        Everything, CSS classes ``kvmviz-dashboard`` (and ``kvmviz-projector``).
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        seed: int = 0,
        kernel: str = "v5.12",
        setup: str = "static",
        *,
        projector: bool = False,
    ):
        if setup not in presets.SETUPS:
            raise ValueError(f"setup {setup!r}: expected one of {', '.join(presets.SETUPS)}")
        kernel = check_kernel(kernel)
        self.vm = Scenario() if scenario is None else scenario
        self.seed = check_seed(seed)
        self.projector = bool(projector)
        self._setups = {name: presets.with_setup(self.vm, name) for name in presets.SETUPS}
        set_theme("notebook")
        self._add_toggles(kernel, setup)
        self._add_sliders(self._setups[setup])
        self._add_outputs()
        self._add_figure()
        self._drawn_scenario = None
        self._resetting = False
        for control in (self.kernel, self.mmu, self.vcpus, self.spurious, self.rate):
            control.observe(self._changed, names="value")
        self.setup.observe(self._setup_changed, names="value")
        self._lay_out()
        self.update()
        # The other setup simulated and measured ahead, so that its first flip is as quick as
        # the next; the other MMU too, on the event loop (in a notebook), one kernel per step
        # with a pause between (_warm_steps), so that a page connecting meanwhile is answered.
        for name in presets.SETUPS:
            if name != setup:
                self._warm(self._setups[name].replace(tdp_mmu=self.vm.tdp_mmu))
        run_ahead(
            [
                step
                for base in self._setups.values()
                for step in self._warm_steps(base.replace(tdp_mmu=not self.vm.tdp_mmu))
            ],
            self.widget,
        )

    # -- building: the controls, the outputs, the figure, the layout -------------------------
    def _add_toggles(self, kernel: str, setup: str) -> None:
        """The kernel, setup and MMU toggles."""
        import ipywidgets as w

        self.kernel = kernel_buttons(kernel)
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
        for toggle in (self.kernel, self.setup, self.mmu):
            toggle.style.button_width = "auto"  # each label in full, however long
            toggle.style.description_width = "auto"

    def _add_sliders(self, start: Scenario) -> None:
        """The vCPUs, spurious share and rate sliders, at the values of setup ``start``."""
        import ipywidgets as w

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
            readout_format=",.0f",
        )
        for slider in (self.vcpus, self.spurious, self.rate):
            slider.style.description_width = "8.5em"
            slider.layout.width = "min(100%, 36em)"

    def _add_outputs(self) -> None:
        """The headline, the intro, the table, the picture and the timing line."""
        import ipywidgets as w

        self.headline = w.HTML()
        self.headline.add_class("kvmviz-headline")
        self.intro = w.HTML()
        self.intro.add_class("kvmviz-intro-box")
        self.table = w.HTML()
        self.image = w.Image(format="png")
        self.image.add_class("kvmviz-figure")
        if not self.projector:
            self.image.layout.max_width = "100%"
        self.timing = w.HTML()
        self.timing.add_class("kvmviz-timing")

    def _add_figure(self) -> None:
        """One figure, drawn in full once; afterwards only the lines, bars, marks and the axes
        whose limits follow the scenario move."""
        dpi = _PROJECTOR_DPI if self.projector else _NOTEBOOK_DPI
        with matplotlib.rc_context(_FIGURE_RC):
            self.figure = Figure(figsize=_FIGSIZE, dpi=dpi, layout="constrained")
        self._blitter = Blitter(self.figure)
        self.canvas = self._blitter.canvas
        self._looks: dict = {}  # the pixels of each look of the axes and legends (_Kept)
        grid = self.figure.add_gridspec(2, 2, height_ratios=[2.7, 1], width_ratios=[1.75, 1])
        self.ax_brownout = self.figure.add_subplot(grid[0, 0])
        self.ax_split = self.figure.add_subplot(grid[0, 1])
        self.ax_map = self.figure.add_subplot(grid[1, :])

    def _lay_out(self) -> None:
        """The screen (toggles, headline, picture), the folded details and the style, in
        :attr:`widget`."""
        import ipywidgets as w

        toggles = w.HBox([self.kernel, self.setup, self.mmu])
        toggles.add_class("kvmviz-toggles")
        screen = w.VBox([toggles, self.headline, self.image])
        screen.add_class("kvmviz-screen")
        self.details = w.Accordion(
            children=[self.intro, w.VBox([self.vcpus, self.spurious, self.rate]), self.table],
            titles=("What am I looking at?", "Change the VM", "Numbers for every kernel"),
            selected_index=None,
        )
        self.details.add_class("kvmviz-details")
        width = round(_FIGSIZE[0] * _PROJECTOR_DPI)
        style = w.HTML(f"<style>{_CSS.replace('%(width)s', str(width))}</style>")
        style.add_class("kvmviz-style")
        self.widget = w.VBox([style, screen, self.details, self.timing])
        self.widget.add_class("kvmviz-dashboard")
        if self.projector:
            self.widget.add_class("kvmviz-projector")

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

    @property
    def shown(self) -> tuple[str, ...]:
        """The kernels the figure draws now: v5.12, the reference, and the selected one."""
        return _shown(self.kernel.value)

    def _warm(self, scenario: Scenario) -> None:
        """Simulate ``scenario`` on every kernel and measure what the views draw of it, ahead
        of the learner (everything lands in the caches a redraw reads)."""
        for step in self._warm_steps(scenario):
            step()

    def _warm_steps(self, scenario: Scenario) -> list:
        """What :meth:`_warm` does, in steps of one kernel each (one simulation and what the
        views draw of it, about 0.2 s at the default VM), then the table.

        Run ahead one step at a time (:func:`~kvmviz.widgets.animation_player.run_ahead`), so
        that a message to the kernel waits one step at most. A Voila page connects while the
        kernel runs ahead, and the widget renderer of jupyterlab_widgets 3.0 waits 2 s at most
        for a model the page has not loaded yet (``get_model``): a restore finishing in its
        last 100 ms leaves "Error displaying widget: model not found" for good
        (jupyter-widgets/ipywidgets#4026). Steps queued turn after turn held the page's
        messages until all of them were done, right at those 2 s: one page in three failed."""

        def one(kernel: str) -> None:
            plot.precompute(cached_simulate(scenario, kernel, "qrwlock", self.seed))

        return [
            *(functools.partial(one, kernel) for kernel in KERNELS),
            lambda: _cached_table(tuple(self.runs(scenario).values())),
        ]

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
        shown = self.shown
        table = _cached_table(tuple(runs.values()))
        scenario = self.scenario
        with matplotlib.rc_context(_FIGURE_RC):
            if not self._blitter.prepared:
                self._draw_static(runs, table, selected)
            split = table.loc[list(_split_kernels(selected))]
            if scenario != self._drawn_scenario:
                # The scale first: the split places its labels inside or beside its bars by it.
                self._fix_limits(scenario, runs, table)
                plot.update_stalls(
                    self.ax_brownout, runs, highlight=selected, table=table, shown=shown
                )
                plot.update_stalls(
                    self.ax_split, runs, highlight=selected, table=split, shown=shown
                )
                self._split_filled = tuple(split.index)
                spans = self._axis.spans(first_callbacks(runs[selected].notifiers))
                for kind, collection in self._span_collections.items():
                    set_spans(collection, spans[kind], *self._span_y)
                self._drawn_scenario = scenario
                self.intro.value = _intro_html(
                    table,
                    scenario,
                    setup=self.setup.value,
                    seed=self.seed,
                    moved=scenario != self.base.replace(tdp_mmu=scenario.tdp_mmu),
                )
            else:
                plot.restyle_stalls(self.ax_brownout, highlight=selected, shown=shown)
                if tuple(split.index) != self._split_filled:  # a v6 kernel in or out
                    plot.update_stalls(
                        self.ax_split, runs, highlight=selected, table=split, shown=shown
                    )
                    self._split_filled = tuple(split.index)
                else:
                    plot.restyle_stalls(self.ax_split, highlight=selected, shown=shown)
            self._blitter.moving = self._moving()
            self._blitter.blit()
        self.image.value = self._blitter.png()
        self.table.value = _table_html(table, selected)
        self.headline.value = _headline_html(
            table, selected, runs[selected], setup=self.setup.value
        )
        elapsed = time.perf_counter() - started
        self.timing.value = (
            f"<small>{self.setup.value} setup, {scenario.n_vcpus} vCPUs, "
            f"{scenario.duration_us / 1000:.0f} ms simulated, seed {self.seed}; "
            f"updated in {1000 * elapsed:.0f} ms</small>"
        )
        self.last_update_s = elapsed
        return elapsed

    # -- drawing: everything static once, then only the moving artists (Blitter) -----------
    def _moving(self) -> list:
        """What a redraw changes: the axes whose limits or names follow the scenario and the
        kernel, and the legends, each drawn once per look and then restored from its pixels
        (:class:`_Kept`: they lie over the static background alone, and text is what costs
        most in Agg); then the views' other live artists and the map's range bars."""
        legends = [self.ax_brownout.get_legend(), self.ax_split.get_legend()]
        kept = [
            _Kept("brownout-y", self.ax_brownout.yaxis, self._looks),
            _Kept("split-y", self.ax_split.yaxis, self._looks),
            _Kept("split-x", self.ax_split.xaxis, self._looks),
            *(_Kept(f"legend-{i}", g, self._looks) for i, g in enumerate(legends) if g is not None),
        ]
        moving = [
            *(a for ax in (self.ax_brownout, self.ax_split) for a in plot.live_artists(ax)),
            *self._span_collections.values(),
        ]
        for artist in [*(k.artist for k in kept), *moving]:
            artist.set_animated(True)
        return [*kept, *(a for a in moving if a not in legends)]

    def _draw_static(self, runs, table, selected) -> None:
        plot.brownout_curve(runs, ax=self.ax_brownout, highlight=selected)
        self.ax_brownout.legend(
            loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, borderaxespad=0.1
        )
        plot.stall_split(table, ax=self.ax_split, highlight=selected)
        # Shorter words for the narrower panel of the dashboard.
        self.ax_split.set_title("Brownout, split")
        self.ax_split.set_ylabel("VM's vCPU time stalled (%)")
        percent = FuncFormatter(lambda value, _pos: f"{value:g}")
        for ax in (self.ax_brownout, self.ax_split):
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10]))
            ax.yaxis.set_major_formatter(percent)
        # The map's axis is fixed by the memslots and the VMM's own memory, not by the ranges
        # of one run, so a new run only moves its range marks.
        plot.memslot_map(
            self.vm.layout,
            runs[selected].notifiers,
            ax=self.ax_map,
            regions=[VMM_HEAP],
            counts=False,  # the bars move with each run; a count in the legend would not
        )
        # The axis is the layout's and the heap's: the same for every run of this VM.
        self._axis = AddressAxis.of_layout(self.vm.layout, regions=[VMM_HEAP])
        parts = plot.map_parts(self.ax_map)
        self._span_collections = parts.bars
        self._span_y = parts.notifier_row
        _plain_map(self.ax_map)
        self.ax_brownout.set_xlim(0, self.vm.duration_us / 1000)  # the same for every run
        # The layout is solved once, for the widest labels the moving axes will have: y ticks
        # up to "100", and two kernels named on two lines under the split's bars. The legend
        # over the brownout is laid out with the three kernels of 2021 (two rows), as it was
        # before the toggle reached v6.x: the two entries it ever shows fit in it, and the 2021
        # positions keep their pixels.
        for ax in (self.ax_brownout, self.ax_split):
            ax.set_ylim(0, 100)
        plot.restyle_stalls(self.ax_brownout, highlight=selected, shown=KERNELS_2021)
        plot.restyle_stalls(self.ax_split, highlight=selected, shown=("v5.12", "v5.15"))
        self._blitter.moving = self._moving()
        self._blitter.prepare()  # solves the layout once and draws every static artist
        self._drawn_scenario = None  # the moving part is drawn by update, right after

    def _fix_limits(self, scenario, runs, table) -> None:
        """The y limits of the current scenario, the same for every kernel (so that a flip of
        the kernel compares like with like): the brownout's over the highest bin of any
        kernel, the split's with room for the totals and the legend over the tallest bar."""
        peak = max(
            float(np.max(plot.brownout_points(run)[1], initial=0.0)) for run in runs.values()
        )
        self.ax_brownout.set_ylim(0, min(100.0, _nice_top(1.1 * peak)) if peak > 0 else 1.0)
        top = 100 * float(table["brownout_mean"].max())
        self.ax_split.set_ylim(0, top * 1.65 if top > 0 else 1.0)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class _Kept:
    """An artist of the dashboard's figure that moves but lies over its static background
    alone (an axis whose limits and names follow the scenario and the kernel, a legend):
    drawn once per look, then restored from the pixels kept for that look, the most recent
    ``KEEP`` looks of each. Drawn first among the moving artists, so that nothing drawn
    after it is covered."""

    KEEP = 32

    def __init__(self, name: str, artist, pixels: dict) -> None:
        self.name, self.artist, self.pixels = name, artist, pixels

    def set_animated(self, animated: bool) -> None:
        self.artist.set_animated(animated)

    def key(self) -> tuple:
        artist = self.artist
        if isinstance(artist, Axis):
            return (
                artist.get_view_interval().tobytes(),
                *(t.get_text() for t in artist.get_majorticklabels()),
            )
        handles = [
            (h.get_linewidth(), h.get_alpha()) if hasattr(h, "get_linewidth") else None
            for h in artist.legend_handles
        ]
        return (*(t.get_text() for t in artist.get_texts()), *handles)

    def draw(self, renderer) -> None:
        looks = self.pixels.setdefault(self.name, {})
        key = self.key()
        region = looks.get(key)
        if region is not None:
            renderer.restore_region(region)
            return
        self.artist.draw(renderer)
        box = self._box(renderer)
        if box is not None and box.width > 0 and box.height > 0:
            if len(looks) >= self.KEEP:
                looks.pop(next(iter(looks)))
            looks[key] = renderer.copy_from_bbox(box)

    def _box(self, renderer) -> Bbox | None:
        """Where the artist drew, in pixels: a legend's box; an axis's tick labels and label
        with the tick marks between them and the axes (which its tight box leaves out), and
        two pixels over the axes' edge, where a tick mark's end is smoothed into it. (The
        pixels are kept right after the artist is drawn, before the lines and bars are.)"""
        artist = self.artist
        if not isinstance(artist, Axis):
            box = artist.get_window_extent(renderer)
            return None if box is None else box.padded(2)
        labels = artist.get_tightbbox(renderer)
        if labels is None:
            return None
        edge = artist.axes.bbox
        if isinstance(artist, YAxis):  # left of the axes
            return Bbox.from_extents(
                labels.x0 - 2, min(labels.y0, edge.y0) - 2, edge.x0 + 2, max(labels.y1, edge.y1) + 2
            )
        return Bbox.from_extents(  # under the axes
            min(labels.x0, edge.x0), labels.y0 - 2, max(labels.x1, edge.x1), edge.y0 + 2
        )


def _plain_map(ax) -> None:
    """The dashboard's memslot map with fewer words, so that what is left can be large: each
    slot named on one line inside its bar where it fits (its size too where there is room; no
    gfn range, no small print under the bar), no hva under the segments, a short axis
    label."""
    for text in ax.texts:
        places = getattr(text, "_kvmviz_places", None)  # a slot's label (memslot_maps._slot_label)
        if text.get_gid() == "axis-label":
            text.set_visible(False)
        elif places:
            inside = places[0]
            words = inside["text"].split("\ngfn ")[0].replace("\n", ", ")
            text._kvmviz_places = [
                {**inside, "text": words},
                {**inside, "text": words.split(", ")[0]},
            ]
        elif "\ngfn " in text.get_text():
            text.set_text(text.get_text().split("\ngfn ")[0])
    for artist in ax.get_children():
        if isinstance(artist, AxisLabels):  # it would show the addresses again
            artist.remove()
    ax.set_xlabel("the VMM's address space (hva; gaps cut out): where the notifications land")


@strict_booleans
def toggle_dashboard(
    scenario: Scenario | None = None,
    seed: int = 0,
    kernel: str = "v5.12",
    setup: str = "static",
    *,
    projector: bool = False,
):
    """Build and return a :class:`ToggleDashboard` (display it as a cell's last line).

    Parameters
    ----------
    scenario : Scenario, optional
    seed : int
    kernel : str
    setup : {"static", "volatile"}
    projector : bool
        Sized for a projector (``dashboard/toggle.ipynb`` under Voila); see
        :class:`ToggleDashboard`.

    Returns
    -------
    ToggleDashboard
    """
    return ToggleDashboard(scenario, seed=seed, kernel=kernel, setup=setup, projector=projector)
