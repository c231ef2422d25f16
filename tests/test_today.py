"""Today's kernels in the engine: the lockless pre-check (d02c357e5bfa, v6.8) and the zap that
yields a contended ``mmu_lock`` (rwlock_needbreak -> cond_resched_rwlock_write), checked as
invariants over random runs, against brute forces over the run's own tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz.kernels import RELEASES, at_least, features, zap_yields

_TODAY = [k for k in RELEASES if at_least(k, "v6.8")]
_FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _freeze_vm(n_vcpus, scan_mib, guest_run_us, spte_kib, preempt, dynamic):
    return kv.presets.numa_balancing_setup(
        n_vcpus=n_vcpus,
        duration_us=4_000.0,
        numa_scan_size_mib=scan_mib,
        numa_scan_period_ms=1.5,
        numa_scan_delay_ms=0.2,
        guest_run_us=guest_run_us,
        spte_kib=spte_kib,
        preempt=preempt,
        preempt_dynamic=dynamic,
        layout=kv.MemslotLayout([kv.Memslot(0, 256, 16384, 0x7F0000000000)]),  # 64 MiB
        notifier_rate_hz=2_000.0,
        spurious_share=0.5,
    )


_runs = st.builds(
    _freeze_vm,
    n_vcpus=st.integers(1, 12),
    scan_mib=st.sampled_from([0.5, 2.0, 8.0]),
    guest_run_us=st.sampled_from([5.0, 20.0, 80.0]),
    spte_kib=st.sampled_from([4.0, 64.0, 2048.0]),
    preempt=st.sampled_from(["none", "voluntary", "full"]),
    dynamic=st.booleans(),
)


def _in_flight(run):
    """Per hit invalidation: [first grant of its start, last release of its event) and its
    range (docs/kernel.md §3: mmu_invalidate_in_progress is up from start's grant until the
    end releases)."""
    n = run.notifiers
    start = n[(n["callback"] == "invalidate_range_start") & n["locked"]]
    end_at = n.groupby("event")["t_done_us"].max()
    return (
        start["t_grant_us"].to_numpy(),
        end_at.reindex(start["event"]).to_numpy(),
        start["hva_start"].to_numpy(np.uint64),
        start["hva_end"].to_numpy(np.uint64),
    )


@_FAST
@given(scenario=_runs, kernel=st.sampled_from(_TODAY), seed=st.integers(0, 3))
def test_under_the_precheck_no_fault_in_a_hit_invalidation_requests_the_lock(
    scenario, kernel, seed
):
    """From v6.8 the check after resolving the pfn (mmu_invalidate_retry_gfn_unsafe) sends a
    fault whose address is being invalidated back to the guest without mmu_lock: no attempt
    reaches the lock with its address inside a hit invalidation in flight when it checked."""
    run = kv.simulate(scenario, kernel, seed=seed, max_records=10**7)
    f = run.faults
    checked = f["t_request_us"].to_numpy() - scenario.read_acquire_us
    hva = f["hva"].to_numpy(np.uint64)
    grant, end, lo, hi = _in_flight(run)
    for g, e, a, b in zip(grant, end, lo, hi, strict=True):
        inside = (checked >= g) & (checked < e) & (hva >= a) & (hva < b)
        assert not inside.any(), f.loc[inside].head()
    # and the ones that found it spun without the lock (counted), never retried under it for it
    assert (f["spins"] >= 0).all()


@_FAST
@given(scenario=_runs, kernel=st.sampled_from(RELEASES), seed=st.integers(0, 3))
def test_a_yielding_zap_never_holds_the_lock_while_a_reader_that_asked_before_its_yield_waits(
    scenario, kernel, seed
):
    """cond_resched_rwlock_write() lets every reader queued before the yield in before the zap
    takes mmu_lock again; write holds never overlap any read hold; a zap yields only where
    kernels.zap_yields says so; its holds add up to its work plus one flush per yield."""
    run = kv.simulate(scenario, kernel, seed=seed, max_records=10**7)
    holds, f = run.write_holds, run.faults
    yielding = zap_yields(kernel, scenario.preempt, dynamic=scenario.preempt_dynamic)
    if not yielding:
        assert not holds["yielded"].any() and (run.notifiers["yields"] == 0).all()
    req, grant = f["t_request_us"].to_numpy(), f["t_grant_us"].to_numpy()
    release = f["t_release_us"].to_numpy()
    for _, rows in holds.groupby("notifier"):
        rows = rows.sort_values("t_grant_us")
        for (_, y), (_, nxt) in zip(
            rows.iloc[:-1].iterrows(), rows.iloc[1:].iterrows(), strict=True
        ):
            assert y["yielded"]
            asked_before = req < y["t_release_us"]
            assert (grant[asked_before] <= nxt["t_grant_us"]).all()
    for _, h in holds.iterrows():
        overlap = (grant < h["t_release_us"]) & (release > h["t_grant_us"])
        assert not overlap.any()
    costs = kv.engine.callback_costs(
        scenario, kernel, kv.notifiers.generate_stream(scenario, seed), seed
    )
    held = (
        holds.assign(d=holds["t_release_us"] - holds["t_grant_us"]).groupby("notifier")["d"].sum()
    )
    yields = run.notifiers["yields"].to_numpy()
    expected = costs["hold_us"].to_numpy() + yields * scenario.tlb_flush_us
    locked = run.notifiers["locked"].to_numpy()
    np.testing.assert_allclose(held.reindex(np.flatnonzero(locked)).to_numpy(), expected[locked])


@pytest.mark.parametrize("kernel", ["v6.7", "v6.8", "v6.18"])
def test_today_behaves_like_v515_for_spurious_notifications(kernel):
    """Every notification missing every memslot: no release after v5.15 changes anything for
    them (the pre-check never fires without an invalidation in flight, no zap runs), so the
    same stream gives the same faults, to the last µs."""
    scenario = kv.presets.static_setup(n_vcpus=64, duration_us=3_000.0)
    a, b = kv.simulate(scenario, "v5.15", seed=2), kv.simulate(scenario, kernel, seed=2)
    pd.testing.assert_frame_equal(a.faults, b.faults)
    assert kv.summarize(a)["stall_p99_us"] == kv.summarize(b)["stall_p99_us"]


def test_the_freeze_needs_a_yielding_zap_and_the_precheck_shortens_it():
    """On the freeze VM (scaled down) the zap crawls only where it yields; v6.7's vCPUs make
    futile read acquisitions that v6.8's pre-check turns into lockless retries."""
    s = kv.presets.numa_balancing_setup(n_vcpus=32, duration_us=60_000.0, numa_scan_size_mib=16)
    v67 = kv.metrics.freeze(kv.simulate(s, "v6.7"))
    v68 = kv.metrics.freeze(kv.simulate(s, "v6.8"))
    still = kv.metrics.freeze(kv.simulate(s.replace(preempt_dynamic=False), "v6.7"))
    v611 = kv.metrics.freeze(kv.simulate(s, "v6.11"))
    assert v67["yields"] > 10 * max(still["yields"], 1)
    assert v67["zap_ms"] > 2 * v68["zap_ms"] > 2 * still["zap_ms"]
    assert v67["futile_reads"] > 100 * max(v68["futile_reads"], 1)
    assert v68["lockless_retries"] > 100 and v67["lockless_retries"] == 0
    assert v611["yields"] == 0 and v611["zap_ms"] == pytest.approx(still["zap_ms"], rel=0.5)
    assert features("v6.8").precheck and not features("v6.7").precheck


def test_the_compiled_engine_models_them_too():
    """method="compiled" runs the yielding zap and the pre-check (the compiled event loop,
    tests/test_engine_events_compiled.py), with the event engine's tables."""
    s = kv.presets.numa_balancing_setup(n_vcpus=4, duration_us=1_000.0)
    for kernel in ("v6.7", "v6.8"):
        compiled = kv.simulate(s, kernel, method="compiled")
        events = kv.simulate(s, kernel, method="events")
        pd.testing.assert_frame_equal(compiled.faults, events.faults)
        pd.testing.assert_frame_equal(compiled.write_holds, events.write_holds)


@pytest.mark.parametrize("kernel", ["v6.8", "v6.18"])
def test_every_lockless_retry_is_owed_to_an_invalidation(kernel):
    """A pre-check spin is owed to the hit invalidation in flight over the fault's address, or
    to the end that moved seq under it: never to "other faults" (metrics.spin_causes)."""
    for scenario in (
        kv.presets.volatile_setup(duration_us=20_000.0),
        kv.presets.numa_balancing_setup(
            n_vcpus=16, duration_us=5_000.0, layout=kv.exercises.FREEZE_SCENE.layout
        ),
    ):
        run = kv.simulate(scenario, kernel)
        spun = run.faults["spins"].to_numpy() > 0
        assert spun.any()
        causes = kv.metrics.spin_causes(run)[spun]
        assert (causes >= 0).all()
        assert run.notifiers["hit"].to_numpy()[causes].all()
        pieces = kv.metrics.stall_pieces(run)
        assert "fault" not in set(pieces["behind"].astype(str))
