"""The rules table of :mod:`kvmviz.kernels`, row by row against docs/kernel.md §1.2 and §8 for
the three 2021 positions, and release by release, v5.12 to v6.18, against the commits of
docs/kernel.md "Today's kernel": every release resolves, each boundary flips exactly the rows
its commit should, and nothing else moves."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmviz.kernels import (
    CALLBACKS,
    CHANGES,
    FLUSH_ON_RET,
    KERNELS,
    KERNELS_2021,
    PAIRED_CALLBACKS,
    PREEMPT_MODELS,
    RELEASES,
    Rule,
    at_least,
    callbacks_on,
    features,
    resolve,
    rule,
    rules_table,
    takes_lock,
    zap_yields,
)

START, END = "invalidate_range_start", "invalidate_range_end"
AGING = ("clear_flush_young", "clear_young", "test_young")
ALLOWED_COMMITS_2021 = {"531810caa9f4", "8931a454aea0", "c13fda237f08", "071064f14d87"}
MISS, HIT = False, True
DOCS = Path(__file__).resolve().parents[1] / "docs" / "kernel.md"
# Every release the model knows, typed out: v5.12 to v5.19, v6.0 to v6.18.
ALL_RELEASES = [f"v5.{m}" for m in range(12, 20)] + [f"v6.{m}" for m in range(19)]


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
    """The toggle's milestones, oldest first (the three 2021 positions, the freeze's v6.7 and
    v6.8, today's v6.18), every release v5.12 to v6.18, and the six notifier hooks that can
    take mmu_lock."""
    assert KERNELS == ("v5.12", "v5.13", "v5.15", "v6.7", "v6.8", "v6.18")
    assert KERNELS_2021 == ("v5.12", "v5.13", "v5.15")
    assert list(RELEASES) == ALL_RELEASES
    assert set(KERNELS) <= set(RELEASES)
    assert set(CALLBACKS) == {START, END, "change_pte", *AGING}
    assert len(CALLBACKS) == 6
    assert PAIRED_CALLBACKS == {START, END}


def test_expected_table_is_complete():
    """The hand-written table covers every kernel x callback x hit combination exactly once."""
    assert len(EXPECTED) == 3 * 6 * 2
    assert set(EXPECTED) == set(itertools.product(KERNELS_2021, CALLBACKS, (False, True)))


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
    """Every 2021 row's source names at least one commit, and only commits from docs/kernel.md's
    2021 set."""
    source = rule(kernel, callback, hit).source
    hashes = re.findall(r"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])", source)
    assert hashes, source
    assert set(hashes) <= ALLOWED_COMMITS_2021, source


@pytest.mark.parametrize("kernel", ALL_RELEASES)
def test_every_row_of_every_release_cites_its_commit_and_release(kernel):
    """On every release, each row's source names commits of CHANGES (or c13fda237f08, the
    change_pte seq bump's removal inside the v5.13 series), its ``commit`` is one of CHANGES,
    ``since`` is that commit's release, and no row cites a commit newer than the release."""
    changes = {c.commit: c for c in CHANGES}
    for callback in callbacks_on(kernel):
        for hit in (MISS, HIT):
            r = rule(kernel, callback, hit)
            hashes = set(re.findall(r"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])", r.source))
            assert hashes and hashes <= {*changes, "c13fda237f08"}, r.source
            assert r.commit in changes and r.since == changes[r.commit].release
            assert at_least(kernel, r.since)
            assert all(at_least(kernel, changes[h].release) for h in hashes & set(changes))


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
    "kernel", ["", None, 5.13, 6, ["v5.13"], np.array(["v5.13"]), "linux", "v6", "6.x", "v6.8x"]
)
def test_unknown_kernel_is_rejected(kernel):
    """Anything that is not a release's name is a ValueError naming the range and the
    milestones; so is anything that is not a string (a list or an array used to be compared
    element-wise, and 5.13 as a float is no spelling)."""
    with pytest.raises(ValueError, match=r"unknown kernel .* v5\.12 to v6\.18") as info:
        rule(kernel, START, True)
    for name in KERNELS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown kernel"):
        takes_lock(kernel, START, True)
    with pytest.raises(ValueError, match="unknown kernel"):
        resolve(kernel)


@pytest.mark.parametrize("kernel", ["5.11", "v5.11", "6.19", "v6.19", "7.0", "4.19.0-27-amd64"])
def test_out_of_range_release_is_refused_naming_the_range(kernel):
    """A well-spelled release outside v5.12-v6.18 is refused, naming the range: before v5.12
    x86 mmu_lock is a spinlock, after v6.18 nothing was read."""
    for call in (resolve, features, lambda k: rule(k, START, True)):
        with pytest.raises(ValueError, match=r"outside the releases .* v5\.12 to v6\.18"):
            call(kernel)


@pytest.mark.parametrize("release", ALL_RELEASES)
def test_every_release_resolves_in_every_spelling(release):
    """ "v6.12", "6.12", a stable "6.12.3" and a distribution's uname -r all name v6.12."""
    bare = release[1:]
    for spelling in (release, bare, f"{bare}.3", f"{bare}.0-49-generic", f" {bare}\n"):
        assert resolve(spelling) == release, spelling
    assert features(bare).kernel == release
    assert rules_table([bare])["kernel"].unique().tolist() == [release]


@settings(max_examples=300, deadline=None)
@given(
    st.booleans(),
    st.integers(0, 12),
    st.integers(0, 40),
    st.one_of(st.none(), st.integers(0, 300)),
    st.sampled_from(["", "-49-generic", "-1-pve", "+", "-rc3", "_custom", "~bpo12"]),
)
def test_resolve_agrees_with_the_release_list(v, major, minor, patch, suffix):
    """Any "[v]MAJOR.MINOR[.PATCH][-suffix]" resolves to vMAJOR.MINOR when that is in the list
    typed out above, and is refused naming the range otherwise."""
    text = f"{'v' if v else ''}{major}.{minor}{'' if patch is None else f'.{patch}'}{suffix}"
    name = f"v{major}.{minor}"
    if name in ALL_RELEASES:
        assert resolve(text) == name
        assert at_least(text, "v5.12") and at_least("v6.18", text)
    else:
        with pytest.raises(ValueError, match=r"v5\.12 to v6\.18"):
            resolve(text)


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
    """No release locks where an older one does not (over the releases that have the
    callback)."""
    locks = [takes_lock(k, callback, hit) for k in RELEASES if callback in callbacks_on(k)]
    for older, newer in itertools.pairwise(locks):
        assert newer <= older


@pytest.mark.parametrize("kernel", RELEASES)
@pytest.mark.parametrize("callback", CALLBACKS)
def test_a_hit_always_locks(kernel, callback):
    """A notification that touches guest memory must zap or age SPTEs, so it locks; except
    aging from v6.15 (aa34b811650c: SPTEs aged under RCU, never mmu_lock)."""
    if callback not in callbacks_on(kernel):
        return
    lockless = callback in AGING and kernel in ALL_RELEASES[ALL_RELEASES.index("v6.15") :]
    assert takes_lock(kernel, callback, True) is not lockless


@pytest.mark.parametrize("kernel", RELEASES)
@pytest.mark.parametrize("hit", [False, True])
def test_start_and_end_balance(kernel, hit):
    """start's count increment and end's decrement cancel, so count returns to 0 after a pair."""
    assert rule(kernel, START, hit).count_delta + rule(kernel, END, hit).count_delta == 0
    # Only a pair that locks can change count or seq (they are written under mmu_lock).
    for cb in callbacks_on(kernel):
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
    """rules_table() has one row per kernel x callback x hit, identical to rule(): 12 rows per
    milestone, 10 on v6.18 (no change_pte); the 2021 rows are the hand-written table's."""
    frame = rules_table()
    assert len(frame) == 5 * 12 + 10
    assert list(frame.columns[:3]) == ["kernel", "callback", "hit"]
    for row in frame.itertuples(index=False):
        expected = rule(row.kernel, row.callback, row.hit)
        assert tuple(row)[3:] == tuple(expected)
    keys = set(zip(frame["kernel"], frame["callback"], frame["hit"], strict=True))
    assert {k for k in keys if k[0] in KERNELS_2021} == set(EXPECTED)
    assert len(rules_table(RELEASES)) == 18 * 12 + 9 * 10
    assert rules_table(["6.8", "5.13"])["kernel"].unique().tolist() == ["v6.8", "v5.13"]


# -- release by release: each boundary flips exactly what its commit changes --------------------
# The rows each release changes from the one before it, typed out from docs/kernel.md "Today's
# kernel" and §1: (callback, hit) -> the fields that change. A row that appears or disappears
# is "gone".
_MODEL_FIELDS = ("takes_lock", "count_delta", "bumps_seq", "flush_on_ret")
BOUNDARIES = {
    # 8931a454aea0: the unpaired callbacks lock only at the first hit; c13fda237f08 (same
    # series) drops change_pte's seq bump, hit or miss.
    "v5.13": {
        ("change_pte", MISS): {"takes_lock", "bumps_seq"},
        ("change_pte", HIT): {"bumps_seq"},
        ("clear_flush_young", MISS): {"takes_lock"},
        ("clear_young", MISS): {"takes_lock"},
        ("test_young", MISS): {"takes_lock"},
    },
    # 071064f14d87: start/end lock only at the first hit; a spurious pair moves nothing.
    "v5.15": {
        (START, MISS): {"takes_lock", "count_delta"},
        (END, MISS): {"takes_lock", "count_delta", "bumps_seq"},
    },
    # f3b65bbaed7c: no change_pte callback.
    "v6.10": {("change_pte", MISS): "gone", ("change_pte", HIT): "gone"},
    # b9883ee40d7e: x86 clear_flush_young no longer flushes.
    "v6.13": {
        ("clear_flush_young", MISS): {"flush_on_ret"},
        ("clear_flush_young", HIT): {"flush_on_ret"},
    },
    # aa34b811650c: aging never takes mmu_lock.
    "v6.15": {(cb, HIT): {"takes_lock"} for cb in AGING},
}


def _rows(kernel):
    frame = rules_table([kernel]).set_index(["callback", "hit"])
    return {key: frame.loc[key, list(_MODEL_FIELDS)].to_dict() for key in frame.index}


@pytest.mark.parametrize(("older", "newer"), list(itertools.pairwise(ALL_RELEASES)))
def test_each_release_flips_exactly_the_rows_of_its_commits(older, newer):
    """Between two consecutive releases, the rows of rules_table that differ (in what the model
    uses: the lock, count, seq and flush) are exactly those the boundary's commit changes, and
    nothing moves at any other release."""
    before, after = _rows(older), _rows(newer)
    changed = {}
    for key in before.keys() | after.keys():
        if key not in before or key not in after:
            changed[key] = "gone"
            continue
        fields = {f for f in _MODEL_FIELDS if before[key][f] != after[key][f]}
        if fields:
            changed[key] = fields
    assert changed == BOUNDARIES.get(newer, {})


def test_the_boundaries_are_the_releases_of_changes():
    """Every boundary above is the release of a commit of CHANGES, and every commit of CHANGES
    after v5.12 changes a rule row or a feature at its release."""
    releases = {c.release for c in CHANGES}
    assert set(BOUNDARIES) <= releases
    assert releases - {"v5.12"} == set(BOUNDARIES) | set(FEATURE_BOUNDARIES)


FEATURE_BOUNDARIES = {
    "v6.0": {"seq_name", "count_name"},  # 20ec3ebd707c
    "v6.8": {"precheck", "retry_range"},  # 8569992d64b8, d02c357e5bfa
    "v6.10": {"change_pte"},  # f3b65bbaed7c
    "v6.11": {"yield_needs_preemptible"},  # c793a62823d1
}


@pytest.mark.parametrize(("older", "newer"), list(itertools.pairwise(ALL_RELEASES)))
def test_features_flip_exactly_at_their_releases(older, newer):
    """features() changes at v6.0 (the names), v6.8 (pre-check, gfn range), v6.10 (no
    change_pte) and v6.11 (yield only if preemptible), and at no other release."""
    a, b = features(older)._asdict(), features(newer)._asdict()
    assert a.pop("kernel") == older and b.pop("kernel") == newer
    assert {f for f in a if a[f] != b[f]} == FEATURE_BOUNDARIES.get(newer, set())


def test_features_by_hand():
    """The two ends and the freeze's pair, typed out."""
    assert tuple(features("v5.12"))[1:] == (
        False,
        "hva",
        True,
        False,
        "mmu_notifier_seq",
        "mmu_notifier_count",
    )
    assert tuple(features("6.7"))[1:] == (
        False,
        "hva",
        True,
        False,
        "mmu_invalidate_seq",
        "mmu_invalidate_in_progress",
    )
    assert tuple(features("6.8"))[1:] == (
        True,
        "gfn",
        True,
        False,
        "mmu_invalidate_seq",
        "mmu_invalidate_in_progress",
    )
    assert tuple(features("v6.18"))[1:] == (
        True,
        "gfn",
        False,
        True,
        "mmu_invalidate_seq",
        "mmu_invalidate_in_progress",
    )


@pytest.mark.parametrize("kernel", ALL_RELEASES)
def test_change_pte_exists_until_v6_9_and_is_refused_after(kernel):
    """callbacks_on drops change_pte from v6.10, and asking for its rule there is an error
    naming f3b65bbaed7c; before, it is a callback like the others."""
    if kernel in ALL_RELEASES[: ALL_RELEASES.index("v6.10")]:
        assert callbacks_on(kernel) == CALLBACKS
        assert isinstance(rule(kernel, "change_pte", HIT), Rule)
    else:
        assert callbacks_on(kernel) == tuple(c for c in CALLBACKS if c != "change_pte")
        for hit in (MISS, HIT):
            with pytest.raises(ValueError, match=r"change_pte does not exist .*f3b65bbaed7c"):
                rule(kernel, "change_pte", hit)


@pytest.mark.parametrize("kernel", ALL_RELEASES)
@pytest.mark.parametrize("preempt", ["none", "voluntary", "full"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_zap_yields_table(kernel, preempt, dynamic):
    """A notifier's zap yields a contended mmu_lock when it may (from e1eed5847b09, v5.13; on
    v5.12 its can_yield is false) and rwlock_needbreak() says so: always on a preemptible
    kernel (preempt=full), never on a non-dynamic build booted none/voluntary (no
    CONFIG_PREEMPTION), and on a PREEMPT_DYNAMIC build booted none/voluntary only before
    c793a62823d1 (v6.11)."""
    before_v611 = kernel in ALL_RELEASES[: ALL_RELEASES.index("v6.11")]
    may_yield = kernel != "v5.12"
    expected = may_yield and (preempt == "full" or (dynamic and before_v611))
    assert zap_yields(kernel, preempt, dynamic=dynamic) is expected
    assert zap_yields(kernel[1:], preempt, dynamic=dynamic) is expected


def test_zap_yields_refuses_what_it_cannot_mean():
    assert PREEMPT_MODELS == ("none", "voluntary", "full")
    with pytest.raises(ValueError, match="unknown preemption model"):
        zap_yields("v6.7", "lazy")
    with pytest.raises(TypeError, match="dynamic"):
        zap_yields("v6.7", "none", dynamic="yes")
    with pytest.raises(ValueError, match=r"v5\.12 to v6\.18"):
        zap_yields("v6.19", "full")


@pytest.mark.parametrize("kernel", ALL_RELEASES)
@pytest.mark.parametrize("callback", CALLBACKS)
def test_flush_on_ret_by_release(kernel, callback):
    """flush_on_ret is the 2021 table's up to v6.12; from v6.13 x86's clear_flush_young has it
    false (b9883ee40d7e); nothing else changes it (aging that takes no lock from v6.15 flushes
    nothing either)."""
    if callback not in callbacks_on(kernel):
        return
    late = kernel in ALL_RELEASES[ALL_RELEASES.index("v6.13") :]
    expected = FLUSH_ON_RET[callback] and not (late and callback == "clear_flush_young")
    for hit in (MISS, HIT):
        assert rule(kernel, callback, hit).flush_on_ret is expected


def _section(text, title):
    """The lines of the section headed ``title`` up to the next heading or rule."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and title in line)
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].startswith("#") or lines[i].startswith("-----")
        ),
        len(lines),
    )
    return lines[start + 1 : end]


def test_every_commit_of_changes_is_in_docs_kernel_md():
    """docs/kernel.md cites every commit the rules come from; those after v5.15 each have a
    row of "Today's kernel: v5.16 to v6.18" that names the commit first, then its release and
    its function, as CHANGES has them."""
    text = DOCS.read_text(encoding="utf-8")
    rows = [
        line for line in _section(text, "Today's kernel: v5.16 to v6.18") if line.startswith("| ")
    ]
    today = [c for c in CHANGES if at_least(c.release, "v5.16")]
    assert {c.commit for c in today} >= {"c793a62823d1", "f3b65bbaed7c", "aa34b811650c"}
    for change in CHANGES:
        assert change.commit in text, change
    for change in today:
        mine = [line for line in rows if line.startswith(f"| {change.commit} ")]
        assert len(mine) == 1, f"{change.commit}: expected one row of its own, got {mine}"
        cells = [cell.strip() for cell in mine[0].strip("|").split("|")]
        assert cells[1].split()[0] == change.release, (change, cells[1])
        function = change.function.split(":")[0].split(" (")[0].split()[0]
        assert function in cells[2], (change, cells[2])
    assert len(rows) == len(today) + 1  # the header row, then one row per commit
