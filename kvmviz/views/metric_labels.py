"""How the figures name a metric and write its values: what each column of the kernel tables
measures and in which unit, what a value of exactly 0 means in words (and the note saying so
where a bar of height 0 would stand), the kernels' tick labels and order, and the names a
kernel gives its invalidation counters.
"""

from __future__ import annotations

import textwrap

import pandas as pd

from ..inputs.kernels import RELEASES, features, resolve
from ..stats.metrics import kernel_table
from . import theme

__all__ = [
    "METRICS",
    "NONE_WORDS",
    "PERCENTILES",
    "as_kernel_table",
    "counter_names",
    "kernel_order",
    "kernel_tick",
    "value_label",
    "zero_note",
    "zero_words",
]

# metric -> (what it measures, unit, factor from the table's value to the unit). The brownout
# is the share of the VM's vCPU time stalled (kvmviz.metrics.brownout): its one meaning.
METRICS = {
    "brownout_mean": ("share of the VM's vCPU time stalled", "%", 100.0),
    "brownout_miss": ("vCPU time stalled behind misses", "%", 100.0),
    "brownout_hit": ("vCPU time stalled behind hits", "%", 100.0),
    "brownout_fault": ("vCPU time stalled behind other faults only", "%", 100.0),
    "brownout_peak": ("peak share of the VM's vCPUs stalled", "%", 100.0),
    "stall_p99_us": ("p99 stall per fault", "µs", 1.0),
    "stall_p50_us": ("median stall per fault", "µs", 1.0),
    "stall_mean_us": ("mean stall per fault", "µs", 1.0),
    "stall_max_us": ("longest stall of a fault", "µs", 1.0),
    "stalled_share": ("faults that stalled", "%", 100.0),
    "stall_total_ms": ("vCPU time lost to mmu_lock", "ms", 1.0),
    "latency_mean_us": ("mean fault latency, first exit to install", "µs", 1.0),
    "latency_p99_us": ("p99 fault latency, first exit to install", "µs", 1.0),
    "wait_p99_us": ("p99 mmu_lock wait per fault attempt", "µs", 1.0),
    "wait_p50_us": ("median mmu_lock wait per fault attempt", "µs", 1.0),
    "wait_mean_us": ("mean mmu_lock wait per fault attempt", "µs", 1.0),
    "wait_max_us": ("longest mmu_lock wait of a fault attempt", "µs", 1.0),
    "waited_share": ("fault attempts that waited", "%", 100.0),
    "wait_total_ms": ("vCPU time waiting for mmu_lock", "ms", 1.0),
    "faults": ("faults resolved", "faults", 1.0),
    "faults_retried": ("fault attempts retried", "attempts", 1.0),
    "notifier_callbacks": ("notifier callbacks", "callbacks", 1.0),
    "lock_taken": ("callbacks taking mmu_lock", "callbacks", 1.0),
    "lock_avoided": ("callbacks skipping mmu_lock", "callbacks", 1.0),
    "writer_wait_mean_us": ("mean notifier wait for mmu_lock", "µs", 1.0),
    "writer_wait_max_us": ("longest notifier wait for mmu_lock", "µs", 1.0),
}
# What a stall metric at exactly 0 means, in words: a bar of height 0 or a line flat on the
# axis reads as missing data, so the figures write this instead. Each is 0 exactly when no
# fault (attempt, notifier) stalled, except the percentiles: see zero_words.
NONE_WORDS = {
    **dict.fromkeys(
        ["brownout_mean", "brownout_peak", "stalled_share", "stall_total_ms"]
        + [f"stall_{s}_us" for s in ("p99", "p50", "mean", "max")],
        "no fault stalled",
    ),
    "brownout_miss": "no stall behind a miss",
    "brownout_hit": "no stall behind a hit",
    "brownout_fault": "no stall behind faults",
    **dict.fromkeys(
        ["waited_share", "wait_total_ms"] + [f"wait_{s}_us" for s in ("p99", "p50", "mean", "max")],
        "no fault attempt waited",
    ),
    "writer_wait_mean_us": "no notifier waited",
    "writer_wait_max_us": "no notifier waited",
}
# A percentile at 0 says only that few stalled; which share is 0 when none did.
PERCENTILES = {
    "stall_p99_us": ("stalled_share", "0 µs: under 1% of faults stalled"),
    "stall_p50_us": ("stalled_share", "0 µs: under half the faults stalled"),
    "wait_p99_us": ("waited_share", "0 µs: under 1% of attempts waited"),
    "wait_p50_us": ("waited_share", "0 µs: under half the attempts waited"),
}


def zero_words(metric: str, row) -> str | None:
    """What ``metric`` at exactly 0 means for the table row ``row``, in words.

    Parameters
    ----------
    metric : str
        A column of :func:`kvmviz.metrics.kernel_table`.
    row : pandas.Series
        The kernel's row (a percentile at 0 reads by its share of stalled faults).

    Returns
    -------
    str or None
        None where a plain number says it, as for a count.
    """
    if metric in PERCENTILES:
        share, few = PERCENTILES[metric]
        if share in row and float(row[share]) > 0:
            return few
    return NONE_WORDS.get(metric)


def value_label(value: float, unit: str) -> str:
    """A value as a bar or a label writes it, in ``unit``: ``"12.5%"`` (``"<0.1%"`` above 0),
    ``"1,209 µs"``, ``"3.14"``.

    Parameters
    ----------
    value : float
        Already in ``unit`` (a share times 100 for ``"%"``).
    unit : str
        ``"%"``, ``"µs"`` or ``"ms"`` (written after the number), or any other (left out).

    Returns
    -------
    str
    """
    if unit == "%":
        return "<0.1%" if 0 < value < 0.05 else f"{value:.1f}%"
    if abs(value) >= 100 or float(value).is_integer():
        text = f"{value:,.0f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}" if unit in ("µs", "ms") else text


def kernel_tick(kernel: str) -> str:
    """A kernel's tick label, its long label on two lines: ``"v5.13 (8931a454ae)"`` ->
    ``"v5.13\n8931a454ae"``.

    Parameters
    ----------
    kernel : str

    Returns
    -------
    str
    """
    label = theme.kernel_style(kernel)["label"]
    version, _, note = label.partition(" (")
    return f"{version}\n{note.rstrip(')')}" if note else version


def as_kernel_table(table_or_runs) -> pd.DataFrame:
    """A per-kernel table (:func:`kvmviz.metrics.kernel_table`), made from runs if needed.

    Parameters
    ----------
    table_or_runs : pandas.DataFrame or mapping of kernel to Run

    Returns
    -------
    pandas.DataFrame
    """
    if isinstance(table_or_runs, pd.DataFrame):
        return table_or_runs
    return kernel_table(table_or_runs)


def _release(label) -> str | None:
    """The canonical release a label names (``"6.8"`` -> ``"v6.8"``), or None."""
    try:
        return resolve(label)
    except ValueError:
        return None


def kernel_order(index) -> list:
    """The kernels of a table in release order (:data:`kvmviz.kernels.RELEASES`: v5.12 first,
    v6.18 last), then any other labels as given.

    Parameters
    ----------
    index : iterable of str
        A kernel table's index.

    Returns
    -------
    list of str
    """
    labels = list(dict.fromkeys(index))
    releases = [k for k in labels if isinstance(k, str) and _release(k) is not None]
    releases.sort(key=lambda k: RELEASES.index(_release(k)))
    return releases + [k for k in labels if k not in releases]


def counter_names(kernel) -> tuple[str, str]:
    """The names of the invalidation counters on ``kernel``: ``mmu_notifier_seq`` and
    ``mmu_notifier_count`` before v6.0, ``mmu_invalidate_seq`` and
    ``mmu_invalidate_in_progress`` from it (20ec3ebd707c, :func:`kvmviz.kernels.features`).

    Parameters
    ----------
    kernel : str
        A release, any spelling :func:`kvmviz.kernels.resolve` takes; any other label (a lock
        policy, a run of one's own) keeps the names of the 2021 kernels.

    Returns
    -------
    (str, str)
        The sequence counter's name and the in-progress counter's.
    """
    release = _release(kernel)
    if release is None:
        return "mmu_notifier_seq", "mmu_notifier_count"
    f = features(release)
    return f.seq_name, f.count_name


def zero_note(ax, x: float, text: str, *, gid: str, color=None):
    """A note in words where a bar of height 0 would stand, on lines of at most 12 characters.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    x : float
        The bar's x, data units.
    text : str
    gid : str
    color : optional
        Default: the page's text colour.

    Returns
    -------
    matplotlib.text.Annotation
    """
    return ax.annotate(
        "\n".join(textwrap.wrap(text, 12)),
        (x, 0),
        xytext=(0, 3),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize="small",
        color=color or theme.color("text"),
        gid=gid,
    )
