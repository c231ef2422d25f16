"""Chapter 06's exercises: the memslot-walk threshold and the hold of a hit with its TLB flush.

The generators ask the engine (:func:`kvmviz.simulate` on a one-event stream). The oracles here
are brute force on the cost rules as docs/kernel.md states them, sharing no code with the engine:

* a spurious callback that takes ``mmu_lock`` before its walk holds it for one lock round trip
  plus ``walks x n`` memslot visits (v5.12: two walks, rmaps and TDP MMU, until 3039bcc74498;
  v5.13's ``invalidate_range_start``: one walk under its up-front ``on_lock``, 8931a454aea0);
  the oracle tries every n from 1 to 32,764;
* an ``invalidate_range_start`` that hits holds it for the lock, the walk, the zap of one page
  and one VM-wide TLB flush (``flush_on_ret``, ``__kvm_handle_hva_range``), on every kernel.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz import cli, exercises
from kvmviz.memslots import PAGE_SIZE
from kvmviz.presets import many_memslots_layout

DEFAULT = kv.Scenario()


def _asked(question: str) -> tuple[str, str, float]:
    """(kernel, callback, threshold µs) named in a memslot_walk_threshold question."""
    kernel = re.search(r"On \*\*(v5\.1\d)\*\*", question).group(1)
    callback = re.search(r"triggers `(\w+)`", question).group(1)
    threshold = float(re.search(r"more than ([\d.]+) µs", question).group(1))
    return kernel, callback, threshold


def _walk_oracle(kernel: str, callback: str, threshold_us: float) -> int:
    """Smallest n in [1, 32764] whose hold exceeds the threshold, trying every n."""
    assert (kernel, callback) in {
        ("v5.12", "invalidate_range_start"),
        ("v5.12", "clear_flush_young"),
        ("v5.13", "invalidate_range_start"),
    }
    walks = 2 if kernel == "v5.12" else 1
    n = np.arange(1, 32765)
    hold_us = DEFAULT.lock_op_us + walks * n * DEFAULT.memslot_walk_ns * 1e-3
    above = np.flatnonzero(hold_us > threshold_us)
    assert len(above), "every question must have an answer within KVM_USER_MEM_SLOTS"
    return int(n[above[0]])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_walk_threshold_matches_brute_force(seed):
    q = exercises.memslot_walk_threshold(seed)
    assert q.answer == _walk_oracle(*_asked(q.question))
    assert 1 <= q.answer <= 32764
    assert q.check(q.answer)[0]
    assert q.check(exercises._parse(str(q.answer), q.answer))[0]  # as typed in the widget
    assert not q.check(q.answer - 1)[0]
    assert not q.check(q.answer + 1)[0]


def test_walk_threshold_covers_every_case_and_is_the_same_for_a_room():
    seen = set()
    for seed in range(40):
        q = exercises.memslot_walk_threshold(seed)
        kernel, callback, _ = _asked(q.question)
        seen.add((kernel, callback))
    assert seen == {
        ("v5.12", "invalidate_range_start"),
        ("v5.12", "clear_flush_young"),
        ("v5.13", "invalidate_range_start"),
    }
    a, b = exercises.memslot_walk_threshold(7), exercises.memslot_walk_threshold(7)
    assert (a.question, a.answer, a.explanation) == (b.question, b.answer, b.explanation)


def test_walk_threshold_slices_are_the_preset():
    """The generator slices one 32,764-slot layout: its first n slots are the n-slot preset."""
    slots = exercises._many_memslots()
    for n in (1, 509, 4000):
        assert slots[:n] == many_memslots_layout(n).slots


def test_a_miss_on_v515_holds_nothing_however_many_memslots():
    """071064f14d87: the same spurious start on v5.15 walks outside the lock."""
    scenario = kv.Scenario(n_vcpus=1, duration_us=1.0, layout=many_memslots_layout(32764))
    hva = kv.presets.VMM_HEAP[0]
    hold_us = exercises._one_event_hold_us(scenario, "v5.15", "pair", hva, "invalidate_range_start")
    assert hold_us == 0


def _flush_asked(question: str) -> tuple[int, str]:
    n_vcpus = int(re.search(r"\*\*(\d+) vCPUs\*\*", question).group(1))
    kernel = re.search(r"runs \*\*(v5\.1\d)\*\*", question).group(1)
    return n_vcpus, kernel


def _flush_oracle(n_vcpus: int, kernel: str) -> float:
    s = DEFAULT
    walks = 2 if kernel == "v5.12" else 1  # v5.12 walked for the rmaps and per TDP root
    zap_us = s.zap_base_us + s.zap_us_per_mib * PAGE_SIZE / 2**20
    # Linear to 64 vCPUs, then (N / 64) ** tlb_flush_exponent (the Scenario's flush growth).
    reach = n_vcpus if n_vcpus <= 64 else 64 * (n_vcpus / 64) ** s.tlb_flush_exponent
    flush_us = s.tlb_flush_base_us + s.tlb_flush_per_vcpu_us * reach
    return s.lock_op_us + walks * len(s.layout) * s.memslot_walk_ns * 1e-3 + zap_us + flush_us


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_flush_hold_matches_the_cost_rules(seed):
    q = exercises.hit_flush_hold(seed)
    n_vcpus, kernel = _flush_asked(q.question)
    exact = _flush_oracle(n_vcpus, kernel)
    assert q.answer == round(exact)
    assert abs(exact - round(exact)) < 0.25, "the rounding must never be a coin toss"
    assert 16 <= n_vcpus <= 416
    assert q.check(q.answer)[0] and q.check(float(q.answer))[0]
    assert not q.check(q.answer + 1)[0]


def test_no_kernel_elides_a_hit():
    """Same VM, same page, every kernel: the hold of a hitting start rounds to the same µs."""
    for seed in range(30):
        q = exercises.hit_flush_hold(seed)
        n_vcpus, _ = _flush_asked(q.question)
        holds = {round(_flush_oracle(n_vcpus, k)) for k in kv.KERNELS}
        assert holds == {q.answer}


@pytest.mark.parametrize(("kind", "seed"), [("walk-threshold", 6), ("flush-hold", 2)])
def test_quiz_command(kind, seed, capsys):
    assert cli.main(["quiz", kind, "-s", str(seed)]) == 0
    hidden = capsys.readouterr().out
    assert "Answer: ?" in hidden
    assert cli.main(["quiz", kind, "-s", str(seed), "-c"]) == 0
    shown = capsys.readouterr().out
    q = cli._QUIZ[kind](seed=seed)
    assert f"Answer: {q.answer!r}." in shown
