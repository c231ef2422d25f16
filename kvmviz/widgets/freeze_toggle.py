"""The 2024 freeze's toggle (chapter 08): one VM on the NUMA balancer, kernel x preemption model,
its freeze in numbers and in a timeline, redrawn as the toggles move."""

from __future__ import annotations

import html
import io

from .._shared._checks import check_seed, strict_booleans
from ..inputs import presets
from ..inputs.kernels import zap_yields
from ..inputs.scenario import Scenario
from ..stats.metrics import freeze
from ..views.timelines import freeze_timeline, freeze_window
from .controls import cached_simulate

__all__ = ["FreezeToggle", "freeze_toggle"]


def _headline_html(run, numbers, *, yields: bool) -> str:
    """The freeze in one line, with the numbers as data attributes (``.kvmviz-freeze``) for
    a reader of the page (the browser test)."""
    s = run.scenario
    build = "PREEMPT_DYNAMIC" if s.preempt_dynamic else "fixed preemption model"
    zap = (
        f"the zap yields <code>mmu_lock</code> {int(numbers['yields']):,} times and crawls "
        f"{numbers['zap_ms']:.2f} ms"
        if yields
        else f"the zap keeps <code>mmu_lock</code> and is done in {numbers['zap_ms']:.2f} ms"
    )
    attrs = {
        "kernel": run.kernel,
        "preempt": s.preempt,
        "dynamic": str(s.preempt_dynamic).lower(),
        "freeze-ms": f"{numbers['freeze_max_ms']:.6g}",
        "yields": int(numbers["yields"]),
        "futile-reads": int(numbers["futile_reads"]),
        "lockless-retries": int(numbers["lockless_retries"]),
    }
    data = " ".join(f'data-{k}="{html.escape(str(v))}"' for k, v in attrs.items())
    return (
        f'<div class="kvmviz-freeze" {data}><b>{html.escape(run.kernel)}, {build}, '
        f"preempt={html.escape(s.preempt)}</b>: {zap}; the longest fault waits "
        f"<b>{numbers['freeze_max_ms']:.2f} ms</b>; {int(numbers['futile_reads']):,} futile "
        f"reads, {int(numbers['lockless_retries']):,} lockless retries.</div>"
    )


class FreezeToggle:
    """The freeze's toggle: kernel (:data:`kvmviz.presets.FREEZE_KERNELS`), preemption model
    (:data:`kvmviz.presets.FREEZE_PREEMPTS`) and whether the kernel is built
    ``PREEMPT_DYNAMIC``; under them a line of numbers (:func:`kvmviz.metrics.freeze`) and the
    freeze's timeline (:func:`kvmviz.timelines.freeze_timeline`) of the run they pick.

    Runs come from :func:`kvmviz.widgets.cached_simulate`: going back to a position costs only
    the drawing.

    Parameters
    ----------
    scenario : Scenario, optional
        The VM; default :func:`kvmviz.presets.numa_balancing_setup` for 30 ms (its first scan,
        whole). Its ``preempt`` and ``preempt_dynamic`` are the toggles' to set.
    seed : int
    kernel, preempt : str
        The first position.
    dynamic : bool
        The first position of the PREEMPT_DYNAMIC box.

    Attributes
    ----------
    kernel, preempt : ipywidgets.ToggleButtons
    dynamic : ipywidgets.Checkbox
    headline : ipywidgets.HTML
    image : ipywidgets.Image
        The timeline, a PNG.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        seed: int = 0,
        kernel: str = "v6.7",
        preempt: str = "voluntary",
        dynamic: bool = True,
    ) -> None:
        import ipywidgets as w

        if scenario is None:
            scenario = presets.numa_balancing_setup(duration_us=30_000.0)
        if not isinstance(scenario, Scenario):
            raise TypeError(f"scenario must be a kvmviz.Scenario, got {type(scenario).__name__}")
        if kernel not in presets.FREEZE_KERNELS:
            raise ValueError(f"kernel {kernel!r}: expected one of {presets.FREEZE_KERNELS}")
        if preempt not in presets.FREEZE_PREEMPTS:
            raise ValueError(f"preempt {preempt!r}: expected one of {presets.FREEZE_PREEMPTS}")
        if not isinstance(dynamic, bool):
            raise TypeError(f"dynamic must be True or False, got {dynamic!r}")
        self.base, self.seed = scenario, check_seed(seed)
        self.kernel = w.ToggleButtons(
            options=list(presets.FREEZE_KERNELS), value=kernel, description="kernel"
        )
        self.preempt = w.ToggleButtons(
            options=list(presets.FREEZE_PREEMPTS), value=preempt, description="preempt"
        )
        self.dynamic = w.Checkbox(value=dynamic, description="PREEMPT_DYNAMIC build")
        self.headline = w.HTML()
        self.image = w.Image(format="png")
        self.image.add_class("kvmviz-freeze-timeline")
        for control in (self.kernel, self.preempt, self.dynamic):
            control.observe(lambda _change: self.update(), names="value")
        self.box = w.VBox(
            [w.HBox([self.kernel]), w.HBox([self.preempt, self.dynamic]), self.headline, self.image]
        )
        self.update()

    @property
    def scenario(self) -> Scenario:
        """The VM at the toggles' position."""
        return self.base.replace(preempt=self.preempt.value, preempt_dynamic=self.dynamic.value)

    def run(self):
        """The run the toggles pick (cached)."""
        return cached_simulate(self.scenario, self.kernel.value, "qrwlock", self.seed)

    def update(self) -> None:
        """Simulate (or fetch) the run of the toggles' position, then redraw the line of
        numbers and the timeline."""
        from matplotlib.figure import Figure

        run = self.run()
        s = run.scenario
        yields = zap_yields(run.kernel, s.preempt, dynamic=s.preempt_dynamic)
        self.headline.value = _headline_html(run, freeze(run), yields=yields)
        lanes = min(s.n_vcpus, 32)
        fig = Figure(figsize=(11, 2.6 + 0.19 * lanes), layout="constrained")
        axes = fig.subplots(2, 1, sharex=True, height_ratios=[2 + 0.19 * lanes, 0.9])
        freeze_timeline(run, *freeze_window(run), ax=tuple(axes))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=72)
        self.image.value = buffer.getvalue()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.box)


@strict_booleans
def freeze_toggle(
    scenario: Scenario | None = None,
    *,
    seed: int = 0,
    kernel: str = "v6.7",
    preempt: str = "voluntary",
    dynamic: bool = True,
) -> FreezeToggle:
    """The freeze's toggle, kernel x preemption model (chapter 08): see :class:`FreezeToggle`.

    Examples
    --------
    >>> kv.widgets.freeze_toggle(seed=0, kernel="v6.7")  # doctest: +SKIP
    """
    return FreezeToggle(scenario, seed=seed, kernel=kernel, preempt=preempt, dynamic=dynamic)
