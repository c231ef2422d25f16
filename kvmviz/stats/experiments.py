"""Experiments: every loop over :func:`kvmviz.simulate`, and nothing else loops over it.

* :func:`compare_kernels` runs one scenario and seed on each kernel, side by side, and
  :func:`compare_setups` does it for the static and the volatile setup over several seeds;
* :func:`grid` sweeps a scenario over a Cartesian product of parameters, kernels and seeds into
  one tidy table (:func:`measure` is what it records of each run);
* :func:`sensitivity` sweeps the parameters no source pins down over their plausible ranges
  (:data:`kvmviz.scenario.PARAMETERS`); :func:`headline` and :func:`ordering` read the
  headline's range and the kernel ordering off its table;
* :func:`populate_seconds`, :func:`fits` and :func:`predictions` put the model beside the
  published measurements (docs/parameters.md): the ones parameters were fitted to, and the
  ones nothing was fitted to;
* :func:`replay_trace` and :func:`compare_replay` drive the engine with a real trace's
  notification stream (:func:`kvmviz.traces.replay_stream`) against modelled vCPUs.

The controllers (widgets, CLI, gallery) call these; the views draw the tables they return.
Each takes ``kernels=`` as any releases from v5.12 to v6.18, spelled ``"v6.12"`` or ``"6.12"``
(:func:`kvmviz.kernels.resolve`; the tables and runs carry the canonical name); without it,
the three positions of the 2021 story, :data:`kvmviz.kernels.KERNELS_2021` (pass
:data:`kvmviz.KERNELS` for the toggle's milestones).

Examples
--------
>>> import kvmviz as kv
>>> base = kv.Scenario(duration_us=2_000)
>>> table = kv.experiments.grid(base, n_vcpus=[16, 64], kernels=["v5.12", "v5.15"])
>>> table[["n_vcpus", "kernel", "seed", "brownout_mean"]].shape
(4, 4)
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields

import numpy as np
import pandas as pd

from .._shared._checks import check_int, check_seed, strict_booleans
from .._shared._progress import reporter
from ..inputs.kernels import KERNELS_2021, RELEASES, features, resolve
from ..inputs.memslots import PAGE_SIZE, Memslot, MemslotLayout
from ..inputs.notifiers import stream_from_callbacks
from ..inputs.scenario import PARAMETER_BY_NAME, Scenario
from ..inputs.traces import MAX_GAP_US, age_hva_note, replay_stream
from ..model import classify
from ..model.engine import MAX_RECORDS, callback_costs, estimate, simulate
from ..model.rwlock import POLICIES
from .metrics import kernel_table, summarize

__all__ = [
    "MEMSLOT_PERF_PAIR_US",
    "SENSITIVITY_COLUMNS",
    "SENSITIVITY_PARAMETERS",
    "ReplayWarning",
    "change_pte_note",
    "compare_kernels",
    "compare_replay",
    "compare_setups",
    "fits",
    "grid",
    "headline",
    "idle_note",
    "kernel_runs",
    "measure",
    "ordering",
    "populate_seconds",
    "predictions",
    "replay_trace",
    "replay_work",
    "sensitivity",
]


# --------------------------------------------------------------------------------------------
# Kernels side by side.
# --------------------------------------------------------------------------------------------
def _releases(kernels, what: str = "kernels") -> list[str]:
    """``kernels`` as a list of canonical releases (:func:`kvmviz.kernels.resolve`), each once;
    a lone string, an empty list or an unknown release refused, naming the range."""
    # A lone string or number is not a list of them: "v5.12" would become five kernels.
    wrong = TypeError(f"{what} = {kernels!r}: expected a sequence, e.g. {what}=['v5.12', '6.18']")
    if isinstance(kernels, str | bytes):
        raise wrong
    try:
        given = list(kernels)
    except TypeError:
        raise wrong from None
    names = [resolve(k) for k in given]  # ValueError naming the range
    if not names:
        raise ValueError(
            f"{what}: expected at least one release from {RELEASES[0]} to {RELEASES[-1]}"
        )
    twice = sorted({k for k in names if names.count(k) > 1}, key=RELEASES.index)
    if twice:
        raise ValueError(f"{what} = {given!r}: each release once ({', '.join(twice)} twice)")
    return names


def compare_kernels(scenario=None, **options) -> pd.DataFrame:
    """Run the same scenario and seed on each kernel and tabulate :func:`kvmviz.summarize`.

    Parameters
    ----------
    scenario : Scenario, optional
    **options
        Those of :func:`kernel_runs`: ``policy``, ``seed``, ``kernels``, ``progress``,
        ``max_records``.

    Returns
    -------
    pandas.DataFrame
        One row per kernel (index ``kernel``), the columns of :func:`kvmviz.summarize`
        (:func:`kvmviz.metrics.kernel_table` of :func:`kernel_runs`).
    """
    return kernel_table(kernel_runs(scenario, **options))


def kernel_runs(
    scenario=None,
    *,
    policy: str = "qrwlock",
    seed: int = 0,
    kernels=KERNELS_2021,
    progress=None,
    max_records: int | None = None,
) -> dict:
    """Run the same scenario and seed on each kernel.

    Parameters
    ----------
    scenario : Scenario, optional
    policy : str
    seed : int
    kernels : sequence of str
        Releases from v5.12 to v6.18 (``"v6.8"`` or ``"6.8"``); default the 2021 story's
        :data:`kvmviz.kernels.KERNELS_2021` (:data:`kvmviz.KERNELS`: the toggle's milestones).
    progress : None, True or callable, optional
        ``True``: a progress bar, one step per kernel (an ipywidgets bar in Jupyter, else a
        line on stderr); a callable is called as ``progress(done, total)``, once before the
        first kernel (``done == 0``) and after each.
    max_records : int, optional
        Passed to :func:`kvmviz.simulate` (its default when omitted).

    Returns
    -------
    dict
        Canonical release (``"v6.8"``) → :class:`~kvmviz.Run`, in the order of ``kernels``.
    """
    kernels = _releases(kernels)
    report = reporter(
        progress, "simulate", lambda done, total: f"{done} / {total} kernels", "done, total"
    )
    limit = {} if max_records is None else {"max_records": max_records}
    runs = {}
    if report is not None:
        report(0, len(kernels))
    for kernel in kernels:
        runs[kernel] = simulate(scenario, kernel, policy, seed, **limit)
        if report is not None:
            report(len(runs), len(kernels))
    return runs


@strict_booleans
def compare_setups(
    *, seeds: Sequence[int] = (0,), kernels=KERNELS_2021, tdp_mmu: bool = True, **changes
) -> pd.DataFrame:
    """The headline: each setup of 8931a454ae's message on each kernel, averaged over seeds.

    Parameters
    ----------
    seeds : sequence of int
        Seeds averaged (the README and the workshop guide use 0-3).
    kernels : sequence of str
        As for :func:`kernel_runs` (default :data:`kvmviz.kernels.KERNELS_2021`).
    tdp_mmu : bool
        The MMU (``Scenario.tdp_mmu``).
    **changes
        Scenario fields changed in both setups.

    Returns
    -------
    pandas.DataFrame
        Index (``setup``, ``kernel``), setups in :data:`kvmviz.presets.SETUPS` order; the
        columns of :func:`kvmviz.summarize`, each the mean over ``seeds``.

    Examples
    --------
    >>> t = compare_setups(seeds=(0,))  # doctest: +SKIP
    >>> t.loc[("static", "v5.15"), "brownout_mean"]  # doctest: +SKIP
    0.0
    """
    from ..inputs.presets import SETUPS

    seeds = [check_seed(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    frames = {}
    for name, build in SETUPS.items():
        scenario = build(tdp_mmu=tdp_mmu, **changes)
        tables = [compare_kernels(scenario, seed=seed, kernels=kernels) for seed in seeds]
        frames[name] = sum(t.astype(float) for t in tables) / len(tables)
    return pd.concat(frames, names=["setup", "kernel"])


# --------------------------------------------------------------------------------------------
# Sweeps.
# --------------------------------------------------------------------------------------------
_SCENARIO_FIELDS = tuple(f.name for f in fields(Scenario))
# Columns the sweep itself writes next to the parameters: a parameter may not take these names.
_RESERVED = ("kernel", "seed")


def measure(run) -> pd.Series:
    """The numbers a sweep records for one run.

    Parameters
    ----------
    run : Run

    Returns
    -------
    pandas.Series
        Every entry of :func:`kvmviz.summarize`, plus ``writer_hold_mean_us`` and
        ``writer_hold_max_us`` (how long the callbacks that took ``mmu_lock`` for write held
        it, µs) and ``spurious_event_hold_us``: over the notification events that missed every
        memslot yet took the lock, the mean of their callbacks' write holds summed per event,
        µs (on v5.12 that is the memslot walk alone, docs/kernel.md §2.1: one start/end pair costs
        what one madvise costs in memslot_perf_test's "unmap"). Each is 0 when no callback
        took the lock.
    """
    notifiers = run.notifiers
    locked = notifiers["locked"].to_numpy(dtype=bool)
    hold = notifiers["hold_us"].to_numpy(dtype=float)
    spurious = locked & ~notifiers["hit"].to_numpy(dtype=bool)
    # An event's callbacks share its hva range, so they all hit or all miss.
    per_event = pd.Series(hold[spurious]).groupby(notifiers["event"].to_numpy()[spurious]).sum()
    extra = {
        "writer_hold_mean_us": float(hold[locked].mean()) if locked.any() else 0.0,
        "writer_hold_max_us": float(hold[locked].max()) if locked.any() else 0.0,
        "spurious_event_hold_us": float(per_event.mean()) if len(per_event) else 0.0,
    }
    return pd.concat([summarize(run), pd.Series(extra)])


def _grid_arguments(scenario, axes, build, kernels, seeds, policy):
    """:func:`grid`'s arguments checked, each refusal naming what was expected; returns the
    scenario (default ``Scenario()``), the kernels and the seeds as lists."""
    scenario = Scenario() if scenario is None else scenario
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a kvmviz.Scenario, got {type(scenario).__name__}")
    if not axes:
        raise ValueError("no axes to sweep: pass at least one, e.g. n_vcpus=[64, 128, 256]")
    for name, values in axes.items():
        if name in _RESERVED:
            raise ValueError(f"an axis may not be called {name!r}: use kernels= or seeds=")
        if build is None and name not in _SCENARIO_FIELDS:
            raise ValueError(
                f"{name!r} is not a Scenario parameter (expected one of "
                f"{', '.join(_SCENARIO_FIELDS)}); pass build= to turn it into one"
            )
        if not _is_sequence(values):
            raise TypeError(f"axis {name!r} needs a sequence of values, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"axis {name!r} needs a non-empty sequence of values, got {values!r}")
    # A lone string or number is not a list of them: "v5.12" would become five kernels.
    if not _is_sequence(seeds):
        raise TypeError(f"seeds = {seeds!r}: expected a sequence, e.g. seeds=[0, 1]")
    kernels, seeds = _releases(kernels), [check_seed(s, "seeds") for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if policy not in POLICIES:
        raise ValueError(f"unknown lock policy {policy!r}; expected one of {POLICIES}")
    return scenario, kernels, seeds


def grid(
    scenario: Scenario | None = None,
    *,
    kernels: Sequence[str] = KERNELS_2021,
    seeds: Sequence[int] = (0,),
    policy: str = "qrwlock",
    build: Callable[..., Scenario] | None = None,
    measure: Callable = measure,
    progress=None,
    **axes: Sequence,
) -> pd.DataFrame:
    """Simulate ``scenario`` at every point of a parameter grid, on each kernel and seed.

    Parameters
    ----------
    scenario : Scenario, optional
        The base scenario; default ``Scenario()``.
    kernels : sequence of str
        Releases to run each point on (``"v6.8"`` or ``"6.8"``; the ``kernel`` column carries
        the canonical name); default the 2021 story's :data:`kvmviz.kernels.KERNELS_2021`.
    seeds : sequence of int
        Seeds to run each (point, kernel) with; average over them with ``groupby``.
    policy : {"qrwlock", "reader-pref", "spinlock"}
        The lock, as in :func:`kvmviz.simulate`.
    build : callable, optional
        ``build(scenario, **point) -> Scenario``, for axes that are not fields of
        :class:`~kvmviz.Scenario` (e.g. ``n_memslots`` turned into a ``layout``). Called once
        per point, before the kernels and seeds run on it. Default:
        ``scenario.replace(**point)``.
    measure : callable
        ``measure(run)`` -> a mapping or :class:`pandas.Series` of numbers; default
        :func:`measure`.
    progress : None, True or callable, optional
        ``True``: a progress bar (an ipywidgets ``IntProgress`` in a Jupyter kernel, else one
        self-overwriting line on stderr). A callable is called as ``progress(done, total)``
        after each simulation, counted in runs.
    **axes : sequence
        The grid: parameter name -> the values it takes, e.g. ``n_vcpus=[64, 128, 256]``. The
        points are the Cartesian product, in the order the axes are given.

    Returns
    -------
    pandas.DataFrame
        One row per (point, kernel, seed), in that nesting order: one column per axis, then
        ``kernel``, ``seed`` and the columns ``measure`` returns.

    Raises
    ------
    ValueError
        No axes, an axis without values, an axis named ``kernel`` or ``seed``, without
        ``build`` an axis that is not a ``Scenario`` field, a release outside v5.12-v6.18, or
        an unknown policy.

    Examples
    --------
    >>> import kvmviz as kv
    >>> from kvmviz import experiments, plot
    >>> layouts = {n: kv.presets.many_memslots_layout(n) for n in (10, 1000)}
    >>> table = experiments.grid(
    ...     kv.Scenario(n_vcpus=32, duration_us=2_000),
    ...     kernels=["v5.12"],
    ...     build=lambda s, n_memslots: s.replace(layout=layouts[n_memslots]),
    ...     n_memslots=[10, 1000],
    ... )
    >>> list(table["n_memslots"])
    [10, 1000]
    """
    scenario, kernels, seeds = _grid_arguments(scenario, axes, build, kernels, seeds, policy)
    report = reporter(progress, "sweep", _describe_runs, "done, total")

    names = list(axes)
    points = list(itertools.product(*(axes[n] for n in names)))
    total = len(points) * len(kernels) * len(seeds)
    rows, done = [], 0
    for values in points:
        point = dict(zip(names, values, strict=True))
        at = build(scenario, **point) if build is not None else scenario.replace(**point)
        for kernel in kernels:
            for seed in seeds:
                measured = measure(simulate(at, kernel, policy, seed))
                rows.append({**point, "kernel": kernel, "seed": seed, **dict(measured)})
                done += 1
                if report is not None:
                    report(done, total)
    return pd.DataFrame(rows)


def _is_sequence(values) -> bool:
    """A list-like of values (list, tuple, range, array, Series), not a lone string or number."""
    if isinstance(values, str | bytes):
        return False
    return isinstance(values, Sequence | np.ndarray | pd.Series | pd.Index)


def _describe_runs(done: int, total: int) -> str:
    return f"{done} / {total} runs"


# --------------------------------------------------------------------------------------------
# Sensitivity: how far the headline moves over the free parameters.
# --------------------------------------------------------------------------------------------
SENSITIVITY_PARAMETERS = (
    "contention_in_lock_share",
    "tlb_flush_exponent",
    "notifier_rate_hz",
    "spurious_share",
    "read_hold_per_vcpu_us",
)
SENSITIVITY_COLUMNS = [
    "parameter",
    "value",
    "is_default",
    "kernel",
    "brownout_mean",
    "brownout_miss",
    "brownout_hit",
    "stall_p99_us",
    "stall_mean_us",
    "writer_wait_mean_us",
    "writer_wait_max_us",
]


def _axes(parameters) -> dict[str, list]:
    if parameters is None:
        parameters = SENSITIVITY_PARAMETERS
    if isinstance(parameters, str):
        raise TypeError(f"parameters = {parameters!r}: expected a list of names or a mapping")
    if isinstance(parameters, Mapping):
        out = {name: list(values) for name, values in parameters.items()}
    elif isinstance(parameters, Sequence):
        out = {}
        for name in parameters:
            p = PARAMETER_BY_NAME.get(name)
            if p is None or not p.values:
                swept = sorted(n for n, q in PARAMETER_BY_NAME.items() if q.values)
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
        if name not in PARAMETER_BY_NAME:
            raise ValueError(f"{name!r} is not a Scenario parameter")
        if not values:
            raise ValueError(f"parameter {name!r}: expected at least one value")
    return out


def sensitivity(
    scenario: Scenario | None = None,
    *,
    parameters=None,
    seeds: Sequence[int] = (0,),
    kernels: Sequence[str] = KERNELS_2021,
    progress=None,
) -> pd.DataFrame:
    """Each parameter over its plausible range, one at a time, on each kernel.

    Parameters
    ----------
    scenario : Scenario, optional
        The point every other parameter stays at; default ``Scenario()`` (416 vCPUs).
    parameters : sequence of str or mapping, optional
        Names (swept over :attr:`kvmviz.scenario.Parameter.values`) or ``{name: values}``;
        default :data:`SENSITIVITY_PARAMETERS`. A name's sweep also visits the scenario's
        own value when it is not among them.
    seeds : sequence of int
        Seeds averaged at each point.
    kernels : sequence of str
        As for :func:`grid` (default :data:`kvmviz.kernels.KERNELS_2021`).
    progress : None, True or callable, optional
        ``True`` shows a bar (ipywidgets in Jupyter, else a line on stderr); a callable is
        called as ``progress(done, total)``, counted in simulations.

    Returns
    -------
    pandas.DataFrame
        One row per (parameter, value, kernel), means over the seeds: ``parameter, value,
        is_default, kernel``, the brownout (``brownout_mean`` and its parts owed to misses and
        hits, ``brownout_miss, brownout_hit``: shares of the VM's vCPU time), the per-fault
        stall ``stall_p99_us, stall_mean_us`` and the writers' ``writer_wait_mean_us,
        writer_wait_max_us`` (µs; :func:`kvmviz.summarize`).
    """
    base = Scenario() if scenario is None else scenario
    axes = _axes(parameters)
    for name, values in axes.items():
        # Swept over its plausible range, a parameter's row also visits the scenario's own
        # value (the dot of the tornado, the default of headline()), e.g. spurious_share = 1
        # of the static setup; values given explicitly are swept as given.
        own = getattr(base, name)
        if not isinstance(parameters, Mapping) and own not in values:
            axes[name] = sorted([*values, own])
    seeds, kernels = list(seeds), _releases(kernels)
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
    return out[SENSITIVITY_COLUMNS]


def headline(table: pd.DataFrame, scenario: Scenario | None = None) -> pd.DataFrame:
    """Per kernel: the default value and the range over every row of :func:`sensitivity`.

    Returns
    -------
    pandas.DataFrame
        Index ``kernel``; columns ``brownout_mean``, ``brownout_low``, ``brownout_high``
        (shares of the VM's vCPU time) and ``stall_p99_us``, ``stall_p99_low_us``,
        ``stall_p99_high_us`` (the per-fault p99 stall, µs).
    """
    rows = {}
    for kernel, part in table.groupby("kernel", sort=False):
        default = part[part["is_default"]]
        rows[kernel] = {
            "brownout_mean": default["brownout_mean"].median(),
            "brownout_low": part["brownout_mean"].min(),
            "brownout_high": part["brownout_mean"].max(),
            "stall_p99_us": default["stall_p99_us"].median(),
            "stall_p99_low_us": part["stall_p99_us"].min(),
            "stall_p99_high_us": part["stall_p99_us"].max(),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("kernel")


def ordering(table: pd.DataFrame, value: str = "brownout_mean") -> pd.DataFrame:
    """For each (parameter, value): do the kernels keep their order, newer never worse
    (v5.12 >= v5.13 >= v5.15 >= ...)?

    Returns
    -------
    pandas.DataFrame
        ``parameter, value`` and one column per kernel with ``value``, then ``ordered``
        (bool): whether the kernels, oldest release first (:data:`kvmviz.kernels.RELEASES`), never
        improve backwards.
    """
    wide = table.pivot_table(index=["parameter", "value"], columns="kernel", values=value)
    kernels = [k for k in RELEASES if k in wide.columns]
    wide = wide[kernels]
    ordered = pd.Series(True, index=wide.index)
    for older, newer in itertools.pairwise(kernels):
        ordered &= wide[older] >= wide[newer]
    wide = wide.assign(ordered=ordered).reset_index()
    wide.columns.name = None
    return wide


# --------------------------------------------------------------------------------------------
# Calibration: the model beside published measurements.
# --------------------------------------------------------------------------------------------
# -- Gardon's populate: the measurement read_hold_us and read_hold_per_vcpu_us are fitted to ---
GARDON_VCPUS = 96
GARDON_GIB_PER_VCPU = 3
GARDON_SECONDS = {"write": 110.193, "read": 16.112}  # populate, partitioned, TDP MMU


def _populate_scenario(n_vcpus: int, base: Scenario | None) -> Scenario:
    """dirty_log_perf_test's populate: every vCPU touches each 4 KiB page of its own memory
    once, each touch an EPT violation, no notifier (a store and a loop step between faults)."""
    ram = Memslot(slot=0, base_gfn=0, npages=1 << 20, userspace_addr=0x7F0000000000)
    base = Scenario() if base is None else base
    return base.replace(
        n_vcpus=n_vcpus,
        faulting_share=1.0,
        guest_run_us=0.1,
        notifier_rate_hz=0.0,
        duration_us=5_000.0,
        layout=MemslotLayout([ram]),
    )


def populate_seconds(
    lock: str,
    *,
    n_vcpus: int = GARDON_VCPUS,
    gib_per_vcpu: float = GARDON_GIB_PER_VCPU,
    scenario: Scenario | None = None,
    seed: int = 0,
) -> float:
    """Seconds the model takes to populate ``gib_per_vcpu`` GiB on each of ``n_vcpus`` vCPUs.

    Parameters
    ----------
    lock : {"write", "read"}
        Faults under ``mmu_lock`` for write (Gardon's baseline: the TDP MMU with the spinlock,
        the model's ``"spinlock"`` policy) or for read (``"qrwlock"``, a2855afc7ee8).
    n_vcpus, gib_per_vcpu : int, float
        Default Gardon's 96 vCPUs x 3 GiB.
    scenario : Scenario, optional
        Costs to use (default ``Scenario()``); its workload is replaced by the populate loop.
    seed : int

    Returns
    -------
    float
        Fault throughput measured over a 5 ms window, extrapolated to every 4 KiB page.
    """

    if lock not in ("write", "read"):
        raise ValueError(f"lock={lock!r}: expected 'write' or 'read'")
    s = _populate_scenario(n_vcpus, scenario)
    policy = "spinlock" if lock == "write" else "qrwlock"
    run = simulate(s, "v5.15", policy, check_seed(seed))
    done = run.faults[~run.faults["retry"] & (run.faults["t_release_us"] <= s.duration_us)]
    per_us = len(done) / s.duration_us
    pages = n_vcpus * gib_per_vcpu * 2**30 / PAGE_SIZE
    return pages / per_us * 1e-6


def fits(scenario: Scenario | None = None, seed: int = 0) -> pd.DataFrame:
    """The measurements the fitted parameters were fitted to, and what the model gives.

    Returns
    -------
    pandas.DataFrame
        One row per measurement: ``measurement, parameter, measured, model, unit, ratio``
        (model / measured).
    """
    rows = []
    for lock, parameter in (("write", "read_hold_us"), ("read", "read_hold_per_vcpu_us")):
        model = populate_seconds(lock, scenario=scenario, seed=seed)
        measured = GARDON_SECONDS[lock]
        rows.append(
            {
                "measurement": f"Gardon: populate 96 vCPUs x 3 GiB, faults under the {lock} lock",
                "parameter": parameter,
                "measured": measured,
                "model": model,
                "unit": "s",
                "ratio": model / measured,
            }
        )
    return pd.DataFrame(rows)


# -- predictions: measurements no parameter was fitted to -------------------------------------
def _fault_seconds(n_vcpus: int, faults_per_vcpu: int, lock: str, scenario, seed) -> float:
    gib = faults_per_vcpu * PAGE_SIZE / 2**30
    return populate_seconds(lock, n_vcpus=n_vcpus, gib_per_vcpu=gib, scenario=scenario, seed=seed)


def _waiting_share(n_vcpus: int, scenario, seed) -> float:
    """Share of the faulting vCPUs' time spent waiting for ``mmu_lock`` when faults take it
    for write (the MMU before the TDP MMU's parallel faults)."""

    s = _populate_scenario(n_vcpus, scenario)
    run = simulate(s, "v5.15", "spinlock", check_seed(seed))
    f = run.faults[run.faults["t_release_us"] <= s.duration_us]
    busy = s.n_faulting * s.duration_us
    return float(f["wait_us"].sum() / busy)


def _memslot_pair_us(n_slots: int, scenario: Scenario | None) -> float:
    """The model's cost of one 4 KiB ``madvise(MADV_DONTNEED)`` start/end pair on guest memory
    with ``n_slots`` memslots and one vCPU, on v5.12 (memslot_perf_test's era, linear walk)."""

    base = Scenario() if scenario is None else scenario
    npages = 1 << 8  # 1 MiB slots, one after the other
    slots = [
        Memslot(
            slot=i,
            base_gfn=i * npages,
            npages=npages,
            userspace_addr=0x7F0000000000 + i * (1 << 20),
        )
        for i in range(n_slots)
    ]
    s = base.replace(n_vcpus=1, layout=MemslotLayout(slots), memslot_lookup="linear")
    hva = slots[-1].userspace_addr
    stream = pd.DataFrame(
        {
            "event": [0],
            "cause": pd.Categorical(["migration"]),
            "kind": ["pair"],
            "t_us": [0.0],
            "hva_start": np.array([hva], dtype=np.uint64),
            "hva_end": np.array([hva + PAGE_SIZE], dtype=np.uint64),
        }
    )
    costs = callback_costs(s, "v5.12", stream, seed=0)
    return float(s.invalidate_window_us + (costs["hold_us"] + costs["walk_us"]).sum())


def _aging_slowdown(scenario: Scenario | None, seed: int) -> float:
    """Houghton's access_tracking_perf_test at 112 vCPUs: how much longer the faulting vCPUs
    take while MGLRU ages their memory under ``mmu_lock``. The aging is a stream of
    ``clear_young`` calls on guest memory (one per 2 MiB of the 112 GiB per pass, at the pace
    the locked pass took: 57,344 calls in 13.474 s), each holding the write lock on a hit."""

    s = _populate_scenario(112, scenario)
    rate_hz = (112 * 2**30 / 2**21) / 13.474
    n = int(rate_hz * s.duration_us * 1e-6)
    ram = next(iter(s.layout))
    rng = np.random.default_rng(check_seed(seed))
    pages = rng.integers(0, ram.npages, n).astype(np.uint64)
    hva = np.uint64(ram.userspace_addr) + pages * np.uint64(PAGE_SIZE)
    events = pd.DataFrame(
        {
            "t_us": (np.arange(n) + 0.5) * s.duration_us / n,
            "kind": "clear_young",
            "hva_start": hva,
            "hva_end": hva + np.uint64(PAGE_SIZE),
            "cause": "guest_aging",
        }
    )
    rates = []
    for stream in (events.iloc[:0], events):
        run = simulate(s, "v5.15", stream=stream_from_callbacks(stream), seed=check_seed(seed))
        done = run.faults[~run.faults["retry"] & (run.faults["t_release_us"] <= s.duration_us)]
        rates.append(len(done))
    return rates[0] / rates[1] - 1.0


MEMSLOT_PERF_PAIR_US = {10: 0.0313e6 / 32768, 509: 0.0724e6 / 32768, 32764: 3.88e6 / 32768}


def predictions(scenario: Scenario | None = None, seed: int = 0) -> pd.DataFrame:
    """The model beside published measurements that no parameter was fitted to.

    * Matlack, fast page fault for the TDP MMU (20210611235701.3941724-1-dmatlack@google.com):
      64 vCPUs x 262,144 write-protect faults under the read lock took 3.545 s;
    * Gardon, TDP MMU cover (20201014182700.2888246-1-bgardon@google.com): with 416 vCPUs
      demand paging under the old MMU lock, 98 % of the time was spent waiting for it, and the
      TDP MMU cut the test by 89 % (the test also waits on userfaultfd, which the model lacks);
    * Houghton, MGLRU aging of the secondary MMU (20240529180510.2295118-1-jthoughton@google.com):
      with 112 vCPUs, aging under ``mmu_lock`` made the vCPUs' run 20 % longer (8.498 s ->
      10.214 s);
    * Szmigiero, memslot_perf_test (cover.1618322001.git.maciej.szmigiero@oracle.com): one
      4 KiB unmap pair with 509 slots, linear walk (32k slots fitted memslot_walk_ns, 10
      slots invalidate_window_us), and the growth from 10 to 509 slots.

    Returns
    -------
    pandas.DataFrame
        ``measurement, measured, model, unit, ratio``; a ratio far from 1 is shown, not hidden.
    """
    rows = []

    def add(measurement, measured, model, unit):
        rows.append(
            {
                "measurement": measurement,
                "measured": measured,
                "model": model,
                "unit": unit,
                "ratio": model / measured,
            }
        )

    add(
        "Matlack: 64 vCPUs x 262,144 faults under the read lock",
        3.545,
        _fault_seconds(64, 262_144, "read", scenario, seed),
        "s",
    )
    add(
        "Gardon: 416 vCPUs faulting under the write lock, share of time waiting",
        0.98,
        _waiting_share(416, scenario, seed),
        "share",
    )
    write = _fault_seconds(416, 1 << 20, "write", scenario, seed)
    read = _fault_seconds(416, 1 << 20, "read", scenario, seed)
    add("Gardon: 416 vCPUs x 4 GiB, time saved by the TDP MMU", 0.89, 1 - read / write, "share")
    add(
        "Houghton: 112 vCPUs slowed by aging under mmu_lock",
        10.214 / 8.498 - 1,
        _aging_slowdown(scenario, seed),
        "share",
    )
    pair = {n: _memslot_pair_us(n, scenario) for n in (10, 509)}
    add(
        "Szmigiero: one 4 KiB unmap pair, 509 memslots (linear walk)",
        MEMSLOT_PERF_PAIR_US[509],
        pair[509],
        "µs",
    )
    add(
        "Szmigiero: growth of that pair from 10 to 509 memslots",
        MEMSLOT_PERF_PAIR_US[509] - MEMSLOT_PERF_PAIR_US[10],
        pair[509] - pair[10],
        "µs",
    )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Trace replay: a recorded notification stream against modelled vCPUs.
# --------------------------------------------------------------------------------------------
def replay_trace(
    events: pd.DataFrame,
    layout: MemslotLayout,
    kernel: str = "v5.15",
    *,
    n_vcpus: int = 64,
    policy: str = "qrwlock",
    seed: int = 0,
    scenario=None,
    max_gap_us: float = MAX_GAP_US,
    max_records: int = MAX_RECORDS,
):
    """What a recorded notification stream would have cost on ``kernel``.

    The real notifications (their times, callbacks and hva ranges, from
    :func:`kvmviz.traces.to_stream`) drive the closed-loop engine against a modelled population of
    ``n_vcpus`` faulting vCPUs on ``layout``; everything else comes from ``scenario`` (default
    :class:`kvmviz.Scenario`). Run it once per kernel to ask what 8931a454ae and 071064f14d87 would
    have done for this
    workload (:func:`compare_replay`).

    Idle time is not replayed: a gap longer than ``max_gap_us`` (default 1 s) between two
    notifications is cut to it (:func:`kvmviz.traces.replay_stream`), so the memory needed grows
    with the number of notifications, not with the trace's span. The statistics of the run are then
    those of the shortened timeline: the faults the vCPUs would have taken, uncontended, in the idle
    time removed are not in them, so shares of time (brownout) and fault percentiles
    describe the busy part of the trace, where the stalls weigh more than over the whole span.
    How much was removed is in ``run.notifiers.attrs["replay"]``, and :func:`compare_replay`
    says it in a warning. The sample trace has no gap of 1 s: it replays as recorded.

    Parameters
    ----------
    events : pandas.DataFrame
        :func:`kvmviz.load_ftrace` output, classified or not.
    layout : MemslotLayout
        The VM's memslots while the trace was recorded.
    kernel : str
        A release from v5.12 to v6.18 (``"v6.18"`` or ``"6.18"``); the run carries its
        canonical name. From v6.10 KVM has no ``change_pte`` (f3b65bbaed7c): a trace's
        ``kvm_set_spte_hva`` records (a v6.9 or older host) replay there as what their
        ``set_pte_at_notify()`` is on such a kernel, a plain start/end pair; ``attrs["replay"]``
        counts them (``change_pte``) and :func:`compare_replay` says so in a note.
    n_vcpus : int
        Modelled vCPUs.
    policy : str
        Lock policy, see :mod:`kvmviz.rwlock`.
    seed : int
        Seeds the vCPU workload; the notifications are the recorded ones.
    scenario : Scenario, optional
        vCPU and cost parameters.
    max_gap_us : float
        The longest idle gap replayed, µs; longer gaps are cut to it.
    max_records : int
        Refuse (:class:`~kvmviz.engine.TooMuchWork`), before any work, a replay whose tables
        would exceed this many rows (:func:`replay_work` estimates them).

    Returns
    -------
    Run
        Its ``notifiers.attrs["replay"]`` holds ``span_us``, ``idle_removed_us``,
        ``gaps_shortened``, ``max_gap_us``, ``replayed_us`` (the simulated time, µs),
        ``change_pte`` (the trace's ``kvm_set_spte_hva`` records, folded or not) and
        ``age_hva`` (how the ``kvm_age_hva`` records were read, by ``callback_source``: see
        :func:`kvmviz.traces.to_stream`, :func:`kvmviz.traces.age_hva_note`).

    Raises
    ------
    ValueError
        A release outside v5.12-v6.18, naming the range; nothing to replay (no MMU-notifier
        record: a header-only trace, or one without notifier events), naming the file and
        counting what it holds; a raw clock (no µs);
        the engine's :class:`~kvmviz.engine.TooMuchWork` if even the shortened replay is too
        big for its ``max_records``.
    """
    kernel = resolve(kernel)
    modelled, stream, info = _replay_setup(events, layout, n_vcpus, scenario, max_gap_us)
    run = simulate(modelled, kernel, policy, seed, stream=stream, max_records=max_records)
    run.notifiers.attrs["replay"] = info
    return run


def _replay_setup(events, layout, n_vcpus, scenario, max_gap_us):
    """The modelled VM, the notification stream and the replay's facts of a trace."""
    if not isinstance(events, pd.DataFrame):
        raise TypeError(f"events: expected the frame of load_ftrace(), got {type(events).__name__}")
    n_vcpus = check_int(n_vcpus, "n_vcpus", minimum=1)
    classified = events if "hit" in events.columns else classify.records(events, layout)
    stream = replay_stream(classified, max_gap_us=max_gap_us)
    # Run until the last recorded notification, plus a millisecond for it to play out.
    end_us = float(stream["t_us"].max()) + 1000.0
    info = {
        k: stream.attrs[k] for k in ("span_us", "idle_removed_us", "gaps_shortened", "max_gap_us")
    }
    info["replayed_us"] = end_us
    info["change_pte"] = stream.attrs["folded_change_pte"] + stream.attrs["unpaired_change_pte"]
    info["age_hva"] = stream.attrs["age_hva"]
    base = Scenario(layout=layout) if scenario is None else scenario
    modelled = base.replace(layout=layout, n_vcpus=n_vcpus, duration_us=end_us)
    return modelled, stream, info


def replay_work(
    events: pd.DataFrame,
    layout: MemslotLayout,
    *,
    n_vcpus: int = 64,
    scenario=None,
    max_gap_us: float = MAX_GAP_US,
):
    """What one :func:`replay_trace` of ``events`` would do, estimated without doing it.

    Parameters
    ----------
    events, layout, n_vcpus, scenario, max_gap_us
        As for :func:`replay_trace`.

    Returns
    -------
    (Work, float)
        :func:`kvmviz.engine.estimate` of the modelled run (one kernel), and the simulated
        time it covers, µs (the replayed notifications plus a millisecond).
    """
    modelled, stream, info = _replay_setup(events, layout, n_vcpus, scenario, max_gap_us)
    return estimate(modelled, stream=stream), info["replayed_us"]


class ReplayWarning(UserWarning):
    """Emitted once by :func:`compare_replay` when idle time was cut from the replay."""


def idle_note(info: dict) -> str:
    """One sentence on the idle time a replay removed, from ``run.notifiers.attrs["replay"]``."""
    if not info["idle_removed_us"]:
        return (
            f"replayed all {info['span_us'] / 1e6:.6g} s of notifications (no idle gap "
            f"longer than {info['max_gap_us'] / 1e6:g} s)"
        )
    return (
        f"idle time removed: {info['idle_removed_us'] / 1e6:.6g} s of the "
        f"{info['span_us'] / 1e6:.6g} s span ({info['gaps_shortened']} "
        f"gap{'s' if info['gaps_shortened'] > 1 else ''} between "
        f"notifications cut to {info['max_gap_us'] / 1e6:g} s); the statistics cover the "
        f"{info['replayed_us'] / 1e6:.6g} s replayed, without the uncontended faults of the "
        "idle time"
    )


def change_pte_note(count: int, kernels) -> str | None:
    """One sentence on a trace's ``change_pte`` records replayed on releases without the
    callback (v6.10 and later, f3b65bbaed7c), or None when there is nothing to say.

    Examples
    --------
    >>> change_pte_note(3, ["v5.15", "v6.18"])[:62]
    'the trace has 3 change_pte records (kvm_set_spte_hva, a v6.9 o'
    >>> change_pte_note(3, ["v5.15"]) is None
    True
    """
    without = [k for k in (resolve(x) for x in kernels) if not features(k).change_pte]
    if not count or not without:
        return None
    records = "record" if count == 1 else "records"
    return (
        f"the trace has {count} change_pte {records} (kvm_set_spte_hva, a v6.9 or older "
        f"host); {', '.join(without)} {'has' if len(without) == 1 else 'have'} no change_pte "
        "callback (f3b65bbaed7c deleted it in v6.10), so there each of their events is the "
        "plain invalidate_range_start/end pair around it"
    )


def compare_replay(events: pd.DataFrame, layout: MemslotLayout, *, kernels=None, **kwargs):
    """:func:`replay_trace` on each kernel; returns ``(table, runs)``.

    ``kernels`` are releases from v5.12 to v6.18 (``"6.8"``, ``"v6.18"``), default the 2021
    story's :data:`kvmviz.kernels.KERNELS_2021`. ``table`` has one row per kernel, indexed by its
    canonical release, with the columns of :func:`kvmviz.metrics.summarize`; ``runs`` maps the
    canonical release to :class:`~kvmviz.Run`. Other keywords go to :func:`replay_trace`.
    ``table.attrs["replay"]`` says how much idle time was cut (see :func:`replay_trace`: the
    statistics are those of the shortened timeline) and ``table.attrs["notes"]`` says it in
    sentences: the idle time first, then the records a lenient :func:`kvmviz.load_ftrace` sorted,
    and, when the trace has ``kvm_age_hva`` records, how their callback was read
    (:func:`kvmviz.traces.age_hva_note`: ``clear_young`` from ``kdamond``, ``clear_flush_young``
    from ``kswapd``, assumed ``clear_flush_young`` from other tasks), and when the trace has
    ``change_pte`` records and some kernel is v6.10 or later, that they replay there as plain
    pairs (:func:`change_pte_note`). When idle time was cut, one :class:`ReplayWarning` says so.
    """
    kernels = _releases(KERNELS_2021 if kernels is None else kernels)
    classified = events if "hit" in events.columns else classify.records(events, layout)
    runs = {k: replay_trace(classified, layout, k, **kwargs) for k in kernels}
    table = kernel_table(runs)
    info = next(iter(runs.values())).notifiers.attrs["replay"]
    notes = [idle_note(info)]
    if events.attrs.get("reordered"):
        notes.append(
            f"{events.attrs['reordered']} records whose timestamp went back in time on their "
            "CPU were sorted into time order (lenient)"
        )
    if any(info["age_hva"].values()):
        notes.append(age_hva_note(info["age_hva"]))
    missing = change_pte_note(info["change_pte"], kernels)
    if missing:
        notes.append(missing)
    table.attrs.update(replay=info, notes=notes)
    if info["idle_removed_us"]:
        where = events.attrs.get("path", "the trace")
        warnings.warn(f"{where}: {notes[0]}", ReplayWarning, stacklevel=2)
    return table, runs
