"""Chapter 05: the must-retry exercise, the counters behind it, and the retry timeline.

The oracle below is written from the kernel text (docs/kernel.md §1.2, §3.1, §3.2), not from
``kvmviz.kernels``: each callback's effect on ``mmu_notifier_count`` / ``mmu_notifier_seq`` as
the v5.12, v5.13 and v5.15 code does it, with a page-by-page hit test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz import cli, exercises
from kvmviz.metrics import notifier_counters
from kvmviz.presets import VMM_HEAP, q35_512m_layout

PAGE = 4096
START, END = "invalidate_range_start", "invalidate_range_end"
LAYOUT = q35_512m_layout()


def page_hits(layout, start: int, end: int) -> bool:
    """Brute force: does any page of [start, end) lie in a memslot?"""
    pages = range(start // PAGE, (end + PAGE - 1) // PAGE)
    return any(s.hva_start // PAGE <= p < s.hva_end // PAGE for p in pages for s in layout)


def oracle(kernel: str, layout, hva: int, seq0: int, callbacks) -> bool:
    """mmu_notifier_retry_hva() after the callbacks, transcribed from the kernel."""
    count, seq, lo, hi = 0, seq0, None, None
    for callback, start, end in callbacks:
        hit = page_hits(layout, start, end)
        # The on_lock path (count/seq) runs always before 071064f14d87, on a hit after it.
        on_lock = kernel in ("v5.12", "v5.13") or hit
        if callback == START and on_lock:  # kvm_inc_notifier_count
            lo, hi = (start, end) if count == 0 else (min(lo, start), max(hi, end))
            count += 1
        elif callback == END and on_lock:  # kvm_dec_notifier_count: seq++, smp_wmb(), count--
            seq += 1
            count -= 1
        elif callback == "change_pte" and kernel == "v5.12":  # until c13fda237f08
            seq += 1
    return (count != 0 and lo <= hva < hi) or seq != seq0


RAM = max(LAYOUT, key=lambda s: s.npages)
FAULT_HVA = RAM.hva_start + 1000 * PAGE


@st.composite
def callback_streams(draw):
    """Well-formed notifier streams: events, sometimes nested, sometimes cut short."""
    places = st.sampled_from(
        [FAULT_HVA - 2 * PAGE, FAULT_HVA, RAM.hva_start, RAM.hva_end - 4 * PAGE, VMM_HEAP[0]]
    )
    order: list = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["pair", "move", "clear_young", "test_young"]))
        start = draw(places)
        npages = draw(st.integers(1, 4)) if kind in ("pair", "clear_young") else 1
        end = start + npages * PAGE
        if kind == "pair":
            event = [(START, start, end), (END, start, end)]
        elif kind == "move":
            event = [(START, start, end), ("change_pte", start, end), (END, start, end)]
        else:
            event = [(kind, start, end)]
        if order and order[-1][0] == END and len(event) > 1 and draw(st.booleans()):
            order[len(order) - 1 : len(order) - 1] = event
        else:
            order.extend(event)
    cut = draw(st.integers(1, len(order)))
    return order[:cut]


@given(
    kernel=st.sampled_from(kv.KERNELS),
    callbacks=callback_streams(),
    seq=st.integers(0, 1000),
    hva=st.sampled_from([FAULT_HVA, FAULT_HVA + PAGE, RAM.hva_start]),
)
def test_retry_check_matches_the_kernel_oracle(kernel, callbacks, seq, hva):
    answer, lines = exercises.retry_check(kernel, LAYOUT, hva, seq, callbacks)
    assert answer == oracle(kernel, LAYOUT, hva, seq, callbacks)
    assert len(lines) == len(callbacks) + 1


@pytest.mark.parametrize("seed", range(150))
def test_must_retry_answer_is_the_oracles(seed):
    q = exercises.must_retry(seed)
    case = exercises._must_retry_case(seed, LAYOUT)
    assert q.answer == oracle(case.kernel, LAYOUT, case.hva, case.seq, case.callbacks)
    assert q.check(q.answer)[0]
    assert not q.check(not q.answer)[0]
    assert q.check("yes" if q.answer else "no")[0]


def test_must_retry_same_seed_same_question_and_both_answers_occur():
    assert exercises.must_retry(7).question == exercises.must_retry(7).question
    questions = {exercises.must_retry(s).question for s in range(40)}
    assert len(questions) == 40
    answers = [exercises.must_retry(s).answer for s in range(300)]
    assert 0.3 < np.mean(answers) < 0.8
    kernels = {exercises._must_retry_case(s, LAYOUT).kernel for s in range(40)}
    assert kernels == set(kv.KERNELS)


def test_a_spurious_pair_retries_before_v515_only():
    """The headline of chapter 05, on one completed munmap of the VMM's heap."""
    heap = VMM_HEAP[0]
    pair = [(START, heap, heap + PAGE), (END, heap, heap + PAGE)]
    got = {k: exercises.retry_check(k, LAYOUT, FAULT_HVA, 3, pair)[0] for k in kv.KERNELS}
    assert got == {"v5.12": True, "v5.13": True, "v5.15": False}


def test_cli_quiz_must_retry(capsys):
    assert cli.main(["quiz", "must-retry", "-s", "3"]) == 0
    assert "Answer: ?" in capsys.readouterr().out
    assert cli.main(["quiz", "must-retry", "-s", "3", "-c"]) == 0
    out = capsys.readouterr().out
    assert f"Answer: {exercises.must_retry(3).answer!r}" in out


# -- the counters, checked against the engine's own retry decisions ----------------------------
def replayed_retries(run) -> np.ndarray:
    """mmu_notifier_retry_hva() for every attempt, from notifier_counters alone."""
    counters = notifier_counters(run)
    t = counters["t_us"].to_numpy()
    faults = run.faults
    t_snap = faults["t_exit_us"].to_numpy() + run.scenario.vmexit_us / 2
    t_check = faults["t_grant_us"].to_numpy()
    seq = np.concatenate([[0], counters["seq"].to_numpy()])
    count = np.concatenate([[0], counters["count"].to_numpy()])
    lo = np.concatenate([[0], counters["range_start"].to_numpy().astype(np.float64)])
    hi = np.concatenate([[0], counters["range_end"].to_numpy().astype(np.float64)])
    at_snap = np.searchsorted(t, t_snap, side="right")
    at_check = np.searchsorted(t, t_check, side="right")
    hva = faults["hva"].to_numpy().astype(np.float64)
    in_range = (count[at_check] > 0) & (lo[at_check] <= hva) & (hva < hi[at_check])
    return in_range | (seq[at_check] != seq[at_snap])


@pytest.mark.parametrize("kernel", kv.KERNELS)
@pytest.mark.parametrize("method", ["compiled", "events"])
def test_counters_explain_every_retry_of_the_engine(kernel, method):
    scenario = kv.Scenario(
        n_vcpus=24,
        duration_us=3_000,
        notifier_rate_hz=20_000,
        spurious_share=0.5,
        invalidate_window_us=20.0,
    )
    run = kv.simulate(scenario, kernel, seed=5, method=method)
    assert run.faults["retry"].any()
    np.testing.assert_array_equal(replayed_retries(run), run.faults["retry"].to_numpy())


def test_counters_stay_balanced_and_v515_misses_change_nothing():
    scenario = kv.Scenario(n_vcpus=8, duration_us=5_000, notifier_rate_hz=10_000)
    for kernel in kv.KERNELS:
        counters = notifier_counters(kv.simulate(scenario, kernel, seed=1))
        assert (counters["count"] >= 0).all()
        assert counters["count"].iloc[-1] == 0
        assert counters["seq"].is_monotonic_increasing
    misses = scenario.replace(spurious_share=1.0, spurious_pair_share=1.0)
    assert notifier_counters(kv.simulate(misses, "v5.15", seed=1)).empty
    v512 = kv.simulate(misses, "v5.12", seed=1)
    ends = (v512.notifiers["callback"] == END).sum()
    assert notifier_counters(v512)["seq"].iloc[-1] == ends


# -- the figure -----------------------------------------------------------------------------------
def test_retry_timeline_draws_snapshots_retries_and_counters():
    import matplotlib.pyplot as plt

    heap = VMM_HEAP[0]
    stream = kv.notifiers.stream_from_callbacks(
        pd.DataFrame(
            {"t_us": [5.0], "kind": ["pair"], "hva_start": [heap], "hva_end": [heap + PAGE]}
        )
    )
    scenario = kv.Scenario(
        n_vcpus=3,
        faulting_share=1.0,
        duration_us=40,
        layout=LAYOUT,
        guest_run_us=8.0,
        resolve_pfn_us=10.0,
    )
    run = kv.simulate(scenario, "v5.12", seed=0, stream=stream)
    ax = kv.plot.retry_timeline(run, 0, 40)
    gids = {artist.get_gid() for artist in ax.get_children() if artist.get_gid()}
    assert {"lane-vcpu0-resolve", "lane-notifier-write"} <= gids
    retried = set(run.faults.loc[run.faults["retry"], "vcpu"])
    assert retried and all(f"lane-vcpu{v}-retry" in gids for v in retried)
    counter_axes = ax.figure.axes[1]
    assert {line.get_gid() for line in counter_axes.get_lines()} >= {"counter-seq", "counter-count"}
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="lanes"):
        kv.plot.retry_timeline(kv.simulate(kv.Scenario(n_vcpus=20, duration_us=100)), 0, 100)
    with pytest.raises(ValueError, match="after"):
        kv.plot.retry_timeline(run, 10, 5)
