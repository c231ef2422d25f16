"""What-if replay of the real trace: the recorded notifications drive the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kvmviz as kv
from kvmviz import traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces"
TRACE = DATA / "notifier-phases-linux6.18.txt"
LAYOUT = DATA / "notifier-phases-linux6.18.layout.json"


@pytest.fixture(scope="module")
def recorded():
    events = kv.load_ftrace(TRACE)
    layout = traces.load_layout(LAYOUT)
    return traces.classify(events, layout), layout


@pytest.fixture(scope="module")
def compared(recorded):
    classified, layout = recorded
    return traces.compare_replay(classified, layout, n_vcpus=16, seed=0)


def test_replay_uses_the_recorded_notifications(recorded, compared):
    """Every recorded notifier event arrives at its recorded time with its recorded range."""
    classified, _ = recorded
    stream = traces.to_stream(classified)
    run = compared[1]["v5.15"]
    first = run.notifiers.drop_duplicates("event").sort_values("event")
    np.testing.assert_allclose(first.t_arrive_us.to_numpy(), stream.t_us.to_numpy())
    assert first.hva_start.tolist() == stream.hva_start.tolist()


def test_lock_taken_falls_kernel_by_kernel(recorded, compared):
    """v5.12 locks for every callback, v5.13 skips the unpaired misses, v5.15 every miss."""
    table, runs = compared
    n = runs["v5.12"].notifiers
    unpaired_misses = (~n.hit & ~n.callback.str.startswith("invalidate_range")).sum()
    assert table.loc["v5.12", "lock_avoided"] == 0
    assert table.loc["v5.13", "lock_avoided"] == unpaired_misses
    assert table.loc["v5.15", "lock_avoided"] == (~n.hit).sum()
    assert table.loc["v5.15", "lock_taken"] == n.hit.sum()


def test_replay_takes_layout_from_json_or_qemu_log():
    """load_layout reads the JSON layout and the QEMU log alike."""
    assert len(traces.load_layout(LAYOUT)) == 2
    qemu = Path(__file__).resolve().parents[1] / "data" / "qemu" / "q35-512m-paused.txt"
    assert traces.load_layout(qemu) == kv.presets.q35_512m_layout()
