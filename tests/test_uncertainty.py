"""Sensitivity: every free or fitted parameter over its range, and what survives it."""

import matplotlib
import pandas as pd
import pytest

import kvmviz as kv
from kvmviz import experiments

matplotlib.use("Agg")

SMALL = kv.Scenario(n_vcpus=64, duration_us=4_000.0)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return kv.sensitivity(SMALL, seeds=(0, 1))


def test_one_row_per_parameter_value_and_kernel(table):
    """Five parameters by default, each over the values of the calibration table, x 3 kernels."""
    assert list(table.columns) == experiments.SENSITIVITY_COLUMNS
    expected = sum(
        len(kv.scenario.PARAMETER_BY_NAME[p].values) for p in experiments.SENSITIVITY_PARAMETERS
    )
    assert len(table) == 3 * expected
    assert set(table["parameter"]) == set(experiments.SENSITIVITY_PARAMETERS)
    # exactly one default value per (parameter, kernel)
    assert (table.groupby(["parameter", "kernel"])["is_default"].sum() == 1).all()


def test_a_row_is_the_mean_of_its_seeds():
    """The table averages the seeds of kv.simulate at that point."""
    t = kv.sensitivity(
        SMALL, parameters={"tlb_flush_exponent": [1.0]}, seeds=(0, 1), kernels=["v5.12"]
    )
    runs = [kv.simulate(SMALL.replace(tlb_flush_exponent=1.0), "v5.12", seed=s) for s in (0, 1)]
    expected = sum(r.summary()["p99_us"] for r in runs) / 2
    assert t["p99_us"].iloc[0] == pytest.approx(expected)


def test_more_contention_inside_the_lock_means_longer_stalls(table):
    """Only the part inside the read lock delays a waiting writer: on v5.12 the brownout grows
    with contention_in_lock_share, and at 0 it is less than half of what it is at 1."""
    part = table[(table["parameter"] == "contention_in_lock_share") & (table["kernel"] == "v5.12")]
    brownout = part.sort_values("value")["brownout_mean"].to_numpy()
    assert (brownout[1:] >= brownout[:-1]).all()
    assert brownout[0] < 0.5 * brownout[-1]


def test_headline_ranges_contain_the_default(table):
    head = experiments.headline(table)
    assert list(head.index) == list(kv.KERNELS)
    assert (head["p99_low_us"] <= head["p99_us"]).all() and (
        head["p99_us"] <= head["p99_high_us"]
    ).all()
    assert (head["brownout_low"] <= head["brownout_mean"]).all()
    # v5.15 removes most of the brownout at the default point
    assert head.loc["v5.15", "brownout_mean"] < head.loc["v5.12", "brownout_mean"]


def test_ordering_flags_every_point_where_a_newer_kernel_is_worse():
    table = pd.DataFrame(
        {
            "parameter": ["x"] * 6,
            "value": [0.0] * 3 + [1.0] * 3,
            "kernel": list(kv.KERNELS) * 2,
            "p99_us": [3.0, 2.0, 1.0, 1.0, 2.0, 3.0],
        }
    )
    order = experiments.ordering(table)
    assert order["ordered"].tolist() == [True, False]


def test_unknown_parameters_are_refused_by_name():
    with pytest.raises(ValueError, match="'guest_run_us' has no plausible range to sweep"):
        kv.sensitivity(SMALL, parameters=["guest_run_us"])
    with pytest.raises(ValueError, match="'nope' is not a Scenario parameter"):
        kv.sensitivity(SMALL, parameters={"nope": [1]})
    with pytest.raises(TypeError, match="expected a list of names or a mapping"):
        kv.sensitivity(SMALL, parameters="spurious_share")


def test_progress_counts_every_simulation():
    calls = []
    kv.sensitivity(
        SMALL,
        parameters={"spurious_share": [0.5, 0.9]},
        kernels=["v5.12", "v5.15"],
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_the_tornado_draws_one_bar_per_parameter_and_kernel(table):
    axes = kv.plot.tornado(table)
    assert len(axes) == 2
    assert axes[0].get_xlabel() == "p99 fault stall (µs)"
    labels = [t.get_text().split("\n")[0] for t in axes[0].get_yticklabels()]
    assert sorted(labels) == sorted(experiments.SENSITIVITY_PARAMETERS)
    bars = [line for line in axes[1].lines if line.get_linewidth() == 4]
    assert len(bars) == 3 * len(experiments.SENSITIVITY_PARAMETERS)
    # each bar spans exactly the min..max of its rows
    part = table[(table["parameter"] == labels[0])]
    lows = sorted(part.groupby("kernel")["brownout_mean"].min())
    drawn = sorted(min(line.get_xdata()) for line in bars if line.get_ydata()[0] < 0.5)
    assert drawn == pytest.approx(lows)
    matplotlib.pyplot.close("all")
