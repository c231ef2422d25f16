"""simulate()'s limits: the work is estimated before anything runs, a run too big is refused at
once with the estimate and the keyword that raises the limit, and a run that outgrows its
estimate anyway (a retry storm) stops at the limit instead of eating the machine's memory."""

from __future__ import annotations

import time

import numpy as np
import pytest

import kvmviz as kv
from kvmviz import engine
from kvmviz.presets import q35_512m_layout

# Every notification hits guest memory at a high rate: most faults retry at least once.
HITS = kv.Scenario(
    n_vcpus=16,
    duration_us=5_000.0,
    spurious_share=0.0,
    notifier_rate_hz=200_000.0,
    guest_run_us=5.0,
    layout=q35_512m_layout(),
)
# A fault storm: the guest runs 1 µs between faults.
STORM = kv.Scenario(n_vcpus=8, duration_us=5_000.0, guest_run_us=1.0, faulting_share=1.0)
# Under reader-pref this one starves its invalidate_range_end writers: the live range makes the
# faults in it retry every ~2 µs, about 30x the attempts the estimate expects.
STARVED = kv.Scenario(
    n_vcpus=32,
    duration_us=3_000.0,
    spurious_share=0.0,
    notifier_rate_hz=1e6,
    layout=q35_512m_layout(),
)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("policy", ["qrwlock", "spinlock"])
@pytest.mark.parametrize("scenario", [HITS, STORM], ids=["hits", "storm"])
def test_the_estimate_bounds_what_a_run_records(scenario, policy, seed):
    """Under qrwlock and the spinlock the writers are served in turn, so retries stay rare and
    the estimate is an upper bound of both tables; the events it assumes bound the stream."""
    work = kv.estimate(scenario)
    stream = kv.notifiers.generate_stream(scenario, seed)
    assert len(stream) <= work.events
    run = kv.simulate(scenario, "v5.12", policy, seed)
    assert 0 < len(run.faults) <= work.attempts
    assert len(stream) <= len(run.notifiers) <= work.callbacks
    assert work.records == work.attempts + work.callbacks


def test_a_retry_storm_beyond_the_estimate_stops_at_the_limit():
    """Under reader-pref the STARVED run records ~32x the estimated attempts: it still runs
    under the default limit, and with a lower one it stops as soon as it passes it, saying how
    far it got and what to change."""
    work = kv.estimate(STARVED)
    run = kv.simulate(STARVED, "v5.12", "reader-pref", 0)
    assert len(run.faults) > 20 * work.attempts
    assert work.records < 20_000 < len(run.faults) + len(run.notifiers)
    with pytest.raises(kv.TooMuchWork) as info:
        kv.simulate(STARVED, "v5.12", "reader-pref", 0, max_records=20_000)
    attempts_allowed = 20_000 - len(run.notifiers)
    assert str(info.value).startswith(
        f"this run outgrew max_records=20,000: it needed more than {attempts_allowed + 1:,} "
        f"fault-attempt rows besides {len(run.notifiers):,} notifier callbacks (estimated: "
    )
    assert str(info.value).endswith("pass a larger max_records to go ahead")


def test_the_compiled_engine_grows_its_buffers_up_to_the_limit_only(monkeypatch):
    """When a vCPU needs more rows than reserved, the compiled engine doubles its buffers, but
    never past max_records rows: then it refuses (here a stand-in loop that always asks for
    more room)."""
    sizes = []

    def always_short(*args):
        sizes.append(len(args[22]))  # o_vcpu, the first output buffer
        return -1

    monkeypatch.setattr(engine, "run_qrwlock", always_short)
    scenario = kv.Scenario(n_vcpus=8, duration_us=2_000.0)
    limit = 4 * kv.estimate(scenario).records
    with pytest.raises(kv.TooMuchWork, match=f"outgrew max_records={limit:,}"):
        kv.simulate(scenario, max_records=limit)
    m = scenario.n_faulting
    assert sizes[1] == 2 * sizes[0] and sizes == sorted(sizes)
    assert all(size % m == 0 for size in sizes)  # one stretch of rows per vCPU
    assert sizes[-1] <= limit < 2 * sizes[-1]


def test_an_oversized_run_is_refused_before_any_work(monkeypatch):
    """The refusal comes from arithmetic alone: no stream is generated, no array allocated,
    and it takes well under a second whatever the size."""

    def no_work(*args, **kwargs):
        raise AssertionError("simulate() started working")

    monkeypatch.setattr(engine, "generate_stream", no_work)
    monkeypatch.setattr(engine, "_Model", no_work)
    for change in ({"duration_us": 1e9}, {"n_vcpus": 10**7}, {"notifier_rate_hz": 1e300}):
        start = time.monotonic()
        with pytest.raises(kv.TooMuchWork, match="more than max_records=4,000,000"):
            kv.simulate(kv.Scenario(**change))
        assert time.monotonic() - start < 0.5


def test_the_refusal_says_how_to_go_ahead():
    """The message gives the estimated attempts, callbacks and memory, and the exact
    max_records that lets this run go ahead; that value does."""
    scenario = kv.Scenario(n_vcpus=8, duration_us=2_000.0)
    work = kv.estimate(scenario)
    # 22 events x 1.575 callbacks per event: 95 % spurious (half pairs of 2, half aging calls
    # of 1), 5 % hits (a migration pair, a KSM merge of 6, a guest aging call, equal weights).
    assert (work.events, work.callbacks, work.attempts) == (22, 35, 537)
    assert str(work) == "~537 fault attempts and ~35 notifier callbacks (~145 KiB of tables)"
    with pytest.raises(kv.TooMuchWork) as info:
        kv.simulate(scenario, max_records=100)
    assert str(info.value) == (
        f"this run would simulate {work}, more than max_records=100: shorten duration_us, "
        f"lower n_vcpus or notifier_rate_hz, or pass max_records={work.records} to go ahead"
    )
    assert isinstance(info.value, ValueError)
    assert len(kv.simulate(scenario, max_records=work.records).faults) > 0


@pytest.mark.parametrize("policy", ["qrwlock", "reader-pref", "spinlock"])
def test_a_run_just_under_the_limit_runs_on_either_engine(policy):
    """max_records equal to the estimate runs under every policy (both engines), giving the
    same tables as the default limit."""
    scenario = kv.Scenario(n_vcpus=8, duration_us=2_000.0, notifier_rate_hz=20_000.0)
    limit = kv.estimate(scenario).records
    tight = kv.simulate(scenario, "v5.12", policy, 2, max_records=limit)
    loose = kv.simulate(scenario, "v5.12", policy, 2)
    assert np.array_equal(tight.faults["t_grant_us"], loose.faults["t_grant_us"])
    assert len(tight.notifiers) == len(loose.notifiers) > 0


def test_more_faulting_vcpus_than_the_generator_numbers_are_refused(monkeypatch):
    """The counter-based generator numbers vCPUs below 2**24: a bigger run would give two vCPUs
    one workload, so it is refused whatever max_records allows."""
    monkeypatch.setattr(engine, "generate_stream", lambda *a: pytest.fail("started working"))
    scenario = kv.Scenario(n_vcpus=2**24, faulting_share=1.0, duration_us=1.0)
    with pytest.raises(kv.TooMuchWork, match=r"16,777,216 faulting vCPUs: the workload"):
        kv.simulate(scenario, max_records=10**15)


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-5, ValueError), (1.5e6, TypeError), (True, TypeError), ("9", TypeError)],
)
def test_max_records_must_be_a_positive_integer(value, error):
    """max_records = 0, -5, 1.5e6, True or '9' is refused by name, as a value or a type error."""
    with pytest.raises(error, match="max_records"):
        kv.simulate(kv.Scenario(n_vcpus=2, duration_us=100.0), max_records=value)
