"""The rules table of :mod:`kvmviz.kernels`, row by row against docs/kernel.md §1.2 and §8."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from kvmviz.kernels import (
    CALLBACKS,
    FLUSH_ON_RET,
    KERNELS,
    PAIRED_CALLBACKS,
    Rule,
    rule,
    rules_table,
    takes_lock,
)

START, END = "invalidate_range_start", "invalidate_range_end"
AGING = ("clear_flush_young", "clear_young", "test_young")
ALLOWED_COMMITS = {"531810caa9f4", "8931a454aea0", "c13fda237f08", "071064f14d87"}
MISS, HIT = False, True


def _expected_table():
    """(kernel, callback, hit) -> (takes_lock, count_delta, bumps_seq), typed out from
    docs/kernel.md."""
    table = {}
    for hit in (MISS, HIT):
        # v5.12 (531810caa9f4): KVM_MMU_LOCK in every hook, hit or miss (§1.2 "always W").
        table["v5.12", START, hit] = (True, +1, False)
        table["v5.12", END, hit] = (True, -1, True)
        table["v5.12", "change_pte", hit] = (True, 0, True)
        for cb in AGING:
            table["v5.12", cb, hit] = (True, 0, False)
        # v5.13 (8931a454aea0): start/end keep the up-front on_lock path; unpaired hooks lock
        # only on a hit; c13fda237f08 dropped change_pte's seq bump.
        table["v5.13", START, hit] = (True, +1, False)
        table["v5.13", END, hit] = (True, -1, True)
        table["v5.13", "change_pte", hit] = (hit, 0, False)
        for cb in AGING:
            table["v5.13", cb, hit] = (hit, 0, False)
    # v5.15 (071064f14d87): everything locks only on a hit; a spurious pair has no effect (§3.1).
    table["v5.15", START, MISS] = (False, 0, False)
    table["v5.15", START, HIT] = (True, +1, False)
    table["v5.15", END, MISS] = (False, 0, False)
    table["v5.15", END, HIT] = (True, -1, True)
    table["v5.15", "change_pte", MISS] = (False, 0, False)
    table["v5.15", "change_pte", HIT] = (True, 0, False)
    for cb in AGING:
        table["v5.15", cb, MISS] = (False, 0, False)
        table["v5.15", cb, HIT] = (True, 0, False)
    return table


EXPECTED = _expected_table()
ROWS = sorted(EXPECTED)


def test_kernels_and_callbacks():
    """Three kernel modes, oldest first, and the six notifier hooks that can take mmu_lock."""
    assert KERNELS == ("v5.12", "v5.13", "v5.15")
    assert set(CALLBACKS) == {START, END, "change_pte", *AGING}
    assert len(CALLBACKS) == 6
    assert PAIRED_CALLBACKS == {START, END}


def test_expected_table_is_complete():
    """The hand-written table covers every kernel x callback x hit combination exactly once."""
    assert len(EXPECTED) == 3 * 6 * 2
    assert set(EXPECTED) == set(itertools.product(KERNELS, CALLBACKS, (False, True)))


@pytest.mark.parametrize(("kernel", "callback", "hit"), ROWS)
def test_rule_row(kernel, callback, hit):
    """Each (kernel, callback, hit) row has the lock, count and seq effects docs/kernel.md lists."""
    got = rule(kernel, callback, hit)
    assert isinstance(got, Rule)
    assert (got.takes_lock, got.count_delta, got.bumps_seq) == EXPECTED[kernel, callback, hit]
    assert type(got.takes_lock) is bool
    assert type(got.bumps_seq) is bool
    assert takes_lock(kernel, callback, hit) is EXPECTED[kernel, callback, hit][0]


@pytest.mark.parametrize(("kernel", "callback", "hit"), ROWS)
def test_rule_row_cites_a_known_commit(kernel, callback, hit):
    """Every row's source names at least one commit, and only commits from docs/kernel.md's set."""
    source = rule(kernel, callback, hit).source
    hashes = re.findall(r"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])", source)
    assert hashes, source
    assert set(hashes) <= ALLOWED_COMMITS, source


def test_hit_is_a_boolean():
    """hit must be a boolean (numpy's welcome): "no", 0/1 or None would each need a guess, and
    "no" used to mean True."""
    assert rule("v5.13", "clear_young", np.True_) == rule("v5.13", "clear_young", True)
    assert takes_lock("v5.15", START, np.False_) is False
    for value in ("no", "False", "", 0, 1, None, 1.0, [True], np.array([True])):
        with pytest.raises(TypeError, match=r"hit = .*expected True or False"):
            takes_lock("v5.15", START, value)


def test_docstring_examples():
    """The four examples in takes_lock's docstring: aging elided in v5.13, start/end in v5.15."""
    assert takes_lock("v5.12", "clear_young", hit=False) is True
    assert takes_lock("v5.13", "clear_young", hit=False) is False
    assert takes_lock("v5.13", START, hit=False) is True
    assert takes_lock("v5.15", START, hit=False) is False


@pytest.mark.parametrize(
    "kernel", ["v5.14", "5.13", "v6.10", "", None, 5.13, ["v5.13"], np.array(["v5.13"])]
)
def test_unknown_kernel_is_rejected(kernel):
    """An unsupported kernel name is a ValueError that lists the three supported ones; so is
    anything that is not a string (a list or an array used to be compared element-wise)."""
    with pytest.raises(ValueError, match="unknown kernel") as info:
        rule(kernel, START, True)
    for name in KERNELS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown kernel"):
        takes_lock(kernel, START, True)


@pytest.mark.parametrize(
    "callback", ["invalidate_range", "release", "change-pte", "", None, [START], np.array([START])]
)
def test_unknown_callback_is_rejected(callback):
    """Only the six hva-walker hooks have rows; invalidate_range, release or typos are errors."""
    with pytest.raises(ValueError, match="unknown callback") as info:
        rule("v5.13", callback, True)
    for name in CALLBACKS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown callback"):
        takes_lock("v5.13", callback, True)


@pytest.mark.parametrize("callback", CALLBACKS)
@pytest.mark.parametrize("hit", [False, True])
def test_lock_elision_only_grows_with_kernel_version(callback, hit):
    """v5.15 never locks where v5.13 doesn't, and v5.13 never where v5.12 doesn't."""
    locks = [takes_lock(k, callback, hit) for k in KERNELS]
    for older, newer in itertools.pairwise(locks):
        assert newer <= older


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("callback", CALLBACKS)
def test_a_hit_always_locks(kernel, callback):
    """A notification that touches guest memory must zap or age SPTEs, so it always locks."""
    assert takes_lock(kernel, callback, True) is True


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("hit", [False, True])
def test_start_and_end_balance(kernel, hit):
    """start's count increment and end's decrement cancel, so count returns to 0 after a pair."""
    assert rule(kernel, START, hit).count_delta + rule(kernel, END, hit).count_delta == 0
    # Only a pair that locks can change count or seq (they are written under mmu_lock).
    for cb in CALLBACKS:
        r = rule(kernel, cb, hit)
        if not r.takes_lock:
            assert r.count_delta == 0
            assert r.bumps_seq is False


def test_flush_on_ret():
    """VM-wide TLB flush after the handler: start, change_pte and clear_flush_young only (§2)."""
    assert FLUSH_ON_RET == {
        START: True,
        END: False,
        "change_pte": True,
        "clear_flush_young": True,
        "clear_young": False,
        "test_young": False,
    }


def test_rules_table_frame_matches_rule():
    """rules_table() has one row per kernel x callback x hit, identical to rule()."""
    frame = rules_table()
    assert len(frame) == 36
    assert list(frame.columns[:3]) == ["kernel", "callback", "hit"]
    for row in frame.itertuples(index=False):
        expected = rule(row.kernel, row.callback, row.hit)
        assert (row.takes_lock, row.count_delta, row.bumps_seq, row.source) == tuple(expected)
    keys = set(zip(frame["kernel"], frame["callback"], frame["hit"], strict=True))
    assert keys == set(EXPECTED)
