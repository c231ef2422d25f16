"""Chapter 06's sweep as an exercise (``first-vcpus-above``): from how many vCPUs on the p99
stall per fault of Figure 6.1 exceeds a round threshold; the sweep's sizes, seeds and shares
(``SWEEP_*``), and the sweep itself, made once per process."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from .._shared._checks import check_seed
from ..inputs.kernels import KERNELS_2021
from ..inputs.presets import (
    SWEEP_DURATION_US,
    SWEEP_MEASURE,
    SWEEP_SEEDS,
    SWEEP_SHARES,
    SWEEP_VCPUS,
)
from .base import Exercise, Generator, Scene

__all__ = [
    "SWEEP_DURATION_US",
    "SWEEP_MEASURE",
    "SWEEP_SEEDS",
    "SWEEP_SHARES",
    "SWEEP_VCPUS",
    "first_vcpus_above",
]

# Chapter 06's first sweep (Figure 6.1), named in kvmviz.presets with the course's other scenes.
# Thresholds a figure can be read against: round numbers, each asked only when every value of
# the column lies at least 20 % and 1 µs away from it.
_NICE_US = (1, 2, 3, 5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400,
            500, 600, 750, 1000, 1500, 2000)  # fmt: skip
_MARGIN, _MARGIN_US = 0.2, 1.0


def _threshold_in_gap(column: pd.Series, gap: int) -> float | None:
    """A round threshold between the column's values at sizes ``gap - 1`` and ``gap``, far
    from every value of the column (20 % and 1 µs), so that the first size above it is size
    ``gap``; ``None`` if no round number fits there."""
    values = column.to_numpy(dtype=float)
    below, above = values[:gap], values[gap:]
    fits = [
        x
        for x in _NICE_US
        if below.max() < x < above.min()
        and np.all(np.abs(values - x) >= max(_MARGIN * x, _MARGIN_US))
    ]
    if not fits:
        return None
    middle = np.sqrt(max(values[gap - 1], 0.1) * values[gap])  # nearest the geometric middle
    return float(min(fits, key=lambda x: abs(np.log(x / middle))))


@functools.lru_cache(maxsize=1)
def _sweep() -> pd.DataFrame:
    """Chapter 06's sweep at the shares :func:`first_vcpus_above` asks about (216 runs, one
    :func:`~kvmviz.experiments.grid`), made once per process."""
    from ..inputs.scenario import Scenario
    from ..stats.experiments import grid

    return grid(
        Scenario(duration_us=SWEEP_DURATION_US),
        seeds=SWEEP_SEEDS,
        n_vcpus=list(SWEEP_VCPUS),
        spurious_share=list(SWEEP_SHARES),
    )


class FirstVcpusAbove(Generator):
    """``first-vcpus-above``: the scene is ``kernel, share`` (the spurious share),
    ``threshold`` (µs) and ``column``, the sweep's mean p99 stall per fault by vCPU count."""

    kind, salt = "first-vcpus-above", "first_vcpus_above"

    def scene(self, seed: int, table: pd.DataFrame | None = None) -> Scene:
        check_seed(seed)
        table = _sweep() if table is None else table
        if SWEEP_MEASURE not in table.columns:
            raise ValueError(
                f"table: no {SWEEP_MEASURE} column; pass kvmviz.experiments.grid(...) of the sweep"
            )
        means = table.groupby(["kernel", "spurious_share", "n_vcpus"])[SWEEP_MEASURE].mean()
        cases = []  # (kernel, share, threshold, column)
        for kernel in KERNELS_2021:
            for share in SWEEP_SHARES:
                try:
                    column = means.loc[kernel, share].reindex(list(SWEEP_VCPUS))
                except KeyError:
                    column = None
                if column is None or column.isna().any():
                    raise ValueError(
                        f"table: the sweep lacks {kernel} at {share:.0%} spurious for some of "
                        f"{SWEEP_VCPUS} vCPUs"
                    )
                for gap in range(1, len(SWEEP_VCPUS)):
                    threshold = _threshold_in_gap(column, gap)
                    if threshold is not None:
                        cases.append((kernel, share, threshold, column))
        if not cases:
            raise ValueError("the sweep leaves no round threshold between two sizes")
        kernel, share, threshold, column = cases[self.case(seed, len(cases))]
        return Scene(kernel=kernel, share=share, threshold=threshold, column=column)

    def answer(self, scene: Scene) -> int:
        column = scene.column
        return int(column[column > scene.threshold].index.min())

    def question(self, scene: Scene) -> str:
        kernel, share, threshold = scene.kernel, scene.share, scene.threshold
        sizes = ", ".join(str(n) for n in SWEEP_VCPUS)
        return (
            f"In Figure 6.1 (chapter 06's sweep: the default VM for "
            f"{SWEEP_DURATION_US / 1000:g} ms at {sizes} vCPUs, seeds "
            f"{SWEEP_SEEDS[0]} to {SWEEP_SEEDS[-1]}), on **{kernel}** with {share:.0%} of the "
            "notifications spurious: what is the smallest vCPU count of the sweep whose p99 "
            f"stall per fault exceeds {threshold:g} µs? The p99 stall per fault is "
            f"`{SWEEP_MEASURE}`: "
            "the 99th percentile, over the run's faults, of what one fault loses to `mmu_lock` "
            "from its first exit to the install that sticks (its waits plus its retried "
            "attempts), averaged over the seeds. Every value of that column is at least "
            f"{_MARGIN:.0%} (and {_MARGIN_US:g} µs) away from {threshold:g} µs, so reading the "
            "figure decides it. (answer a number of vCPUs, e.g. `64`)\n\nWithout the notebook, "
            'the column the figure draws: `python -c "import kvmviz as kv; t = '
            f"kv.experiments.grid(kv.Scenario(duration_us={SWEEP_DURATION_US:g}), "
            f"kernels=['{kernel}'], seeds={list(SWEEP_SEEDS)}, n_vcpus={list(SWEEP_VCPUS)}, "
            f"spurious_share=[{share:g}]); print(t.groupby('n_vcpus').{SWEEP_MEASURE}.mean())\"`."
        )

    def explain(self, scene: Scene, answer: int) -> str:
        values = ", ".join(f"{n} vCPUs: {v:.1f} µs" for n, v in scene.column.items())
        return f"The {SWEEP_MEASURE} of that column, mean of the seeds: {values}."


_FIRST_VCPUS_ABOVE = FirstVcpusAbove()


def first_vcpus_above(seed: int = 0, table: pd.DataFrame | None = None) -> Exercise:
    """From how many vCPUs on does the p99 stall per fault exceed X µs? Answer: an ``int``.

    Read off chapter 06's Figure 6.1: on one kernel and one share of spurious notifications,
    the smallest vCPU count of the sweep whose p99 per-fault stall (:data:`SWEEP_MEASURE`,
    ``stall_p99_us``: what a fault loses to ``mmu_lock`` from its first exit to the install
    that sticks, waits plus retried attempts; the mean over the seeds) exceeds a threshold.

    The cases are the (kernel, share, gap) of the sweep where a round threshold fits: a gap
    ``g`` lies between the ``g``-th and the ``g + 1``-th size of :data:`SWEEP_VCPUS`, so the
    answer is never the smallest size (a threshold below the whole column asks nothing), and
    the threshold is a round number there that every value of the column clears by 20 % and
    1 µs, so the figure decides it. Seeds ``0 .. n - 1`` ask the ``n`` cases once each, in a
    fixed shuffled order; seed ``s`` asks what ``s % n`` asks (42 of the 45 on the model's
    sweep today: a gap between two values closer than that has no threshold).

    The exercise's :attr:`~Exercise.scene` holds what :class:`FirstVcpusAbove` names.

    Parameters
    ----------
    seed : int
    table : pandas.DataFrame, optional
        The sweep: :func:`kvmviz.experiments.grid` of ``Scenario(duration_us=10_000)`` over
        ``n_vcpus`` (:data:`SWEEP_VCPUS`) and ``spurious_share`` (:data:`SWEEP_SHARES`) with
        :data:`SWEEP_SEEDS` on every kernel (chapter 06's ``by_share``), with a
        ``stall_p99_us`` column. Default: that sweep, made here once per process (216 runs).
    """
    return _FIRST_VCPUS_ABOVE(seed, table=table)
