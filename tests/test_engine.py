"""The closed-loop engine: each test states one behaviour of the model and checks it exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz.engine import scripted_run
from kvmviz.presets import VMM_HEAP, q35_512m_layout
from kvmviz.rwlock import queued_behind

SMALL = kv.Scenario(
    n_vcpus=24,
    duration_us=4_000.0,
    layout=q35_512m_layout(),
    guest_run_us=40.0,
    notifier_rate_hz=20_000.0,
    spurious_share=0.7,
)


def _stream(rows):
    """A hand-made notification stream: (t_us, kind, hva_start, hva_end) per event."""
    frame = pd.DataFrame(rows, columns=["t_us", "kind", "hva_start", "hva_end"])
    return kv.notifiers.stream_from_callbacks(frame)


def _bump_and_range_oracle(run):
    """Recompute, from the notifier table alone, when mmu_notifier_seq moved and which
    invalidation ranges were live, following the rules table (docs/kernel.md §3)."""
    n = run.notifiers[run.notifiers.locked].sort_values("t_grant_us")
    bumps, steps = [], []  # steps: (time, count, lo, hi)
    count, lo, hi = 0, 0, 0
    for row in n.itertuples():
        r = kv.rule(run.kernel, row.callback, row.hit)
        if r.count_delta > 0:
            a, b = int(row.hva_start), int(row.hva_end)
            lo, hi = (a, b) if count == 0 else (min(lo, a), max(hi, b))
            count += 1
            steps.append((row.t_grant_us, count, lo, hi))
        if r.bumps_seq:
            bumps.append(row.t_release_us)
        if r.count_delta < 0:
            count -= 1
            steps.append((row.t_release_us, count, lo, hi))
    return np.array(bumps), steps


def _expected_retry(run, bumps, steps):
    snap = run.faults.t_exit_us.to_numpy() + run.scenario.vmexit_us / 2
    grant = run.faults.t_grant_us.to_numpy()
    hva = run.faults.hva.to_numpy()
    expected = np.zeros(len(grant), dtype=bool)
    for i in range(len(grant)):
        if ((bumps > snap[i]) & (bumps <= grant[i])).any():
            expected[i] = True
            continue
        live = [s for s in steps if s[0] <= grant[i]]
        if live and live[-1][1] > 0 and live[-1][2] <= int(hva[i]) < live[-1][3]:
            expected[i] = True
    return expected


class TestDeterminism:
    def test_same_seed_same_tables(self):
        """Two runs with one seed are identical, table for table."""
        a = kv.simulate(SMALL, "v5.12", seed=3)
        b = kv.simulate(SMALL, "v5.12", seed=3)
        pd.testing.assert_frame_equal(a.faults, b.faults)
        pd.testing.assert_frame_equal(a.notifiers, b.notifiers)

    def test_other_seed_other_workload(self):
        """A different seed draws a different workload."""
        a = kv.simulate(SMALL, "v5.12", seed=3)
        b = kv.simulate(SMALL, "v5.12", seed=4)
        assert not a.faults["t_exit_us"].head(50).equals(b.faults["t_exit_us"].head(50))

    @pytest.mark.parametrize("kernel", kv.kernels.KERNELS_2021)
    def test_vectorized_equals_event_driven(self, kernel):
        """The compiled engine and the event-driven engine agree exactly under qrwlock."""
        a = kv.simulate(SMALL, kernel, seed=11, method="compiled")
        b = kv.simulate(SMALL, kernel, seed=11, method="events")
        pd.testing.assert_frame_equal(a.faults, b.faults)
        pd.testing.assert_frame_equal(a.notifiers, b.notifiers)
        pd.testing.assert_frame_equal(a.lock, b.lock)


def test_pure_python_fallback_is_the_same_loop(monkeypatch):
    """Without numba the very same loop runs as plain Python, with the very same result."""
    from kvmviz import engine
    from kvmviz.model import _closed_loop

    compiled = kv.simulate(SMALL.replace(duration_us=800.0), "v5.12", seed=12)
    plain = getattr(_closed_loop.run_qrwlock, "py_func", _closed_loop.run_qrwlock)
    monkeypatch.setattr(engine, "run_qrwlock", plain)
    python = kv.simulate(SMALL.replace(duration_us=800.0), "v5.12", seed=12)
    pd.testing.assert_frame_equal(compiled.faults, python.faults)
    pd.testing.assert_frame_equal(compiled.notifiers, python.notifiers)


class TestLockDiscipline:
    @pytest.mark.parametrize("policy", kv.POLICIES)
    @pytest.mark.parametrize("kernel", ["v5.12", "v5.15"])
    def test_every_attempt_granted_once_and_in_order(self, kernel, policy):
        """Every fault attempt is granted exactly once, never before it asked, and a vCPU's
        attempts follow each other without overlap."""
        run = kv.simulate(SMALL, kernel, policy, seed=1)
        f = run.faults
        assert len(f) > 500
        assert f[["vcpu", "fault", "retries"]].duplicated().sum() == 0
        assert (f.t_grant_us >= f.t_request_us).all()
        assert (f.t_release_us > f.t_grant_us).all()
        for _, attempts in f.sort_values("t_request_us").groupby("vcpu"):
            assert (
                attempts.t_request_us.to_numpy()[1:] > attempts.t_release_us.to_numpy()[:-1]
            ).all()

    @pytest.mark.parametrize("policy", kv.POLICIES)
    def test_closed_loop_grants_match_open_loop_replay(self, policy):
        """Feeding the run's own requests and holds to rwlock.replay gives the same grants:
        the engine obeys the lock policy exactly."""
        run = kv.simulate(SMALL, "v5.12", policy, seed=2)
        lock = run.lock.sort_values(["t_request_us", "holder"], ascending=[True, False])
        grants = kv.replay(
            lock.t_request_us.to_numpy(),
            (lock["mode"] == "write").to_numpy(),
            lock.hold_us.to_numpy(),
            policy=policy,
        )
        np.testing.assert_allclose(grants, lock.t_grant_us.to_numpy(), rtol=0, atol=1e-9)

    def test_writer_never_overlaps_anyone(self):
        """While a notifier holds mmu_lock for write, nobody else holds it."""
        run = kv.simulate(SMALL, "v5.12", seed=5)
        lock = run.lock
        writers = lock[lock["mode"] == "write"]
        starts, ends = lock.t_grant_us.to_numpy(), lock.t_release_us.to_numpy()
        for w in writers.itertuples():
            overlap = (starts < w.t_release_us) & (ends > w.t_grant_us)
            assert overlap.sum() == 1  # itself


class TestKernelRules:
    @pytest.mark.parametrize("kernel", kv.kernels.KERNELS_2021)
    def test_locked_column_follows_rules_table(self, kernel):
        """A callback takes the lock exactly when kernels.takes_lock says so for its hit."""
        run = kv.simulate(SMALL, kernel, seed=6)
        n = run.notifiers
        expected = [kv.takes_lock(kernel, c, h) for c, h in zip(n.callback, n.hit, strict=True)]
        assert n.locked.tolist() == expected
        hits = [
            SMALL.layout.hits(int(a), int(b)) for a, b in zip(n.hva_start, n.hva_end, strict=True)
        ]
        assert n.hit.tolist() == hits

    @pytest.mark.parametrize("kernel", kv.kernels.KERNELS_2021)
    def test_retry_exactly_when_seq_moved_or_range_live(self, kernel):
        """mmu_notifier_retry_hva(): an attempt retries iff seq moved between its snapshot and
        its grant, or a live invalidation's range covers its hva (4a42d848db95)."""
        scenario = SMALL.replace(spurious_share=0.5, notifier_rate_hz=40_000.0)
        run = kv.simulate(scenario, kernel, seed=7)
        bumps, steps = _bump_and_range_oracle(run)
        expected = _expected_retry(run, bumps, steps)
        assert run.faults.retry.to_numpy().tolist() == expected.tolist()
        if kernel == "v5.12":
            assert expected.sum() > 10

    def test_spurious_pair_forces_retries_before_v515_only(self):
        """One munmap of VMM memory: on v5.12 and v5.13 its end bumps seq and every fault in
        flight across it retries; on v5.15 it touches neither lock nor seq."""
        stream = _stream([(500.0, "pair", VMM_HEAP[0], VMM_HEAP[0] + 64 * 4096)])
        retried = {}
        for kernel in kv.kernels.KERNELS_2021:
            run = kv.simulate(SMALL, kernel, seed=8, stream=stream)
            retried[kernel] = int(run.faults.retry.sum())
            locked = run.notifiers.locked.tolist()
            assert locked == ([True, True] if kernel != "v5.15" else [False, False])
        assert retried["v5.12"] > 0 and retried["v5.13"] > 0
        assert retried["v5.15"] == 0

    def test_no_notifications_no_stalls(self):
        """Readers never block readers: without notifications no fault waits or retries."""
        run = kv.simulate(SMALL, "v5.12", seed=9, stream=_stream([]))
        assert len(run.faults) > 0
        assert run.faults.wait_us.max() == 0
        assert not run.faults.retry.any()
        assert run.summary()["brownout_mean"] == 0

    def test_fault_in_live_range_retries_until_end(self):
        """A fault on a page being invalidated keeps retrying until invalidate_range_end."""
        layout = q35_512m_layout()
        slot = max(layout, key=lambda s: s.npages)
        stream = _stream([(300.0, "pair", slot.hva_start, slot.hva_end)])  # all guest RAM
        scenario = SMALL.replace(layout=layout, invalidate_window_us=200.0)
        run = kv.simulate(scenario, "v5.15", seed=10, stream=stream)
        start, end = run.notifiers.iloc[0], run.notifiers.iloc[1]
        inside = run.faults[
            (run.faults.t_grant_us >= start.t_release_us) & (run.faults.t_grant_us < end.t_grant_us)
        ]
        in_slot = (inside.hva >= slot.hva_start) & (inside.hva < slot.hva_end)
        assert len(inside[in_slot]) > 0
        assert inside[in_slot].retry.all()


class TestHeadline:
    """The story of the notebook, asserted: spurious-heavy VM, stalls fall kernel by kernel."""

    @pytest.fixture(scope="class")
    @classmethod
    def tables(cls):
        scenario = kv.Scenario(duration_us=50_000.0)
        return [kv.compare_kernels(scenario, seed=seed) for seed in range(3)]

    def test_stalls_fall_from_v512_to_v513_to_v515(self, tables):
        """v5.13 removes the unpaired spurious lockers, v5.15 the start/end pairs as well:
        the mean stall per fault, the vCPU time lost, the brownout and the part of it owed to
        misses fall kernel by kernel on every seed."""
        for table in tables:
            for metric in ("stall_mean_us", "brownout_mean", "brownout_miss", "stall_total_ms"):
                v512, v513, v515 = (table.loc[k, metric] for k in kv.kernels.KERNELS_2021)
                assert v512 > v513 > v515, metric
            assert table.loc["v5.12", "lock_avoided"] == 0
            assert 0 < table.loc["v5.13", "lock_avoided"] < table.loc["v5.15", "lock_avoided"]
            # The same notifications reach every kernel.
            assert table["notifier_callbacks"].nunique() == 1

    def test_tail_falls_too(self, tables):
        """The p99 stall per fault is a tail statistic: v5.15 beats both older kernels on every
        seed, and v5.13 beats v5.12 on average over seeds (one burst of pairs can still hit its
        p99)."""
        p99 = pd.DataFrame([t["stall_p99_us"] for t in tables])
        assert (p99["v5.15"] < p99[["v5.12", "v5.13"]].min(axis=1)).all()
        assert p99["v5.12"].mean() > p99["v5.13"].mean()

    def test_only_v515_stops_the_retries(self, tables):
        """Spurious pairs still bump mmu_notifier_seq on v5.13, so faults keep retrying; only
        v5.15 stops that (no seq++ for a pair that hits nothing)."""
        for table in tables:
            retried = table["faults_retried"]
            assert retried["v5.15"] < 0.2 * min(retried["v5.12"], retried["v5.13"])

    def test_v513_still_locks_for_spurious_pairs(self):
        """Why v5.13 was not enough: spurious start/end pairs still take the write lock."""
        run = kv.simulate(kv.Scenario(duration_us=10_000.0), "v5.13", seed=0)
        n = run.notifiers
        pairs = n[n.callback.isin(["invalidate_range_start", "invalidate_range_end"]) & ~n.hit]
        aging = n[n.callback.isin(["clear_flush_young", "clear_young", "test_young"]) & ~n.hit]
        assert len(pairs) > 0 and pairs.locked.all()
        assert len(aging) > 0 and not aging.locked.any()

    def test_fairness_is_the_cause(self):
        """Under a reader-preferring lock most of the v5.12 stall vanishes (over 60 %)."""
        scenario = kv.Scenario(n_vcpus=128, duration_us=10_000.0)
        fair = kv.simulate(scenario, "v5.12", "qrwlock", seed=0).summary()
        unfair = kv.simulate(scenario, "v5.12", "reader-pref", seed=0).summary()
        assert fair["wait_total_ms"] > 0
        assert unfair["wait_total_ms"] < 0.4 * fair["wait_total_ms"]
        assert unfair["writer_wait_mean_us"] > fair["writer_wait_mean_us"]


class TestInputs:
    def test_bad_kernel_policy_method(self):
        """Unknown names are rejected with the allowed values in the message."""
        with pytest.raises(ValueError, match=r"v5\.12 to v6\.18"):
            kv.simulate(SMALL, "v6.19")
        with pytest.raises(ValueError, match=r"v5\.12 to v6\.18"):
            kv.simulate(SMALL, "linux")
        with pytest.raises(ValueError, match="qrwlock"):
            kv.simulate(SMALL, policy="mutex")
        with pytest.raises(ValueError, match="qrwlock only"):
            kv.simulate(SMALL, policy="spinlock", method="compiled")

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("n_vcpus", 0, "integer >= 1"),
            ("faulting_share", 1.5, "share between 0 and 1"),
            ("guest_run_us", 0.0, "> 0"),
            ("notifier_rate_hz", -1.0, ">= 0"),
            ("relevant_mix", (0, 0, 0), "not all 0"),
        ],
    )
    def test_scenario_validation(self, field, value, message):
        """A bad parameter names itself and what was expected."""
        with pytest.raises(ValueError, match=message) as info:
            kv.Scenario(**{field: value})
        assert field in str(info.value)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_vcpus=st.integers(1, 12),
    duration=st.floats(100, 1500),
    rate=st.floats(0, 60_000),
    spurious=st.floats(0, 1),
    pair_share=st.floats(0, 1),
    kernel=st.sampled_from(kv.kernels.KERNELS_2021),
    seed=st.integers(0, 2**16),
)
def test_engines_agree_on_random_scenarios(
    n_vcpus, duration, rate, spurious, pair_share, kernel, seed
):
    """For any scenario the compiled and event-driven engines produce identical runs."""
    scenario = kv.Scenario(
        n_vcpus=n_vcpus,
        duration_us=duration,
        layout=q35_512m_layout(),
        guest_run_us=20.0,
        notifier_rate_hz=rate,
        spurious_share=spurious,
        spurious_pair_share=pair_share,
        invalidate_window_us=5.0,
    )
    a = kv.simulate(scenario, kernel, seed=seed, method="compiled")
    b = kv.simulate(scenario, kernel, seed=seed, method="events")
    pd.testing.assert_frame_equal(a.faults, b.faults)
    pd.testing.assert_frame_equal(a.notifiers, b.notifiers)


def test_memslot_lookup_costs():
    """A linear walk visits every slot (up to v5.16); the interval tree (ed922739c919) about
    log2(n); a locked miss on v5.12 holds mmu_lock for two such walks."""
    layout = kv.presets.many_memslots_layout(1023)
    linear = kv.Scenario(layout=layout, memslot_walk_ns=2.0)
    tree = linear.replace(memslot_lookup="interval-tree")
    assert linear.memslot_walk_us == pytest.approx(1023 * 2.0e-3)
    assert tree.memslot_walk_us == pytest.approx((10 + 1) * 2.0e-3)
    stream = _stream([(100.0, "clear_young", 0x1000, 0x2000)])  # a miss, unpaired
    run = kv.simulate(linear.replace(n_vcpus=2, duration_us=500.0), "v5.12", stream=stream)
    assert run.notifiers.hold_us.iloc[0] == pytest.approx(linear.lock_op_us + 2 * 1023 * 2e-3)
    with pytest.raises(ValueError, match="memslot_lookup"):
        kv.Scenario(memslot_lookup="hash")


class TestNoFaultingVcpu:
    """A VM whose vCPUs never fault (faulting_share=0, or 1 vCPU × 0.4 rounding to none) still
    runs its notifiers: both engines give the same tables, with no reader stall at all."""

    @pytest.mark.parametrize(
        "scenario",
        [
            kv.Scenario(n_vcpus=8, faulting_share=0.0, duration_us=2_000.0, notifier_rate_hz=2e4),
            kv.Scenario(n_vcpus=1, faulting_share=0.4, duration_us=2_000.0, notifier_rate_hz=2e4),
        ],
        ids=["faulting_share=0", "one vCPU, 0.4 faulting"],
    )
    @pytest.mark.parametrize("kernel", kv.kernels.KERNELS_2021)
    def test_both_engines_agree(self, scenario, kernel):
        """With no faulting vCPU both engines give the same tables: no fault, no stall, every
        notifier callback run."""
        assert scenario.n_faulting == 0
        events = kv.simulate(scenario, kernel, seed=3, method="events")
        compiled = kv.simulate(scenario, kernel, seed=3, method="compiled")
        pd.testing.assert_frame_equal(events.faults, compiled.faults)
        pd.testing.assert_frame_equal(events.notifiers, compiled.notifiers)
        assert len(compiled.faults) == 0 and len(compiled.notifiers) > 0
        summary = kv.summarize(compiled)
        assert summary["stall_p99_us"] == 0.0 and summary["faults"] == 0
        assert summary["notifier_callbacks"] == len(compiled.notifiers)


class TestWorkEstimate:
    """simulate() estimates its work first and refuses a run too big for memory at once."""

    @pytest.mark.parametrize(
        "change",
        [{"duration_us": 1e9}, {"n_vcpus": 100_000_000}, {"notifier_rate_hz": 1e300}],
        ids=["1e6 ms", "1e8 vCPUs", "1e300 Hz"],
    )
    def test_oversized_runs_are_refused_before_any_work(self, change):
        """The refusal gives the estimate and the parameter that lets the run go ahead."""
        scenario = kv.Scenario(**change)
        with pytest.raises(kv.engine.TooMuchWork) as info:
            kv.simulate(scenario)
        message = str(info.value)
        assert "fault attempts" in message and "notifier callbacks" in message
        assert "max_records=4,000,000" in message
        assert isinstance(info.value, ValueError)

    @pytest.mark.parametrize("seed", [0, 1, 2])
    @pytest.mark.parametrize(
        "scenario",
        [SMALL, kv.Scenario(n_vcpus=64, duration_us=2_000.0, notifier_rate_hz=50_000.0)],
        ids=["small", "busy"],
    )
    def test_estimate_bounds_the_real_counts(self, scenario, seed):
        """The estimate is an upper bound of what a run really records, and not by more than
        a small factor (it sizes the compiled engine's buffers)."""
        work = kv.engine.estimate(scenario)
        for kernel in kv.kernels.KERNELS_2021:
            run = kv.simulate(scenario, kernel, seed=seed)
            assert len(run.faults) <= work.attempts <= 40 * max(len(run.faults), 1)
            assert len(run.notifiers) <= work.callbacks

    def test_just_under_the_limit_runs(self):
        """max_records is the limit itself: a run estimated at exactly it goes ahead, one
        record less refuses."""
        work = kv.engine.estimate(SMALL)
        run = kv.simulate(SMALL, max_records=work.records)
        assert len(run.faults) > 0
        with pytest.raises(kv.engine.TooMuchWork, match=f"max_records={work.records - 1:,}"):
            kv.simulate(SMALL, max_records=work.records - 1)

    def test_a_given_stream_is_counted(self):
        """With a stream, the events counted are its rows."""
        stream = kv.notifiers.generate_stream(SMALL, 0)
        assert kv.engine.estimate(SMALL, stream=stream).events == len(stream)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_vcpus=st.integers(1, 4),
    share=st.sampled_from([0.0, 0.1, 0.4, 0.5, 1.0]),
    rate=st.floats(0, 40_000),
    spurious=st.floats(0, 1),
    kernel=st.sampled_from(kv.kernels.KERNELS_2021),
    seed=st.integers(0, 2**16),
)
def test_engines_agree_with_few_or_no_faulting_vcpus(n_vcpus, share, rate, spurious, kernel, seed):
    """With 0 to 4 faulting vCPUs (1 x 0.4 rounds to none), both engines give the same fault,
    notifier and lock tables and the same summary; with none there is no fault and no stall,
    while every notifier still runs."""
    scenario = kv.Scenario(
        n_vcpus=n_vcpus,
        faulting_share=share,
        duration_us=1_000.0,
        layout=q35_512m_layout(),
        guest_run_us=20.0,
        notifier_rate_hz=rate,
        spurious_share=spurious,
    )
    compiled = kv.simulate(scenario, kernel, seed=seed, method="compiled")
    events = kv.simulate(scenario, kernel, seed=seed, method="events")
    pd.testing.assert_frame_equal(compiled.faults, events.faults)
    pd.testing.assert_frame_equal(compiled.notifiers, events.notifiers)
    pd.testing.assert_frame_equal(compiled.lock, events.lock)
    pd.testing.assert_series_equal(kv.summarize(compiled), kv.summarize(events))
    assert len(compiled.notifiers) >= len(kv.notifiers.generate_stream(scenario, seed))
    if scenario.n_faulting == 0:
        assert len(compiled.faults) == 0
        assert kv.summarize(compiled)["stall_p99_us"] == 0.0


def test_no_faulting_vcpu_per_kernel_tables_are_identical_on_both_engines():
    """The per-kernel table of a VM whose vCPUs never fault is the same from either engine,
    shows no reader stall, and still shows the writers' own wait."""
    scenario = kv.Scenario(n_vcpus=1, faulting_share=0.4, duration_us=2_000.0, notifier_rate_hz=2e4)
    tables = {
        method: pd.DataFrame(
            {
                k: kv.summarize(kv.simulate(scenario, k, seed=1, method=method))
                for k in kv.kernels.KERNELS_2021
            }
        ).T
        for method in ("compiled", "events")
    }
    pd.testing.assert_frame_equal(tables["compiled"], tables["events"])
    assert (tables["events"]["stall_p99_us"] == 0.0).all()
    assert (tables["events"]["notifier_callbacks"] > 0).all()


_GOOD_EVENTS = pd.DataFrame(
    {"t_us": [1.0], "kind": ["pair"], "hva_start": [VMM_HEAP[0]], "hva_end": [VMM_HEAP[0] + 4096]}
)


@pytest.mark.parametrize(
    ("stream", "error", "fragment"),
    [
        ("trace.txt", TypeError, "stream: expected a pandas.DataFrame"),
        (_GOOD_EVENTS, ValueError, "stream lacks columns ['event', 'cause']"),
        (
            pd.concat([kv.notifiers.stream_from_callbacks(_GOOD_EVENTS)] * 2),
            ValueError,
            "one row per event id",
        ),
        (
            kv.notifiers.stream_from_callbacks(_GOOD_EVENTS).assign(kind="move2"),
            ValueError,
            "stream row 0: kind 'move2'",
        ),
        (
            kv.notifiers.stream_from_callbacks(_GOOD_EVENTS).assign(t_us=float("inf")),
            ValueError,
            "stream row 0: t_us inf",
        ),
    ],
    ids=["a path", "no event column", "repeated event", "unknown kind", "infinite time"],
)
def test_simulate_refuses_a_stream_it_cannot_replay(stream, error, fragment):
    """A stream handed to simulate() is checked before any work, naming what is wrong."""
    with pytest.raises(error) as info:
        kv.simulate(SMALL, stream=stream)
    assert fragment in str(info.value)


def test_a_checked_stream_replays_as_given():
    """The one-event stream passes the checks and gives its two callbacks, start then end."""
    run = kv.simulate(SMALL, "v5.12", stream=kv.notifiers.stream_from_callbacks(_GOOD_EVENTS))
    assert run.notifiers["callback"].tolist() == ["invalidate_range_start", "invalidate_range_end"]


class TestTdpMmu:
    """Scenario.tdp_mmu is the MMU axis: x86 direct_page_fault() read-locks mmu_lock only when
    is_tdp_mmu_root() (a2855afc7ee8); the shadow MMU write-locks it, as stock v5.12 and v5.13
    hosts did (tdp_mmu_enabled was false by default until 71ba3f3189c7, v5.15)."""

    SHADOW = kv.Scenario(n_vcpus=24, duration_us=3_000.0, notifier_rate_hz=20_000.0, tdp_mmu=False)

    def test_it_is_a_boolean(self):
        """tdp_mmu takes a bool (numpy's too) and refuses the string 'no' by name."""
        assert kv.Scenario(tdp_mmu=np.False_).tdp_mmu is False
        with pytest.raises(TypeError, match=r"Scenario\.tdp_mmu = 'no'"):
            kv.Scenario(tdp_mmu="no")

    @pytest.mark.parametrize("kernel", kv.kernels.KERNELS_2021)
    def test_without_it_every_fault_holds_the_lock_alone(self, kernel):
        """Every fault attempt is a write acquisition, and no two holds of mmu_lock overlap."""
        run = kv.simulate(self.SHADOW, kernel, seed=2)
        lock = run.lock
        assert len(run.faults) > 0
        assert set(lock.loc[lock["holder"] == "vcpu", "mode"]) == {"write"}
        grant = lock["t_grant_us"].to_numpy()
        release = lock["t_release_us"].to_numpy()
        order = np.argsort(grant, kind="stable")
        assert (grant[order][1:] >= release[order][:-1] - 1e-9).all()

    def test_the_event_engine_runs_it(self):
        """The compiled engine models read-locking faults only: it refuses, and "auto" picks
        the event-driven engine, giving the same run as asking for it."""
        with pytest.raises(ValueError, match="tdp_mmu=False"):
            kv.simulate(self.SHADOW, method="compiled")
        auto = kv.simulate(self.SHADOW, "v5.13", seed=1)
        events = kv.simulate(self.SHADOW, "v5.13", seed=1, method="events")
        pd.testing.assert_frame_equal(auto.faults, events.faults)

    def test_with_it_faults_share_the_lock(self):
        """With the TDP MMU (the default), faults overlap each other under the read lock."""
        run = kv.simulate(self.SHADOW.replace(tdp_mmu=True), "v5.15", seed=2)
        faults = run.faults.sort_values("t_grant_us")
        grant = faults["t_grant_us"].to_numpy()
        release = faults["t_release_us"].to_numpy()
        assert (grant[1:] < np.maximum.accumulate(release)[:-1]).any()


# -- scripted_run: a hand-made request list as a Run -----------------------------------------------
# Up to 9 requests on integer times, each a reader or a writer holding 1 to 8 µs.
requests = st.integers(1, 9).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 15), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
        st.lists(st.integers(1, 8), min_size=n, max_size=n),
    )
)


@given(requests, st.sampled_from(kv.POLICIES))
def test_scripted_run_carries_the_replay(scene, policy):
    """Every request of the list is in the run's lock table, granted when replay says."""
    arrival, is_writer, hold = scene
    run = scripted_run(arrival, is_writer, hold, policy)
    grant = kv.replay(arrival, is_writer, hold, policy)
    readers = [i for i, w in enumerate(is_writer) if not w]
    writers = [i for i, w in enumerate(is_writer) if w]
    assert run.faults["t_grant_us"].tolist() == grant[readers].tolist()
    assert run.notifiers["t_grant_us"].tolist() == grant[writers].tolist()
    assert len(run.lock) == len(arrival)
    assert (run.lock["wait_us"] >= 0).all()
    assert run.scenario.n_vcpus == max(len(readers), 1)
    assert run.summary()["lock_taken"] == len(writers)


def test_scripted_run_draws_in_the_views():
    """A scripted scene draws as a lock timeline and a queue: at t = 5 two readers are inside,
    the writer waits at the head, one reader behind it."""
    import matplotlib.pyplot as plt

    run = scripted_run([0, 1, 3, 4], [False, False, True, False], [6, 10, 2, 3])
    ax = kv.timelines.lock_timeline(run, 0, 20)
    assert ax.get_title(loc="left").startswith("mmu_lock on v5.12, 3 vCPUs")
    plt.close("all")
    frames = kv.animate.queue_frames(run, 0, 20, n_frames=20)
    at_5 = frames[5]
    assert at_5.readers_inside == 2 and at_5.head_writer is not None
    assert at_5.blocked_readers == 1


def test_scripted_run_rejects_bad_labels():
    """An unknown kernel or callback label is refused by name."""
    with pytest.raises(ValueError, match="kernel"):
        scripted_run([0], [True], [1], kernel="v4.0")
    with pytest.raises(ValueError, match="callback"):
        scripted_run([0], [True], [1], callback="nope")


# -- who waited behind whom, and who made whom retry: run.faults' blocked_by / retried_by ---------
def _blocked_oracle(run) -> np.ndarray:
    """Brute force over the lock table: for each fault attempt that waited, the newest callback
    that asked for mmu_lock at or before the attempt asked and released it after (under
    reader-pref, the callback holding it then), -1 for none or for an attempt that did not
    wait."""
    n = run.notifiers
    locked = np.flatnonzero(n["locked"].to_numpy())
    arrive = n["t_arrive_us"].to_numpy()[locked]
    grant = n["t_grant_us"].to_numpy()[locked]
    release = n["t_release_us"].to_numpy()[locked]
    holder_only = run.policy == "reader-pref" and not run.scenario.faults_write(run.policy)
    out = []
    for request, wait in zip(run.faults["t_request_us"], run.faults["wait_us"], strict=True):
        best = -1
        if wait > 0:
            since = grant if holder_only else arrive
            for k in range(len(locked)):
                if since[k] <= request < release[k] and (
                    best < 0 or (since[k], locked[k]) >= (since[best], locked[best])
                ):
                    best = k
        out.append(locked[best] if best >= 0 else -1)
    return np.array(out, dtype=np.int64)


def _blocked_by_rule(run) -> np.ndarray:
    """The column as the model's one reference computes it (``rwlock.queued_behind``) from the
    run's lock table, which the engines must agree with while they run."""
    n = run.notifiers
    locked = np.flatnonzero(n["locked"].to_numpy())
    holder_only = run.policy == "reader-pref" and not run.scenario.faults_write(run.policy)
    since = n["t_grant_us" if holder_only else "t_arrive_us"].to_numpy()[locked]
    f = run.faults
    behind = queued_behind(
        f["t_request_us"], f["wait_us"].to_numpy() > 0, since, n["t_release_us"].to_numpy()[locked]
    )
    return np.append(locked, -1)[behind]  # -1 (nobody) picks the appended -1


def _retried_oracle(run) -> np.ndarray:
    """Brute force over the notifier table and the rules: for each attempt that retried, the
    newest invalidate_range_start of the live range (since the count rose from 0) whose own
    range holds the hva, else the newest of them if only their union does; else the first
    callback that bumped seq after the attempt's snapshot."""
    n = run.notifiers
    changes = []
    for row in n[n["locked"]].itertuples():
        r = kv.rule(run.kernel, row.callback, row.hit)
        # At one instant a release comes before a grant (the writer granted was waiting).
        if r.count_delta > 0:
            changes.append((row.t_grant_us, 1, row.Index, +1, int(row.hva_start), int(row.hva_end)))
        if r.count_delta < 0:
            changes.append((row.t_release_us, 0, row.Index, -1, 0, 0))
    changes.sort()
    bumps = sorted(
        (row.t_release_us, row.Index)
        for row in n[n["locked"]].itertuples()
        if kv.rule(run.kernel, row.callback, row.hit).bumps_seq
    )
    out = []
    for a in run.faults.itertuples():
        if not a.retry:
            out.append(-1)
            continue
        count, epoch = 0, []
        for t, _, i, delta, lo, hi in changes:
            if t > a.t_grant_us:
                break
            if delta > 0:
                epoch = [] if count == 0 else epoch
                epoch.append((lo, hi, i))
            count += delta
        h = int(a.hva)
        if count > 0 and min(e[0] for e in epoch) <= h < max(e[1] for e in epoch):
            covering = [i for lo, hi, i in epoch if lo <= h < hi]
            out.append(covering[-1] if covering else epoch[-1][2])
            continue
        later = [i for t, i in bumps if a.t_snapshot_us < t <= a.t_grant_us]
        out.append(later[0] if later else -2)  # -2: a retry with no cause (a bug)
    return np.array(out, dtype=np.int64)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_vcpus=st.integers(1, 10),
    rate=st.floats(2_000, 60_000),
    spurious=st.floats(0, 1),
    kernel=st.sampled_from(kv.kernels.KERNELS_2021),
    policy=st.sampled_from(kv.POLICIES),
    tdp_mmu=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_blocked_by_and_retried_by_match_brute_force(
    n_vcpus, rate, spurious, kernel, policy, tdp_mmu, seed
):
    """Whom each fault attempt waited behind, and who made it retry, as a brute force over the
    lock table and the counters finds them, for every policy and MMU and both engines."""
    scenario = kv.Scenario(
        n_vcpus=n_vcpus,
        duration_us=800.0,
        layout=q35_512m_layout(),
        guest_run_us=15.0,
        notifier_rate_hz=rate,
        spurious_share=spurious,
        invalidate_window_us=5.0,
        tdp_mmu=tdp_mmu,
    )
    methods = ["events"] + (["compiled"] if policy == "qrwlock" and tdp_mmu else [])
    for method in methods:
        run = kv.simulate(scenario, kernel, policy, seed=seed, method=method)
        f = run.faults
        np.testing.assert_array_equal(f["blocked_by"].to_numpy(), _blocked_oracle(run))
        np.testing.assert_array_equal(f["blocked_by"].to_numpy(), _blocked_by_rule(run))
        np.testing.assert_array_equal(f["retried_by"].to_numpy(), _retried_oracle(run))
        waited = f["wait_us"].to_numpy() > 0
        assert (f["blocked_by"].to_numpy()[~waited] == -1).all()
        if not run.scenario.faults_write(policy):
            # A reader waits only behind a writer, and enters the moment that writer leaves
            # (qrwlock: the newest writer that closed the door; reader-pref: the holder).
            behind = f["blocked_by"].to_numpy()[waited]
            assert (behind >= 0).all()
            released = run.notifiers["t_release_us"].to_numpy()[behind]
            np.testing.assert_array_equal(f["t_grant_us"].to_numpy()[waited], released)


def test_blocked_by_names_the_writer_of_a_hand_made_scene():
    """A reader inside, a writer waiting for it, two readers behind the writer: both wait
    behind writer 0 and enter when it leaves; the first reader waited for nobody."""
    run = scripted_run([0, 1, 2, 3], [False, True, False, False], [10, 5, 1, 1])
    assert run.faults["blocked_by"].tolist() == [-1, 0, 0]
    assert run.faults["t_grant_us"].tolist() == [0.0, 15.0, 15.0]
    unfair = scripted_run([0, 1, 2, 3], [False, True, False, False], [10, 5, 1, 1], "reader-pref")
    assert unfair.faults["blocked_by"].tolist() == [
        -1,
        -1,
        -1,
    ]


def test_a_spurious_pair_makes_the_faults_it_outlives_retry_on_v512_only():
    """A spurious start/end pair bumps mmu_notifier_seq on v5.12 and v5.13 (end's seq++), so
    every attempt that sampled seq before the end released and was granted after retries,
    owed to that end; on v5.15 the pair never locks and nothing retries."""
    stream = _stream([(100.0, "pair", VMM_HEAP[0], VMM_HEAP[0] + 4096)])
    scenario = kv.Scenario(n_vcpus=16, duration_us=400.0, guest_run_us=5.0)
    for kernel in ("v5.12", "v5.13"):
        run = kv.simulate(scenario, kernel, seed=1, stream=stream)
        retried = run.faults[run.faults["retry"]]
        assert len(retried) > 0
        end = run.notifiers.index[run.notifiers["callback"] == "invalidate_range_end"][0]
        assert (retried["retried_by"] == end).all()
    run = kv.simulate(scenario, "v5.15", seed=1, stream=stream)
    assert not run.faults["retry"].any() and (run.faults["blocked_by"] == -1).all()
