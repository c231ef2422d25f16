"""Memslot validation and the MMU-notifier hit test (docs/kernel.md §2), against brute-force
oracles.

The oracles below never call :mod:`kvmviz.memslots`: they walk plain ``(as_id, slot, base_gfn,
npages, userspace_addr)`` tuples exactly as ``__kvm_handle_hva_range()`` does.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmviz.memslots import TASK_SIZE_MAX, GfnRange, Memslot, MemslotError, MemslotLayout
from kvmviz.presets import large_vm_layout, many_memslots_layout

PAGE = 4096
WINDOW_PAGES = 64
# Slots must end at or below x86-64 TASK_SIZE_MAX (5-level paging): (1 << 56) - 4 KiB.
USER_TOP = 2**56 - PAGE
# hva windows for slots: low user space, and the very top of user space.
WINDOW_BASES = (0x10000, USER_TOP - WINDOW_PAGES * PAGE)
# Notifier ranges may still carry any 64-bit hva; these sit above the int64 sign bit.
HIGH_HVAS = (2**63 - 1, 2**63, 2**63 + PAGE + 1, 2**64 - PAGE, 2**64 - 1)

SETTINGS = settings(max_examples=200, deadline=None)


# -- brute-force oracles (docs/kernel.md §2, one slot at a time)
# --------------------------------------
def oracle_gfn_ranges(specs, hva_start, hva_end):
    """Set of (as_id, slot, gfn_start, gfn_end) the kernel's slot walk produces for a range."""
    out = set()
    for as_id, slot, base_gfn, npages, uaddr in specs:
        start = max(hva_start, uaddr)
        end = min(hva_end, uaddr + (npages << 12))
        if start >= end:
            continue
        gfn_start = base_gfn + ((start - uaddr) >> 12)
        gfn_end = base_gfn + ((end + PAGE - 1 - uaddr) >> 12)
        out.add((as_id, slot, gfn_start, gfn_end))
    return out


def oracle_hits(specs, hva_start, hva_end):
    """True iff some slot survives the clip step (``max(start) < min(end)``)."""
    return any(
        max(hva_start, uaddr) < min(hva_end, uaddr + npages * PAGE)
        for _, _, _, npages, uaddr in specs
    )


def build(specs):
    """A MemslotLayout from oracle tuples."""
    return MemslotLayout(
        Memslot(slot=slot, base_gfn=base_gfn, npages=npages, userspace_addr=uaddr, as_id=as_id)
        for as_id, slot, base_gfn, npages, uaddr in specs
    )


# -- strategies ----------------------------------------------------------------------------------
# Kept flat (a few integer draws, decoded by hand) so that 200 examples stay fast.
_SLOT = st.tuples(
    st.integers(0, 1),  # as_id
    st.sampled_from((1, 1, 2, 3, 5, 16, 40)),  # npages: one-page slots common, some huge
    st.integers(0, WINDOW_PAGES - 1),  # first hva page in the window
    st.integers(-4, 11),  # >= 0 in as_id 1: alias the hva range of that as_id 0 slot
    st.sampled_from((0, 0, 1, 3)),  # gfn gap before the slot; 0 makes gfn-adjacent slots
)


@st.composite
def layouts(draw):
    """(window base, slot tuples): 1..12 slots, gfn-disjoint per as_id, hvas crowded in 64 pages."""
    base = draw(st.sampled_from(WINDOW_BASES))
    raw = draw(st.lists(_SLOT, min_size=1, max_size=12))
    salt = draw(st.integers(0, 32766))
    next_gfn = {0: draw(st.sampled_from([0, 0x100000])), 1: draw(st.sampled_from([0, 0x30]))}
    specs = []
    for k, (as_id, npages, page, alias, gap) in enumerate(raw):
        as0 = [s for s in specs if s[0] == 0]
        if as_id == 1 and as0 and alias >= 0:
            # SMM alias: as_id 1 reuses the hva range of an as_id 0 slot.
            _, _, _, npages, uaddr = as0[alias % len(as0)]
        else:
            uaddr = base + PAGE * min(page, WINDOW_PAGES - npages)
        slot = (salt + 7919 * k) % 32767  # distinct for k < 12 (7919 is prime to 32767)
        base_gfn = next_gfn[as_id] + gap
        next_gfn[as_id] = base_gfn + npages
        specs.append((as_id, slot, base_gfn, npages, uaddr))
    return base, draw(st.permutations(specs))


_OFFSETS = (0, 1, PAGE // 2, PAGE - 1)
_POINT = st.tuples(
    st.sampled_from((0, 0, 1, 1, 2, 2, 3)), st.integers(0, (WINDOW_PAGES + 4) * PAGE)
)
_RANGE = st.tuples(_POINT, st.sampled_from((0, 1, 1, 2)), _POINT, st.integers(-PAGE, 3 * PAGE))


def decode_point(mode, x, base, specs):
    """An hva near the window (anywhere, page-ish, on/next to a slot edge) or at/above 2**63."""
    if mode == 0:
        return base - 2 * PAGE + x
    if mode == 1:
        return base + (x // PAGE - 2) * PAGE + _OFFSETS[x % 4]
    if mode == 3:
        return HIGH_HVAS[x % len(HIGH_HVAS)]
    _, _, _, npages, uaddr = specs[x % len(specs)]
    end = uaddr + npages * PAGE
    return (uaddr - 1, uaddr, uaddr + 1, end - 1, end, end + 1)[(x // 7) % 6]


def decode_range(raw, base, specs):
    """A half-open hva range, possibly empty or reversed, often ending exactly at a slot start."""
    (smode, sx), end_mode, (emode, ex), delta = raw
    start = decode_point(smode, sx, base, specs)
    if end_mode == 0:
        end = decode_point(emode, ex, base, specs)
    elif end_mode == 1:
        end = min(start + delta, 2**64 - 1)  # an hva is a u64
    else:
        end = specs[ex % len(specs)][4]  # ends exactly where a slot starts
    return start, end


@st.composite
def layout_and_ranges(draw, min_size=0):
    """A layout and 0..20 hva ranges around its window."""
    base, specs = draw(layouts())
    raw = draw(st.lists(_RANGE, min_size=min_size, max_size=20))
    return specs, [decode_range(r, base, specs) for r in raw]


# -- validation ----------------------------------------------------------------------------------
def test_memslot_error_is_a_value_error():
    """MemslotError subclasses ValueError, so callers can catch either."""
    assert issubclass(MemslotError, ValueError)


@pytest.mark.parametrize("uaddr", [0x10001, 0x10800, 0x10FFF, 0x7F0000000001])
def test_unaligned_userspace_addr_is_rejected(uaddr):
    """userspace_addr must be 4 KiB aligned; the error names the slot and the alignment rule."""
    with pytest.raises(MemslotError, match=r"memslot 3\b") as info:
        Memslot(slot=3, base_gfn=0, npages=1, userspace_addr=uaddr)
    assert "aligned" in str(info.value)
    assert f"{uaddr:#x}" in str(info.value)


@pytest.mark.parametrize("npages", [0, -1, -512])
def test_non_positive_npages_is_rejected(npages):
    """A slot must cover at least one page: npages <= 0 is rejected, naming slot and rule."""
    with pytest.raises(MemslotError, match=r"memslot 7\b") as info:
        Memslot(slot=7, base_gfn=0, npages=npages, userspace_addr=0x10000)
    assert "npages must be > 0" in str(info.value)
    assert str(npages) in str(info.value)


@pytest.mark.parametrize("as_id", [-1, 2, 3])
def test_as_id_outside_the_two_x86_address_spaces_is_rejected(as_id):
    """x86 has address spaces 0 (normal) and 1 (SMM) only; anything else is rejected."""
    with pytest.raises(MemslotError, match=r"memslot 4\b") as info:
        Memslot(slot=4, base_gfn=0, npages=1, userspace_addr=0x10000, as_id=as_id)
    assert f"as_id {as_id}" in str(info.value)
    assert "0 or 1" in str(info.value)


def test_valid_as_ids_are_accepted():
    """as_id 0 and 1 both construct fine and keep their values."""
    assert Memslot(0, 0, 1, 0x10000, as_id=0).as_id == 0
    assert Memslot(0, 0, 1, 0x10000, as_id=1).as_id == 1


def test_duplicate_slot_id_in_one_address_space_is_rejected():
    """(as_id, slot) is a key: the same slot id twice in one address space is an error."""
    a = Memslot(slot=5, base_gfn=0, npages=1, userspace_addr=0x10000)
    b = Memslot(slot=5, base_gfn=100, npages=1, userspace_addr=0x20000)
    with pytest.raises(MemslotError, match=r"memslot 5\b") as info:
        MemslotLayout([a, b])
    assert "as_id 0" in str(info.value)
    assert "twice" in str(info.value)


def test_same_slot_id_in_both_address_spaces_is_fine():
    """Slot ids are per address space, so slot 5 may exist in as_id 0 and as_id 1."""
    a = Memslot(slot=5, base_gfn=0, npages=1, userspace_addr=0x10000, as_id=0)
    b = Memslot(slot=5, base_gfn=100, npages=1, userspace_addr=0x20000, as_id=1)
    assert len(MemslotLayout([a, b])) == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((0, 10), (9, 20)),  # partial overlap by one gfn
        ((0, 10), (0, 10)),  # identical gfn ranges
        ((10, 20), (0, 11)),  # the second starts lower
        ((0, 100), (40, 41)),  # one-page slot inside a big one
    ],
)
def test_gfn_overlap_in_one_address_space_is_rejected(first, second):
    """Two slots of one address space may not share a gfn; the error names both slots."""
    a = Memslot(slot=1, base_gfn=first[0], npages=first[1] - first[0], userspace_addr=0x100000)
    b = Memslot(slot=2, base_gfn=second[0], npages=second[1] - second[0], userspace_addr=0x900000)
    with pytest.raises(MemslotError, match="overlaps") as info:
        MemslotLayout([a, b])
    message = str(info.value)
    assert re.search(r"memslot 1\b", message)
    assert re.search(r"memslot 2\b", message)
    assert "address space 0" in message


def test_gfn_overlap_with_a_non_neighbour_is_rejected():
    """A big slot overlapping a later slot is caught even when a third slot sits between them."""
    slots = [
        Memslot(slot=1, base_gfn=0, npages=100, userspace_addr=0x100000),
        Memslot(slot=2, base_gfn=10, npages=5, userspace_addr=0x800000),
        Memslot(slot=3, base_gfn=50, npages=5, userspace_addr=0x900000),
        Memslot(slot=4, base_gfn=200, npages=5, userspace_addr=0xA00000),
    ]
    with pytest.raises(MemslotError, match="overlaps"):
        MemslotLayout(slots)
    with pytest.raises(MemslotError, match="overlaps"):
        MemslotLayout([slots[0], slots[2], slots[3]])


def test_gfn_adjacent_slots_are_fine():
    """gfn ranges are half-open: [0, 10) and [10, 20) touch but do not overlap."""
    layout = MemslotLayout(
        [
            Memslot(slot=1, base_gfn=0, npages=10, userspace_addr=0x100000),
            Memslot(slot=2, base_gfn=10, npages=10, userspace_addr=0x900000),
        ]
    )
    assert [s.slot for s in layout.slots] == [1, 2]


def test_same_gfns_in_different_address_spaces_are_fine():
    """SMM (as_id 1) may map the very same gfns as as_id 0: no overlap error across spaces."""
    layout = MemslotLayout(
        [
            Memslot(slot=0, base_gfn=0, npages=16, userspace_addr=0x100000, as_id=0),
            Memslot(slot=0, base_gfn=0, npages=16, userspace_addr=0x100000, as_id=1),
        ]
    )
    assert [(s.as_id, s.slot) for s in layout.slots] == [(0, 0), (1, 0)]


def test_overlapping_hvas_are_fine():
    """Two slots may be backed by overlapping host memory; only gfns must be disjoint."""
    layout = MemslotLayout(
        [
            Memslot(slot=0, base_gfn=0, npages=16, userspace_addr=0x100000),
            Memslot(slot=1, base_gfn=100, npages=16, userspace_addr=0x104000),
        ]
    )
    assert layout.gfn_ranges(0x105000, 0x106000) == [
        GfnRange(0, 0, 5, 6),
        GfnRange(0, 1, 101, 102),
    ]


# -- hand-worked examples ------------------------------------------------------------------------
def test_kernel_md_worked_example():
    """docs/kernel.md §2: [0x7f0000201800, 0x7f0000203001) in a 2 GiB slot hits gfns
    0x201..0x203."""
    layout = MemslotLayout(
        [Memslot(slot=0, base_gfn=0, npages=0x80000, userspace_addr=0x7F0000000000)]
    )
    assert layout.gfn_ranges(0x7F0000201800, 0x7F0000203001) == [GfnRange(0, 0, 0x201, 0x204)]
    assert layout.gfn_ranges(0x7F0000201800, 0x7F0000203001)[0].npages == 3
    assert layout.hits(0x7F0000201800, 0x7F0000203001) is True
    # The QEMU heap at 0x5555... misses every slot.
    assert layout.hits(0x555555554000, 0x555555556000) is False
    assert layout.gfn_ranges(0x555555554000, 0x555555556000) == []


def test_range_ending_at_slot_start_misses():
    """Ranges are half-open: one ending exactly where a slot starts touches no guest page."""
    layout = MemslotLayout([Memslot(slot=0, base_gfn=0x40, npages=4, userspace_addr=0x20000)])
    assert layout.hits(0x10000, 0x20000) is False
    assert layout.gfn_ranges(0x10000, 0x20000) == []
    assert layout.hit_mask(
        np.array([0x10000], np.uint64), np.array([0x20000], np.uint64)
    ).tolist() == [False]
    # One byte more and the first page is hit.
    assert layout.gfn_ranges(0x10000, 0x20001) == [GfnRange(0, 0, 0x40, 0x41)]


def test_range_starting_at_slot_last_byte_hits():
    """A range starting on the slot's last byte reaches exactly the slot's last gfn."""
    layout = MemslotLayout([Memslot(slot=0, base_gfn=0x40, npages=4, userspace_addr=0x20000)])
    assert layout.hits(0x23FFF, 0x30000) is True
    assert layout.gfn_ranges(0x23FFF, 0x30000) == [GfnRange(0, 0, 0x43, 0x44)]
    # Starting exactly at the slot's end is a miss.
    assert layout.hits(0x24000, 0x30000) is False


def test_empty_and_reversed_ranges_never_hit():
    """start >= end describes no bytes, so it hits nothing even inside a slot."""
    layout = MemslotLayout([Memslot(slot=0, base_gfn=0, npages=4, userspace_addr=0x20000)])
    assert layout.hits(0x21000, 0x21000) is False
    assert layout.hits(0x22000, 0x21000) is False
    assert layout.gfn_ranges(0x21000, 0x21000) == []
    assert layout.gfn_ranges(0x22000, 0x21000) == []


def test_smm_alias_yields_one_range_per_address_space_in_as_order():
    """An hva aliased in as_id 1 gives two gfn ranges, address space 0 first, whatever the input."""
    layout = MemslotLayout(
        [
            Memslot(slot=0, base_gfn=0x0, npages=8, userspace_addr=0x40000, as_id=1),
            Memslot(slot=9, base_gfn=0x100, npages=8, userspace_addr=0x40000, as_id=0),
        ]
    )
    assert layout.gfn_ranges(0x41000, 0x42800) == [
        GfnRange(0, 9, 0x101, 0x103),
        GfnRange(1, 0, 0x1, 0x3),
    ]


def test_gfn_ranges_walk_by_gfn_not_by_hva_or_slot_id():
    """Within an address space ranges come out by gfn, even when hva and slot id run backwards."""
    layout = MemslotLayout(
        [
            Memslot(slot=1, base_gfn=0x200, npages=1, userspace_addr=0x10000),
            Memslot(slot=2, base_gfn=0x100, npages=1, userspace_addr=0x11000),
            Memslot(slot=0, base_gfn=0x300, npages=1, userspace_addr=0x12000),
        ]
    )
    assert layout.gfn_ranges(0x10000, 0x13000) == [
        GfnRange(0, 2, 0x100, 0x101),
        GfnRange(0, 1, 0x200, 0x201),
        GfnRange(0, 0, 0x300, 0x301),
    ]


def test_hits_with_hvas_above_2_63():
    """Range bounds with the top bit set are huge unsigned hvas, not negative numbers."""
    base = USER_TOP - 2 * PAGE
    layout = MemslotLayout([Memslot(slot=0, base_gfn=0, npages=2, userspace_addr=base)])
    assert layout.hits(base + PAGE, 2**63 + PAGE) is True  # reaches the slot's second page
    assert layout.hits(2**63, 2**64 - 1) is False  # entirely above user space
    assert layout.hits(USER_TOP, 2**64 - 1) is False  # starts where the slot ends
    assert layout.gfn_ranges(base + PAGE, 2**64 - 1) == [GfnRange(0, 0, 1, 2)]
    assert layout.gfn_ranges(2**63, 2**64 - 1) == []
    starts = np.array([base, 2**63, USER_TOP - 1], np.uint64)
    ends = np.array([2**63, 2**64 - 1, 2**63], np.uint64)
    assert layout.hit_mask(starts, ends).tolist() == [True, False, True]


def test_empty_layout_hits_nothing():
    """With no memslots every notification is spurious."""
    layout = MemslotLayout([])
    assert layout.hits(0, 2**63) is False
    assert layout.gfn_ranges(0, 2**63) == []
    got = layout.hit_mask(np.array([0, 5], np.uint64), np.array([10, 6], np.uint64))
    assert got.tolist() == [False, False]


def test_hit_mask_accepts_python_ints_straddling_2_63():
    """A plain Python list may mix hvas below and above 2**63; both are valid unsigned hvas."""
    layout = MemslotLayout([Memslot(slot=0, base_gfn=0, npages=2, userspace_addr=0x10000)])
    starts = [0x10000, 2**63, 0x12000]
    ends = [2**63 + 1, 2**64 - 1, 2**64 - 1]
    assert layout.hit_mask(starts, ends).tolist() == [True, False, False]


def test_hit_mask_accepts_empty_python_lists():
    """Zero ranges given as empty lists give an empty boolean mask, like empty uint64 arrays."""
    layout = MemslotLayout([Memslot(slot=0, base_gfn=0, npages=2, userspace_addr=0x10000)])
    empty = np.array([], dtype=np.uint64)
    assert layout.hit_mask(empty, empty).shape == (0,)
    got = layout.hit_mask([], [])
    assert got.dtype == bool
    assert got.shape == (0,)


def test_hit_mask_rejects_mismatched_shapes_and_negative_hvas():
    """hit_mask needs one end per start, and hvas are unsigned."""
    layout = MemslotLayout([Memslot(slot=0, base_gfn=0, npages=2, userspace_addr=0x10000)])
    with pytest.raises(ValueError, match="differ in shape"):
        layout.hit_mask(np.array([1, 2], np.uint64), np.array([3], np.uint64))
    with pytest.raises(ValueError, match=r"starts: hvas must be in \[0, 2\*\*64\), got -1"):
        layout.hit_mask(np.array([-1]), np.array([3]))


def test_slot_must_end_within_user_space():
    """x86-64 user space ends at TASK_SIZE_MAX = 2**56 - 4 KiB: a slot may end there, not beyond."""
    assert TASK_SIZE_MAX == USER_TOP
    top = Memslot(slot=0, base_gfn=0, npages=2, userspace_addr=USER_TOP - 2 * PAGE)
    assert top.hva_end == USER_TOP
    layout = MemslotLayout([top])
    assert layout.hits(USER_TOP - 1, USER_TOP) is True
    assert layout.to_frame()["hva_end"].tolist() == [USER_TOP]
    with pytest.raises(MemslotError, match=r"memslot 6\b") as info:
        Memslot(slot=6, base_gfn=0, npages=2, userspace_addr=USER_TOP - PAGE)
    assert "TASK_SIZE_MAX" in str(info.value)
    with pytest.raises(MemslotError, match="TASK_SIZE_MAX"):
        Memslot(slot=6, base_gfn=0, npages=1, userspace_addr=2**63)


def test_exhaustive_ranges_over_nested_and_aliased_hvas():
    """Every range on a half-page grid matches brute force when slots nest inside one another."""
    base = 0x100000
    specs = [
        (0, 0, 0x000, 64, base),  # a big slot holding the others' hvas
        (0, 1, 0x100, 1, base + 4 * PAGE),  # nested, ends early
        (0, 2, 0x200, 2, base + 10 * PAGE),  # nested, starts after slot 1 ends
        (0, 3, 0x300, 4, base + 80 * PAGE),  # outside, after a gap
        (1, 0, 0x000, 2, base + 10 * PAGE),  # SMM alias of slot 2
        (1, 1, 0x010, 1, base + 84 * PAGE),  # adjacent to slot 3's end
    ]
    layout = build(specs)
    grid = [base + k * PAGE // 2 for k in range(-2, 2 * 86 + 2)]
    starts, ends, expected = [], [], []
    for s in grid:
        for e in grid:
            starts.append(s)
            ends.append(e)
            expected.append(oracle_hits(specs, s, e))
    got = layout.hit_mask(np.array(starts, np.uint64), np.array(ends, np.uint64))
    assert got.tolist() == expected
    for s, e in [(base + 20 * PAGE, base + 21 * PAGE), (base + 63 * PAGE, base + 90 * PAGE)]:
        assert layout.hits(s, e) is True
        assert {tuple(r) for r in layout.gfn_ranges(s, e)} == oracle_gfn_ranges(specs, s, e)


# -- properties against the oracle ---------------------------------------------------------------
@SETTINGS
@given(layout_and_ranges())
def test_hits_and_gfn_ranges_match_brute_force(case):
    """hits() and gfn_ranges() agree with walking every slot as the kernel does (docs/kernel.md
    §2)."""
    specs, ranges = case
    layout = build(specs)
    for start, end in ranges:
        expected = oracle_gfn_ranges(specs, start, end)
        got = layout.gfn_ranges(start, end)
        assert all(isinstance(r, GfnRange) for r in got)
        assert {tuple(r) for r in got} == expected
        assert len(got) == len(expected)
        # Documented order: address space 0 before 1, by gfn inside each address space.
        keys = [(r.as_id, r.gfn_start) for r in got]
        assert keys == sorted(keys)
        assert layout.hits(start, end) is oracle_hits(specs, start, end)
        assert bool(expected) is oracle_hits(specs, start, end)


@SETTINGS
@given(layout_and_ranges())
def test_hit_mask_matches_brute_force_on_uint64_arrays(case):
    """Vectorised hit_mask on uint64 arrays equals the per-range brute-force verdict."""
    specs, ranges = case
    layout = build(specs)
    starts = np.array([s for s, _ in ranges], dtype=np.uint64)
    ends = np.array([e for _, e in ranges], dtype=np.uint64)
    got = layout.hit_mask(starts, ends)
    assert got.dtype == bool
    assert got.shape == (len(ranges),)
    assert got.tolist() == [oracle_hits(specs, s, e) for s, e in ranges]


@SETTINGS
@given(layout_and_ranges(min_size=1))
def test_hit_mask_matches_brute_force_on_python_int_lists(case):
    """hit_mask on plain Python int lists (hvas up to 2**64 - 1) equals the brute-force verdict."""
    specs, ranges = case
    layout = build(specs)
    got = layout.hit_mask([s for s, _ in ranges], [e for _, e in ranges])
    assert got.tolist() == [oracle_hits(specs, s, e) for s, e in ranges]


@SETTINGS
@given(layouts())
def test_slots_are_listed_in_kernel_walk_order(case):
    """layout.slots holds every slot once, as_id 0 before 1, each address space by base_gfn."""
    _, specs = case
    layout = build(specs)
    listed = [(s.as_id, s.slot, s.base_gfn, s.npages, s.userspace_addr) for s in layout.slots]
    assert sorted(listed) == sorted(specs)
    assert listed == sorted(specs, key=lambda t: (t[0], t[2]))
    assert layout.total_pages == sum(t[3] for t in specs)


# -- scale ---------------------------------------------------------------------------------------
def test_hit_mask_at_32764_one_page_slots():
    """With the x86 maximum of 32764 one-page slots, 10**5 ranges match a chunked brute force."""
    rng = np.random.default_rng(20210402)
    base = 0x7F0000000000
    span_pages = 70_000
    n_slots, n_ranges = 32764, 10**5
    pages = rng.choice(span_pages, size=n_slots, replace=False)
    gfns = rng.permutation(n_slots) * 2  # gfn order unrelated to hva order, with gaps
    layout = MemslotLayout(
        Memslot(slot=i, base_gfn=int(gfns[i]), npages=1, userspace_addr=base + int(pages[i]) * PAGE)
        for i in range(n_slots)
    )
    assert len(layout) == n_slots

    # Ranges as byte offsets from `base`: arbitrary ones, and ones ending exactly at a slot start.
    lo_off, hi_off = -2 * PAGE, (span_pages + 2) * PAGE
    starts = rng.integers(lo_off, hi_off, size=n_ranges)
    ends = starts + rng.integers(-PAGE, 3 * PAGE, size=n_ranges)
    at_slot = rng.integers(0, n_ranges, size=n_ranges // 10)
    ends[at_slot] = pages[rng.integers(0, n_slots, size=at_slot.size)] * PAGE
    starts[at_slot] = ends[at_slot] - rng.integers(1, 2 * PAGE, size=at_slot.size)

    got = layout.hit_mask((starts + base).astype(np.uint64), (ends + base).astype(np.uint64))

    # Brute force over every (range, slot) pair: max(s, lo) < min(e, hi) <=> s < hi, lo < e, s < e.
    slot_lo = (pages * PAGE).astype(np.int32)
    slot_hi = slot_lo + np.int32(PAGE)
    s32, e32 = starts.astype(np.int32), ends.astype(np.int32)
    expected = np.empty(n_ranges, dtype=bool)
    chunk = 32  # small chunks keep the (chunk x 32764) temporaries in cache
    for i in range(0, n_ranges, chunk):
        s = s32[i : i + chunk, None]
        e = e32[i : i + chunk, None]
        expected[i : i + chunk] = ((s < slot_hi) & (slot_lo < e)).any(axis=1)
    expected &= s32 < e32

    assert 0.2 < expected.mean() < 0.9  # the mix really contains both hits and misses
    np.testing.assert_array_equal(got, expected)


# --- hits, hit_mask and gfn_ranges take the same inputs -----------------------------------------
# One slot of 16 pages at hva 0x7f0000000000; the last hva is 2**64 - 1 (an unsigned long).
_AGREE_LAYOUT = MemslotLayout([Memslot(0, 0x100, 16, 0x7F0000000000)])
_AGREE_IN = 0x7F0000000000
_AGREE_OUT = _AGREE_IN + 16 * 4096  # the first hva after the slot
_AGREE_CASES = [
    # (start, end, what all three give: a hit, a miss, or (error type, bound at fault, fragment))
    (_AGREE_IN, _AGREE_IN + 4096, True),
    (_AGREE_IN + 4095, _AGREE_IN + 4096, True),  # one byte is enough
    (np.int64(_AGREE_IN), np.uint64(_AGREE_IN + 4096), True),
    (np.uint32(0), np.uint64(_AGREE_IN + 1), True),
    (0, 2**64 - 1, True),  # the whole address space
    (_AGREE_OUT, 2**64 - 1, False),
    (_AGREE_IN - 4096, _AGREE_IN, False),  # ends where the slot starts: half-open
    (_AGREE_OUT - 1, _AGREE_IN, False),  # start > end: an empty range, hits nothing
    (_AGREE_IN, _AGREE_IN, False),  # empty
    (2**64 - 1, 2**64 - 1, False),
    (-1, _AGREE_IN, (ValueError, "start", "hvas must be in [0, 2**64), got -1")),
    (np.int64(-1), _AGREE_IN, (ValueError, "start", "got -1")),
    (_AGREE_IN, 2**64, (ValueError, "end", "got 18446744073709551616")),  # one past a ulong
    (2**70, 2**71, (ValueError, "start", "[0, 2**64)")),
    (float(_AGREE_IN), _AGREE_IN + 4096, (TypeError, "start", "expected integer hvas")),
    (np.float64(0), _AGREE_IN + 4096, (TypeError, "start", "expected integer hvas")),
    (_AGREE_IN, "0x7f0000001000", (TypeError, "end", "expected integer hvas")),
    (_AGREE_IN, b"\x00", (TypeError, "end", "expected integer hvas")),
    (True, _AGREE_IN, (TypeError, "start", "expected integer hvas")),
    (np.True_, _AGREE_IN, (TypeError, "start", "expected integer hvas")),
    (None, _AGREE_IN, (TypeError, "start", "")),
    (1 + 0j, _AGREE_IN, (TypeError, "start", "expected integer hvas")),
]


def _outcomes(layout, start, end):
    """What each of the three calls gives: its result, or its error (type and message)."""
    out = []
    for call in (
        lambda: layout.hits(start, end),
        lambda: bool(layout.hit_mask([start], [end])[0]),
        lambda: bool(layout.gfn_ranges(start, end)),
    ):
        try:
            out.append(call())
        except (TypeError, ValueError) as error:
            out.append(error)
    return out


def _kind(outcome):
    return type(outcome) if isinstance(outcome, Exception) else outcome


@pytest.mark.parametrize(("start", "end", "expected"), _AGREE_CASES)
def test_hits_hit_mask_gfn_ranges_agree_on_every_input(start, end, expected):
    """The three lookups accept and refuse the same values with the same error type, each
    message naming the bound at fault (hva_start / starts, hva_end / ends); where they accept,
    hits == hit_mask == bool(gfn_ranges), and the answer is the expected one."""
    outcomes = _outcomes(_AGREE_LAYOUT, start, end)
    if isinstance(expected, bool):
        assert outcomes == [expected] * 3
        return
    error, bound, fragment = expected
    assert [type(o) for o in outcomes] == [error] * 3, outcomes
    hits_error, mask_error, ranges_error = (str(o) for o in outcomes)
    assert hits_error.startswith(f"hva_{bound}") and ranges_error.startswith(f"hva_{bound}")
    assert mask_error.startswith(f"{bound}s: ")
    assert all(fragment in m for m in (hits_error, mask_error, ranges_error))


_ANY_HVA = st.one_of(
    st.integers(-(2**8), 2**64 + 2**8),
    st.integers(2**64 - 2**8, 2**64 + 2**8),
    st.integers(_AGREE_IN - 2**13, _AGREE_OUT + 2**13),
    st.floats(),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)


@settings(max_examples=200, deadline=None)
@given(start=_ANY_HVA, end=_ANY_HVA)
def test_the_three_lookups_agree_on_generated_inputs(start, end):
    """Any value on either side, valid or not: the three calls give one outcome (the same
    answer, or the same error type)."""
    outcomes = _outcomes(_AGREE_LAYOUT, start, end)
    kinds = [_kind(o) for o in outcomes]
    assert kinds[0] == kinds[1] == kinds[2], outcomes
    valid = all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64 for v in (start, end)
    )
    assert valid == (kinds[0] in (True, False))


@pytest.mark.parametrize("slots", [5, None, Memslot(0, 0, 1, 0x10000)], ids=repr)
def test_a_layout_is_built_from_an_iterable_of_memslots(slots):
    """A lone slot or a number is not a list of slots: refused by name, with the value."""
    with pytest.raises(TypeError, match=r"^MemslotLayout: expected an iterable of Memslot"):
        MemslotLayout(slots)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: large_vm_layout(smm="no"), TypeError, "smm = 'no': expected True or False"),
        (lambda: large_vm_layout(smm=1), TypeError, "smm = 1: expected True or False"),
        (lambda: large_vm_layout(4.5 * 2**40), TypeError, "ram_bytes = 4947802324992.0: expected"),
        (lambda: large_vm_layout("4T"), TypeError, "ram_bytes = '4T': expected an integer"),
        (lambda: large_vm_layout(True), TypeError, "ram_bytes = True: expected an integer"),
        (lambda: large_vm_layout(2**30), ValueError, "multiple of 2 MiB and >= 4 GiB"),
        (lambda: many_memslots_layout(2.0), TypeError, "n_slots = 2.0: expected an integer"),
        (lambda: many_memslots_layout("2"), TypeError, "n_slots = '2': expected an integer"),
        (lambda: many_memslots_layout(0), ValueError, "n_slots must be in [1, 32764]"),
        (lambda: many_memslots_layout(2, 1000), ValueError, "slot_bytes = 1000: expected a pos"),
        (lambda: many_memslots_layout(2, 0), ValueError, "slot_bytes = 0: expected a positive"),
        (lambda: many_memslots_layout(2, 4096.0), TypeError, "slot_bytes = 4096.0: expected an"),
    ],
)
def test_presets_refuse_what_is_not_a_size_or_a_flag(call, error, message):
    """smm="no" used to mean True (an SMM alias of every RAM slot); a float size in bytes or
    a slot count is refused rather than truncated, naming the parameter."""
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


def test_presets_take_numpy_integers_and_numpy_booleans():
    """np.int64 sizes and np.True_ build the same layouts as their Python counterparts."""
    assert large_vm_layout(np.int64(8 * 2**30), smm=np.True_) == large_vm_layout(
        8 * 2**30, smm=True
    )
    assert many_memslots_layout(np.int32(3), np.int64(4096)) == many_memslots_layout(3, 4096)
    ram_slots = [s for s in large_vm_layout() if not s.flags]
    assert len(large_vm_layout(smm=True)) == len(large_vm_layout()) + len(ram_slots)  # aliases


# --- KVM_MEM_MAX_NR_PAGES: no slot holds more than (1 << 31) - 1 pages -------------------------
def test_a_slot_holds_at_most_kvm_mem_max_nr_pages():
    """__kvm_set_memory_region() returns -EINVAL above KVM_MEM_MAX_NR_PAGES = 2**31 - 1 pages
    (include/linux/kvm_host.h): exactly that many is a slot, one page more is refused."""
    from kvmviz.memslots import KVM_MEM_MAX_NR_PAGES

    assert KVM_MEM_MAX_NR_PAGES == 2**31 - 1
    assert Memslot(0, 0, KVM_MEM_MAX_NR_PAGES, 0x100000000).npages == KVM_MEM_MAX_NR_PAGES
    with pytest.raises(MemslotError, match=r"KVM_MEM_MAX_NR_PAGES = 2,147,483,647"):
        Memslot(0, 0, KVM_MEM_MAX_NR_PAGES + 1, 0x100000000)


@pytest.mark.parametrize("ram_tib", [0.25, 4, 8, 12, 16, 24, 64])
@pytest.mark.parametrize("smm", [False, True])
def test_large_vm_presets_are_slots_kvm_accepts(ram_tib, smm):
    """The large-VM preset splits its high RAM as a VMM must: every slot within the limit,
    the slots of each address space contiguous in gfn and hva and adding up to the RAM."""
    from kvmviz.memslots import KVM_MEM_MAX_NR_PAGES
    from kvmviz.presets import large_vm_layout

    ram = int(ram_tib * 2**40)
    layout = large_vm_layout(ram, smm=smm)
    assert all(s.npages <= KVM_MEM_MAX_NR_PAGES for s in layout)
    for as_id in (0, 1) if smm else (0,):
        ram_slots = sorted(
            (s for s in layout if s.as_id == as_id and not s.flags), key=lambda s: s.base_gfn
        )
        hole = 0x100000 - 0xC0000  # the legacy VGA/ROM hole below 1 MiB is not RAM
        assert sum(s.npages for s in ram_slots) * 4096 == ram - hole
        high = [s for s in ram_slots if s.base_gfn >= (4 << 30) >> 12]
        for a, b in itertools.pairwise(high):
            assert a.gfn_end == b.base_gfn and a.hva_end == b.hva_start
            assert (a.npages * 4096) % 2**30 == 0  # cut at a 1 GiB boundary


def test_the_default_large_vm_has_two_high_ram_slots():
    """12 TiB: 2 GiB low, then 8 TiB - 1 GiB and the rest above 4 GiB."""
    from kvmviz.presets import large_vm_layout

    high = [s for s in large_vm_layout() if s.base_gfn >= (4 << 30) >> 12]
    assert [s.npages * 4096 // 2**30 for s in high] == [8 * 1024 - 1, 4 * 1024 - 1]
