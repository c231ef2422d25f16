"""What the dashboard and the timeline explorer share: the kernel toggle (the milestones of
:data:`kvmviz.KERNELS`, 2021 to today), the cache of runs (moving a slider back costs nothing)
and the check of a kernel's name."""

from __future__ import annotations

import functools

from ..inputs.kernels import KERNELS, resolve
from ..inputs.scenario import Scenario
from ..model.engine import simulate
from ..views.theme import KERNEL_STYLES

__all__ = ["cached_simulate", "check_kernel", "kernel_buttons"]


def kernel_buttons(kernel: str):
    """The kernel toggle both widgets show: one button per milestone of :data:`kvmviz.KERNELS`
    (v5.12 to v6.18), its label (the commit it is about) as tooltip."""
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


def check_kernel(kernel) -> str:
    """The milestone of :data:`kvmviz.KERNELS` ``kernel`` names, in any spelling
    :func:`kvmviz.kernels.resolve` takes (``"6.8"`` is ``"v6.8"``), else a ``ValueError``
    naming the toggle's milestones."""
    try:
        name = resolve(kernel)
    except ValueError:
        name = None
    if name not in KERNELS:
        raise ValueError(
            f"kernel {kernel!r}: expected one of {', '.join(KERNELS)}, the toggle's milestones "
            "(any other release: kv.simulate(scenario, kernel=...))"
        )
    return name
