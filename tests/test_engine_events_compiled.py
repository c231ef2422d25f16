"""The compiled event loop (kvmviz/model/_event_loop.py) is the event-driven engine, compiled:
for every input it models (qrwlock, read-locking faults, any release, the pre-check, the
yielding zap) it gives the very tables of ``method="events"``, float for float."""

from __future__ import annotations

import collections
from unittest import mock

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz import engine
from kvmviz.model import _event_loop
from kvmviz.presets import q35_512m_layout


def _assert_same_run(a: kv.Run, b: kv.Run) -> None:
    pd.testing.assert_frame_equal(a.faults, b.faults)
    pd.testing.assert_frame_equal(a.notifiers, b.notifiers)
    pd.testing.assert_frame_equal(a.write_holds, b.write_holds)


def _freeze(**changes) -> kv.Scenario:
    """The 2024 freeze VM, small: 48 vCPUs, 12 ms, a 32 MiB NUMA scan every 5 ms."""
    base = {
        "n_vcpus": 48,
        "duration_us": 12_000.0,
        "numa_scan_size_mib": 32.0,
        "numa_scan_period_ms": 5.0,
    }
    return kv.presets.numa_balancing_setup(**{**base, **changes})


@st.composite
def scenarios(draw) -> kv.Scenario:
    """A small VM: 1 to 24 vCPUs, any preemption model, SPTE size and notification stream,
    with the NUMA balancer's scans (on the freeze VM's 8 GiB) or without (a q35 VM)."""
    common = {
        "n_vcpus": draw(st.integers(1, 24)),
        "faulting_share": draw(st.sampled_from([0.5, 1.0])),
        "duration_us": draw(st.floats(300.0, 3_000.0)),
        "guest_run_us": draw(st.floats(5.0, 100.0)),
        "notifier_rate_hz": draw(st.floats(0.0, 50_000.0)),
        "spurious_share": draw(st.floats(0.0, 1.0)),
        "preempt": draw(st.sampled_from(kv.presets.FREEZE_PREEMPTS)),
        "preempt_dynamic": draw(st.booleans()),
        "spte_kib": draw(st.sampled_from([4.0, 64.0, 2048.0])),
    }
    if draw(st.booleans()):
        return kv.presets.numa_balancing_setup(
            numa_scan_size_mib=draw(st.floats(0.1, 16.0)),
            numa_scan_period_ms=draw(st.floats(0.1, 1.0)),
            numa_scan_delay_ms=draw(st.floats(0.0, 0.5)),
            **common,
        )
    return kv.Scenario(layout=q35_512m_layout(), **common)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenario=scenarios(),
    kernel=st.sampled_from(kv.kernels.RELEASES),
    seed=st.integers(0, 2**16),
    everywhere=st.booleans(),
)
def test_the_compiled_event_loop_gives_the_event_engines_tables(scenario, kernel, seed, everywhere):
    """On any small scenario, release, preemption model and stream, method="compiled" gives
    the faults, notifiers and write_holds tables of method="events", exactly. It runs the
    compiled event loop where the run needs the pre-check or a yielding zap, the closed loop
    elsewhere; with ``everywhere`` the event loop runs every run (where the closed loop could)."""
    beyond = engine._beyond_compiled(scenario, kernel)
    with (
        mock.patch.object(engine, "_beyond_compiled", return_value=beyond or everywhere),
        mock.patch.object(engine, "run_events", wraps=engine.run_events) as loop,
    ):
        compiled = kv.simulate(scenario, kernel, seed=seed, method="compiled")
    assert loop.called == (beyond or everywhere)
    _assert_same_run(compiled, kv.simulate(scenario, kernel, seed=seed, method="events"))
    event(f"event loop: {loop.called}")
    event(f"zaps yielded: {compiled.notifiers['yields'].sum() > 0}")
    event(f"faults spun: {compiled.faults['spins'].sum() > 0}")


@pytest.mark.parametrize("kernel", kv.presets.FREEZE_KERNELS)
def test_the_freeze_small_is_the_same_run_on_both_engines(kernel):
    """The freeze VM, small: the zaps yield thousands of times, v6.7's faults retry under the
    lock and v6.8's spin without it; "auto" runs the compiled event loop, with the event
    engine's tables."""
    scenario = _freeze()
    with mock.patch.object(engine, "run_events", wraps=engine.run_events) as loop:
        auto = kv.simulate(scenario, kernel)
    assert loop.called
    events = kv.simulate(scenario, kernel, method="events")
    _assert_same_run(auto, events)
    faults, notifiers = auto.faults, auto.notifiers
    if kernel == "v6.7":
        assert notifiers["yields"].sum() > 1_000 and faults["retry"].sum() > 10_000
        assert faults["spins"].sum() == 0
    if kernel == "v6.8":
        assert notifiers["yields"].sum() > 1_000 and faults["spins"].sum() > 10**6
    if kernel == "v6.18":  # preempt=voluntary: the zap no longer yields (c793a62823d1)
        assert notifiers["yields"].sum() == 0
    assert (auto.write_holds["yielded"].sum()) == notifiers["yields"].sum()


def test_auto_keeps_the_closed_loop_where_it_applies():
    """Kernels before v6.8 whose zaps do not yield run on the closed loop, as before."""
    scenario = _freeze(preempt_dynamic=False, n_vcpus=8, duration_us=2_000.0)
    for kernel, event_loop in [("v5.15", False), ("v6.7", False), ("v6.8", True)]:
        with (
            mock.patch.object(engine, "run_events", wraps=engine.run_events) as loop,
            mock.patch.object(engine, "run_qrwlock", wraps=engine.run_qrwlock) as closed,
        ):
            kv.simulate(scenario, kernel)
        assert (loop.called, closed.called) == (event_loop, not event_loop), kernel


def test_buffers_that_fill_up_grow_and_the_run_goes_on(monkeypatch):
    """When the heap, a vCPU's rows or the write holds have no room left, the loop stops, the
    buffer grows, and the loop resumes where it stopped: the same tables as the event engine.
    (A spy sees each stop; the heap starts full.)"""
    stops = collections.Counter()
    advance = _event_loop._advance

    def spy(*args):
        status = advance(*args)
        stops[status] += 1
        return status

    monkeypatch.setattr(_event_loop, "_advance", spy)
    monkeypatch.setattr(_event_loop, "_HEAP_ROOM", 0)
    scenario = _freeze()
    _assert_same_run(
        kv.simulate(scenario, "v6.7", method="compiled"),
        kv.simulate(scenario, "v6.7", method="events"),
    )
    assert set(stops) == {
        _event_loop._DONE,
        _event_loop._HEAP_FULL,
        _event_loop._ROWS_FULL,
        _event_loop._HOLDS_FULL,
    }
    assert stops[_event_loop._DONE] == 1


def test_without_numba_the_same_source_gives_the_same_run(monkeypatch):
    """The compiled loop as plain Python: the very same tables."""
    scenario = _freeze(n_vcpus=6, duration_us=1_500.0, numa_scan_period_ms=0.5)
    compiled = {k: kv.simulate(scenario, k) for k in ("v6.7", "v6.8")}
    plain = getattr(_event_loop._advance, "py_func", _event_loop._advance)
    monkeypatch.setattr(_event_loop, "_advance", plain)
    for kernel, run in compiled.items():
        _assert_same_run(run, kv.simulate(scenario, kernel))
        assert run.notifiers["yields"].sum() > 0


def test_a_run_past_its_row_limit_stops_as_the_event_engine_does(monkeypatch):
    """With the estimate let through, a limit below the run's rows stops both engines with
    the same TooMuchWork; a limit of exactly its rows lets both finish."""
    monkeypatch.setattr(engine, "_affordable", lambda s, stream, limit: engine.estimate(s))
    scenario = _freeze(n_vcpus=8, duration_us=3_000.0)
    run = kv.simulate(scenario, "v6.8")
    rows = len(run.faults) + len(run.notifiers)
    messages = []
    for method in ("compiled", "events"):
        with pytest.raises(kv.TooMuchWork, match="outgrew max_records") as info:
            kv.simulate(scenario, "v6.8", method=method, max_records=rows - 1)
        messages.append(str(info.value))
        _assert_same_run(run, kv.simulate(scenario, "v6.8", method=method, max_records=rows))
    assert messages[0] == messages[1]


def test_the_compiled_engines_refuse_only_other_locks_and_the_shadow_mmu():
    """method="compiled" takes every release and preemption model now, and still refuses the
    other policies and write-locking faults, naming the way out."""
    scenario = _freeze(n_vcpus=4, duration_us=500.0)
    for kernel in ("v6.7", "v6.8", "v6.18"):
        assert len(kv.simulate(scenario, kernel, method="compiled").faults) > 0
    with pytest.raises(ValueError, match="qrwlock only; use method='events'"):
        kv.simulate(scenario, "v6.8", "reader-pref", method="compiled")
    with pytest.raises(ValueError, match=r"TDP MMU.*tdp_mmu=False"):
        kv.simulate(scenario.replace(tdp_mmu=False), "v6.8", method="compiled")
