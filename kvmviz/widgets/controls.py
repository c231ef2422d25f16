"""What the dashboard and the timeline explorer share: the kernel toggle, the cache of runs
(moving a slider back costs nothing) and the check of a kernel's name."""

from __future__ import annotations

import functools

from ..inputs.kernels import KERNELS
from ..inputs.scenario import Scenario
from ..model.engine import simulate
from ..views.theme import KERNEL_STYLES

__all__ = ["cached_simulate", "check_kernel", "kernel_buttons"]


def kernel_buttons(kernel: str):
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


def check_kernel(kernel) -> str:
    """``kernel`` if it names one of :data:`kvmviz.KERNELS`, else a ``ValueError`` naming them."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel {kernel!r}: expected one of {', '.join(KERNELS)}")
    return kernel
