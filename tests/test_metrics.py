"""The metrics of a run, on hand-built tables, and the per-kernel table every front end prints.

A reader-preferring lock makes the readers' stall vanish by starving the writers: the numbers
below show why the per-kernel table (``summarize``, ``compare_kernels``, ``kvmviz simulate``,
the toggle dashboard) must carry the writers' wait beside the readers' stall.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import kvmviz as kv
from kvmviz import cli
from kvmviz.experiments import compare_kernels
from kvmviz.metrics import KERNEL_TABLE_COLUMNS, brownout, stall_stats, summarize
from kvmviz.run import Run
from kvmviz.widgets import _table_html

# A small seeded VM on v5.12: every notification takes mmu_lock for write (about 50 of them).
SMALL = kv.Scenario(n_vcpus=64, duration_us=20_000.0)


def _run(faults: dict, notifiers: dict, *, n_vcpus: int = 2, duration_us: float = 1000.0):
    """A Run with hand-written tables: only the columns the metrics read."""
    scenario = kv.Scenario(n_vcpus=n_vcpus, duration_us=duration_us)
    return Run(scenario, "v5.12", "qrwlock", 0, pd.DataFrame(faults), pd.DataFrame(notifiers))


# Four fault attempts: two never wait, one waits 10 µs, one 30 µs (from 100 µs to 130 µs); the
# third is retried (its fault's second attempt is the fourth row). Three callbacks: two take
# mmu_lock after waiting 4 and 8 µs, one skips it.
FAULTS = {
    "t_request_us": [0.0, 50.0, 200.0, 100.0],
    "t_grant_us": [0.0, 50.0, 210.0, 130.0],
    "wait_us": [0.0, 0.0, 10.0, 30.0],
    "retries": [0, 0, 0, 1],
    "retry": [False, False, True, False],
}
NOTIFIERS = {"locked": [True, True, False], "wait_us": [4.0, 8.0, 0.0]}


def test_stall_stats_of_a_hand_built_run():
    """mean, median, p99 (numpy's linear interpolation), max, the share that waited, the sum."""
    stats = stall_stats(_run(FAULTS, NOTIFIERS))
    assert stats.to_dict() == pytest.approx(
        {
            "mean_us": 10.0,
            "p50_us": 5.0,
            "p99_us": 10.0 + 0.97 * 20.0,  # between the 3rd (10) and 4th (30) of 4 sorted waits
            "max_us": 30.0,
            "stalled_share": 0.5,
            "total_ms": 0.04,
        }
    )


def test_stall_stats_of_a_run_without_faults_is_all_zero():
    """No fault attempt: every statistic is 0, not NaN."""
    empty = {k: [] for k in FAULTS}
    stats = stall_stats(_run(empty, NOTIFIERS))
    assert stats.to_dict() == dict.fromkeys(
        ["mean_us", "p50_us", "p99_us", "max_us", "stalled_share", "total_ms"], 0.0
    )


def test_brownout_integrates_each_waiting_interval_over_its_bins():
    """One vCPU of 2 waits from 100 to 600 µs: 150, 250 and 100 µs fall in the first three
    250 µs bins, so the shares are 150/500, 250/500, 100/500 and 0."""
    faults = {**{k: [v[0]] for k, v in FAULTS.items()}, "t_request_us": [100.0]}
    faults.update(t_grant_us=[600.0], wait_us=[500.0])
    curve = brownout(_run(faults, NOTIFIERS), bin_us=250.0)
    assert curve["t_us"].tolist() == [0.0, 250.0, 500.0, 750.0]
    assert curve["stalled_share"].tolist() == pytest.approx([0.3, 0.5, 0.2, 0.0])
    # The default: 200 bins over the duration, and the same vCPU time in total.
    fine = brownout(_run(faults, NOTIFIERS))
    assert len(fine) == 200
    assert fine["stalled_share"].sum() * 5.0 * 2 == pytest.approx(500.0)


def test_brownout_refuses_a_bin_that_is_not_positive():
    """A zero-width bin is refused by name."""
    with pytest.raises(ValueError, match="bin_us must be > 0"):
        brownout(_run(FAULTS, NOTIFIERS), bin_us=0.0)


def test_summarize_of_a_hand_built_run():
    """Faults count first attempts; the writers' wait is over the callbacks that took the lock."""
    s = summarize(_run(FAULTS, NOTIFIERS))
    assert s.name == "v5.12 qrwlock"
    assert {k: s[k] for k in ("faults", "faults_retried", "notifier_callbacks")} == {
        "faults": 3,
        "faults_retried": 1,
        "notifier_callbacks": 3,
    }
    assert (s["lock_taken"], s["lock_avoided"]) == (2, 1)
    assert (s["writer_wait_mean_us"], s["writer_wait_max_us"]) == (6.0, 8.0)  # not 4.0: 0 skipped
    assert s["p99_us"] == pytest.approx(29.4)
    assert set(KERNEL_TABLE_COLUMNS) <= set(s.index)


def test_summarize_when_no_callback_took_the_lock_says_zero_writer_wait():
    """No callback took the lock: the writers waited 0 µs, not NaN."""
    s = summarize(_run(FAULTS, {"locked": [False], "wait_us": [0.0]}))
    assert (s["writer_wait_mean_us"], s["writer_wait_max_us"], s["lock_taken"]) == (0.0, 0.0, 0)


@pytest.fixture(scope="module")
def by_policy() -> dict:
    return {p: summarize(kv.simulate(SMALL, "v5.12", p, seed=0)) for p in kv.POLICIES}


def test_reader_pref_hides_the_stall_in_the_writers_wait(by_policy):
    """Under reader-pref the faults' p99 collapses (0 µs here) while the notifiers wait longer,
    on average and at worst, than under the fair qrwlock: the writers starve."""
    fair, unfair = by_policy["qrwlock"], by_policy["reader-pref"]
    assert unfair["p99_us"] < fair["p99_us"]
    assert unfair["p99_us"] == 0.0 and fair["p99_us"] > 10.0
    assert unfair["writer_wait_mean_us"] > 1.5 * fair["writer_wait_mean_us"]
    assert unfair["writer_wait_max_us"] > fair["writer_wait_max_us"]
    # The same notifications took the lock under both: only who waited changed.
    assert unfair["lock_taken"] == fair["lock_taken"] == by_policy["spinlock"]["lock_taken"]


def test_compare_kernels_carries_the_writers_wait_for_every_kernel():
    """compare_kernels has every column of KERNEL_TABLE_COLUMNS for each kernel, and
    fewer callbacks take the lock from v5.12 to v5.15."""
    table = compare_kernels(SMALL, policy="reader-pref", seed=0)
    assert table.index.tolist() == list(kv.KERNELS)
    assert list(table[list(KERNEL_TABLE_COLUMNS)].columns) == list(KERNEL_TABLE_COLUMNS)
    # v5.12 locks on every callback, so its writers wait; v5.15 locks only on the few hits.
    assert table.loc["v5.12", "writer_wait_max_us"] > 0
    assert table["lock_taken"].tolist() == sorted(table["lock_taken"], reverse=True)


def test_kernel_table_puts_the_writers_wait_beside_the_readers_stall():
    """The writers' mean and max wait come right after the readers' p99 and mean."""
    columns = list(KERNEL_TABLE_COLUMNS)
    assert columns.index("writer_wait_mean_us") == columns.index("mean_us") + 1
    assert columns[:4] == ["p99_us", "mean_us", "writer_wait_mean_us", "writer_wait_max_us"]


def test_cli_simulate_prints_the_writers_wait(capsys):
    """`kvmviz simulate` prints exactly the columns of KERNEL_TABLE_COLUMNS."""
    assert cli.main(["simulate", "--vcpus", "64", "--policy", "reader-pref", "-s", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "p99_us" in line)
    assert header.split() == list(KERNEL_TABLE_COLUMNS)


def test_dashboard_table_shows_every_column_of_the_kernel_table(by_policy):
    """The toggle dashboard's table: one header per column of KERNEL_TABLE_COLUMNS, in order,
    the writers' mean and max wait beside the readers' stall, values as summarize gives them."""
    rows = {"v5.12": by_policy["reader-pref"], "v5.15": by_policy["qrwlock"]}
    table = _table_html(rows, selected="v5.15")
    headers = re.findall(r'<th data-column="([a-z0-9_]+)">([^<]+)</th>', table)
    assert [c for c, _ in headers] == list(KERNEL_TABLE_COLUMNS)
    labels = dict(headers)
    assert labels["writer_wait_mean_us"] == "writers&#x27; mean wait (µs)"
    assert labels["writer_wait_max_us"] == "writers&#x27; max wait (µs)"
    row = re.search(r'<tr[^>]*data-kernel="v5.12">(.*?)</tr>', table)[1]
    cells = dict(re.findall(r'<td data-column="([a-z0-9_]+)">([^<]+)</td>', row))
    unfair = by_policy["reader-pref"]
    assert cells["p99_us"] == "0.0"
    assert cells["writer_wait_mean_us"] == f"{unfair['writer_wait_mean_us']:.1f}"
    assert cells["writer_wait_max_us"] == f"{unfair['writer_wait_max_us']:.1f}"
    assert float(cells["writer_wait_max_us"]) > 100.0
    assert cells["brownout_mean"] == f"{100 * unfair['brownout_mean']:.1f}"
    assert cells["lock_taken"] == str(int(unfair["lock_taken"]))
    # Only the selected kernel's row is highlighted.
    assert re.findall(r'<tr style="[^"]+" data-kernel="([^"]+)">', table) == ["v5.15"]
    assert np.isfinite([float(v) for v in cells.values()]).all()
