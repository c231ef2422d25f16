"""How sure the headline is: every free or fitted parameter swept over its plausible range.

:func:`sensitivity` moves one parameter at a time over the values :data:`kvmviz.calibration.
PARAMETERS` gives it, the others at their defaults, and measures each kernel (a one-at-a-time,
or *tornado*, analysis). :func:`headline` reduces that table to what a figure caption needs: per
kernel, the range of the readers' p99 stall and of the brownout over every value tried, and
:func:`ordering` says for which values the kernels keep their order (v5.12 worst, v5.15 best).

Examples
--------
>>> import kvmviz as kv
>>> from kvmviz import uncertainty
>>> table = uncertainty.sensitivity(
...     kv.Scenario(n_vcpus=64, duration_us=2_000.0),
...     parameters={"tlb_flush_exponent": [0.0, 1.0]},
... )
>>> table[["parameter", "value", "kernel"]].shape
(6, 3)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import pandas as pd

from ._progress import reporter
from .calibration import PARAMETERS
from .kernels import KERNELS
from .scenario import Scenario
from .sweep import grid

__all__ = ["DEFAULT_PARAMETERS", "headline", "ordering", "sensitivity"]

# The parameters no source pins down that size every stall (issue 9 §4): the split of the
# contention inside/outside the read lock, the flush growth past 64 vCPUs, the notification
# rate, the spurious share and the per-vCPU contention term (fitted at 96 vCPUs only).
DEFAULT_PARAMETERS = (
    "contention_in_lock_share",
    "tlb_flush_exponent",
    "notifier_rate_hz",
    "spurious_share",
    "read_hold_per_vcpu_us",
)
COLUMNS = [
    "parameter",
    "value",
    "is_default",
    "kernel",
    "p99_us",
    "mean_us",
    "brownout_mean",
    "writer_wait_mean_us",
    "writer_wait_max_us",
]
_BY_NAME = {p.name: p for p in PARAMETERS}


def _axes(parameters) -> dict[str, list]:
    if parameters is None:
        parameters = DEFAULT_PARAMETERS
    if isinstance(parameters, str):
        raise TypeError(f"parameters = {parameters!r}: expected a list of names or a mapping")
    if isinstance(parameters, Mapping):
        out = {name: list(values) for name, values in parameters.items()}
    elif isinstance(parameters, Sequence):
        out = {}
        for name in parameters:
            p = _BY_NAME.get(name)
            if p is None or not p.values:
                swept = sorted(n for n, q in _BY_NAME.items() if q.values)
                raise ValueError(
                    f"parameter {name!r} has no plausible range to sweep; pass "
                    f"parameters={{{name!r}: [...]}} or one of {swept}"
                )
            out[name] = list(p.values)
    else:
        raise TypeError(f"parameters: expected a list of names or a mapping, got {parameters!r}")
    if not out:
        raise ValueError("parameters: expected at least one parameter")
    for name, values in out.items():
        if name not in _BY_NAME:
            raise ValueError(f"{name!r} is not a Scenario parameter")
        if not values:
            raise ValueError(f"parameter {name!r}: expected at least one value")
    return out


def sensitivity(
    scenario: Scenario | None = None,
    *,
    parameters=None,
    seeds: Sequence[int] = (0,),
    kernels: Sequence[str] = KERNELS,
    progress=None,
) -> pd.DataFrame:
    """Each parameter over its plausible range, one at a time, on each kernel.

    Parameters
    ----------
    scenario : Scenario, optional
        The point every other parameter stays at; default ``Scenario()`` (416 vCPUs).
    parameters : sequence of str or mapping, optional
        Names (swept over :attr:`kvmviz.calibration.Parameter.values`) or ``{name: values}``;
        default :data:`DEFAULT_PARAMETERS`.
    seeds : sequence of int
        Seeds averaged at each point.
    kernels : sequence of str
    progress : None, True or callable, optional
        ``True`` shows a bar (ipywidgets in Jupyter, else a line on stderr); a callable is
        called as ``progress(done, total)``, counted in simulations.

    Returns
    -------
    pandas.DataFrame
        One row per (parameter, value, kernel), means over the seeds: ``parameter, value,
        is_default, kernel, p99_us, mean_us, brownout_mean, writer_wait_mean_us,
        writer_wait_max_us`` (µs; brownout a share of the faulting vCPUs).
    """
    base = Scenario() if scenario is None else scenario
    axes = _axes(parameters)
    seeds, kernels = list(seeds), list(kernels)
    total = sum(len(v) for v in axes.values()) * len(kernels) * len(seeds)
    report = reporter(progress, "sensitivity", lambda done, n: f"{done} / {n} runs", "done, total")
    frames, offset = [], 0
    for name, values in axes.items():

        def step(done, _total, offset=offset):
            if report is not None:
                report(offset + done, total)

        table = grid(base, kernels=kernels, seeds=seeds, progress=step, **{name: values})
        offset += len(values) * len(kernels) * len(seeds)
        table = table.groupby([name, "kernel"], sort=False).mean(numeric_only=True).reset_index()
        table = table.rename(columns={name: "value"})
        table.insert(0, "parameter", name)
        table["is_default"] = [v == getattr(base, name) for v in table["value"]]
        frames.append(table)
    out = pd.concat(frames, ignore_index=True)
    out["value"] = out["value"].astype(float)
    return out[COLUMNS]


def headline(table: pd.DataFrame, scenario: Scenario | None = None) -> pd.DataFrame:
    """Per kernel: the default value and the range over every row of :func:`sensitivity`.

    Returns
    -------
    pandas.DataFrame
        Index ``kernel``; columns ``p99_us``, ``p99_low_us``, ``p99_high_us``,
        ``brownout_mean``, ``brownout_low``, ``brownout_high``.
    """
    rows = {}
    for kernel, part in table.groupby("kernel", sort=False):
        default = part[part["is_default"]]
        rows[kernel] = {
            "p99_us": default["p99_us"].median(),
            "p99_low_us": part["p99_us"].min(),
            "p99_high_us": part["p99_us"].max(),
            "brownout_mean": default["brownout_mean"].median(),
            "brownout_low": part["brownout_mean"].min(),
            "brownout_high": part["brownout_mean"].max(),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("kernel")


def ordering(table: pd.DataFrame, value: str = "p99_us") -> pd.DataFrame:
    """For each (parameter, value): do the kernels keep their order, v5.12 >= v5.13 >= v5.15?

    Returns
    -------
    pandas.DataFrame
        ``parameter, value`` and one column per kernel with ``value``, then ``ordered``
        (bool): whether the kernels, in :data:`kvmviz.KERNELS` order, never improve backwards.
    """
    wide = table.pivot_table(index=["parameter", "value"], columns="kernel", values=value)
    kernels = [k for k in KERNELS if k in wide.columns]
    wide = wide[kernels]
    ordered = pd.Series(True, index=wide.index)
    for older, newer in itertools.pairwise(kernels):
        ordered &= wide[older] >= wide[newer]
    wide = wide.assign(ordered=ordered).reset_index()
    wide.columns.name = None
    return wide
