"""kvmviz.sweep: the grid of runs, what it measures, and the figures drawn from it.

Small scenarios (16 vCPUs, 1-2 ms) keep every sweep here well under a second.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import kvmviz as kv
from kvmviz import experiments, plot
from kvmviz.presets import many_memslots_layout

SMALL = kv.Scenario(n_vcpus=16, duration_us=1_500, guest_run_us=20, notifier_rate_hz=5_000)


@pytest.fixture(scope="module")
def table():
    """2 vCPU counts x 2 spurious shares x 2 kernels x 2 seeds."""
    return experiments.grid(
        SMALL,
        n_vcpus=[8, 16],
        spurious_share=[0.5, 1.0],
        kernels=["v5.12", "v5.15"],
        seeds=[0, 1],
    )


def test_one_row_per_point_kernel_and_seed_in_nesting_order(table):
    assert len(table) == 2 * 2 * 2 * 2
    assert list(table.columns[:4]) == ["n_vcpus", "spurious_share", "kernel", "seed"]
    first = table.iloc[:4]
    assert first[["n_vcpus", "spurious_share"]].drop_duplicates().shape == (1, 2)
    assert list(first["kernel"]) == ["v5.12", "v5.12", "v5.15", "v5.15"]
    assert list(first["seed"]) == [0, 1, 0, 1]


def test_rows_are_what_simulate_and_summarize_give(table):
    """Each row is the summary of the run it names: the sweep adds no randomness."""
    row = table[
        (table.n_vcpus == 16)
        & (table.spurious_share == 0.5)
        & (table.kernel == "v5.12")
        & (table.seed == 1)
    ].iloc[0]
    run = kv.simulate(SMALL.replace(n_vcpus=16, spurious_share=0.5), "v5.12", seed=1)
    expected = run.summary()
    for column in ("p99_us", "brownout_mean", "faults_retried", "lock_taken"):
        assert row[column] == pytest.approx(expected[column])


def test_same_arguments_same_table(table):
    again = experiments.grid(
        SMALL, n_vcpus=[8, 16], spurious_share=[0.5, 1.0], kernels=["v5.12", "v5.15"], seeds=[0, 1]
    )
    pd.testing.assert_frame_equal(table, again)


def test_all_spurious_on_v515_never_locks(table):
    """071064f14d87: when every notification misses, v5.15 takes no write lock at all."""
    quiet = table[(table.kernel == "v5.15") & (table.spurious_share == 1.0)]
    assert (quiet["lock_taken"] == 0).all()
    assert (quiet["writer_hold_mean_us"] == 0).all()
    assert (quiet["p99_us"] == 0).all()


def test_build_turns_other_axes_into_scenarios():
    calls = []

    def build(scenario, n_memslots, memslot_lookup):
        calls.append((n_memslots, memslot_lookup))
        layout = many_memslots_layout(n_memslots)
        return scenario.replace(layout=layout, memslot_lookup=memslot_lookup)

    table = experiments.grid(
        SMALL,
        kernels=["v5.12", "v5.15"],
        build=build,
        n_memslots=[10, 2000],
        memslot_lookup=["linear", "interval-tree"],
    )
    # Built once per point, not once per kernel.
    assert calls == [
        (10, "linear"),
        (10, "interval-tree"),
        (2000, "linear"),
        (2000, "interval-tree"),
    ]
    assert len(table) == 8
    assert set(table["n_memslots"]) == {10, 2000}


def test_spurious_hold_grows_with_a_linear_walk_only():
    """v5.12 walks the memslots under the write lock, twice for start (docs/kernel.md §2.1)."""
    layouts = {n: many_memslots_layout(n) for n in (10, 4000)}
    table = experiments.grid(
        SMALL.replace(spurious_share=1.0),
        kernels=["v5.12"],
        build=lambda s, n, memslot_lookup: s.replace(
            layout=layouts[n], memslot_lookup=memslot_lookup
        ),
        n=[10, 4000],
        memslot_lookup=["linear", "interval-tree"],
    )
    hold = table.set_index(["n", "memslot_lookup"])["spurious_event_hold_us"]
    # Two walks of 4000 slots at 1.8 ns, plus one or two lock round trips (pair or aging call).
    walks = 2 * 4000 * SMALL.memslot_walk_ns * 1e-3
    lock = SMALL.lock_op_us
    assert walks + lock <= hold[4000, "linear"] <= walks + 2 * lock
    assert hold[4000, "interval-tree"] < 2 * hold[10, "interval-tree"]
    assert hold[4000, "linear"] > 50 * hold[4000, "interval-tree"]


def test_measure_reads_the_notifier_table():
    run = kv.simulate(SMALL.replace(duration_us=5_000), "v5.12", seed=3)
    measured = experiments.measure(run)
    locked = run.notifiers[run.notifiers.locked]
    assert measured["writer_hold_mean_us"] == pytest.approx(locked.hold_us.mean())
    assert measured["writer_hold_max_us"] == pytest.approx(locked.hold_us.max())
    per_event = locked[~locked.hit].groupby("event").hold_us.sum()
    assert len(per_event) > 10
    assert measured["spurious_event_hold_us"] == pytest.approx(per_event.mean())
    assert set(kv.summarize(run).index) <= set(measured.index)


def test_custom_measure():
    table = experiments.grid(
        SMALL, kernels=["v5.13"], measure=lambda run: {"attempts": len(run.faults)}, n_vcpus=[4]
    )
    assert list(table.columns) == ["n_vcpus", "kernel", "seed", "attempts"]
    assert table["attempts"].iloc[0] == len(kv.simulate(SMALL.replace(n_vcpus=4), "v5.13").faults)


def test_progress_callable_sees_every_run():
    seen = []
    experiments.grid(
        SMALL,
        kernels=["v5.12", "v5.15"],
        seeds=[0, 1],
        n_vcpus=[4, 8],
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(i, 8) for i in range(1, 9)]


def test_progress_true_outside_jupyter_writes_one_line_to_stderr(capsys):
    experiments.grid(SMALL, kernels=["v5.15"], n_vcpus=[4, 8], progress=True)
    err = capsys.readouterr().err
    assert err.endswith("sweep: 2 / 2 runs\n")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "no axes"),
        ({"n_cpus": [4]}, ValueError, "not a Scenario parameter"),
        ({"kernel": ["v5.12"]}, ValueError, "may not be called 'kernel'"),
        ({"n_vcpus": []}, ValueError, "non-empty sequence"),
        ({"memslot_lookup": "linear"}, TypeError, "axis 'memslot_lookup' needs a sequence"),
        ({"n_vcpus": 4}, TypeError, "axis 'n_vcpus' needs a sequence of values, got 4"),
        ({"n_vcpus": [4], "kernels": ["v5.14"]}, ValueError, "kernels must be"),
        ({"n_vcpus": [4], "kernels": "v5.12"}, TypeError, r"kernels = 'v5\.12': expected a seq"),
        ({"n_vcpus": [4], "seeds": []}, ValueError, "at least one seed"),
        ({"n_vcpus": [4], "seeds": 0}, TypeError, "seeds = 0: expected a sequence"),
        ({"n_vcpus": [4], "seeds": [0, 1.5]}, TypeError, "seeds = 1.5: expected a non-negative"),
        ({"n_vcpus": [4], "seeds": [-2]}, ValueError, "seeds = -2: expected a non-negative"),
        ({"n_vcpus": [4], "policy": "mutex"}, ValueError, "unknown lock policy"),
        ({"n_vcpus": ["4"]}, TypeError, r"Scenario\.n_vcpus = '4'"),
    ],
)
def test_bad_grids_say_what_is_wrong(kwargs, error, match):
    """Each mistake is refused before any simulation, in one sentence naming the argument:
    a lone string or number is not a list of values ("v5.12" is not five kernels)."""
    with pytest.raises(error, match=match):
        experiments.grid(SMALL, **kwargs)


def test_numpy_axes_and_seeds_are_welcome():
    """An np.arange of seeds and a numpy array of vCPU counts sweep like the plain lists: the
    table holds Python ints and the same numbers."""
    plain = experiments.grid(SMALL, kernels=["v5.15"], seeds=[0, 1], n_vcpus=[2, 4])
    numpy = experiments.grid(SMALL, kernels=["v5.15"], seeds=np.arange(2), n_vcpus=np.array([2, 4]))
    assert numpy["seed"].tolist() == [0, 1, 0, 1]
    pd.testing.assert_frame_equal(plain, numpy, check_dtype=False)


def test_bad_progress_and_scenario():
    with pytest.raises(TypeError, match="progress must be"):
        experiments.grid(SMALL, n_vcpus=[4], progress="yes")
    with pytest.raises(TypeError, match=r"kvmviz\.Scenario"):
        experiments.grid({"n_vcpus": 4}, n_vcpus=[4])


# --------------------------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------------------------
def _texts(ax):
    return [t.get_text() for t in ax.texts]


def test_heatmap_draws_one_annotated_cell_per_point_averaged_over_seeds(table):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    v512 = table[table.kernel == "v5.12"]
    plot.heatmap(v512, "spurious_share", "n_vcpus", "brownout_mean", ax=ax)
    assert len(ax.texts) == 4
    mesh = ax.collections[0]
    expected = v512.groupby(["n_vcpus", "spurious_share"]).brownout_mean.mean() * 100
    assert np.allclose(np.sort(mesh.get_array().ravel()), np.sort(expected.to_numpy()))
    # y grows upwards: the smallest vCPU count is the bottom row.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["8", "16"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1"]
    assert ax.get_xlabel() == "spurious_share"
    colorbar = fig.axes[-1]
    assert "%" in colorbar.get_ylabel()
    assert mesh.get_clim()[0] == 0


def test_heatmap_labels_and_scale():
    import matplotlib.pyplot as plt

    frame = pd.DataFrame({"a": [1, 1, 2, 2], "b": [10, 20, 10, 20], "p99_us": [1, 2, 3, 400.0]})
    ax = plot.heatmap(
        frame, "a", "b", "p99_us", vmax=1000, labels={"a": "A (units)"}, colorbar=False
    )
    assert ax.get_xlabel() == "A (units)"
    assert ax.collections[0].get_clim() == (0, 1000)
    assert "400" in _texts(ax)
    assert len(plt.gcf().axes) == 1  # no colour bar


def test_heatmaps_share_one_colour_scale(table):
    fig = plot.heatmaps(
        table,
        "spurious_share",
        "n_vcpus",
        "p99_us",
        order=["v5.12", "v5.15"],
        titles={"v5.12": "before"},
    )
    panels, colorbar = fig.axes[:2], fig.axes[2]
    # Where a title sits follows the theme (kv.set_theme puts it on the left): read any of them.
    titles = [ax.get_title("center") or ax.get_title("left") for ax in panels]
    assert titles == ["before", "v5.15"]
    clims = {ax.collections[0].get_clim() for ax in panels}
    assert len(clims) == 1
    top = (table.groupby(["kernel", "spurious_share", "n_vcpus"]).p99_us.mean()).max()
    assert clims.pop()[1] == pytest.approx(top)
    assert "µs" in colorbar.get_ylabel()
    # One x label for the row of panels, not one per panel running into the next.
    assert [ax.get_xlabel() for ax in panels] == ["", ""]
    assert fig.get_supxlabel() == "spurious_share"


def test_curves_one_line_per_hue_named_at_its_end():
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(
        {
            "n": [10, 100, 1000, 10, 100, 1000, 10],
            "how": ["linear"] * 3 + ["tree"] * 3 + ["tree"],
            "p99_us": [1.0, 10.0, 100.0, 1.0, 1.0, 1.0, 3.0],
        }
    )
    _fig, ax = plt.subplots()
    plot.curves(
        frame,
        "n",
        "p99_us",
        hue="how",
        ax=ax,
        styles={"tree": {"color": "#0173b2"}},
        marks={509: "old limit"},
    )
    lines = {line.get_gid(): line for line in ax.lines}
    assert set(lines) == {"curve|linear", "curve|tree", "mark|509"}
    assert list(lines["curve|tree"].get_ydata()) == [2.0, 1.0, 1.0]  # seeds averaged
    assert lines["curve|tree"].get_color() == "#0173b2"
    assert _texts(ax) == ["linear", "tree", "old limit"]
    assert ax.get_xscale() == "log"
    assert ax.get_ylim()[0] == 0
    assert ax.get_ylabel() == "p99 fault stall (µs)"
